//! https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping

use serde_json::{Value, json};

use super::*;
use crate::auth::UserInfo;

fn operator() -> UserInfo {
    UserInfo::service_account("landlord", "landlord")
}

fn user(name: &str) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid: String::new(),
        groups: vec!["system:authenticated".into()],
    }
}

/// The bootstrap policy plus what Landlord's chart grants its ServiceAccount: manage
/// RoleBindings anywhere, and `bind` the `admin` ClusterRole only.
fn cluster() -> RbacSnapshot {
    let mut objects = crate::rbac::bootstrap_policy();
    objects.extend([
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "landlord"},
            "rules": [
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["admin"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]}
            ]
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "landlord"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "landlord"},
            "subjects": [{"kind": "ServiceAccount", "name": "landlord", "namespace": "landlord"}]
        }),
        // dana administers namespace "team" only, and may escalate Roles there
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "dana-admin", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": "User", "name": "dana"}]
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "role-escalator"},
            "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]}]
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "erin-escalate", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "role-escalator"},
            "subjects": [{"kind": "User", "name": "erin"}]
        }),
    ]);
    RbacSnapshot::from_objects(&objects).expect("valid objects")
}

fn binding(kind: &str, namespace: Option<&str>, name: &str, role_kind: &str, role: &str) -> Value {
    let mut metadata = json!({"name": name});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"kind": "User", "name": "owner@acme.example"}]
    })
}

fn role_object(kind: &str, namespace: Option<&str>, name: &str, rules: Value) -> Value {
    let mut metadata = json!({"name": name});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": metadata, "rules": rules})
}

/// The attributes of a create (POST, no name) or update (PUT, named) of `resource`.
fn request(
    who: UserInfo,
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> RequestAttributes {
    let mut attrs = RequestAttributes::resource(who, verb, RBAC_GROUP, resource);
    attrs.namespace = namespace.map(str::to_owned);
    if verb != "create" {
        attrs.name = Some(name.to_owned());
    }
    attrs
}

fn create(
    who: UserInfo,
    resource: &str,
    namespace: Option<&str>,
    object: &Value,
) -> Result<(), RbacWriteError> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    check_rbac_write(
        &request(who, "create", resource, namespace, name),
        object,
        None,
        &cluster(),
    )
}

// "You can only create/update a role binding if you already have all the permissions
// contained in the referenced role (at the same scope as the role binding) or if you have
// been authorized to perform the bind verb on the referenced role." Landlord's chart grants
// `bind` on the `admin` ClusterRole, so its RoleBindings to `admin` are accepted.
#[test]
fn bind_verb_on_the_referenced_role_allows_the_binding() {
    let owners = binding(
        "RoleBinding",
        Some("tenant-acme"),
        "owners",
        "ClusterRole",
        "admin",
    );
    assert_eq!(
        create(operator(), "rolebindings", Some("tenant-acme"), &owners),
        Ok(())
    );
}

// Same rule: `bind` limited by resourceNames covers only the named role.
#[test]
fn bind_is_limited_to_the_named_roles() {
    let editors = binding(
        "RoleBinding",
        Some("tenant-acme"),
        "editors",
        "ClusterRole",
        "edit",
    );
    let err =
        create(operator(), "rolebindings", Some("tenant-acme"), &editors).expect_err("escalation");
    let RbacWriteError::Forbidden {
        resource,
        name,
        message,
    } = &err
    else {
        panic!("expected Forbidden, got {err:?}");
    };
    assert_eq!(
        (resource.as_str(), name.as_str()),
        ("rolebindings", "editors")
    );
    assert!(
        message.starts_with(
            "user \"system:serviceaccount:landlord:landlord\" (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:landlord\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"bindings\"], Verbs:[\"get\" \"list\" \"watch\"]}\n"
        ),
        "{message}"
    );
    let lines: Vec<&str> = message.lines().collect();
    assert!(lines.contains(&"{APIGroups:[\"\"], Resources:[\"configmaps\"], Verbs:[\"create\" \"update\" \"patch\" \"delete\" \"deletecollection\" \"get\" \"list\" \"watch\"]}"), "{message}");
    // pods get/list are held, so only the other verbs are missing
    assert!(lines.contains(&"{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"create\" \"update\" \"patch\" \"delete\" \"deletecollection\" \"watch\"]}"), "{message}");
    let mut sorted = lines[1..].to_vec();
    sorted.sort_unstable();
    assert_eq!(lines[1..], sorted[..], "missing rules are listed in order");
    let status = err.status();
    assert_eq!(status["code"], 403);
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(
        status["details"],
        json!({"name": "editors", "group": RBAC_GROUP, "kind": "rolebindings"})
    );
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("rolebindings.rbac.authorization.k8s.io \"editors\" is forbidden: user \"system:serviceaccount:landlord:landlord\"")),
        "{status}"
    );
}

// "...if you already have all the permissions contained in the referenced role (at the
// same scope as the role binding)": dana is admin in "team" only.
#[test]
fn holding_the_permissions_at_the_binding_scope_allows_the_binding() {
    let in_team = binding(
        "RoleBinding",
        Some("team"),
        "viewers",
        "ClusterRole",
        "view",
    );
    assert_eq!(
        create(user("dana"), "rolebindings", Some("team"), &in_team),
        Ok(())
    );
    let elsewhere = binding(
        "RoleBinding",
        Some("prod"),
        "viewers",
        "ClusterRole",
        "view",
    );
    assert!(matches!(
        create(user("dana"), "rolebindings", Some("prod"), &elsewhere),
        Err(RbacWriteError::Forbidden { .. })
    ));
    let cluster_wide = binding("ClusterRoleBinding", None, "viewers", "ClusterRole", "view");
    assert!(matches!(
        create(user("dana"), "clusterrolebindings", None, &cluster_wide),
        Err(RbacWriteError::Forbidden { .. })
    ));
}

// "You can only create/update a role if ... You already have all the permissions
// contained in the role, at the same scope as the object being modified (cluster-wide for
// a ClusterRole, within the same namespace or cluster-wide for a Role)".
#[test]
fn roles_may_only_hold_permissions_the_creator_holds() {
    let reader = json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]);
    let role = role_object("Role", Some("anywhere"), "reader", reader.clone());
    // the operator holds get/list pods cluster-wide, so in any namespace
    assert_eq!(create(operator(), "roles", Some("anywhere"), &role), Ok(()));
    let cluster_role = role_object("ClusterRole", None, "reader", reader);
    assert_eq!(
        create(operator(), "clusterroles", None, &cluster_role),
        Ok(())
    );
    // `*/scale` held covers any resource's scale subresource
    let scaler = role_object(
        "Role",
        Some("x"),
        "scaler",
        json!([{"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["update"]}]),
    );
    assert_eq!(create(operator(), "roles", Some("x"), &scaler), Ok(()));
    let writer = role_object(
        "Role",
        Some("x"),
        "writer",
        json!([
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete", "patch"]},
            {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}
        ]),
    );
    let err = create(operator(), "roles", Some("x"), &writer).expect_err("escalation");
    assert_eq!(
        err.to_string(),
        "roles.rbac.authorization.k8s.io \"writer\" is forbidden: user \"system:serviceaccount:landlord:landlord\" (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:landlord\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\" \"patch\"]}\n{NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}"
    );
}

// "2. You are granted explicit permission to perform the escalate verb on the roles or
// clusterroles resource in the rbac.authorization.k8s.io API group."
#[test]
fn escalate_verb_allows_any_role() {
    let everything = role_object(
        "Role",
        Some("team"),
        "god",
        json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
    );
    assert_eq!(
        create(user("erin"), "roles", Some("team"), &everything),
        Ok(())
    );
    assert!(matches!(
        create(user("erin"), "roles", Some("other"), &everything),
        Err(RbacWriteError::Forbidden { .. })
    ));
}

// kube-apiserver's ClusterRole storage: "to set the aggregation rule, since it can gather
// anything, requires * on *.*" ("must have cluster-admin privileges to use the
// aggregationRule").
#[test]
fn aggregation_rules_need_full_authority() {
    let aggregated = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "gatherer"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}
    });
    let err = create(operator(), "clusterroles", None, &aggregated).expect_err("not cluster-admin");
    assert_eq!(
        err.to_string(),
        "clusterroles.rbac.authorization.k8s.io \"gatherer\" is forbidden: must have cluster-admin privileges to use the aggregationRule"
    );
    let root = UserInfo {
        name: "root".into(),
        uid: String::new(),
        groups: vec!["system:masters".into()],
    };
    assert_eq!(create(root, "clusterroles", None, &aggregated), Ok(()));
}

// A binding to a role that does not exist, by a user who may not `bind` it: the role
// lookup fails with NotFound (404).
#[test]
fn binding_to_a_missing_role_is_not_found() {
    let ghost = binding("RoleBinding", Some("team"), "ghost", "Role", "nope");
    let err = create(user("dana"), "rolebindings", Some("team"), &ghost).expect_err("not found");
    assert_eq!(
        err,
        RbacWriteError::RoleNotFound {
            resource: "roles".into(),
            name: "nope".into()
        }
    );
    let status = err.status();
    assert_eq!(status["code"], 404);
    assert_eq!(
        status["message"],
        "roles.rbac.authorization.k8s.io \"nope\" not found"
    );
    // with `bind` on the role its rules are not needed
    let admin_ghost = binding("RoleBinding", Some("t"), "ghost", "ClusterRole", "admin");
    assert_eq!(
        create(operator(), "rolebindings", Some("t"), &admin_ghost),
        Ok(())
    );
}

// kube-apiserver skips the check when an update changes only the fields the garbage
// collector changes (IsOnlyMutatingGCFields: ownerReferences, finalizers).
#[test]
fn updates_of_garbage_collection_fields_are_not_checked() {
    let old = binding(
        "RoleBinding",
        Some("prod"),
        "viewers",
        "ClusterRole",
        "cluster-admin",
    );
    let mut new = old.clone();
    new["metadata"]["finalizers"] = json!(["landlord.dev/erasure"]);
    new["metadata"]["ownerReferences"] = json!([{"apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant", "name": "acme", "uid": "u"}]);
    let attrs = request(
        user("dana"),
        "update",
        "rolebindings",
        Some("prod"),
        "viewers",
    );
    assert_eq!(
        check_rbac_write(&attrs, &new, Some(&old), &cluster()),
        Ok(())
    );
    // any other change is checked
    new["metadata"]["labels"] = json!({"a": "b"});
    assert!(matches!(
        check_rbac_write(&attrs, &new, Some(&old), &cluster()),
        Err(RbacWriteError::Forbidden { .. })
    ));
}

#[test]
fn other_requests_are_not_checked() {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
    let attrs =
        RequestAttributes::resource(user("nobody"), "create", "", "secrets").in_namespace("x");
    assert_eq!(check_rbac_write(&attrs, &secret, None, &cluster()), Ok(()));
}
