//! A Tenant's key: the age X25519 key its backups are encrypted to, created once at
//! onboarding by the [`KeyProvider`](crate::keys::KeyProvider) of the [`Context`] and
//! destroyed only by erasure.
//!
//! # Onboarding ([`provision`])
//!
//! A reconcile whose status already records the key id reads only the key's public half
//! ([`recipient`](crate::keys::KeyProvider::recipient): a metadata-only GET, nothing
//! cached, the identity never read) and is done when it matches. Otherwise it asks the
//! provider to [`ensure`](crate::keys::KeyProvider::ensure) the key: the first one
//! creates it, later ones read it and check it is still this Tenant's (by UID). A concurrent create (a crash and a retry, two replicas) ends with
//! the one key that exists; a Secret of the key's name that records another Tenant's UID
//! (a reused name) is never taken over: `KeyReady` is False with the provider's reason
//! (`KeyConflict`). The result is `status.keyId` (the fingerprint of the public
//! recipient) and the condition `KeyReady`: True `KeyCreated` from the pass that created
//! the key (kept while the key stays the same, so a steady reconcile writes nothing),
//! `KeyAvailable` when an existing key is found that the status had not reported (a
//! Tenant onboarded before keys existed, a status lost); False with the provider error's
//! reason and message, which never hold key material. `spec.encryption.keyProvider: AwsKms` is not implemented:
//! `KeyReady` False `ProviderNotSupported`, and no key is created anywhere.
//!
//! # The canary
//!
//! Beside `status.keyId`, the status records `status.canary`: [`CANARY_PLAINTEXT`], a
//! fixed and published text, encrypted to the recipient, as the base64 of an age file.
//! It is not secret. Erasure tries it after destroying the key: that no identity the
//! operator can read opens it is evidence that the key is gone. It lives in the Tenant's
//! status (not on the key Secret, which erasure deletes, nor in a BackupStorage, which a
//! Tenant may not have) and is sealed again only when the key id changes, so a steady
//! reconcile writes nothing.
//!
//! # Erasure ([`destroy_key`])
//!
//! The step `DestroyKey` asks the provider to destroy the key, then asks again whether it
//! exists; a key already gone counts as destroyed. `Retain` keeps the key.
//!
//! [`CANARY_PLAINTEXT`]: crate::keys::crypto::CANARY_PLAINTEXT

use base64::Engine as _;
use kube::ResourceExt;
use tracing::warn;

use super::{Context, Error};
use crate::api::{Condition, ConditionStatus, KeyProvider as ProviderKind, Tenant, find_condition};
use crate::keys::{Destroyed, KeyError, TenantKey, TenantRef, crypto};

/// Condition type on the Tenant.
pub const KEY_READY: &str = "KeyReady";

/// What the key step found, for the Tenant's status.
#[derive(Debug)]
pub struct Report {
    /// `KeyReady`.
    pub condition: Condition,
    /// `status.keyId`: the key's id when the provider has this Tenant's key, else what
    /// the status recorded.
    pub key_id: Option<String>,
    /// `status.canary`.
    pub canary: Option<String>,
    /// The failure to retry with back-off, after the status is written.
    pub retry: Option<Error>,
}

/// Ensures the tenant's key and reports it.
pub async fn provision(tenant: &Tenant, ctx: &Context) -> Report {
    if tenant.spec.encryption.key_provider != ProviderKind::Kubernetes {
        return report(tenant, Err(Unavailable::NotSupported));
    }
    let tenant_ref = match TenantRef::of(tenant) {
        Ok(t) => t,
        Err(e) => return report(tenant, Err(Unavailable::Key(e))),
    };
    // Steady state: the public half (a metadata-only read, the identity never leaves the
    // API server) matching what the status recorded is enough. Anything else — no key
    // yet, another key id, an error — goes through `ensure`, which reads the identity
    // and checks it against the recorded recipient.
    let recorded = tenant.status.as_ref().and_then(|s| s.key_id.as_deref());
    if let Some(recorded) = recorded
        && let Ok(Some(key)) = ctx.keys.recipient(&tenant_ref).await
        && key.key_id.to_string() == recorded
    {
        return report(tenant, Ok(key));
    }
    let result = ctx.keys.ensure(&tenant_ref).await;
    report(tenant, result.map_err(Unavailable::Key))
}

/// Why a Tenant has no usable key.
#[derive(Debug)]
enum Unavailable {
    /// Its `spec.encryption.keyProvider` is not implemented.
    NotSupported,
    /// The provider failed or refused.
    Key(KeyError),
}

/// The report for what `ensure` returned (pure but for sealing the canary, which draws
/// an ephemeral key).
fn report(tenant: &Tenant, result: Result<TenantKey, Unavailable>) -> Report {
    let generation = tenant.metadata.generation;
    let status = tenant.status.as_ref();
    let recorded_id = status.and_then(|s| s.key_id.clone());
    let recorded_canary = status.and_then(|s| s.canary.clone());
    let key = match result {
        Ok(key) => key,
        Err(Unavailable::NotSupported) => {
            return Report {
                condition: Condition::new(
                    KEY_READY,
                    ConditionStatus::False,
                    "ProviderNotSupported",
                    format!(
                        "spec.encryption.keyProvider {:?} is not implemented by this version of Landlord: no key was created and no backup can be encrypted for this tenant; {:?} is the provider available today (keyProvider cannot change once set: recreate the Tenant to use it)",
                        tenant.spec.encryption.key_provider,
                        ProviderKind::Kubernetes,
                    ),
                    generation,
                ),
                key_id: recorded_id,
                canary: recorded_canary,
                retry: None,
            };
        }
        Err(Unavailable::Key(error)) => {
            let message = error.to_string();
            return Report {
                condition: Condition::new(
                    KEY_READY,
                    ConditionStatus::False,
                    error.reason(),
                    message,
                    generation,
                ),
                key_id: recorded_id,
                canary: recorded_canary,
                retry: Some(Error::Key {
                    tenant: tenant.name_any(),
                    source: error,
                }),
            };
        }
    };
    let key_id = key.key_id.to_string();
    let same_key = recorded_id.as_deref() == Some(key_id.as_str());
    let canary = match recorded_canary {
        Some(canary) if same_key => Some(canary),
        _ => seal(tenant, &key),
    };
    let previous = status.and_then(|s| find_condition(&s.conditions, KEY_READY));
    let condition = match (key.created, &recorded_id) {
        (true, Some(earlier)) if *earlier != key_id => Condition::new(
            KEY_READY,
            ConditionStatus::True,
            "KeyCreated",
            format!(
                "created key {key_id} in {}; the key {earlier} recorded earlier no longer exists, and backups encrypted to it cannot be decrypted with this one",
                key.location
            ),
            generation,
        ),
        (true, _) => Condition::new(
            KEY_READY,
            ConditionStatus::True,
            "KeyCreated",
            format!("created key {key_id} in {}", key.location),
            generation,
        ),
        // The same key as recorded, and already reported True: keep what was said (the
        // pass that created it said so), so that a steady reconcile writes nothing.
        (false, _) if same_key && previous.is_some_and(Condition::is_true) => {
            let previous = previous
                .cloned()
                .unwrap_or_else(|| available(&key, generation));
            Condition::new(
                KEY_READY,
                ConditionStatus::True,
                &previous.reason,
                previous.message,
                generation,
            )
        }
        (false, _) => available(&key, generation),
    };
    Report {
        condition,
        key_id: Some(key_id),
        canary,
        retry: None,
    }
}

fn available(key: &TenantKey, generation: Option<i64>) -> Condition {
    Condition::new(
        KEY_READY,
        ConditionStatus::True,
        "KeyAvailable",
        format!("key {} in {}", key.key_id, key.location),
        generation,
    )
}

/// The canary for `key`, base64. Without randomness it is left out (and sealed on a
/// later pass): the status shows it is missing.
fn seal(tenant: &Tenant, key: &TenantKey) -> Option<String> {
    match crypto::seal_canary(&key.recipient) {
        Ok(sealed) => Some(base64::engine::general_purpose::STANDARD.encode(sealed)),
        Err(e) => {
            warn!(tenant = %tenant.name_any(), key_id = %key.key_id, error = %e, "the erasure canary could not be sealed; trying again next time");
            None
        }
    }
}

/// The erasure step `DestroyKey`: destroys the tenant's key in its provider, then asks the
/// provider again, and fails unless the key is gone. Returns what it found, for the
/// step's message.
pub async fn destroy_key(tenant: &Tenant, ctx: &Context) -> Result<String, Error> {
    let failed = |source: KeyError| Error::Key {
        tenant: tenant.name_any(),
        source,
    };
    let tenant_ref = TenantRef::of(tenant).map_err(failed)?;
    let location = ctx.keys.location(&tenant_ref);
    let key_id = tenant
        .status
        .as_ref()
        .and_then(|s| s.key_id.as_deref())
        .map_or_else(String::new, |id| format!(" {id}"));
    let destroyed = match ctx.keys.destroy(&tenant_ref).await {
        Ok(destroyed) => destroyed,
        // The key's name holds something that records another Tenant's UID (or none):
        // this Tenant's key is not there (it was never created, or was replaced after it
        // was destroyed), and what is there is not Landlord's to delete.
        Err(KeyError::Conflict { recorded, .. }) => {
            return Ok(format!(
                "this tenant has no key in {location}: it {}, and was left untouched",
                recorded.map_or_else(
                    || "records no Tenant UID".to_owned(),
                    |uid| format!("records another Tenant's UID {uid}")
                )
            ));
        }
        Err(e) => return Err(failed(e)),
    };
    if let Destroyed::Pending { finalizers } = destroyed {
        return Err(failed(KeyError::BeingDeleted {
            location,
            finalizers,
        }));
    }
    // Asked again: this step decides that the key is gone.
    if ctx.keys.exists(&tenant_ref).await.map_err(failed)? {
        return Err(failed(KeyError::BeingDeleted {
            location,
            finalizers: Vec::new(),
        }));
    }
    Ok(match destroyed {
        Destroyed::Deleted => format!(
            "destroyed key{key_id} ({} provider): {location} deleted, and the provider no longer has it",
            ctx.keys.name()
        ),
        _ => format!(
            "no key to destroy ({} provider): {location} does not exist",
            ctx.keys.name()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{TenantSpec, TenantStatus};
    use crate::keys::{KeyId, Recipient};

    const UID: &str = "1a2b3c4d-5e6f-4a0b-8c0d-0e0f10111213";

    fn tenant(status: Option<TenantStatus>) -> Tenant {
        let spec: TenantSpec = serde_json::from_value(serde_json::json!({})).expect("spec");
        let mut t = Tenant::new("acme", spec);
        t.metadata.uid = Some(UID.into());
        t.metadata.generation = Some(3);
        t.status = status;
        t
    }

    fn key(identity: &::age::x25519::Identity, created: bool) -> TenantKey {
        let recipient: Recipient = identity.to_public();
        TenantKey {
            key_id: KeyId::of(&recipient),
            recipient,
            location: "Secret landlord/k".into(),
            created,
        }
    }

    #[test]
    fn a_new_key_is_recorded_with_a_canary_that_opens_with_it_only() {
        let identity = ::age::x25519::Identity::generate();
        let report = report(&tenant(None), Ok(key(&identity, true)));
        assert_eq!(report.condition.status, ConditionStatus::True);
        assert_eq!(report.condition.reason, "KeyCreated");
        let id = KeyId::of(&identity.to_public()).to_string();
        assert_eq!(report.key_id.as_deref(), Some(id.as_str()));
        assert!(report.condition.message.contains(&id));
        let canary = base64::engine::general_purpose::STANDARD
            .decode(report.canary.expect("canary"))
            .expect("base64");
        assert!(crypto::canary_opens(&canary, [&identity]).expect("an age file"));
        let other = ::age::x25519::Identity::generate();
        assert!(!crypto::canary_opens(&canary, [&other]).expect("an age file"));
        assert!(report.retry.is_none());
    }

    #[test]
    fn a_steady_key_keeps_its_condition_and_canary() {
        let identity = ::age::x25519::Identity::generate();
        let first = report(&tenant(None), Ok(key(&identity, true)));
        let status = TenantStatus {
            key_id: first.key_id.clone(),
            canary: first.canary.clone(),
            conditions: vec![first.condition.clone()],
            ..Default::default()
        };
        let again = report(&tenant(Some(status)), Ok(key(&identity, false)));
        assert_eq!(again.key_id, first.key_id);
        assert_eq!(again.canary, first.canary, "not sealed again");
        assert_eq!(again.condition.reason, first.condition.reason);
        assert_eq!(again.condition.message, first.condition.message);
    }

    #[test]
    fn another_key_than_recorded_is_said_and_gets_its_own_canary() {
        let old = ::age::x25519::Identity::generate();
        let first = report(&tenant(None), Ok(key(&old, true)));
        let status = TenantStatus {
            key_id: first.key_id.clone(),
            canary: first.canary.clone(),
            conditions: vec![first.condition.clone()],
            ..Default::default()
        };
        let new = ::age::x25519::Identity::generate();
        let again = report(&tenant(Some(status.clone())), Ok(key(&new, true)));
        assert_ne!(again.key_id, first.key_id);
        assert_ne!(again.canary, first.canary);
        let old_id = first.key_id.expect("id");
        assert!(
            again.condition.message.contains(&old_id),
            "{}",
            again.condition.message
        );
        // Found (not created) but different from the record: reported as available.
        let found = report(&tenant(Some(status)), Ok(key(&new, false)));
        assert_eq!(found.condition.reason, "KeyAvailable");
    }

    #[test]
    fn provider_errors_and_unsupported_providers_are_false_with_reasons() {
        let conflict = KeyError::Conflict {
            tenant: "acme".into(),
            uid: UID.into(),
            location: "Secret landlord/k".into(),
            recorded: Some("0000".into()),
        };
        let status = TenantStatus {
            key_id: Some("recorded".into()),
            ..Default::default()
        };
        let r = report(&tenant(Some(status)), Err(Unavailable::Key(conflict)));
        assert_eq!(r.condition.status, ConditionStatus::False);
        assert_eq!(r.condition.reason, "KeyConflict");
        assert!(
            r.condition.message.contains("0000"),
            "{}",
            r.condition.message
        );
        assert_eq!(r.key_id.as_deref(), Some("recorded"));
        assert_eq!(r.retry.expect("retried").category(), "key_conflict");

        let r = report(&tenant(None), Err(Unavailable::NotSupported));
        assert_eq!(r.condition.status, ConditionStatus::False);
        assert_eq!(r.condition.reason, "ProviderNotSupported");
        assert!(
            r.condition.message.contains("Kubernetes"),
            "{}",
            r.condition.message
        );
        assert!(r.key_id.is_none() && r.canary.is_none() && r.retry.is_none());
    }
}
