//! Per-tenant keys: every Tenant's backups are encrypted to its own age X25519 key, so that
//! destroying that one key makes every copy of its backups unreadable (crypto-shredding),
//! including copies under object lock or in replicas Landlord cannot delete.
//!
//! A [`KeyProvider`] holds one key per Tenant, identified by name **and UID**
//! ([`TenantRef`]): a later Tenant of the same name gets another key and never reads the
//! backups of the earlier one.
//!
//! - [`KeyProvider::ensure`] creates the key once (at onboarding) and returns its public
//!   half ([`TenantKey`]: the recipient and its [`KeyId`]). Two callers at once (a crash
//!   and a retry, two replicas) end with the same single key.
//! - [`KeyProvider::recipient`] is what the backup path uses: only the public recipient.
//! - [`KeyProvider::identity`] returns the secret half, for restore and verification
//!   only, as a [`TenantIdentity`] whose `Debug` and `Display` never show it and whose
//!   memory is zeroed when it is dropped.
//! - [`KeyProvider::destroy`] destroys the key (erasure); [`KeyProvider::exists`] asks
//!   the provider again, for the evidence in the receipt.
//!
//! The [`kubernetes`] provider keeps each identity in a Secret in the operator's own
//! namespace. [`crypto`] has the age operations (key ids, streaming encryption to exactly
//! one recipient, decryption, the erasure canary) and [`header`] reads an age file's
//! recipient stanzas without any key.
//!
//! # What destroying a key does not reach
//!
//! With the `kubernetes` provider, destroying a key deletes its Secret through the API.
//! etcd keeps earlier revisions of every object until the cluster compacts them (the API
//! server compacts every 5 minutes by default, but an etcd defragmentation is what frees
//! the disk pages), and **etcd backups and snapshots taken while the key existed hold a
//! copy of it** for as long as they are kept. Unless etcd is encrypted at rest with a key
//! that is itself destroyed, an erasure is only as complete as the etcd backup retention.
//! A provider that keeps the identity wrapped by a per-tenant KMS key (disabled and
//! scheduled for deletion on erasure) does not have this limit.
//!
//! In memory, identities are held by the age library (zeroed on drop) and the Secret's
//! bytes are zeroed after parsing; the HTTP client's own buffers are outside Landlord's
//! reach and are not.

pub mod crypto;
mod error;
pub mod header;
pub mod kubernetes;

use std::fmt;

use async_trait::async_trait;

pub use self::crypto::{CryptoError, KeyId};
pub use self::error::{KeyError, REDACTED, scrub};
pub use self::kubernetes::KubernetesKeyProvider;
/// The public half of a tenant key: what backups are encrypted to.
pub use ::age::x25519::Recipient;

/// The Tenant a key belongs to: its name and UID. The UID is what the key records and is
/// checked against on every read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TenantRef {
    name: String,
    uid: String,
}

impl TenantRef {
    /// A Tenant by name and UID. The name must be a DNS-1123 label (every valid Tenant's
    /// is) and the UID non-empty.
    pub fn new(name: &str, uid: &str) -> Result<TenantRef, KeyError> {
        let invalid = |detail: &str| KeyError::InvalidTenant {
            tenant: name.to_owned(),
            detail: detail.to_owned(),
        };
        if !is_dns_label(name) {
            return Err(invalid(
                "the name is not a DNS-1123 label of at most 63 characters",
            ));
        }
        let uid = uid.trim();
        if uid.is_empty() {
            return Err(invalid(
                "it has no UID (it was not stored by the API server)",
            ));
        }
        if !uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(invalid("its UID is not a UUID"));
        }
        Ok(TenantRef {
            name: name.to_owned(),
            uid: uid.to_owned(),
        })
    }

    /// The Tenant's name and UID from the object.
    pub fn of(tenant: &crate::api::Tenant) -> Result<TenantRef, KeyError> {
        let name = tenant.metadata.name.as_deref().unwrap_or_default();
        TenantRef::new(name, tenant.metadata.uid.as_deref().unwrap_or_default())
    }

    /// The Tenant's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Tenant's UID.
    pub fn uid(&self) -> &str {
        &self.uid
    }
}

impl fmt::Display for TenantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (UID {})", self.name, self.uid)
    }
}

fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= 63
                && alnum(first)
                && alnum(last)
                && bytes.iter().all(|b| alnum(b) || *b == b'-')
        }
        _ => false,
    }
}

/// The public half of a tenant key, as the provider records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantKey {
    /// The fingerprint of [`TenantKey::recipient`]: `status.keyId`, manifests, receipts.
    pub key_id: KeyId,
    /// What backups are encrypted to (`age1...`).
    pub recipient: Recipient,
    /// Where the key lives, for messages and evidence (e.g. `Secret
    /// landlord/landlord-key-acme-1a2b3c4d`).
    pub location: String,
    /// Whether this call created the key (`ensure` only; `false` elsewhere).
    pub created: bool,
}

/// The secret half of a tenant key. Its `Debug` and `Display` show only the key id; the
/// X25519 secret is zeroed when the value is dropped (by the age library's `StaticSecret`).
/// It is not `Clone`, so that there is one copy per read.
pub struct TenantIdentity {
    key_id: KeyId,
    identity: ::age::x25519::Identity,
}

impl TenantIdentity {
    pub(crate) fn new(identity: ::age::x25519::Identity) -> TenantIdentity {
        TenantIdentity {
            key_id: KeyId::of(&identity.to_public()),
            identity,
        }
    }

    /// The key id of the matching recipient.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The matching recipient.
    pub fn recipient(&self) -> Recipient {
        self.identity.to_public()
    }

    /// The identity, for the age library (decryption, [`crypto::canary_opens`]).
    pub fn as_age(&self) -> &::age::x25519::Identity {
        &self.identity
    }
}

impl fmt::Debug for TenantIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantIdentity")
            .field("key_id", &self.key_id)
            .field("identity", &REDACTED)
            .finish()
    }
}

impl fmt::Display for TenantIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the age identity of key {}", self.key_id)
    }
}

/// What [`KeyProvider::destroy`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destroyed {
    /// This call deleted the key; the provider no longer has it.
    Deleted,
    /// There was no key (already destroyed, or never created).
    AlreadyAbsent,
    /// Deletion was requested but the key is still there, held by finalizers: not
    /// destroyed yet. Call again later.
    Pending {
        /// What holds it.
        finalizers: Vec<String>,
    },
}

impl Destroyed {
    /// Whether the provider no longer has the key.
    pub fn is_gone(&self) -> bool {
        matches!(self, Destroyed::Deleted | Destroyed::AlreadyAbsent)
    }
}

/// Where tenant keys live. Every method reads the provider itself (no cache), and every
/// method checks that what it finds was created for this Tenant's UID.
#[async_trait]
pub trait KeyProvider: Send + Sync {
    /// The provider's name (`kubernetes`), for receipts and messages.
    fn name(&self) -> &'static str;

    /// Where the key of `tenant` lives, whether or not it exists.
    fn location(&self, tenant: &TenantRef) -> String;

    /// The tenant's key, created if it does not exist yet. Idempotent and safe to call
    /// concurrently: there is never more than one identity per Tenant, and an existing
    /// one is never overwritten.
    async fn ensure(&self, tenant: &TenantRef) -> Result<TenantKey, KeyError>;

    /// The tenant's public key, if it has one: what backups are encrypted to. Never reads
    /// the identity, so it cannot check that the recorded recipient is the identity's
    /// (only that the key id is the recipient's): [`KeyProvider::ensure`] does that
    /// check, and a caller that recorded the key id at onboarding (`status.keyId`) should
    /// compare it with [`TenantKey::key_id`] before encrypting.
    async fn recipient(&self, tenant: &TenantRef) -> Result<Option<TenantKey>, KeyError>;

    /// The tenant's identity, for restore and verification only. [`KeyError::Missing`]
    /// when there is none.
    async fn identity(&self, tenant: &TenantRef) -> Result<TenantIdentity, KeyError>;

    /// Destroys the tenant's key. Idempotent: a key that is already gone counts as
    /// destroyed ([`Destroyed::AlreadyAbsent`]).
    async fn destroy(&self, tenant: &TenantRef) -> Result<Destroyed, KeyError>;

    /// Whether the provider has a key for the tenant, asked of the provider now (for
    /// erasure's verification). A key being deleted still exists.
    async fn exists(&self, tenant: &TenantRef) -> Result<bool, KeyError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_refs_need_a_label_and_a_uid() {
        let t = TenantRef::new("acme", "0a1b2c3d-0000-4000-8000-000000000000").expect("valid");
        assert_eq!(t.name(), "acme");
        assert_eq!(t.uid(), "0a1b2c3d-0000-4000-8000-000000000000");
        for (name, uid) in [
            ("", "u"),
            ("Acme", "u"),
            ("acme-", "u"),
            ("a.b", "u"),
            ("acme", ""),
            ("acme", "  "),
            ("acme", "u/../x"),
        ] {
            let err = TenantRef::new(name, uid).expect_err(name);
            assert_eq!(err.category(), "key_tenant_invalid", "{name:?} {uid:?}");
        }
        let long = "a".repeat(64);
        assert!(TenantRef::new(&long, "u").is_err());
    }

    #[test]
    fn identities_never_show_the_secret() {
        let age_identity = ::age::x25519::Identity::generate();
        let secret = {
            use ::age::secrecy::ExposeSecret;
            age_identity.to_string().expose_secret().to_owned()
        };
        assert!(secret.starts_with("AGE-SECRET-KEY-"));
        let identity = TenantIdentity::new(age_identity);
        let shown = format!("{identity:?} {identity} {identity:#?}");
        assert!(!shown.contains(&secret), "{shown}");
        assert!(!shown.to_uppercase().contains("AGE-SECRET-KEY-"), "{shown}");
        assert!(shown.contains(identity.key_id().as_str()), "{shown}");
        assert_eq!(identity.key_id(), &KeyId::of(&identity.recipient()));
    }

    #[test]
    fn destroyed_is_gone_only_when_gone() {
        assert!(Destroyed::Deleted.is_gone());
        assert!(Destroyed::AlreadyAbsent.is_gone());
        assert!(
            !Destroyed::Pending {
                finalizers: vec!["x".into()]
            }
            .is_gone()
        );
    }
}
