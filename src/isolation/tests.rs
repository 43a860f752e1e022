//! Unit tests of the builders, the validation and the prune planner.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use serde_json::json;

use super::labels::{MANAGED_BY_LABEL, TENANT_LABEL};
use super::ownership::Claim;
use super::*;
use crate::api::{DatabaseServer, Tenant};

pub(super) const UID: &str = "6f1c1d5e-3a43-4b8e-9d1f-0a6a3c2b7e10";

pub(super) fn tenant(yaml: &str) -> Tenant {
    let mut tenant: Tenant = serde_saphyr::from_str(yaml).unwrap();
    tenant.metadata.uid = Some(UID.to_owned());
    tenant
}

pub(super) fn example_tenant() -> Tenant {
    tenant(include_str!("../../examples/tenant.yaml"))
}

pub(super) fn minimal_tenant(name: &str) -> Tenant {
    tenant(&format!(
        "apiVersion: landlord.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: {name}\nspec: {{}}\n"
    ))
}

pub(super) fn server(network: &str) -> DatabaseServer {
    serde_saphyr::from_str(&format!(
        "apiVersion: landlord.dev/v1alpha1
kind: DatabaseServer
metadata:
  name: pg-main
spec:
  host: db.example.com
  port: 6432
  adminCredentials:
    secret: {{name: pg-main-admin, namespace: landlord}}
{network}"
    ))
    .unwrap()
}

pub(super) fn config() -> IsolationConfig {
    IsolationConfig {
        operator_namespace: "landlord".to_owned(),
    }
}

fn valid<'a>(tenant: &'a Tenant, server: Option<&'a DatabaseServer>) -> ValidatedTenant<'a> {
    validate(tenant, server, &config()).unwrap()
}

fn errors(tenant: &Tenant) -> Vec<(&'static str, String)> {
    validate(tenant, None, &config())
        .unwrap_err()
        .errors()
        .iter()
        .map(|e| (e.category(), e.to_string()))
        .collect()
}

fn json_of(object: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(object).unwrap()
}

#[test]
fn namespace_carries_ownership_pod_security_and_spec_labels() {
    let tenant = example_tenant();
    let ns = namespace(&valid(&tenant, None), "tenant-acme");
    assert_eq!(
        json_of(&ns.metadata.labels),
        json!({
            "app.kubernetes.io/managed-by": "landlord",
            "billing.example.com/cost-center": "cc-4711",
            "landlord.dev/tenant": "acme",
            "pod-security.kubernetes.io/audit": "restricted",
            "pod-security.kubernetes.io/audit-version": "latest",
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/warn-version": "latest",
        })
    );
    assert_eq!(ns.spec, None, "the API server owns spec.finalizers");
}

#[test]
fn pod_security_level_follows_the_spec() {
    let mut tenant = minimal_tenant("beta");
    tenant.spec.isolation.pod_security = crate::api::PodSecurityLevel::Baseline;
    let ns = namespace(&valid(&tenant, None), "tenant-beta");
    let labels = ns.metadata.labels.unwrap_or_default();
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");
    assert_eq!(labels["pod-security.kubernetes.io/warn"], "baseline");
}

#[test]
fn builder_drops_reserved_spec_labels_even_unvalidated() {
    // Validation refuses these (next test); the builder still never lets them through.
    let mut tenant = minimal_tenant("beta");
    let spec = tenant.spec.namespaces.get_or_insert_with(Default::default);
    spec.labels = BTreeMap::from([
        (TENANT_LABEL.to_owned(), "acme".to_owned()),
        (
            "pod-security.kubernetes.io/enforce".to_owned(),
            "privileged".to_owned(),
        ),
        (MANAGED_BY_LABEL.to_owned(), "helm".to_owned()),
        ("team".to_owned(), "blue".to_owned()),
    ]);
    spec.annotations = BTreeMap::from([
        ("landlord.dev/x".to_owned(), "y".to_owned()),
        ("note".to_owned(), "kept".to_owned()),
    ]);
    let validated = ValidatedTenant {
        tenant: &tenant,
        name: "beta".to_owned(),
        uid: UID.to_owned(),
        namespaces: vec!["tenant-beta".to_owned()],
        database_server: None,
    };
    let ns = namespace(&validated, "tenant-beta");
    let labels = ns.metadata.labels.unwrap_or_default();
    assert_eq!(labels[TENANT_LABEL], "beta");
    assert_eq!(labels[MANAGED_BY_LABEL], "landlord");
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
    assert_eq!(labels["team"], "blue");
    assert_eq!(
        json_of(&ns.metadata.annotations),
        json!({"note": "kept", "landlord.dev/tenant-uid": UID})
    );
}

#[test]
fn reserved_spec_labels_and_annotations_are_validation_errors() {
    let mut tenant = minimal_tenant("beta");
    let spec = tenant.spec.namespaces.get_or_insert_with(Default::default);
    spec.labels = BTreeMap::from([
        ("landlord.dev/tenant".to_owned(), "acme".to_owned()),
        (
            "kubernetes.io/metadata.name".to_owned(),
            "kube-system".to_owned(),
        ),
        ("team".to_owned(), "blue".to_owned()),
    ]);
    spec.annotations = BTreeMap::from([("landlord.dev/x".to_owned(), "y".to_owned())]);
    let found = errors(&tenant);
    let categories: Vec<_> = found.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        categories,
        ["reserved_label", "reserved_label", "reserved_annotation"]
    );
    assert!(
        found[0].1.contains("kubernetes.io/metadata.name"),
        "{found:?}"
    );
    assert!(
        found[1].1.contains("remove it from spec.namespaces.labels"),
        "{found:?}"
    );
}

#[test]
fn duplicate_namespaces_are_refused() {
    let tenant = tenant(
        "apiVersion: landlord.dev/v1alpha1
kind: Tenant
metadata: {name: acme}
spec:
  namespaces:
    additional: [{name: tenant-acme}, {name: acme-dev}, {name: acme-dev}]
",
    );
    let found = errors(&tenant);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|(c, _)| *c == "duplicate_namespace"));
    assert!(
        found[0]
            .1
            .starts_with("namespace tenant-acme is listed more than once")
    );
    let err = validate(&tenant, None, &config()).unwrap_err();
    assert_eq!(err.category(), "duplicate_namespace");
    assert!(
        err.to_string()
            .contains("; namespace acme-dev is listed more than once")
    );
}

#[test]
fn reserved_namespaces_are_refused() {
    let tenant = tenant(
        "apiVersion: landlord.dev/v1alpha1
kind: Tenant
metadata: {name: acme}
spec:
  namespaces:
    primary: default
    additional: [{name: kube-system}, {name: kube-custom}, {name: landlord}, {name: acme-ok}]
",
    );
    let found = errors(&tenant);
    let names: Vec<_> = found
        .iter()
        .map(|(c, m)| {
            assert_eq!(*c, "reserved_namespace");
            m.split_whitespace().nth(1).unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(names, ["default", "kube-custom", "kube-system", "landlord"]);
}

#[test]
fn tenant_without_uid_is_refused() {
    let mut tenant = minimal_tenant("acme");
    tenant.metadata.uid = None;
    assert_eq!(errors(&tenant)[0].0, "tenant_metadata_missing");
}

#[test]
fn service_account_owner_needs_a_namespace() {
    let tenant = tenant(
        "apiVersion: landlord.dev/v1alpha1
kind: Tenant
metadata: {name: acme}
spec:
  owners: [{kind: User, name: alice}, {kind: ServiceAccount, name: deployer}]
",
    );
    let found = errors(&tenant);
    assert_eq!(found[0].0, "owner_invalid");
    assert!(found[0].1.contains("set spec.owners[1].namespace"));
}

#[test]
fn database_server_must_be_the_one_referenced() {
    let tenant = minimal_tenant("acme");
    let other = server("");
    let err = validate(&tenant, Some(&other), &config()).unwrap_err();
    assert_eq!(err.category(), "database_server_mismatch");
}

#[test]
fn validated_namespaces_are_primary_first() {
    let tenant = example_tenant();
    assert_eq!(
        valid(&tenant, None).namespaces(),
        ["tenant-acme", "acme-staging"]
    );
    let minimal = minimal_tenant("beta");
    assert_eq!(valid(&minimal, None).namespaces(), ["tenant-beta"]);
}

fn existing_namespace(labels: serde_json::Value, annotations: serde_json::Value) -> Namespace {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "acme-staging", "labels": labels, "annotations": annotations},
    }))
    .unwrap()
}

#[test]
fn namespace_claims_are_decided_by_the_recorded_uid() {
    let tenant = example_tenant();
    let v = valid(&tenant, None);
    let ours = existing_namespace(
        json!({"landlord.dev/tenant": "acme"}),
        json!({"landlord.dev/tenant-uid": UID}),
    );
    assert_eq!(check_namespace_claim(&v, &ours), Ok(Claim::Ours));
    let others = existing_namespace(
        json!({"landlord.dev/tenant": "globex"}),
        json!({"landlord.dev/tenant-uid": "globex-uid"}),
    );
    let err = check_namespace_claim(&v, &others).unwrap_err();
    assert_eq!(err.category(), "namespace_taken");
    assert!(
        err.to_string().contains("it belongs to tenant globex"),
        "{err}"
    );
    // The attack: Landlord's labels (and even a forged owner reference) on a namespace
    // someone created by hand do not make it the tenant's.
    let forged: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "acme-staging",
            "labels": {"landlord.dev/tenant": "acme", "app.kubernetes.io/managed-by": "landlord"},
            "ownerReferences": [{"apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant", "name": "acme", "uid": UID, "controller": true}]},
    }))
    .unwrap();
    let err = check_namespace_claim(&v, &forged).unwrap_err();
    assert_eq!(err.category(), "namespace_taken");
    assert!(
        err.to_string()
            .contains("carries the label landlord.dev/tenant=acme but no Tenant UID"),
        "{err}"
    );
    let unlabelled = existing_namespace(json!({}), json!({}));
    assert!(
        check_namespace_claim(&v, &unlabelled)
            .unwrap_err()
            .to_string()
            .contains("Landlord did not create it")
    );
}

#[test]
fn a_retained_namespace_is_adopted_only_with_the_exact_uid() {
    let retained = existing_namespace(
        json!({"landlord.dev/tenant": "acme"}),
        json!({"landlord.dev/tenant-uid": "earlier-acme"}),
    );
    let tenant = example_tenant();
    let err = check_namespace_claim(&valid(&tenant, None), &retained).unwrap_err();
    assert_eq!(err.category(), "retained_data_exists");
    assert!(
        err.to_string()
            .contains("landlord.dev/adopt-retained-from=earlier-acme"),
        "{err}"
    );
    let mut wrong = example_tenant();
    wrong.metadata.annotations = Some(
        [(
            "landlord.dev/adopt-retained-from".to_owned(),
            "someone-else".to_owned(),
        )]
        .into(),
    );
    assert!(check_namespace_claim(&valid(&wrong, None), &retained).is_err());
    let mut adopting = example_tenant();
    adopting.metadata.annotations = Some(
        [(
            "landlord.dev/adopt-retained-from".to_owned(),
            "earlier-acme".to_owned(),
        )]
        .into(),
    );
    assert_eq!(
        check_namespace_claim(&valid(&adopting, None), &retained),
        Ok(Claim::Adopt {
            from: "earlier-acme".to_owned()
        })
    );
}

#[test]
fn quota_is_absent_when_empty() {
    let tenant = minimal_tenant("beta");
    assert_eq!(resource_quota(&valid(&tenant, None), "tenant-beta"), None);
    assert_eq!(limit_range(&valid(&tenant, None), "tenant-beta"), None);
}

#[test]
fn limit_range_applies_the_api_servers_defaulting() {
    let tenant = tenant(
        "apiVersion: landlord.dev/v1alpha1
kind: Tenant
metadata: {name: beta}
spec:
  isolation:
    limits:
      default: {cpu: 500m}
      max: {cpu: '2', memory: 1Gi}
",
    );
    let limits = limit_range(&valid(&tenant, None), "tenant-beta").unwrap();
    assert_eq!(
        json_of(&limits.spec),
        json!({"limits": [{
            "type": "Container",
            "default": {"cpu": "500m", "memory": "1Gi"},
            "defaultRequest": {"cpu": "500m", "memory": "1Gi"},
            "max": {"cpu": "2", "memory": "1Gi"},
        }]})
    );
}

#[test]
fn owners_binding_lists_each_subject_once_and_is_absent_without_owners() {
    let tenant = tenant(
        "apiVersion: landlord.dev/v1alpha1
kind: Tenant
metadata: {name: beta}
spec:
  owners:
    - {kind: User, name: alice}
    - {kind: ServiceAccount, name: ci, namespace: ci}
    - {kind: User, name: alice}
",
    );
    let binding = owners_role_binding(&valid(&tenant, None), "tenant-beta").unwrap();
    assert_eq!(
        json_of(&binding.subjects),
        json!([
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"},
            {"kind": "ServiceAccount", "name": "ci", "namespace": "ci"},
        ])
    );
    let minimal = minimal_tenant("beta");
    assert_eq!(
        owners_role_binding(&valid(&minimal, None), "tenant-beta"),
        None
    );
}

fn policy_names(policies: &[k8s_openapi::api::networking::v1::NetworkPolicy]) -> Vec<&str> {
    policies
        .iter()
        .map(|p| p.metadata.name.as_deref().unwrap_or_default())
        .collect()
}

#[test]
fn minimal_tenant_gets_deny_same_tenant_and_dns_policies() {
    let tenant = minimal_tenant("beta");
    let policies = network_policies(&valid(&tenant, None), "tenant-beta");
    assert_eq!(
        policy_names(&policies),
        [DEFAULT_DENY, ALLOW_SAME_TENANT, ALLOW_DNS]
    );
    assert_eq!(
        json_of(&policies[0].spec),
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    );
}

#[test]
fn database_policy_needs_a_database_and_server_network() {
    let with_db = example_tenant();
    let no_network = server("");
    assert_eq!(
        policy_names(&network_policies(
            &valid(&with_db, Some(&no_network)),
            "tenant-acme"
        )),
        [
            DEFAULT_DENY,
            ALLOW_SAME_TENANT,
            ALLOW_DNS,
            ALLOW_INGRESS,
            ALLOW_EGRESS
        ]
    );
    assert!(
        !policy_names(&network_policies(&valid(&with_db, None), "tenant-acme"))
            .contains(&ALLOW_DATABASE)
    );
    // A pod selector without a namespace cannot be placed: no rule.
    let pods_only = server("  network:\n    podSelector: {app: pg}\n");
    assert!(
        !policy_names(&network_policies(
            &valid(&with_db, Some(&pods_only)),
            "tenant-acme"
        ))
        .contains(&ALLOW_DATABASE)
    );
}

#[test]
fn spec_pod_selector_peer_stays_within_the_tenant() {
    let tenant = tenant(
        "apiVersion: landlord.dev/v1alpha1
kind: Tenant
metadata: {name: beta}
spec:
  isolation:
    network:
      ingress:
        - peers: [{podSelector: {app: web}}]
          ports: [{port: 8080, endPort: 8090}, {protocol: UDP, port: 9000}]
",
    );
    let policies = network_policies(&valid(&tenant, None), "tenant-beta");
    let ingress = policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(ALLOW_INGRESS))
        .unwrap();
    assert_eq!(
        json_of(ingress),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": "landlord-allow-ingress",
                "namespace": "tenant-beta",
                "labels": {"app.kubernetes.io/managed-by": "landlord", "landlord.dev/tenant": "beta"},
                "annotations": {"landlord.dev/rule-descriptions": "[\"\"]", "landlord.dev/tenant-uid": UID},
            },
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": [{
                        "namespaceSelector": {"matchExpressions": [
                            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["tenant-beta"]},
                        ]},
                        "podSelector": {"matchLabels": {"app": "web"}},
                    }],
                    "ports": [
                        {"protocol": "TCP", "port": 8080, "endPort": 8090},
                        {"protocol": "UDP", "port": 9000},
                    ],
                }],
            },
        })
    );
}

#[test]
fn every_object_is_labelled_records_the_uid_and_has_no_owner() {
    let tenant = example_tenant();
    let server = server("  network:\n    cidrs: [10.0.12.7/32]\n");
    for object in build(&valid(&tenant, Some(&server))) {
        let value = json_of(&object);
        let id = object.id();
        assert_eq!(value["metadata"]["labels"][TENANT_LABEL], "acme", "{id}");
        assert_eq!(
            value["metadata"]["labels"][MANAGED_BY_LABEL], "landlord",
            "{id}"
        );
        assert_eq!(
            value["metadata"]["annotations"]["landlord.dev/tenant-uid"], UID,
            "{id}"
        );
        // No owner reference: foreground deletion of the Tenant must not let the garbage
        // collector delete what deletionPolicy Retain keeps.
        assert!(value["metadata"].get("ownerReferences").is_none(), "{id}");
        assert!(value.get("status").is_none(), "{id}");
    }
}

#[test]
fn build_is_deterministic_and_namespaces_come_first() {
    let tenant = example_tenant();
    let v = valid(&tenant, None);
    assert_eq!(build(&v), build(&v));
    let ids = desired_ids(&v);
    assert_eq!(
        ids.iter()
            .take(2)
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["Namespace tenant-acme", "Namespace acme-staging"]
    );
    assert!(ids[2..].iter().all(|id| id.kind != ObjectKind::Namespace));
    assert_eq!(
        ids[2].to_string(),
        "ResourceQuota tenant-acme/landlord-quota"
    );
}

fn id(kind: ObjectKind, namespace: Option<&str>, name: &str) -> ObjectId {
    ObjectId {
        kind,
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
    }
}

#[test]
fn prune_removes_what_is_no_longer_desired() {
    let tenant = example_tenant();
    let before = desired_ids(&valid(&tenant, None));
    // The spec drops acme-staging and the egress allow-list.
    let mut changed = tenant.clone();
    if let Some(ns) = changed.spec.namespaces.as_mut() {
        ns.additional.clear();
    }
    changed.spec.isolation.network.egress.clear();
    let after = desired_ids(&valid(&changed, None));
    let mut existing = before.clone();
    existing.push(id(
        ObjectKind::NetworkPolicy,
        Some("tenant-acme"),
        "landlord-old-rule",
    ));
    assert_eq!(
        prune(&after, existing),
        [
            id(
                ObjectKind::NetworkPolicy,
                Some("tenant-acme"),
                "landlord-allow-egress"
            ),
            id(
                ObjectKind::NetworkPolicy,
                Some("tenant-acme"),
                "landlord-old-rule"
            ),
            id(ObjectKind::Namespace, None, "acme-staging"),
        ]
    );
    assert!(prune(&before, before.clone()).is_empty());
}

/// The namespaces and NetworkPolicies Landlord builds for these tenants, as the analyzer
/// reads them.
fn built_cluster(
    tenants: &[(&Tenant, Option<&DatabaseServer>)],
) -> (
    Vec<analysis::NamespaceInfo>,
    Vec<k8s_openapi::api::networking::v1::NetworkPolicy>,
) {
    let mut namespaces = Vec::new();
    let mut policies = Vec::new();
    for (tenant, server) in tenants {
        let v = valid(tenant, *server);
        for object in build(&v) {
            match object {
                DesiredObject::Namespace(ns) => namespaces.push(analysis::NamespaceInfo {
                    name: ns.metadata.name.clone().unwrap_or_default(),
                    tenant: v.name().to_owned(),
                    labels: ns.metadata.labels.clone().unwrap_or_default(),
                }),
                DesiredObject::NetworkPolicy(p) => policies.push(p),
                _ => {}
            }
        }
    }
    (namespaces, policies)
}

#[test]
fn landlords_own_policies_are_isolated() {
    let acme = example_tenant();
    let db = server("  network:\n    cidrs: [10.0.12.7/32]\n    namespace: databases\n");
    let beta = minimal_tenant("beta");
    let (namespaces, policies) = built_cluster(&[(&acme, Some(&db)), (&beta, None)]);
    let report = analysis::analyze(&namespaces, &policies, &analysis::AnalysisConfig::default());
    assert_eq!(report.len(), 2);
    assert!(
        report.values().all(analysis::TenantIsolation::is_isolated),
        "{report:#?}"
    );
}

#[test]
fn public_ingress_meets_an_egress_ip_block_unless_pod_cidrs_are_known() {
    // acme may send to 203.0.113.0/24 on TCP 443; globex admits the whole internet. With
    // the pod network unknown, acme's ipBlock might hold globex's pods.
    let acme = example_tenant();
    let globex = tenant(
        "apiVersion: landlord.dev/v1alpha1
kind: Tenant
metadata: {name: globex}
spec:
  isolation:
    network:
      ingress:
        - description: public load balancer traffic
          peers: [{ipBlock: {cidr: 0.0.0.0/0}}]
",
    );
    let (namespaces, policies) = built_cluster(&[(&acme, None), (&globex, None)]);
    let unknown = analysis::analyze(&namespaces, &policies, &analysis::AnalysisConfig::default());
    let breach = unknown["globex"].offending().unwrap();
    assert_eq!(breach.from_tenant, "acme");
    assert_eq!(breach.port, "TCP 443");
    assert_eq!(
        breach
            .policies()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "acme-staging/landlord-allow-egress",
            "tenant-globex/landlord-allow-ingress"
        ]
    );
    let known = analysis::AnalysisConfig {
        pod_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
    };
    let report = analysis::analyze(&namespaces, &policies, &known);
    assert!(
        report.values().all(analysis::TenantIsolation::is_isolated),
        "{report:#?}"
    );
}
