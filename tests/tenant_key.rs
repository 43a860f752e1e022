//! A Tenant's key through the Tenant controller, against the emulator: every Tenant gets
//! its own key Secret in the operator's namespace at onboarding (no owner reference,
//! `status.keyId` its recipient's id, a canary that opens with it), never rewritten by
//! later reconciles; `Erase` destroys it (under the chart's exact RBAC), `Retain` keeps
//! it; a later Tenant of the same name gets another key, and a planted Secret of the
//! key's name is never used, changed or deleted.

use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use landlord::api::{DeletionStep, Tenant};
use landlord::keys::crypto::canary_opens;
use landlord::keys::kubernetes::{IDENTITY_KEY, secret_name};
use landlord::keys::{KeyId, TenantRef};
use serde_json::json;
use support::cluster::{Harness, exists};
use support::wait::{eventually, wait_for};

mod support;

/// The operator's namespace in the harness.
const NAMESPACE: &str = "landlord";
/// A finalizer of the test's own, so that a deleted Tenant stays readable after
/// Landlord's workflow finished and its `status.deletion` can be asserted.
const HOLD: &str = "test.landlord.dev/hold";

fn secrets(client: &Client) -> Api<Secret> {
    Api::namespaced(client.clone(), NAMESPACE)
}

fn key_secret_name(tenant: &Tenant) -> String {
    secret_name(
        &TenantRef::new(&tenant.name_any(), tenant.uid().as_deref().expect("uid"))
            .expect("tenant ref"),
    )
}

/// The age identity in a key Secret, as the stock tools would read it.
fn identity_in(secret: &Secret) -> Option<age::x25519::Identity> {
    let bytes = &secret.data.as_ref()?.get(IDENTITY_KEY)?.0;
    let text = std::str::from_utf8(bytes).ok()?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?
        .parse()
        .ok()
}

fn canary_of(tenant: &Tenant) -> Vec<u8> {
    let encoded = tenant
        .status
        .as_ref()
        .and_then(|s| s.canary.clone())
        .expect("status.canary");
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("the canary is base64")
}

/// Adds [`HOLD`] beside Landlord's finalizer (a merge patch replaces the whole list).
async fn hold(h: &Harness, tenant: &str) {
    let patch = json!({"metadata": {"finalizers": ["landlord.dev/erasure", HOLD]}});
    h.tenants()
        .patch(tenant, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("held");
}

/// Waits until Landlord removed its finalizer from the deleted, held Tenant, returns the
/// steps it recorded, then lets the Tenant go.
async fn deletion_steps(h: &Harness, tenant: &str) -> Vec<DeletionStep> {
    let held = wait_for("Landlord's deletion workflow finished", || async {
        let t = h.tenants().get(tenant).await.expect("held Tenant");
        (!t.finalizers().iter().any(|f| f == "landlord.dev/erasure")).then_some(t)
    })
    .await;
    let release = json!({"metadata": {"finalizers": null}});
    h.tenants()
        .patch(tenant, &PatchParams::default(), &Patch::Merge(&release))
        .await
        .expect("released");
    eventually("the Tenant is gone", || async {
        !exists(&h.tenants(), tenant).await
    })
    .await;
    held.status.expect("status").deletion
}

fn step<'a>(steps: &'a [DeletionStep], name: &str) -> &'a DeletionStep {
    steps
        .iter()
        .find(|s| s.name.as_str() == name)
        .unwrap_or_else(|| panic!("no step {name} in {steps:?}"))
}

fn names_and_states(steps: &[DeletionStep]) -> Vec<(String, String)> {
    steps
        .iter()
        .map(|s| (s.name.to_string(), format!("{:?}", s.state)))
        .collect()
}

fn done(steps: &[&str]) -> Vec<(String, String)> {
    steps
        .iter()
        .map(|s| ((*s).to_owned(), "Done".to_owned()))
        .collect()
}

#[tokio::test]
async fn a_tenant_gets_its_key_at_onboarding_and_erase_destroys_it_under_the_chart_rbac() {
    let h = Harness::start_with(true).await;
    h.create_tenant("keyed", json!({"isolation": {"quota": {"pods": 3}}}))
        .await;
    assert_eq!(h.wait_condition("keyed", "Ready", "True").await.1, "Ready");
    let (_, reason, message) = h.wait_condition("keyed", "KeyReady", "True").await;
    assert_eq!(reason, "KeyCreated", "{message}");

    let tenant = h.tenants().get("keyed").await.expect("tenant");
    let name = key_secret_name(&tenant);
    assert!(message.contains(&name), "{message}");
    let secret = secrets(&h.client).get(&name).await.expect("key Secret");
    assert!(
        secret.owner_references().is_empty(),
        "no owner reference: the garbage collector must never take a key"
    );
    assert_eq!(
        secret.annotations().get("landlord.dev/tenant-uid"),
        tenant.metadata.uid.as_ref()
    );
    let identity = identity_in(&secret).expect("an age identity in the key Secret");
    let status = tenant.status.clone().expect("status");
    assert_eq!(
        status.key_id.as_deref(),
        Some(KeyId::of(&identity.to_public()).as_str()),
        "status.keyId is the id of the Secret's recipient"
    );
    assert!(
        !serde_json::to_string(&status)
            .expect("json")
            .to_uppercase()
            .contains("AGE-SECRET-KEY-"),
        "no identity in the status"
    );
    let canary = canary_of(&tenant);
    assert!(
        canary_opens(&canary, [&identity]).expect("the canary is an age file"),
        "the canary opens with the tenant's identity"
    );
    assert!(
        !canary_opens(&canary, [&age::x25519::Identity::generate()]).expect("an age file"),
        "and with no other"
    );

    // A spec change makes the controller reconcile (observedGeneration follows); the
    // key Secret, the key id and the canary stay exactly as they were.
    let version = secret.resource_version();
    let patch = json!({"spec": {"isolation": {"quota": {"pods": 4}}}});
    h.tenants()
        .patch("keyed", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("spec changed");
    let generation = h
        .tenants()
        .get("keyed")
        .await
        .expect("tenant")
        .metadata
        .generation;
    let after = wait_for("the changed spec is reconciled", || async {
        let t = h.tenants().get("keyed").await.ok()?;
        (t.status.as_ref()?.observed_generation == generation).then_some(t)
    })
    .await;
    let again = secrets(&h.client).get(&name).await.expect("key Secret");
    assert_eq!(
        again.resource_version(),
        version,
        "the key was not rewritten"
    );
    let after_status = after.status.clone().expect("status");
    assert_eq!(after_status.key_id, status.key_id);
    assert_eq!(
        after_status.canary, status.canary,
        "the canary is not resealed"
    );

    // Erase: the key goes after the namespaces, and the step says so.
    hold(&h, "keyed").await;
    h.tenants()
        .delete("keyed", &DeleteParams::default())
        .await
        .expect("delete");
    let steps = deletion_steps(&h, "keyed").await;
    assert_eq!(
        names_and_states(&steps),
        done(&[
            "StopBackups",
            "DropDatabase",
            "DeleteNamespaces",
            "DeleteBackups",
            "DestroyKey",
            "Verify",
            "IssueReceipt",
            "RemoveFinalizer"
        ])
    );
    let destroyed = step(&steps, "DestroyKey")
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        destroyed.contains("destroyed key") && destroyed.contains(&name),
        "{destroyed}"
    );
    assert!(
        secrets(&h.client)
            .get_opt(&name)
            .await
            .expect("readable")
            .is_none(),
        "Erase deleted the key Secret"
    );
    // Nothing left in the operator's namespace opens the canary.
    let left: Vec<age::x25519::Identity> = secrets(&h.client)
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .iter()
        .filter_map(identity_in)
        .collect();
    assert!(!canary_opens(&canary, left.iter()).expect("an age file"));
}

#[tokio::test]
async fn retain_keeps_the_key_and_a_new_tenant_of_the_name_gets_another() {
    let h = Harness::start().await;
    h.create_tenant("reborn", json!({"deletionPolicy": "Retain"}))
        .await;
    h.wait_condition("reborn", "Ready", "True").await;
    let first = h.tenants().get("reborn").await.expect("tenant");
    let first_name = key_secret_name(&first);
    let first_id = first.status.as_ref().and_then(|s| s.key_id.clone());
    let kept = secrets(&h.client).get(&first_name).await.expect("key");

    hold(&h, "reborn").await;
    h.tenants()
        .delete("reborn", &DeleteParams::default())
        .await
        .expect("delete");
    let steps = deletion_steps(&h, "reborn").await;
    assert_eq!(
        names_and_states(&steps),
        done(&["ReleaseObjects", "RemoveFinalizer"])
    );
    let released = step(&steps, "ReleaseObjects")
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        released.contains("key stays") && released.contains(&first_name),
        "{released}"
    );
    let still = secrets(&h.client)
        .get(&first_name)
        .await
        .expect("Retain keeps the key Secret");
    assert_eq!(still.resource_version(), kept.resource_version());

    // A new Tenant of the same name: its namespaces are the earlier one's (retained, not
    // adopted), but its key is its own, in a Secret of another name.
    h.create_tenant("reborn", json!({"deletionPolicy": "Retain"}))
        .await;
    let (_, reason, _) = h.wait_condition("reborn", "KeyReady", "True").await;
    assert_eq!(reason, "KeyCreated");
    let second = h.tenants().get("reborn").await.expect("tenant");
    assert_ne!(second.uid(), first.uid());
    let second_name = key_secret_name(&second);
    assert_ne!(second_name, first_name, "the name carries the UID");
    let new = secrets(&h.client).get(&second_name).await.expect("new key");
    assert_eq!(
        new.annotations().get("landlord.dev/tenant-uid"),
        second.metadata.uid.as_ref()
    );
    let second_id = second.status.as_ref().and_then(|s| s.key_id.clone());
    assert!(second_id.is_some());
    assert_ne!(second_id, first_id, "never the earlier Tenant's identity");
    let identity = identity_in(&new).expect("identity");
    assert_eq!(
        second_id.as_deref(),
        Some(KeyId::of(&identity.to_public()).as_str())
    );
    let old_identity = identity_in(&still).expect("identity");
    assert!(
        !canary_opens(&canary_of(&second), [&old_identity]).expect("an age file"),
        "the earlier Tenant's identity does not open the new Tenant's canary"
    );
    let untouched = secrets(&h.client).get(&first_name).await.expect("kept");
    assert_eq!(untouched.resource_version(), kept.resource_version());
    // Ready waits for the namespaces only: the key is not what is missing.
    let (status, _, message) = h.condition("reborn", "Ready").await.expect("Ready");
    assert_eq!(status, "False");
    assert!(message.contains("NamespacesReady"), "{message}");
    assert!(!message.contains("KeyReady"), "{message}");
}

#[tokio::test]
async fn a_planted_key_secret_is_never_taken_over_and_unsupported_providers_say_so() {
    let mut h = Harness::start().await;
    // The operator is stopped while the Tenant is created, so that the Secret can be
    // planted under the name its key would get before Landlord looks.
    h.stop_operator().await;
    let tenant = h.create_tenant("planted", json!({})).await;
    let name = key_secret_name(&tenant);
    let planted = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            annotations: Some(
                [(
                    "landlord.dev/tenant-uid".to_owned(),
                    "00000000-0000-4000-8000-00000000dead".to_owned(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        data: Some([("key.txt".to_owned(), ByteString(b"not yours".to_vec()))].into()),
        ..Default::default()
    };
    let planted = secrets(&h.client)
        .create(&PostParams::default(), &planted)
        .await
        .expect("planted");
    h.create_tenant("kms", json!({"encryption": {"keyProvider": "AwsKms"}}))
        .await;
    h.start_operator().await;

    let (_, reason, message) = h.wait_condition("planted", "KeyReady", "False").await;
    assert_eq!(reason, "KeyConflict", "{message}");
    assert!(
        message.contains("00000000-0000-4000-8000-00000000dead") && message.contains(&name),
        "{message}"
    );
    let (_, _, ready) = h.wait_condition("planted", "Ready", "False").await;
    assert!(ready.contains("KeyReady"), "{ready}");
    let status = h
        .tenants()
        .get("planted")
        .await
        .expect("tenant")
        .status
        .expect("status");
    assert_eq!(
        status.key_id, None,
        "no key id from a Secret that is not its"
    );
    assert_eq!(status.canary, None);

    let (_, reason, message) = h.wait_condition("kms", "KeyReady", "False").await;
    assert_eq!(reason, "ProviderNotSupported", "{message}");
    assert!(message.contains("AwsKms"), "{message}");
    let (_, _, ready) = h.wait_condition("kms", "Ready", "False").await;
    assert!(ready.contains("KeyReady"), "{ready}");
    let kms = h.tenants().get("kms").await.expect("tenant");
    assert!(
        secrets(&h.client)
            .get_opt(&key_secret_name(&kms))
            .await
            .expect("readable")
            .is_none(),
        "no key is created for a provider that is not implemented"
    );

    // Erasing the Tenant leaves the planted Secret alone.
    hold(&h, "planted").await;
    h.tenants()
        .delete("planted", &DeleteParams::default())
        .await
        .expect("delete");
    let steps = deletion_steps(&h, "planted").await;
    let message = step(&steps, "DestroyKey")
        .message
        .clone()
        .unwrap_or_default();
    assert!(message.contains("left untouched"), "{message}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = secrets(&h.client)
        .get(&name)
        .await
        .expect("the planted Secret is still there");
    assert_eq!(after.resource_version(), planted.resource_version());
    assert_eq!(after.data, planted.data);
}
