//! The default RBAC policy kube-apiserver creates at start-up
//! (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`, Kubernetes 1.33), see
//! <https://kubernetes.io/docs/reference/access-authn-authz/rbac/#default-roles-and-role-bindings>.
//!
//! Included: the user-facing roles `cluster-admin`, `admin`, `edit`, `view` (with their real
//! rules, through the `system:aggregate-to-*` roles they aggregate), the discovery roles
//! `system:discovery`, `system:basic-user`, `system:public-info-viewer`,
//! `system:monitoring`, and their ClusterRoleBindings. Left out: the roles of components
//! the emulator does not run (nodes, kube-proxy, controllers, the scheduler...), and the
//! rules that only feature gates of 1.33 add.

use serde_json::{Map, Value, json};

use super::{RBAC_GROUP, RbacSnapshot};

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({ "apiGroups": groups, "resources": resources, "verbs": verbs })
}

fn url_rule(verbs: &[&str], urls: &[&str]) -> Value {
    json!({ "nonResourceURLs": urls, "verbs": verbs })
}

fn metadata(name: &str, aggregate_to: Option<&str>) -> Value {
    let mut labels = Map::new();
    if let Some(label) = aggregate_to {
        labels.insert(label.into(), json!("true"));
    }
    labels.insert("kubernetes.io/bootstrapping".into(), json!("rbac-defaults"));
    json!({
        "name": name,
        "labels": labels,
        "annotations": { "rbac.authorization.kubernetes.io/autoupdate": "true" }
    })
}

fn cluster_role(name: &str, aggregate_to: Option<&str>, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(name, aggregate_to),
        "rules": rules
    })
}

fn aggregated_cluster_role(name: &str, aggregate_to: Option<&str>, selects: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(name, aggregate_to),
        "aggregationRule": { "clusterRoleSelectors": [ { "matchLabels": { selects: "true" } } ] },
        "rules": []
    })
}

fn cluster_role_binding(name: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({ "apiGroup": RBAC_GROUP, "kind": "Group", "name": g }))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(name, None),
        "roleRef": { "apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name },
        "subjects": subjects
    })
}

fn cluster_roles() -> Vec<Value> {
    let core = "";
    vec![
        cluster_role(
            "cluster-admin",
            None,
            vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
        ),
        cluster_role(
            "system:discovery",
            None,
            vec![url_rule(
                &["get"],
                &[
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/version",
                    "/version/",
                    "/openapi",
                    "/openapi/*",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                ],
            )],
        ),
        cluster_role(
            "system:monitoring",
            None,
            vec![url_rule(
                &["get"],
                &[
                    "/metrics",
                    "/metrics/slis",
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/livez/*",
                    "/readyz/*",
                    "/healthz/*",
                ],
            )],
        ),
        cluster_role(
            "system:basic-user",
            None,
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            None,
            vec![url_rule(
                &["get"],
                &["/livez", "/readyz", "/healthz", "/version", "/version/"],
            )],
        ),
        aggregated_cluster_role("admin", None, AGGREGATE_TO_ADMIN),
        aggregated_cluster_role("edit", Some(AGGREGATE_TO_ADMIN), AGGREGATE_TO_EDIT),
        aggregated_cluster_role("view", Some(AGGREGATE_TO_EDIT), AGGREGATE_TO_VIEW),
        cluster_role(
            "system:aggregate-to-admin",
            Some(AGGREGATE_TO_ADMIN),
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                rule(READ_WRITE, &[RBAC_GROUP], &["roles", "rolebindings"]),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            Some(AGGREGATE_TO_EDIT),
            vec![
                rule(
                    READ,
                    &[core],
                    &[
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                rule(&["impersonate"], &[core], &["serviceaccounts"]),
                rule(
                    WRITE,
                    &[core],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                    ],
                ),
                rule(&["create"], &[core], &["pods/eviction"]),
                rule(
                    WRITE,
                    &[core],
                    &[
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                        "persistentvolumeclaims",
                        "configmaps",
                        "secrets",
                        "events",
                    ],
                ),
                rule(&["create"], &[core], &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    &["apps"],
                    &[
                        "statefulsets",
                        "statefulsets/scale",
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "deployments/rollback",
                        "replicasets",
                        "replicasets/scale",
                    ],
                ),
                rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(WRITE, &["batch"], &["jobs", "cronjobs"]),
                rule(
                    WRITE,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "deployments/rollback",
                        "ingresses",
                        "replicasets",
                        "replicasets/scale",
                        "replicationcontrollers/scale",
                        "networkpolicies",
                    ],
                ),
                rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    WRITE,
                    &["networking.k8s.io"],
                    &["networkpolicies", "ingresses"],
                ),
                rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            Some(AGGREGATE_TO_VIEW),
            vec![
                rule(
                    READ,
                    &[core],
                    &[
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "configmaps",
                    ],
                ),
                rule(
                    READ,
                    &[core],
                    &[
                        "limitranges",
                        "resourcequotas",
                        "bindings",
                        "events",
                        "pods/status",
                        "resourcequotas/status",
                        "namespaces/status",
                        "replicationcontrollers/status",
                        "pods/log",
                    ],
                ),
                rule(READ, &[core], &["namespaces"]),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "statefulsets",
                        "statefulsets/status",
                        "statefulsets/scale",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/status",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/status",
                        "replicasets/scale",
                    ],
                ),
                rule(
                    READ,
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                rule(
                    READ,
                    &["batch"],
                    &["jobs", "cronjobs", "cronjobs/status", "jobs/status"],
                ),
                rule(
                    READ,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "ingresses",
                        "ingresses/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "replicationcontrollers/scale",
                        "networkpolicies",
                    ],
                ),
                rule(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                rule(
                    READ,
                    &["networking.k8s.io"],
                    &["networkpolicies", "ingresses", "ingresses/status"],
                ),
            ],
        ),
    ]
}

/// The default ClusterRoles then ClusterRoleBindings, as JSON objects for the server to
/// create at start-up. The aggregated roles (`admin`, `edit`, `view`) already carry the
/// rules the aggregation controller would give them.
pub fn bootstrap_policy() -> Vec<Value> {
    let mut roles = cluster_roles();
    // Role objects are built from literals above, so they always parse.
    if let Ok(snapshot) = RbacSnapshot::from_objects(&roles) {
        let updates = snapshot.aggregation_updates();
        for role in &mut roles {
            let name = role.pointer("/metadata/name").cloned();
            if let Some((_, rules)) = updates
                .iter()
                .find(|(n, _)| name.as_ref().and_then(Value::as_str) == Some(n))
            {
                role["rules"] = rules.clone();
            }
        }
    }
    roles.extend([
        cluster_role_binding("cluster-admin", &["system:masters"]),
        cluster_role_binding("system:monitoring", &["system:monitoring"]),
        cluster_role_binding("system:discovery", &["system:authenticated"]),
        cluster_role_binding("system:basic-user", &["system:authenticated"]),
        cluster_role_binding(
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ]);
    roles
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use crate::rbac::{RequestAttributes, authorize};

    fn snapshot() -> RbacSnapshot {
        RbacSnapshot::from_objects(&bootstrap_policy()).expect("bootstrap policy parses")
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    fn role<'a>(policy: &'a [Value], name: &str) -> &'a Value {
        policy
            .iter()
            .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == name)
            .expect("role exists")
    }

    // https://kubernetes.io/docs/reference/access-authn-authz/rbac/#discovery-roles
    // system:discovery, system:basic-user and system:public-info-viewer are bound to
    // system:authenticated; public-info-viewer also to system:unauthenticated.
    #[test]
    fn authenticated_users_can_discover_and_review_themselves() {
        let rbac = snapshot();
        let alice = user("alice", &["system:authenticated"]);
        for path in [
            "/version",
            "/apis",
            "/api/v1",
            "/openapi/v3",
            "/healthz",
            "/apis/landlord.dev/v1alpha1",
        ] {
            let attrs = RequestAttributes::non_resource(alice.clone(), "get", path);
            assert!(authorize(&attrs, &rbac).is_allowed(), "{path}");
        }
        let ssar = RequestAttributes::resource(
            alice.clone(),
            "create",
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
        );
        assert_eq!(
            authorize(&ssar, &rbac).reason(),
            "RBAC: allowed by ClusterRoleBinding \"system:basic-user\" of ClusterRole \"system:basic-user\" to Group \"system:authenticated\""
        );
        let ssrr = RequestAttributes::resource(
            alice.clone(),
            "create",
            "authorization.k8s.io",
            "selfsubjectrulesreviews",
        );
        assert!(authorize(&ssrr, &rbac).is_allowed());
        // ...and nothing else
        let metrics = RequestAttributes::non_resource(alice.clone(), "get", "/metrics");
        assert!(!authorize(&metrics, &rbac).is_allowed());
        let list = RequestAttributes::resource(alice, "list", "", "namespaces");
        assert!(!authorize(&list, &rbac).is_allowed());
        // unauthenticated users only get public info
        let anonymous = user("system:anonymous", &["system:unauthenticated"]);
        let version = RequestAttributes::non_resource(anonymous.clone(), "get", "/version");
        assert!(authorize(&version, &rbac).is_allowed());
        let apis = RequestAttributes::non_resource(anonymous, "get", "/apis");
        assert!(!authorize(&apis, &rbac).is_allowed());
    }

    // https://kubernetes.io/docs/reference/access-authn-authz/rbac/#user-facing-roles
    // "admin ... If used in a RoleBinding, allows read/write access to most resources in a
    // namespace, including the ability to create roles and role bindings within the
    // namespace. This role does not allow write access to resource quota or to the
    // namespace itself." "edit ... does not allow viewing or modifying roles or role
    // bindings." "view ... does not allow viewing Secrets".
    #[test]
    fn user_facing_roles_aggregate_the_real_rules() {
        let policy = bootstrap_policy();
        let rules = |name: &str| {
            role(&policy, name)["rules"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        let grants = |name: &str, verb: &str, group: &str, resource: &str| {
            rules(name).iter().any(|r| {
                let has = |key: &str, v: &str| {
                    r[key]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == v || x == "*"))
                };
                has("verbs", verb) && has("apiGroups", group) && has("resources", resource)
            })
        };
        assert!(grants("admin", "create", RBAC_GROUP, "rolebindings"));
        assert!(grants("admin", "delete", "", "secrets"));
        assert!(
            grants("admin", "get", "", "pods"),
            "admin includes view through edit"
        );
        assert!(!grants("admin", "update", "", "resourcequotas"));
        assert!(!grants("admin", "update", "", "namespaces"));
        assert!(grants("edit", "create", "coordination.k8s.io", "leases"));
        assert!(!grants("edit", "create", RBAC_GROUP, "rolebindings"));
        assert!(!grants("edit", "get", RBAC_GROUP, "roles"));
        assert!(grants("view", "list", "", "configmaps"));
        assert!(!grants("view", "get", "", "secrets"));
        assert!(!grants("view", "create", "", "configmaps"));
        assert_eq!(rules("view").len(), rules("system:aggregate-to-view").len());
        assert_eq!(
            role(&policy, "admin")["aggregationRule"],
            json!({"clusterRoleSelectors": [{"matchLabels": {AGGREGATE_TO_ADMIN: "true"}}]})
        );
        // the stored rules are already what aggregation computes
        assert!(snapshot().aggregation_updates().is_empty());
    }

    // https://kubernetes.io/docs/reference/access-authn-authz/rbac/#user-facing-roles
    // "cluster-admin ... When used in a ClusterRoleBinding, it gives full control over
    // every resource in the cluster and in all namespaces." (bound to system:masters)
    #[test]
    fn cluster_admin_binding_grants_everything_to_masters() {
        let rbac = snapshot();
        let root = user("root", &["system:masters"]);
        let attrs =
            RequestAttributes::resource(root.clone(), "escalate", RBAC_GROUP, "clusterroles")
                .named("admin");
        assert!(authorize(&attrs, &rbac).is_allowed());
        let policy = bootstrap_policy();
        let binding = policy
            .iter()
            .find(|o| o["kind"] == "ClusterRoleBinding" && o["metadata"]["name"] == "cluster-admin")
            .expect("binding");
        assert_eq!(binding["subjects"][0]["name"], "system:masters");
        assert_eq!(
            binding["metadata"]["labels"]["kubernetes.io/bootstrapping"],
            "rbac-defaults"
        );
    }
}
