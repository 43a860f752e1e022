//! The Tenant controller against the emulator: a Tenant becomes Ready with its isolated
//! namespaces; spec changes are followed, drift is repaired, foreign namespaces are never
//! adopted, deletion erases (or, with Retain, releases) what it created, and an unchanged
//! Tenant's resync writes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_emulator::EmulatorHandle;
use serde_json::json;
use support::cluster::{Harness, exists};
use support::wait::eventually;

mod support;

#[tokio::test]
async fn a_tenant_becomes_ready_with_isolated_namespaces() {
    let h = Harness::start().await;
    h.create_tenant(
        "acme",
        json!({
            "displayName": "ACME",
            "owners": [{"kind": "Group", "name": "acme-admins"}],
            "isolation": {"quota": {"pods": 10}}
        }),
    )
    .await;
    let ready = h.wait_condition("acme", "Ready", "True").await;
    assert_eq!(ready.1, "Ready");

    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    let ns = namespaces
        .get("tenant-acme")
        .await
        .expect("namespace created");
    let labels = ns.labels();
    assert_eq!(
        labels.get("landlord.dev/tenant").map(String::as_str),
        Some("acme")
    );
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("landlord")
    );
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    assert_eq!(ns.owner_references()[0].kind, "Tenant");

    let policies: Api<NetworkPolicy> = Api::namespaced(h.client.clone(), "tenant-acme");
    let names: Vec<String> = policies
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert!(
        names.contains(&"landlord-default-deny".to_owned()),
        "{names:?}"
    );
    let quotas: Api<ResourceQuota> = Api::namespaced(h.client.clone(), "tenant-acme");
    let quota = quotas.get("landlord-quota").await.expect("quota");
    assert_eq!(
        quota
            .spec
            .and_then(|s| s.hard)
            .and_then(|h| h.get("pods").cloned())
            .map(|q| q.0),
        Some("10".to_owned())
    );

    let tenant = h.tenants().get("acme").await.expect("tenant");
    assert!(
        tenant
            .finalizers()
            .contains(&"landlord.dev/erasure".to_owned())
    );
    let status = tenant.status.expect("status");
    assert_eq!(status.namespaces, ["tenant-acme"]);
    assert_eq!(status.observed_generation, tenant.metadata.generation);
    assert_eq!(
        h.wait_condition("acme", "Isolated", "True").await.1,
        "NoCrossTenantPath"
    );
}

#[tokio::test]
async fn spec_changes_are_followed_and_removed_namespaces_pruned() {
    let h = Harness::start().await;
    h.create_tenant("globex", json!({})).await;
    h.wait_condition("globex", "Ready", "True").await;
    let namespaces: Api<Namespace> = Api::all(h.client.clone());

    let add = json!({"spec": {"namespaces": {"additional": [{"name": "globex-staging"}]}}});
    h.tenants()
        .patch("globex", &PatchParams::default(), &Patch::Merge(&add))
        .await
        .expect("spec updated");
    eventually("the additional namespace exists", || async {
        exists(&namespaces, "globex-staging").await
    })
    .await;

    let remove = json!({"spec": {"namespaces": {"additional": null}}});
    h.tenants()
        .patch("globex", &PatchParams::default(), &Patch::Merge(&remove))
        .await
        .expect("spec updated");
    eventually("the removed namespace is pruned", || async {
        namespaces
            .get_opt("globex-staging")
            .await
            .expect("readable")
            .is_none_or(|ns| ns.metadata.deletion_timestamp.is_some())
    })
    .await;
    assert!(
        exists(&namespaces, "tenant-globex").await,
        "the primary namespace stays"
    );
}

#[tokio::test]
async fn drift_is_repaired_and_tenant_objects_left_alone() {
    let h = Harness::start().await;
    h.create_tenant("initech", json!({})).await;
    h.wait_condition("initech", "Ready", "True").await;
    let policies: Api<NetworkPolicy> = Api::namespaced(h.client.clone(), "tenant-initech");

    policies
        .delete("landlord-default-deny", &DeleteParams::default())
        .await
        .expect("deleted by a careless admin");
    eventually("the deleted policy is back", || async {
        exists(&policies, "landlord-default-deny").await
    })
    .await;

    let mut edited = policies.get("landlord-allow-dns").await.expect("policy");
    edited.spec.as_mut().expect("spec").egress = Some(vec![Default::default()]);
    policies
        .replace("landlord-allow-dns", &PostParams::default(), &edited)
        .await
        .expect("edited");
    eventually("the edited policy is restored", || async {
        let p = policies.get("landlord-allow-dns").await.expect("policy");
        let egress = p.spec.and_then(|s| s.egress).unwrap_or_default();
        egress.len() == 1 && egress[0].to.is_some()
    })
    .await;

    // An admin's own policy is not Landlord's to touch.
    let own = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some("allow-web".to_owned()),
            ..Default::default()
        },
        spec: Some(
            serde_json::from_value(json!({"podSelector": {"matchLabels": {"app": "web"}}}))
                .expect("spec"),
        ),
    };
    policies
        .create(&PostParams::default(), &own)
        .await
        .expect("created");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        exists(&policies, "allow-web").await,
        "the tenant's own policy stays"
    );
}

#[tokio::test]
async fn a_foreign_namespace_is_never_adopted() {
    let h = Harness::start().await;
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    let foreign = Namespace {
        metadata: ObjectMeta {
            name: Some("tenant-umbrella".to_owned()),
            labels: Some(BTreeMap::from([("team".to_owned(), "other".to_owned())])),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &foreign)
        .await
        .expect("created");
    h.create_tenant("umbrella", json!({})).await;
    let taken = h
        .wait_condition("umbrella", "NamespacesReady", "False")
        .await;
    assert_eq!(taken.1, "NamespaceTaken");
    assert!(taken.2.contains("tenant-umbrella"), "{}", taken.2);
    assert_eq!(
        h.wait_condition("umbrella", "Ready", "False").await.0,
        "False"
    );
    let ns = namespaces
        .get("tenant-umbrella")
        .await
        .expect("still there");
    assert!(
        ns.labels().get("landlord.dev/tenant").is_none(),
        "not labelled"
    );
    assert!(ns.owner_references().is_empty(), "not owned");

    // Another Tenant cannot claim the first tenant's namespace either.
    h.create_tenant("hooli", json!({})).await;
    h.wait_condition("hooli", "Ready", "True").await;
    h.create_tenant("piper", json!({"namespaces": {"primary": "tenant-hooli"}}))
        .await;
    assert_eq!(
        h.wait_condition("piper", "NamespacesReady", "False")
            .await
            .1,
        "NamespaceTaken"
    );
    let hooli_ns = namespaces.get("tenant-hooli").await.expect("exists");
    assert_eq!(
        hooli_ns
            .labels()
            .get("landlord.dev/tenant")
            .map(String::as_str),
        Some("hooli")
    );
}

#[tokio::test]
async fn deletion_erases_namespaces_and_retain_releases_them() {
    let h = Harness::start().await;
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    h.create_tenant("erased", json!({})).await;
    h.create_tenant("kept", json!({"deletionPolicy": "Retain"}))
        .await;
    h.wait_condition("erased", "Ready", "True").await;
    h.wait_condition("kept", "Ready", "True").await;

    h.tenants()
        .delete("erased", &DeleteParams::default())
        .await
        .expect("delete");
    h.tenants()
        .delete("kept", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("both Tenants are gone", || async {
        !exists(&h.tenants(), "erased").await && !exists(&h.tenants(), "kept").await
    })
    .await;
    assert!(
        !exists(&namespaces, "tenant-erased").await,
        "Erase deletes the namespaces"
    );
    // Retain: the namespace stays, and the garbage collector has no owner to follow.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let kept = namespaces
        .get("tenant-kept")
        .await
        .expect("Retain keeps the namespace");
    assert!(kept.owner_references().is_empty());
}

#[tokio::test]
async fn the_chart_permissions_are_enough_for_a_whole_lifecycle() {
    let h = Harness::start_with(true).await;
    h.create_tenant(
        "rbac",
        json!({"owners": [{"kind": "Group", "name": "rbac-admins"}], "isolation": {"quota": {"pods": 3}, "limits": {"default": {"cpu": "500m"}}}}),
    )
    .await;
    h.wait_condition("rbac", "Ready", "True").await;
    h.tenants()
        .delete("rbac", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the Tenant is erased", || async {
        !exists(&h.tenants(), "rbac").await
    })
    .await;
}

/// Write requests counted by the emulator, except the leader-election Lease's renewals.
fn writes_except_lease(emulator: &EmulatorHandle) -> Vec<((String, String), u64)> {
    emulator
        .request_counts()
        .into_iter()
        .filter(|((verb, resource), _)| {
            ["create", "update", "patch", "delete"].contains(&verb.as_str()) && resource != "leases"
        })
        .collect()
}

#[tokio::test]
async fn an_unchanged_tenant_resync_writes_nothing() {
    let mut h = Harness::start().await;
    h.create_tenant(
        "steady",
        json!({"isolation": {"quota": {"pods": 5}}, "owners": [{"kind": "User", "name": "ann"}]}),
    )
    .await;
    h.wait_condition("steady", "Ready", "True").await;
    h.wait_condition("steady", "Isolated", "True").await;
    // Let in-flight reconciles settle, then count over several resync periods (1 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.emulator.reset_request_counts();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let writes = writes_except_lease(&h.emulator);
    assert!(writes.is_empty(), "writes at steady state: {writes:?}");

    // A restart changes nothing either.
    h.stop_operator().await;
    h.emulator.reset_request_counts();
    h.start_operator().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let writes = writes_except_lease(&h.emulator);
    assert!(writes.is_empty(), "writes after a restart: {writes:?}");
    h.stop_operator().await;
}

#[tokio::test]
async fn injected_conflicts_and_server_errors_are_survived() {
    let h = Harness::start().await;
    // Every kind of write the controller makes fails a few times first.
    for (verb, resource, code) in [
        ("patch", "tenants", 409),
        ("create", "namespaces", 500),
        ("patch", "networkpolicies", 500),
        ("patch", "resourcequotas", 409),
        ("patch", "tenants/status", 409),
    ] {
        h.emulator.inject_fault(
            kube_emulator::FaultRule::fail(Some(verb), Some(resource), code).times(2),
        );
    }
    h.create_tenant("flaky", json!({"isolation": {"quota": {"pods": 5}}}))
        .await;
    h.wait_condition("flaky", "Ready", "True").await;
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    assert!(exists(&namespaces, "tenant-flaky").await);
    let quotas: Api<ResourceQuota> = Api::namespaced(h.client.clone(), "tenant-flaky");
    assert!(exists(&quotas, "landlord-quota").await);
}

async fn events_for(client: &Client, tenant: &str) -> Vec<(String, String, String)> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    events
        .list(&Default::default())
        .await
        .expect("events readable")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(tenant))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_tenant_admins_open_policies_are_reported_as_a_cross_tenant_path() {
    let h = Harness::start().await;
    h.create_tenant("alpha", json!({})).await;
    h.create_tenant("beta", json!({})).await;
    h.wait_condition("alpha", "Isolated", "True").await;
    h.wait_condition("beta", "Isolated", "True").await;
    let ready = events_for(&h.client, "alpha").await;
    assert!(
        ready
            .iter()
            .any(|(t, reason, _)| t == "Normal" && reason == "Ready"),
        "an event on becoming Ready: {ready:?}"
    );

    // alpha's admin opens all egress; beta's admin opens all ingress: together, a path.
    let open = |name: &str, spec: serde_json::Value| NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: Some(serde_json::from_value(spec).expect("spec")),
    };
    Api::<NetworkPolicy>::namespaced(h.client.clone(), "tenant-alpha")
        .create(
            &PostParams::default(),
            &open(
                "allow-all-egress",
                json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}),
            ),
        )
        .await
        .expect("created");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.wait_condition("alpha", "Isolated", "True").await.0,
        "True",
        "one side alone opens no path: beta still denies ingress"
    );
    Api::<NetworkPolicy>::namespaced(h.client.clone(), "tenant-beta")
        .create(
            &PostParams::default(),
            &open(
                "allow-all-ingress",
                json!({"podSelector": {}, "ingress": [{}]}),
            ),
        )
        .await
        .expect("created");
    let breach = h.wait_condition("alpha", "Isolated", "False").await;
    assert_eq!(breach.1, "CrossTenantPath");
    assert!(
        breach.2.contains("allow-all-egress"),
        "names the offending policy: {}",
        breach.2
    );
    let beta = h.wait_condition("beta", "Isolated", "False").await;
    assert!(beta.2.contains("allow-all-ingress"), "{}", beta.2);
    h.wait_condition("alpha", "Ready", "False").await;
    let warnings = events_for(&h.client, "alpha").await;
    assert!(
        warnings
            .iter()
            .any(|(t, reason, _)| t == "Warning" && reason == "CrossTenantPath"),
        "a Warning event: {warnings:?}"
    );
}
