use serde_json::{Value, json};

use super::*;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn alice() -> UserInfo {
    user("alice", &["system:authenticated"])
}

fn role(namespace: &str, name: &str, rules: Value) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": namespace}, "rules": rules
    })
}

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name}, "rules": rules
    })
}

fn role_binding(
    namespace: &str,
    name: &str,
    role_kind: &str,
    role: &str,
    subjects: Value,
) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": subjects
    })
}

fn cluster_role_binding(name: &str, role: &str, subjects: Value) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects
    })
}

fn snapshot(objects: &[Value]) -> RbacSnapshot {
    RbacSnapshot::from_objects(objects).expect("valid RBAC objects")
}

fn allowed(rbac: &RbacSnapshot, attrs: &RequestAttributes) -> bool {
    authorize(attrs, rbac).is_allowed()
}

fn can(
    rbac: &RbacSnapshot,
    who: &UserInfo,
    verb: &str,
    group: &str,
    resource: &str,
    ns: Option<&str>,
) -> bool {
    let mut attrs = RequestAttributes::resource(who.clone(), verb, group, resource);
    attrs.namespace = ns.map(str::to_owned);
    allowed(rbac, &attrs)
}

// https://kubernetes.io/docs/reference/access-authn-authz/rbac/#role-and-clusterrole
// "A Role always sets permissions within a particular
// namespace";
// https://kubernetes.io/docs/reference/access-authn-authz/rbac/#rolebinding-and-clusterrolebinding
// "A RoleBinding grants
// permissions within a specific namespace".
#[test]
fn role_binding_grants_only_in_its_namespace() {
    let rbac = snapshot(&[
        role(
            "default",
            "pod-reader",
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]}]),
        ),
        role_binding(
            "default",
            "read-pods",
            "Role",
            "pod-reader",
            json!([{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]),
        ),
    ]);
    assert!(can(&rbac, &alice(), "list", "", "pods", Some("default")),);
    assert!(!can(&rbac, &alice(), "list", "", "pods", Some("other")));
    assert!(
        !can(&rbac, &alice(), "list", "", "pods", None),
        "not cluster-wide"
    );
    assert!(
        !can(&rbac, &alice(), "delete", "", "pods", Some("default")),
        "verb not granted"
    );
    assert!(
        !can(&rbac, &alice(), "list", "apps", "pods", Some("default")),
        "other group"
    );
    assert!(
        !can(
            &rbac,
            &user("bob", &[]),
            "list",
            "",
            "pods",
            Some("default")
        ),
        "other user"
    );
}

// https://kubernetes.io/docs/reference/access-authn-authz/rbac/#rolebinding-example
// "A RoleBinding can also reference a ClusterRole to grant
// the permissions defined in that ClusterRole to resources inside the RoleBinding's
// namespace."
#[test]
fn role_binding_to_cluster_role_is_scoped_to_the_binding_namespace() {
    let rbac = snapshot(&[
        cluster_role(
            "secret-reader",
            json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]),
        ),
        role_binding(
            "development",
            "read-secrets",
            "ClusterRole",
            "secret-reader",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    assert!(can(
        &rbac,
        &alice(),
        "get",
        "",
        "secrets",
        Some("development")
    ));
    assert!(!can(
        &rbac,
        &alice(),
        "get",
        "",
        "secrets",
        Some("production")
    ));
    assert!(!can(&rbac, &alice(), "list", "", "secrets", None));
}

// https://kubernetes.io/docs/reference/access-authn-authz/rbac/#clusterrolebinding-example
// "a ClusterRoleBinding ... grants permissions across
// the whole cluster" (every namespace and cluster-scoped resources).
#[test]
fn cluster_role_binding_grants_everywhere() {
    let rbac = snapshot(&[
        cluster_role(
            "tenant-manager",
            json!([{"apiGroups": ["landlord.dev"], "resources": ["tenants"], "verbs": ["*"]}]),
        ),
        cluster_role_binding(
            "landlord",
            "tenant-manager",
            json!([{"kind": "ServiceAccount", "name": "landlord", "namespace": "landlord"}]),
        ),
    ]);
    let operator = crate::auth::UserInfo::service_account("landlord", "landlord");
    assert!(can(
        &rbac,
        &operator,
        "delete",
        "landlord.dev",
        "tenants",
        None
    ));
    assert!(can(
        &rbac,
        &operator,
        "watch",
        "landlord.dev",
        "tenants",
        Some("any")
    ));
    let decision = authorize(
        &RequestAttributes::resource(operator, "patch", "landlord.dev", "tenants").named("acme"),
        &rbac,
    );
    assert_eq!(
        decision,
        Decision::Allow {
            reason: "RBAC: allowed by ClusterRoleBinding \"landlord\" of ClusterRole \"tenant-manager\" to ServiceAccount \"landlord/landlord\"".into()
        }
    );
}

// https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-resources
// "To represent this in an RBAC role, use a slash (/) to
// delimit the resource and subresource"; a rule on the resource alone does not cover its
// subresources. `*` matches everything, and `*/scale` any resource's scale subresource
// (rbac/v1 evaluation helpers, ResourceMatches).
#[test]
fn subresources_need_their_own_rule() {
    let rbac = snapshot(&[
        cluster_role(
            "r",
            json!([
                {"apiGroups": ["landlord.dev"], "resources": ["tenants"], "verbs": ["get", "patch"]},
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]}
            ]),
        ),
        cluster_role_binding("b", "r", json!([{"kind": "User", "name": "alice"}])),
    ]);
    let attrs = |verb: &str, group: &str, resource: &str, sub: Option<&str>| {
        let mut a = RequestAttributes::resource(alice(), verb, group, resource).named("x");
        a.subresource = sub.map(str::to_owned);
        a
    };
    assert!(allowed(
        &rbac,
        &attrs("patch", "landlord.dev", "tenants", None)
    ));
    assert!(!allowed(
        &rbac,
        &attrs("patch", "landlord.dev", "tenants", Some("status"))
    ));
    assert!(allowed(&rbac, &attrs("get", "", "pods", Some("log"))));
    assert!(!allowed(&rbac, &attrs("get", "", "pods", None)));
    assert!(allowed(
        &rbac,
        &attrs("update", "apps", "deployments", Some("scale"))
    ));
    assert!(!allowed(
        &rbac,
        &attrs("update", "apps", "deployments", None)
    ));
    assert!(!allowed(
        &rbac,
        &attrs("update", "apps", "deployments", Some("status"))
    ));

    let star = snapshot(&[
        cluster_role(
            "all",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
        ),
        cluster_role_binding("b", "all", json!([{"kind": "User", "name": "alice"}])),
    ]);
    assert!(allowed(
        &star,
        &attrs("patch", "landlord.dev", "tenants", Some("status"))
    ));
    assert!(allowed(
        &star,
        &attrs("escalate", RBAC_GROUP, "clusterroles", None)
    ));
    assert!(
        !allowed(
            &star,
            &RequestAttributes::non_resource(alice(), "get", "/metrics")
        ),
        "resource rules never cover paths"
    );
}

// https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-resources
// "You can also refer to resources by name for certain
// requests through the resourceNames list." ... "You cannot restrict create or
// deletecollection requests by their resource name." ... "If you restrict list or watch
// by resourceName, clients must include a metadata.name field selector".
#[test]
fn resource_names_restrict_requests_about_one_object() {
    let rbac = snapshot(&[
        role(
            "default",
            "configmap-updater",
            json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["my-configmap"], "verbs": ["update", "get", "list", "create", "deletecollection"]}]),
        ),
        role_binding(
            "default",
            "b",
            "Role",
            "configmap-updater",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    let on = |verb: &str, name: Option<&str>| {
        let mut a =
            RequestAttributes::resource(alice(), verb, "", "configmaps").in_namespace("default");
        a.name = name.map(str::to_owned);
        allowed(&rbac, &a)
    };
    assert!(on("get", Some("my-configmap")));
    assert!(on("update", Some("my-configmap")));
    assert!(!on("get", Some("other")));
    assert!(!on("list", None));
    assert!(!on("create", None));
    assert!(!on("deletecollection", None));
    // a list pinned to the name through the field selector is about that object
    let list = request::parse_request(
        "GET",
        "/api/v1/namespaces/default/configmaps",
        Some("fieldSelector=metadata.name%3Dmy-configmap"),
    )
    .expect("parses");
    assert!(allowed(
        &rbac,
        &RequestAttributes::from_request(alice(), &list)
    ));
}

// https://kubernetes.io/docs/reference/access-authn-authz/rbac/#role-and-clusterrole
// ClusterRoles grant access to "non-resource endpoints
// (like /healthz)"; a trailing `*` in nonResourceURLs is a prefix glob (the example
// `nonResourceURLs: ["/healthz", "/healthz/*"]`).
#[test]
fn non_resource_urls_match_exactly_or_by_prefix() {
    let rbac = snapshot(&[
        cluster_role(
            "health",
            json!([{"nonResourceURLs": ["/healthz", "/healthz/*"], "verbs": ["get", "post"]}]),
        ),
        cluster_role_binding("b", "health", json!([{"kind": "Group", "name": "ops"}])),
    ]);
    let ops = user("carol", &["ops"]);
    let path = |verb: &str, p: &str| {
        allowed(
            &rbac,
            &RequestAttributes::non_resource(ops.clone(), verb, p),
        )
    };
    assert!(path("get", "/healthz"));
    assert!(path("get", "/healthz/etcd"));
    assert!(path("post", "/healthz/"));
    assert!(!path("get", "/healthzz"));
    assert!(!path("get", "/version"));
    assert!(!path("delete", "/healthz"));
    // non-resource rules never grant resources
    assert!(!can(&rbac, &ops, "get", "", "healthz", None));
}

// https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-subjects
// subjects are users, groups, or ServiceAccounts; "The
// prefix system:serviceaccount: is reserved for ServiceAccount usernames" and the groups
// system:serviceaccounts / system:serviceaccounts:<ns>.
#[test]
fn subjects_users_groups_and_service_accounts() {
    let rules = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]);
    let rbac = snapshot(&[
        cluster_role("cm", rules),
        role_binding(
            "team",
            "by-group",
            "ClusterRole",
            "cm",
            json!([{"kind": "Group", "name": "system:serviceaccounts:qa"}]),
        ),
        role_binding(
            "team",
            "sa-explicit",
            "ClusterRole",
            "cm",
            json!([{"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}]),
        ),
        role_binding(
            "team",
            "sa-local",
            "ClusterRole",
            "cm",
            json!([{"kind": "ServiceAccount", "name": "local"}]),
        ),
        cluster_role_binding(
            "sa-no-namespace",
            "cm",
            json!([{"kind": "ServiceAccount", "name": "nowhere"}]),
        ),
        cluster_role_binding(
            "odd-kind",
            "cm",
            json!([{"kind": "Robot", "name": "alice"}]),
        ),
    ]);
    let get = |who: &UserInfo, ns: &str| can(&rbac, who, "get", "", "configmaps", Some(ns));
    assert!(get(&UserInfo::service_account("qa", "anyone"), "team"));
    assert!(get(&UserInfo::service_account("ci", "builder"), "team"));
    assert!(!get(&UserInfo::service_account("team", "builder"), "team"));
    // a ServiceAccount subject without namespace in a RoleBinding means the binding's
    assert!(get(&UserInfo::service_account("team", "local"), "team"));
    assert!(!get(&UserInfo::service_account("other", "local"), "team"));
    // ...and nothing in a ClusterRoleBinding
    assert!(!get(&UserInfo::service_account("team", "nowhere"), "team"));
    // a plain user named like the subject of an unknown kind gets nothing
    assert!(!get(&alice(), "team"));
    // a user whose name merely looks like a ServiceAccount's is not one unless it matches
    assert!(!get(
        &user("system:serviceaccount:ci:builder:x", &[]),
        "team"
    ));
}

// https://kubernetes.io/docs/reference/access-authn-authz/rbac/#aggregated-clusterroles
// "The control plane ... fills in the rules of the
// aggregated ClusterRole with the rules of any ClusterRole that matches the
// clusterRoleSelectors"; "the control plane overwrites any values that you manually
// specify in the rules field of an aggregate ClusterRole".
#[test]
fn aggregated_cluster_roles_collect_selected_rules() {
    let monitoring = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "monitoring"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate-to-monitoring": "true"}}]},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]
    });
    let endpoints = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "monitoring-endpoints", "labels": {"rbac.example.com/aggregate-to-monitoring": "true"}},
        "rules": [{"apiGroups": [""], "resources": ["services", "endpointslices", "pods"], "verbs": ["get", "list", "watch"]}]
    });
    let mut rbac = snapshot(&[
        monitoring,
        cluster_role_binding(
            "mon",
            "monitoring",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    assert!(
        !can(&rbac, &alice(), "get", "", "secrets", None),
        "manual rules are overwritten"
    );
    assert!(!can(&rbac, &alice(), "list", "", "pods", None));
    assert_eq!(
        rbac.aggregation_updates(),
        vec![("monitoring".to_owned(), json!([]))]
    );

    rbac.upsert(&endpoints).expect("valid");
    assert!(can(&rbac, &alice(), "list", "", "pods", Some("x")));
    assert_eq!(
        rbac.aggregation_updates(),
        vec![(
            "monitoring".to_owned(),
            json!([{"apiGroups": [""], "resources": ["services", "endpointslices", "pods"], "verbs": ["get", "list", "watch"]}])
        )]
    );

    assert!(rbac.remove(RbacKind::ClusterRole, None, "monitoring-endpoints"));
    assert!(!can(&rbac, &alice(), "list", "", "pods", Some("x")));
    assert!(!rbac.remove(RbacKind::ClusterRole, None, "monitoring-endpoints"));
}

// Aggregation is transitive through aggregated roles (the default admin role aggregates
// edit, which aggregates view) and selectors support matchExpressions
// (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#resources-that-support-set-based-requirements).
#[test]
fn aggregation_is_transitive_and_supports_expressions() {
    let aggregated = |name: &str, labels: Value, selector: Value| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels},
            "aggregationRule": {"clusterRoleSelectors": [selector]}
        })
    };
    let rbac = snapshot(&[
        aggregated(
            "top",
            json!({}),
            json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["middle"]}]}),
        ),
        aggregated(
            "mid",
            json!({"tier": "middle"}),
            json!({"matchExpressions": [{"key": "leaf", "operator": "Exists"}]}),
        ),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "leaf", "labels": {"leaf": "yes"}},
            "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}]
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "excluded", "labels": {"leaf": "yes", "tier": "middle"}},
            "rules": [{"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["create"]}]
        }),
        aggregated(
            "bad",
            json!({}),
            json!({"matchExpressions": [{"key": "leaf", "operator": "In", "values": []}]}),
        ),
        cluster_role_binding("top", "top", json!([{"kind": "User", "name": "alice"}])),
        cluster_role_binding("bad", "bad", json!([{"kind": "User", "name": "bob"}])),
    ]);
    assert!(
        can(&rbac, &alice(), "create", "batch", "jobs", None),
        "through mid"
    );
    assert!(
        can(&rbac, &alice(), "create", "batch", "cronjobs", None),
        "selected directly by tier"
    );
    assert!(
        !can(&rbac, &user("bob", &[]), "create", "batch", "jobs", None),
        "invalid selector selects nothing"
    );
}

// kube-apiserver's privileged group authorizer: system:masters may do anything.
#[test]
fn system_masters_are_allowed_everything() {
    let rbac = RbacSnapshot::new();
    let root = user("root", &["system:masters"]);
    assert!(can(&rbac, &root, "delete", "landlord.dev", "tenants", None));
    assert!(allowed(
        &rbac,
        &RequestAttributes::non_resource(root, "get", "/anything")
    ));
    assert!(
        !can(&rbac, &alice(), "get", "", "pods", Some("x")),
        "RBAC denies by default"
    );
}

// https://kubernetes.io/docs/reference/access-authn-authz/rbac/#clusterrolebinding-example and
// the authorizer's reasons: a binding to a missing
// role grants nothing and the denial names the missing role.
#[test]
fn missing_roles_grant_nothing_and_are_reported() {
    let rbac = snapshot(&[
        cluster_role_binding(
            "ghost",
            "ghost-role",
            json!([{"kind": "User", "name": "alice"}]),
        ),
        role_binding(
            "ns",
            "ghost",
            "Role",
            "ghost-role",
            json!([{"kind": "User", "name": "alice"}]),
        ),
        role_binding(
            "ns",
            "ghost2",
            "ClusterRole",
            "ghost-role",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    let decision = authorize(
        &RequestAttributes::resource(alice(), "get", "", "pods").in_namespace("ns"),
        &rbac,
    );
    assert_eq!(
        decision,
        Decision::Deny {
            reason: "RBAC: [clusterrole.rbac.authorization.k8s.io \"ghost-role\" not found, role.rbac.authorization.k8s.io \"ghost-role\" not found]".into()
        }
    );
    let status = forbidden_status(
        &RequestAttributes::resource(alice(), "get", "", "pods")
            .in_namespace("ns")
            .named("p"),
        decision.reason(),
    );
    assert_eq!(
        status["message"],
        "pods \"p\" is forbidden: User \"alice\" cannot get resource \"pods\" in API group \"\" in the namespace \"ns\": RBAC: [clusterrole.rbac.authorization.k8s.io \"ghost-role\" not found, role.rbac.authorization.k8s.io \"ghost-role\" not found]"
    );
}

// The 403 wording of k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go
// (forbiddenMessage) wrapped by apierrors.NewForbidden.
#[test]
fn forbidden_status_matches_kube_apiserver_wording() {
    let operator = crate::auth::UserInfo::service_account("landlord", "landlord");
    let tenants =
        || RequestAttributes::resource(operator.clone(), "delete", "landlord.dev", "tenants");
    let status = forbidden_status(&tenants().named("acme"), "");
    assert_eq!(
        status,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "tenants.landlord.dev \"acme\" is forbidden: User \"system:serviceaccount:landlord:landlord\" cannot delete resource \"tenants\" in API group \"landlord.dev\" at the cluster scope",
            "reason": "Forbidden",
            "details": {"name": "acme", "group": "landlord.dev", "kind": "tenants"},
            "code": 403
        })
    );
    let mut patch_status = tenants().named("acme").with_subresource("status");
    patch_status.verb = "patch".into();
    assert_eq!(
        forbidden_status(&patch_status, "")["message"],
        "tenants.landlord.dev \"acme\" is forbidden: User \"system:serviceaccount:landlord:landlord\" cannot patch resource \"tenants/status\" in API group \"landlord.dev\" at the cluster scope"
    );
    let mut list = tenants();
    list.verb = "list".into();
    assert_eq!(
        forbidden_status(&list, "")["message"],
        "tenants.landlord.dev is forbidden: User \"system:serviceaccount:landlord:landlord\" cannot list resource \"tenants\" in API group \"landlord.dev\" at the cluster scope"
    );
    let secrets = RequestAttributes::resource(operator.clone(), "get", "", "secrets")
        .in_namespace("x")
        .named("s");
    let status = forbidden_status(&secrets, "");
    assert_eq!(
        status["message"],
        "secrets \"s\" is forbidden: User \"system:serviceaccount:landlord:landlord\" cannot get resource \"secrets\" in API group \"\" in the namespace \"x\""
    );
    assert_eq!(status["details"], json!({"name": "s", "kind": "secrets"}));
    let path = forbidden_status(
        &RequestAttributes::non_resource(operator, "get", "/metrics"),
        "",
    );
    assert_eq!(
        path["message"],
        "forbidden: User \"system:serviceaccount:landlord:landlord\" cannot get path \"/metrics\""
    );
    assert_eq!(path["details"], json!({}));
    let html = forbidden_status(
        &RequestAttributes::non_resource(alice(), "get", "/<b>&"),
        "",
    );
    assert_eq!(
        html["message"],
        "forbidden: User \"alice\" cannot get path \"/&lt;b&gt;&amp;\""
    );
}

// From an HTTP request to a decision, as the server will call it.
#[test]
fn http_requests_are_authorized_end_to_end() {
    let rbac = snapshot(&[
        cluster_role(
            "tenant-status",
            json!([{"apiGroups": ["landlord.dev"], "resources": ["tenants/status"], "verbs": ["patch"]}, {"apiGroups": ["landlord.dev"], "resources": ["tenants"], "verbs": ["watch", "list"]}]),
        ),
        cluster_role_binding(
            "b",
            "tenant-status",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    let check = |method: &str, path: &str, query: Option<&str>| {
        let info = request::parse_request(method, path, query).expect("parses");
        allowed(&rbac, &RequestAttributes::from_request(alice(), &info))
    };
    assert!(check(
        "PATCH",
        "/apis/landlord.dev/v1alpha1/tenants/acme/status",
        None
    ));
    assert!(!check(
        "PATCH",
        "/apis/landlord.dev/v1alpha1/tenants/acme",
        None
    ));
    assert!(check(
        "GET",
        "/apis/landlord.dev/v1alpha1/tenants",
        Some("watch=true")
    ));
    assert!(check("GET", "/apis/landlord.dev/v1alpha1/tenants", None));
    assert!(!check(
        "GET",
        "/apis/landlord.dev/v1alpha1/tenants/acme",
        None
    ));
    assert!(!check("GET", "/version", None));
}

#[test]
fn snapshot_rejects_what_it_cannot_hold() {
    assert!(matches!(
        RbacSnapshot::from_objects(&[json!({"kind": "ConfigMap", "metadata": {"name": "x"}})]),
        Err(RbacObjectError::UnknownKind(kind)) if kind == "ConfigMap"
    ));
    assert!(matches!(
        RbacSnapshot::from_objects(&[
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "x"}})
        ]),
        Err(RbacObjectError::MissingNamespace { .. })
    ));
    assert!(matches!(
        RbacSnapshot::from_objects(&[
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "x", "namespace": "n"}, "subjects": "everyone"})
        ]),
        Err(RbacObjectError::Malformed {
            kind: "RoleBinding",
            ..
        })
    ));
}

#[test]
fn upsert_replaces_and_remove_forgets() {
    let mut rbac = snapshot(&[
        role(
            "n",
            "r",
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
        ),
        role_binding(
            "n",
            "b",
            "Role",
            "r",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    assert!(can(&rbac, &alice(), "get", "", "pods", Some("n")));
    rbac.upsert(&role(
        "n",
        "r",
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]),
    ))
    .expect("valid");
    assert!(!can(&rbac, &alice(), "get", "", "pods", Some("n")));
    assert!(can(&rbac, &alice(), "list", "", "pods", Some("n")));
    assert!(rbac.remove(RbacKind::RoleBinding, Some("n"), "b"));
    assert!(!can(&rbac, &alice(), "list", "", "pods", Some("n")));
    assert!(!rbac.remove(RbacKind::Role, Some("other"), "r"));
}
