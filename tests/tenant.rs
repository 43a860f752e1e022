//! The Tenant controller against the emulator: a Tenant becomes Ready with its isolated
//! namespaces; spec changes are followed, drift is repaired, foreign namespaces are never
//! adopted, forged labels and reused names gain nothing, deletion erases (or, with Retain,
//! keeps, even under foreground deletion) what it created, and an unchanged Tenant's
//! resync writes nothing.

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
    let tenant = h.tenants().get("acme").await.expect("tenant");
    assert_eq!(
        ns.annotations().get("landlord.dev/tenant-uid"),
        tenant.metadata.uid.as_ref(),
        "the namespace records the Tenant's UID"
    );
    assert!(
        ns.owner_references().is_empty(),
        "no owner reference for the garbage collector to follow"
    );

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
    let (_, reason, message) = h.condition("umbrella", "Ready").await.expect("Ready");
    assert_eq!(reason, "NotReady");
    assert!(message.contains("NamespacesReady"), "{message}");
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
async fn a_namespace_precreated_with_landlords_labels_is_not_the_tenants() {
    // The attack: create the namespace a Tenant will ask for, with Landlord's labels,
    // before Landlord does. (The unit tests add an owner reference with the Tenant's real
    // UID; here the garbage collector would delete a namespace whose owner is not there.)
    let h = Harness::start().await;
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    let bait = Namespace {
        metadata: ObjectMeta {
            name: Some("mallory-prod".to_owned()),
            labels: Some(BTreeMap::from([
                ("landlord.dev/tenant".to_owned(), "mallory".to_owned()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "landlord".to_owned(),
                ),
            ])),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &bait)
        .await
        .expect("the bait");
    h.create_tenant(
        "mallory",
        json!({"namespaces": {"primary": "mallory-prod"}}),
    )
    .await;
    let (_, reason, message) = h
        .wait_condition("mallory", "NamespacesReady", "False")
        .await;
    assert_eq!(reason, "NamespaceTaken");
    assert!(
        message.contains("no Tenant UID recorded by Landlord"),
        "{message}"
    );
    let live = namespaces.get("mallory-prod").await.expect("exists");
    assert!(
        !live.annotations().contains_key("landlord.dev/tenant-uid"),
        "Landlord did not write to it"
    );
    let policies: Api<NetworkPolicy> = Api::namespaced(h.client.clone(), "mallory-prod");
    assert!(
        policies
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty(),
        "no policies applied into someone else's namespace"
    );
}

/// A finalizer of the test's own, so that a deleted Tenant stays readable after
/// Landlord's workflow finished and its `status.deletion` can be asserted.
const HOLD: &str = "test.landlord.dev/hold";

async fn hold(h: &Harness, tenant: &str) {
    // Beside Landlord's finalizer: a merge patch replaces the whole list, and a Tenant
    // deleted before Landlord added its own again would skip the workflow.
    let patch = json!({"metadata": {"finalizers": ["landlord.dev/erasure", HOLD]}});
    h.tenants()
        .patch(tenant, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("held");
}

/// Waits until Landlord removed its finalizer from the deleted, held Tenant, checks the
/// steps it recorded, then lets the Tenant go.
async fn deletion_steps(h: &Harness, tenant: &str) -> Vec<(String, String)> {
    let held = support::wait::wait_for("Landlord's deletion workflow finished", || async {
        let t = h.tenants().get(tenant).await.expect("held Tenant");
        (!t.finalizers().iter().any(|f| f == "landlord.dev/erasure")).then_some(t)
    })
    .await;
    let steps = held
        .status
        .expect("status")
        .deletion
        .into_iter()
        .map(|step| {
            assert!(step.started_at.is_some(), "{} has a start time", step.name);
            assert!(step.completed_at.is_some(), "{} has an end time", step.name);
            (step.name.to_string(), format!("{:?}", step.state))
        })
        .collect();
    let release = json!({"metadata": {"finalizers": null}});
    h.tenants()
        .patch(tenant, &PatchParams::default(), &Patch::Merge(&release))
        .await
        .expect("released");
    steps
}

/// Every step of an erasure, in order.
const ERASE: [&str; 8] = [
    "StopBackups",
    "DropDatabase",
    "DeleteNamespaces",
    "DeleteBackups",
    "DestroyKey",
    "Verify",
    "IssueReceipt",
    "RemoveFinalizer",
];

fn done(steps: &[&str]) -> Vec<(String, String)> {
    steps
        .iter()
        .map(|s| ((*s).to_owned(), "Done".to_owned()))
        .collect()
}

#[tokio::test]
async fn deletion_erases_namespaces_and_retain_keeps_them() {
    let h = Harness::start().await;
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    h.create_tenant("erased", json!({})).await;
    h.create_tenant("kept", json!({"deletionPolicy": "Retain"}))
        .await;
    h.wait_condition("erased", "Ready", "True").await;
    h.wait_condition("kept", "Ready", "True").await;
    hold(&h, "erased").await;
    hold(&h, "kept").await;

    h.tenants()
        .delete("erased", &DeleteParams::default())
        .await
        .expect("delete");
    h.tenants()
        .delete("kept", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(deletion_steps(&h, "erased").await, done(&ERASE));
    assert_eq!(
        deletion_steps(&h, "kept").await,
        done(&["ReleaseObjects", "RemoveFinalizer"])
    );
    eventually("both Tenants are gone", || async {
        !exists(&h.tenants(), "erased").await && !exists(&h.tenants(), "kept").await
    })
    .await;
    assert!(
        !exists(&namespaces, "tenant-erased").await,
        "Erase deletes the namespaces"
    );
    // Retain: the namespace stays, still isolated, and the garbage collector has no owner
    // to follow.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let kept = namespaces
        .get("tenant-kept")
        .await
        .expect("Retain keeps the namespace");
    assert!(kept.owner_references().is_empty());
    let policies: Api<NetworkPolicy> = Api::namespaced(h.client.clone(), "tenant-kept");
    assert!(
        exists(&policies, "landlord-default-deny").await,
        "the retained namespace stays default-deny"
    );
}

#[tokio::test]
async fn retain_keeps_everything_under_foreground_deletion() {
    // The attack of `kubectl delete tenant x --cascade=foreground`: the garbage collector
    // deletes the owner's dependents before the owner, and would take the data Retain
    // promises to keep.
    let h = Harness::start().await;
    h.create_tenant(
        "vault",
        json!({"deletionPolicy": "Retain", "isolation": {"quota": {"pods": 3}},
               "namespaces": {"additional": [{"name": "vault-data"}]}}),
    )
    .await;
    h.wait_condition("vault", "Ready", "True").await;
    let data = k8s_openapi::api::core::v1::ConfigMap {
        metadata: ObjectMeta {
            name: Some("client-records".to_owned()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("rows".to_owned(), "42".to_owned())])),
        ..Default::default()
    };
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(h.client.clone(), "vault-data");
    configmaps
        .create(&PostParams::default(), &data)
        .await
        .expect("client data");
    h.tenants()
        .delete("vault", &DeleteParams::foreground())
        .await
        .expect("delete in the foreground");
    eventually("the Tenant is gone", || async {
        !exists(&h.tenants(), "vault").await
    })
    .await;
    // Give the garbage collector every chance to act on anything still owned.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    for ns in ["tenant-vault", "vault-data"] {
        let live = namespaces.get_opt(ns).await.expect("readable");
        assert!(
            live.is_some_and(|n| n.metadata.deletion_timestamp.is_none()),
            "{ns} is kept"
        );
        let policies: Api<NetworkPolicy> = Api::namespaced(h.client.clone(), ns);
        assert!(
            exists(&policies, "landlord-default-deny").await,
            "{ns} stays default-deny"
        );
    }
    let quotas: Api<ResourceQuota> = Api::namespaced(h.client.clone(), "tenant-vault");
    assert!(exists(&quotas, "landlord-quota").await, "the quota is kept");
    assert!(
        exists(&configmaps, "client-records").await,
        "the client's data is kept"
    );
}

#[tokio::test]
async fn a_reused_name_never_inherits_what_an_earlier_tenant_retained() {
    let h = Harness::start().await;
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    let old = h
        .create_tenant("reuse", json!({"deletionPolicy": "Retain"}))
        .await;
    let old_uid = old.metadata.uid.clone().expect("uid");
    h.wait_condition("reuse", "Ready", "True").await;
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(h.client.clone(), "tenant-reuse");
    configmaps
        .create(
            &PostParams::default(),
            &k8s_openapi::api::core::v1::ConfigMap {
                metadata: ObjectMeta {
                    name: Some("old-client-data".to_owned()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("the old client's data");
    h.tenants()
        .delete("reuse", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the old Tenant is gone", || async {
        !exists(&h.tenants(), "reuse").await
    })
    .await;
    let retained = namespaces.get("tenant-reuse").await.expect("retained");

    // A new client gets the same name.
    let new = h.create_tenant("reuse", json!({})).await;
    assert_ne!(new.metadata.uid.as_deref(), Some(old_uid.as_str()));
    let (_, reason, message) = h.wait_condition("reuse", "NamespacesReady", "False").await;
    assert_eq!(reason, "RetainedDataExists");
    assert!(
        message.contains(&old_uid),
        "names the earlier Tenant: {message}"
    );
    assert!(
        message.contains(&format!("landlord.dev/adopt-retained-from={old_uid}")),
        "says how to adopt: {message}"
    );
    assert_eq!(
        h.condition("reuse", "Ready").await.expect("Ready").0,
        "False"
    );
    // Nothing of the old tenant's was touched or handed over.
    support::wait::stays(
        "the retained namespace is untouched",
        Duration::from_secs(2),
        || async {
            let now = namespaces.get("tenant-reuse").await.expect("still there");
            now.resource_version() == retained.resource_version()
        },
    )
    .await;
    assert!(exists(&configmaps, "old-client-data").await);

    // The explicit opt-in, naming exactly the earlier UID, adopts it.
    let adopt = json!({"metadata": {"annotations": {"landlord.dev/adopt-retained-from": old_uid}}});
    h.tenants()
        .patch("reuse", &PatchParams::default(), &Patch::Merge(&adopt))
        .await
        .expect("annotated");
    h.wait_condition("reuse", "Ready", "True").await;
    let tenant = h.tenants().get("reuse").await.expect("tenant");
    assert_eq!(
        tenant
            .status
            .as_ref()
            .and_then(|s| s.adopted_from.as_deref()),
        Some(old_uid.as_str())
    );
    let adopted = namespaces.get("tenant-reuse").await.expect("adopted");
    assert_eq!(
        adopted.annotations().get("landlord.dev/tenant-uid"),
        tenant.metadata.uid.as_ref(),
        "re-recorded with the new UID"
    );
    wait_event(
        &h,
        "reuse",
        "RetainedDataAdopted naming the earlier UID",
        |t, reason, note| {
            t == "Normal" && reason == "RetainedDataAdopted" && note.contains(&old_uid)
        },
    )
    .await;
}

#[tokio::test]
async fn a_forged_tenant_label_joins_nothing_and_is_reported() {
    let h = Harness::start().await;
    let tenant = h.create_tenant("acme", json!({})).await;
    h.wait_condition("acme", "Ready", "True").await;
    assert_eq!(
        h.wait_condition("acme", "MembershipVerified", "True")
            .await
            .1,
        "OwnNamespacesOnly"
    );
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    // Someone who may create namespaces labels theirs as acme's, one even with acme's UID
    // (readable by anyone who may read Tenants).
    let forged = |name: &str, annotations: BTreeMap<String, String>| Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([
                ("landlord.dev/tenant".to_owned(), "acme".to_owned()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "landlord".to_owned(),
                ),
            ])),
            annotations: Some(annotations),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &forged("intruder", BTreeMap::new()))
        .await
        .expect("created");
    let uid = tenant.metadata.uid.clone().expect("uid");
    namespaces
        .create(
            &PostParams::default(),
            &forged(
                "impostor",
                BTreeMap::from([("landlord.dev/tenant-uid".to_owned(), uid)]),
            ),
        )
        .await
        .expect("created");

    let (_, reason, message) =
        support::wait::wait_for("MembershipVerified names both namespaces", || async {
            h.condition("acme", "MembershipVerified")
                .await
                .filter(|c| c.0 == "False" && c.2.contains("impostor, intruder"))
        })
        .await;
    assert_eq!(reason, "ForgedTenantLabel");
    assert!(
        message.contains("were not created by Landlord"),
        "{message}"
    );
    wait_event(
        &h,
        "acme",
        "a Warning naming the namespace",
        |t, reason, note| {
            t == "Warning" && reason == "ForgedTenantLabel" && note.contains("intruder")
        },
    )
    .await;
    // The tenant's policies admit its own namespaces by name only.
    let policies: Api<NetworkPolicy> = Api::namespaced(h.client.clone(), "tenant-acme");
    let same = policies
        .get("landlord-allow-same-tenant")
        .await
        .expect("policy");
    let spec = serde_json::to_value(same.spec).expect("json");
    let selector = json!({"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["tenant-acme"]}
    ]});
    assert_eq!(spec["ingress"][0]["from"][0]["namespaceSelector"], selector);
    assert_eq!(spec["egress"][0]["to"][0]["namespaceSelector"], selector);
    // Neither namespace was touched by Landlord: no policies were written into them.
    for ns in ["intruder", "impostor"] {
        let in_it: Api<NetworkPolicy> = Api::namespaced(h.client.clone(), ns);
        assert!(
            in_it
                .list(&Default::default())
                .await
                .expect("list")
                .items
                .is_empty()
        );
    }
    // A forged label does not take the tenant out of Ready (else anyone who may label a
    // namespace could), and the isolation verdict stands.
    assert_eq!(h.condition("acme", "Ready").await.expect("Ready").0, "True");
    assert_eq!(
        h.condition("acme", "Isolated").await.expect("Isolated").0,
        "True"
    );

    // The report follows: one forger gone, the other still named.
    namespaces
        .delete("intruder", &DeleteParams::default())
        .await
        .expect("deleted");
    support::wait::wait_for("only the impostor is reported", || async {
        h.condition("acme", "MembershipVerified")
            .await
            .filter(|c| c.0 == "False" && !c.2.contains("intruder"))
    })
    .await;
    // Erasing the tenant deletes its namespaces, never one that merely records its UID:
    // whoever may annotate a namespace must not get Landlord to delete it for them.
    h.tenants()
        .delete("acme", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("acme is erased", || async {
        !exists(&h.tenants(), "acme").await
    })
    .await;
    assert!(!exists(&namespaces, "tenant-acme").await);
    let impostor = namespaces.get("impostor").await.expect("not deleted");
    assert!(impostor.metadata.deletion_timestamp.is_none());
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
    // Resyncs every second, so that several happen while writes are counted.
    h.stop_operator().await;
    h.resync = Duration::from_secs(1);
    h.start_operator().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.emulator.reset_request_counts();
    let before = h.reconciles("tenant").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let writes = writes_except_lease(&h.emulator);
    assert!(writes.is_empty(), "writes at steady state: {writes:?}");
    let looked = h.reconciles("tenant").await - before;
    assert!(
        looked >= 2,
        "only {looked} reconciles in 4 s of 1 s resyncs: nothing was looked at"
    );

    // A restart changes nothing either, and the new leader did reconcile the Tenant.
    h.stop_operator().await;
    h.emulator.reset_request_counts();
    h.start_operator().await;
    eventually("the restarted operator reconciled the Tenant", || async {
        h.reconciles("tenant").await >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
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
    // Each fault fired: two refused requests, then at least the one that went through.
    for (verb, resource) in [
        ("patch", "tenants"),
        ("create", "namespaces"),
        ("patch", "networkpolicies"),
        ("patch", "resourcequotas"),
        ("patch", "tenants/status"),
    ] {
        let count = h.emulator.request_count(verb, resource);
        assert!(
            count >= 3,
            "{verb} {resource}: {count} requests, so the faults did not all fire"
        );
    }
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    assert!(exists(&namespaces, "tenant-flaky").await);
    let quotas: Api<ResourceQuota> = Api::namespaced(h.client.clone(), "tenant-flaky");
    assert!(exists(&quotas, "landlord-quota").await);
}

/// A namespace is pruned only when the spec or the status names it, so one created by a
/// pass whose status write failed, then dropped from the spec, would stay forever (seen on
/// the real control plane: a spec change landing between the create and the status write
/// made that write a 409). Landlord records a namespace in the status before it creates
/// it: while every status write fails, the added namespace is not created at all.
#[tokio::test]
async fn a_namespace_is_recorded_before_it_is_created_so_a_lost_status_write_leaks_nothing() {
    let h = Harness::start().await;
    h.create_tenant("hooli", json!({})).await;
    h.wait_condition("hooli", "Ready", "True").await;
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    let failing = h.emulator.inject_fault(kube_emulator::FaultRule::fail(
        Some("patch"),
        Some("tenants/status"),
        409,
    ));
    let before = h.emulator.fault_hits(failing).len();
    let add = json!({"spec": {"namespaces": {"additional": [{"name": "hooli-staging"}]}}});
    h.tenants()
        .patch("hooli", &PatchParams::default(), &Patch::Merge(&add))
        .await
        .expect("spec updated");
    eventually("two passes have failed to write the status", || async {
        h.emulator.fault_hits(failing).len() >= before + 2
    })
    .await;
    assert!(
        !exists(&namespaces, "hooli-staging").await,
        "created before the status that records it was written"
    );
    // The spec drops it again while the writes still fail, then the API heals.
    let remove = json!({"spec": {"namespaces": {"additional": null}}});
    h.tenants()
        .patch("hooli", &PatchParams::default(), &Patch::Merge(&remove))
        .await
        .expect("spec updated");
    h.emulator.remove_fault(failing);
    h.wait_condition("hooli", "Ready", "True").await;
    let tenant = h.tenants().get("hooli").await.expect("tenant");
    assert_eq!(
        tenant.status.expect("status").namespaces,
        ["tenant-hooli"],
        "the dropped namespace is not recorded once the spec no longer asks for it"
    );
    assert!(!exists(&namespaces, "hooli-staging").await);

    // And the way it is meant to go: recorded, created, then dropped and pruned.
    h.tenants()
        .patch("hooli", &PatchParams::default(), &Patch::Merge(&add))
        .await
        .expect("spec updated");
    eventually("the additional namespace exists", || async {
        exists(&namespaces, "hooli-staging").await
    })
    .await;
    h.tenants()
        .patch("hooli", &PatchParams::default(), &Patch::Merge(&remove))
        .await
        .expect("spec updated");
    eventually("the removed namespace is pruned", || async {
        namespaces
            .get_opt("hooli-staging")
            .await
            .expect("readable")
            .is_none_or(|ns| ns.metadata.deletion_timestamp.is_some())
    })
    .await;
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

/// Waits until an Event about `tenant` matches `wanted` (type, reason, note): events are
/// published after the status write they describe.
async fn wait_event(
    h: &Harness,
    tenant: &str,
    what: &str,
    wanted: impl Fn(&str, &str, &str) -> bool,
) {
    let found = support::wait::poll(|| async {
        events_for(&h.client, tenant)
            .await
            .iter()
            .any(|(t, reason, note)| wanted(t, reason, note))
            .then_some(())
    })
    .await;
    if found.is_none() {
        let events = events_for(&h.client, tenant).await;
        panic!("{tenant}: no event {what}: {events:?}");
    }
}

#[tokio::test]
async fn a_tenant_admins_open_policies_are_reported_as_a_cross_tenant_path() {
    let h = Harness::start().await;
    h.create_tenant("alpha", json!({})).await;
    h.create_tenant("beta", json!({})).await;
    h.wait_condition("alpha", "Isolated", "True").await;
    h.wait_condition("beta", "Isolated", "True").await;
    wait_event(&h, "alpha", "Normal Ready", |t, reason, _| {
        t == "Normal" && reason == "Ready"
    })
    .await;

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
    // One side alone opens no path: beta still denies ingress. The analysis runs within
    // half a second of a change, so three seconds of True is a verdict, not a lag.
    support::wait::stays(
        "alpha is Isolated while only its own egress is open",
        Duration::from_secs(3),
        || async {
            h.condition("alpha", "Isolated")
                .await
                .is_some_and(|c| c.0 == "True")
        },
    )
    .await;
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
    wait_event(&h, "alpha", "a Warning CrossTenantPath", |t, reason, _| {
        t == "Warning" && reason == "CrossTenantPath"
    })
    .await;
}

#[tokio::test]
async fn the_operators_own_create_conflict_is_not_namespace_taken() {
    // A create answered 409 although nobody else holds the namespace (what a lagging cache
    // makes of the operator's own earlier create): confirmed with a GET, never reported as
    // someone else's namespace.
    let h = Harness::start().await;
    h.emulator.inject_fault(
        kube_emulator::FaultRule::fail(Some("create"), Some("namespaces"), 409).times(1),
    );
    h.create_tenant("echo", json!({})).await;
    h.wait_condition("echo", "Ready", "True").await;
    assert!(
        h.emulator.request_count("create", "namespaces") >= 2,
        "the injected 409 fired, then the namespace was created"
    );
    let events = events_for(&h.client, "echo").await;
    assert!(
        !events
            .iter()
            .any(|(_, reason, _)| reason == "NamespaceTaken"),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_spec_that_cannot_be_built_sets_ready_phase_and_generation() {
    let h = Harness::start().await;
    h.create_tenant("fox", json!({})).await;
    h.wait_condition("fox", "Ready", "True").await;
    // A reserved label: valid for the schema, refused by the validation stage.
    let bad = json!({"spec": {"namespaces": {"labels": {"landlord.dev/tenant": "other"}}}});
    let patched = h
        .tenants()
        .patch("fox", &PatchParams::default(), &Patch::Merge(&bad))
        .await
        .expect("accepted by the schema");
    let (_, reason, message) = h.wait_condition("fox", "NamespacesReady", "False").await;
    assert_eq!(reason, "ReservedLabel");
    assert!(message.contains("spec.namespaces.labels"), "{message}");
    let tenant = h.tenants().get("fox").await.expect("tenant");
    let status = tenant.status.expect("status");
    assert_eq!(status.observed_generation, patched.metadata.generation);
    assert_eq!(status.phase, Some(landlord::api::TenantPhase::Degraded));
    let ready = landlord::api::find_condition(&status.conditions, "Ready").expect("Ready");
    assert_eq!(format!("{:?}", ready.status), "False");
    assert!(
        ready.message.contains("NamespacesReady"),
        "{}",
        ready.message
    );
}
