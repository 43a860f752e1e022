//! The `kubernetes` key provider: each tenant's age identity in a Secret in the operator's
//! own namespace (never in a tenant namespace).
//!
//! The Secret of the Tenant `acme` with UID `1a2b3c4d-...` is
//! `landlord-key-acme-1a2b3c4d` ([`secret_name`]): a later Tenant named `acme` has
//! another UID, hence another Secret, and never reads the earlier one's backups. It is
//!
//! - labelled `app.kubernetes.io/managed-by=landlord` and `landlord.dev/tenant=acme`
//!   (for people and selectors),
//! - annotated with the Tenant's UID (`landlord.dev/tenant-uid`, which decides whose it
//!   is, see [`crate::isolation::ownership`]), the public recipient
//!   ([`RECIPIENT_ANNOTATION`]) and the key id ([`KEY_ID_ANNOTATION`]), so that the
//!   backup path reads the metadata only ([`KeyProvider::recipient`] is a metadata-only
//!   GET),
//! - of type [`SECRET_TYPE`], `immutable`, its identity under [`IDENTITY_KEY`] as an age
//!   identity file (what `age -d -i key.txt` reads),
//! - without owner reference: it is created at onboarding, destroyed only by erasure, and
//!   kept by `deletionPolicy: Retain`; the garbage collector must never take it.
//!
//! Created with a plain `create`, never an apply: when two callers race, the API server
//! lets exactly one create it and the other gets a 409, reads the one that exists and
//! uses it if it records this Tenant's UID. An existing Secret is never overwritten, and
//! one that records another UID (or none) is refused ([`KeyError::Conflict`]). Every call
//! GETs the Secret again: nothing is cached.

use std::collections::BTreeMap;

use age::secrecy::ExposeSecret;
use age::x25519::Identity;
use async_trait::async_trait;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use zeroize::{Zeroize, Zeroizing};

use super::{
    Destroyed, KeyError, KeyId, KeyProvider, Recipient, TenantIdentity, TenantKey, TenantRef,
};
use crate::isolation::labels::managed_labels;
use crate::isolation::ownership::{Claim, TENANT_UID_ANNOTATION, claim, recorded_uid};

/// Prefix of the key Secrets' names.
pub const NAME_PREFIX: &str = "landlord-key-";
/// How many characters of the Tenant's UID the Secret's name carries.
pub const UID_CHARS: usize = 8;
/// The key of the Secret's data holding the identity file.
pub const IDENTITY_KEY: &str = "key.txt";
/// Annotation holding the public recipient (`age1...`).
pub const RECIPIENT_ANNOTATION: &str = "landlord.dev/age-recipient";
/// Annotation holding the key id ([`KeyId`]).
pub const KEY_ID_ANNOTATION: &str = "landlord.dev/key-id";
/// The `type` of key Secrets.
pub const SECRET_TYPE: &str = "landlord.dev/age-identity";
/// How often `ensure` and `destroy` look again when the Secret changes under them.
const ATTEMPTS: usize = 3;

/// The name of the Secret holding `tenant`'s key: `landlord-key-<name>-<first 8
/// characters of the UID>`.
pub fn secret_name(tenant: &TenantRef) -> String {
    let uid: String = tenant
        .uid()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(UID_CHARS)
        .collect::<String>()
        .to_ascii_lowercase();
    format!("{NAME_PREFIX}{}-{uid}", tenant.name())
}

/// The key Secret for `tenant` holding `identity` (pure).
pub fn key_secret(namespace: &str, tenant: &TenantRef, identity: &Identity) -> Secret {
    let recipient = identity.to_public();
    let annotations = BTreeMap::from([
        (TENANT_UID_ANNOTATION.to_owned(), tenant.uid().to_owned()),
        (RECIPIENT_ANNOTATION.to_owned(), recipient.to_string()),
        (
            KEY_ID_ANNOTATION.to_owned(),
            KeyId::of(&recipient).to_string(),
        ),
    ]);
    let file = identity_file(tenant, identity);
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(tenant)),
            namespace: Some(namespace.to_owned()),
            labels: Some(managed_labels(tenant.name())),
            annotations: Some(annotations),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.to_owned()),
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            IDENTITY_KEY.to_owned(),
            ByteString(file.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

/// The identity as an age identity file, as `age-keygen` writes one.
fn identity_file(tenant: &TenantRef, identity: &Identity) -> Zeroizing<String> {
    let secret = identity.to_string();
    Zeroizing::new(format!(
        "# Landlord key of Tenant {tenant}\n# public key: {}\n{}\n",
        identity.to_public(),
        secret.expose_secret()
    ))
}

/// The one identity in an age identity file (comments and blank lines allowed). The
/// bytes are zeroed.
fn parse_identity_file(bytes: Zeroizing<Vec<u8>>) -> Result<Identity, &'static str> {
    let text = std::str::from_utf8(&bytes).map_err(|_| "the identity file is not UTF-8")?;
    let mut keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = keys.next().ok_or("the identity file holds no identity")?;
    if keys.next().is_some() {
        return Err("the identity file holds more than one identity");
    }
    line.parse::<Identity>()
        .map_err(|_| "the identity file does not hold an age X25519 identity")
}

/// Zeroes the data of a Secret read or written (best effort: the HTTP client's buffers
/// are not reachable).
fn wipe(secret: &mut Secret) {
    for value in secret.data.iter_mut().flat_map(|d| d.values_mut()) {
        value.0.zeroize();
    }
    for value in secret.string_data.iter_mut().flat_map(|d| d.values_mut()) {
        value.zeroize();
    }
}

/// Whose the Secret is: refuses anything that does not record `tenant`'s UID.
fn check_owner(meta: &ObjectMeta, tenant: &TenantRef, location: &str) -> Result<(), KeyError> {
    match claim(tenant.uid(), None, recorded_uid(meta.annotations.as_ref())) {
        Claim::Ours => Ok(()),
        Claim::Retained { uid } | Claim::Adopt { from: uid } => Err(KeyError::Conflict {
            tenant: tenant.name().to_owned(),
            uid: tenant.uid().to_owned(),
            location: location.to_owned(),
            recorded: Some(uid),
        }),
        Claim::Foreign => Err(KeyError::Conflict {
            tenant: tenant.name().to_owned(),
            uid: tenant.uid().to_owned(),
            location: location.to_owned(),
            recorded: None,
        }),
    }
}

/// The public key recorded in a key Secret's metadata, after checking that it is
/// `tenant`'s, is not being deleted, and that its key id is its recipient's (pure).
pub fn public_key(
    meta: &ObjectMeta,
    tenant: &TenantRef,
    location: &str,
) -> Result<TenantKey, KeyError> {
    check_owner(meta, tenant, location)?;
    if meta.deletion_timestamp.is_some() {
        return Err(KeyError::BeingDeleted {
            location: location.to_owned(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        });
    }
    let invalid = |detail: &str| KeyError::Invalid {
        tenant: tenant.name().to_owned(),
        location: location.to_owned(),
        detail: detail.to_owned(),
    };
    let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key));
    let recipient: Recipient = annotation(RECIPIENT_ANNOTATION)
        .ok_or_else(|| invalid(&format!("the annotation {RECIPIENT_ANNOTATION} is missing")))?
        .parse()
        .map_err(|_| {
            invalid(&format!(
                "the annotation {RECIPIENT_ANNOTATION} is not an age X25519 recipient"
            ))
        })?;
    let key_id = KeyId::of(&recipient);
    if annotation(KEY_ID_ANNOTATION).map(String::as_str) != Some(key_id.as_str()) {
        return Err(invalid(&format!(
            "the annotation {KEY_ID_ANNOTATION} is not {key_id}, the key id of its recipient"
        )));
    }
    Ok(TenantKey {
        key_id,
        recipient,
        location: location.to_owned(),
        created: false,
    })
}

/// The identity in a key Secret whose metadata gave `key`, checked against its
/// recipient (pure). The Secret's data is zeroed.
fn identity_of(
    mut secret: Secret,
    key: &TenantKey,
    tenant: &TenantRef,
) -> Result<TenantIdentity, KeyError> {
    let bytes = Zeroizing::new(
        secret
            .data
            .as_mut()
            .and_then(|d| d.remove(IDENTITY_KEY))
            .map(|b| b.0)
            .unwrap_or_default(),
    );
    wipe(&mut secret);
    let invalid = |detail: &str| KeyError::Invalid {
        tenant: tenant.name().to_owned(),
        location: key.location.clone(),
        detail: detail.to_owned(),
    };
    if bytes.is_empty() {
        return Err(invalid(&format!("it has no {IDENTITY_KEY}")));
    }
    let identity = TenantIdentity::new(parse_identity_file(bytes).map_err(invalid)?);
    if identity.recipient() != key.recipient {
        return Err(invalid(&format!(
            "its identity does not belong to the recipient in {RECIPIENT_ANNOTATION}"
        )));
    }
    Ok(identity)
}

/// Tenant keys in Secrets of the operator's namespace.
#[derive(Clone)]
pub struct KubernetesKeyProvider {
    secrets: Api<Secret>,
    namespace: String,
}

impl KubernetesKeyProvider {
    /// Keys in Secrets of `namespace` (the operator's own), read and written with
    /// `client`.
    pub fn new(client: Client, namespace: &str) -> KubernetesKeyProvider {
        KubernetesKeyProvider {
            secrets: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
        }
    }

    /// A full GET of the Secret (identity included).
    async fn get(&self, name: &str, location: &str) -> Result<Option<Secret>, KeyError> {
        self.secrets
            .get_opt(name)
            .await
            .map_err(|e| KeyError::from_kube(&e, "get", location, &[]))
    }

    /// A metadata-only GET of the Secret: the API server sends no data.
    async fn get_metadata(
        &self,
        name: &str,
        location: &str,
    ) -> Result<Option<ObjectMeta>, KeyError> {
        self.secrets
            .get_metadata_opt(name)
            .await
            .map(|m| m.map(|m| m.metadata))
            .map_err(|e| KeyError::from_kube(&e, "get", location, &[]))
    }

    /// Checks an existing Secret completely: owner, metadata, and that its identity is
    /// that of its recipient.
    fn check_existing(
        &self,
        secret: Secret,
        tenant: &TenantRef,
        location: &str,
    ) -> Result<TenantKey, KeyError> {
        let key = public_key(&secret.metadata, tenant, location)?;
        identity_of(secret, &key, tenant)?;
        Ok(key)
    }
}

#[async_trait]
impl KeyProvider for KubernetesKeyProvider {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn location(&self, tenant: &TenantRef) -> String {
        format!("Secret {}/{}", self.namespace, secret_name(tenant))
    }

    async fn ensure(&self, tenant: &TenantRef) -> Result<TenantKey, KeyError> {
        let name = secret_name(tenant);
        let location = self.location(tenant);
        for _ in 0..ATTEMPTS {
            if let Some(secret) = self.get(&name, &location).await? {
                return self.check_existing(secret, tenant, &location);
            }
            let identity = Identity::generate();
            let mut secret = key_secret(&self.namespace, tenant, &identity);
            let encoded = Zeroizing::new(
                secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(IDENTITY_KEY))
                    .map(|b| {
                        use base64::Engine as _;
                        base64::engine::general_purpose::STANDARD.encode(&b.0)
                    })
                    .unwrap_or_default(),
            );
            let plain = identity.to_string();
            let created = self.secrets.create(&PostParams::default(), &secret).await;
            wipe(&mut secret);
            match created {
                Ok(mut stored) => {
                    wipe(&mut stored);
                    let key = public_key(&stored.metadata, tenant, &location)?;
                    if key.recipient != identity.to_public() {
                        return Err(KeyError::Invalid {
                            tenant: tenant.name().to_owned(),
                            location,
                            detail: "the API server stored another recipient than the one sent"
                                .to_owned(),
                        });
                    }
                    return Ok(TenantKey {
                        created: true,
                        ..key
                    });
                }
                // Someone else created it first: use theirs (next attempt).
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => {
                    return Err(KeyError::from_kube(
                        &e,
                        "create",
                        &location,
                        &[plain.expose_secret(), encoded.as_str()],
                    ));
                }
            }
        }
        Err(KeyError::Api {
            verb: "create",
            location,
            code: Some(409),
            detail: format!("it was reported to exist {ATTEMPTS} times but could not be read"),
        })
    }

    async fn recipient(&self, tenant: &TenantRef) -> Result<Option<TenantKey>, KeyError> {
        let location = self.location(tenant);
        match self.get_metadata(&secret_name(tenant), &location).await? {
            None => Ok(None),
            Some(meta) => public_key(&meta, tenant, &location).map(Some),
        }
    }

    async fn identity(&self, tenant: &TenantRef) -> Result<TenantIdentity, KeyError> {
        let location = self.location(tenant);
        let secret = self
            .get(&secret_name(tenant), &location)
            .await?
            .ok_or_else(|| KeyError::Missing {
                tenant: tenant.name().to_owned(),
                location: location.clone(),
            })?;
        let key = match public_key(&secret.metadata, tenant, &location) {
            Ok(key) => key,
            Err(err) => {
                let mut secret = secret;
                wipe(&mut secret);
                return Err(err);
            }
        };
        identity_of(secret, &key, tenant)
    }

    async fn destroy(&self, tenant: &TenantRef) -> Result<Destroyed, KeyError> {
        let name = secret_name(tenant);
        let location = self.location(tenant);
        let mut deleted = false;
        for _ in 0..ATTEMPTS {
            let Some(meta) = self.get_metadata(&name, &location).await? else {
                return Ok(if deleted {
                    Destroyed::Deleted
                } else {
                    Destroyed::AlreadyAbsent
                });
            };
            check_owner(&meta, tenant, &location)?;
            if meta.deletion_timestamp.is_some() {
                return Ok(Destroyed::Pending {
                    finalizers: meta.finalizers.unwrap_or_default(),
                });
            }
            // Delete exactly the Secret whose UID annotation was just checked.
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: meta.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match self.secrets.delete(&name, &params).await {
                Ok(answer) => {
                    if let Some(mut secret) = answer.left() {
                        wipe(&mut secret);
                    }
                    deleted = true;
                }
                // Gone already, or replaced since the check: look again.
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
                Err(e) => return Err(KeyError::from_kube(&e, "delete", &location, &[])),
            }
        }
        match self.get_metadata(&name, &location).await? {
            None => Ok(Destroyed::Deleted),
            Some(meta) => {
                check_owner(&meta, tenant, &location)?;
                Ok(Destroyed::Pending {
                    finalizers: meta.finalizers.unwrap_or_default(),
                })
            }
        }
    }

    async fn exists(&self, tenant: &TenantRef) -> Result<bool, KeyError> {
        let location = self.location(tenant);
        match self.get_metadata(&secret_name(tenant), &location).await? {
            None => Ok(false),
            Some(meta) => check_owner(&meta, tenant, &location).map(|()| true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "1a2b3c4d-5e6f-4a0b-8c0d-0e0f10111213";

    fn tenant() -> TenantRef {
        TenantRef::new("acme", UID).expect("valid")
    }

    #[test]
    fn the_name_carries_the_uid_prefix() {
        assert_eq!(secret_name(&tenant()), "landlord-key-acme-1a2b3c4d");
        let later = TenantRef::new("acme", "9f8e7d6c-0000-4000-8000-000000000000").expect("valid");
        assert_eq!(secret_name(&later), "landlord-key-acme-9f8e7d6c");
        let longest = TenantRef::new(&"a".repeat(56), UID).expect("valid");
        assert!(secret_name(&longest).len() <= 253);
    }

    #[test]
    fn the_secret_records_uid_recipient_and_key_id_and_has_no_owner() {
        let identity = Identity::generate();
        let secret = key_secret("landlord", &tenant(), &identity);
        let value = serde_json::to_value(&secret).expect("serializes");
        let recipient = identity.to_public().to_string();
        assert_eq!(value["metadata"]["name"], "landlord-key-acme-1a2b3c4d");
        assert_eq!(value["metadata"]["namespace"], "landlord");
        assert_eq!(
            value["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "landlord"
        );
        assert_eq!(value["metadata"]["labels"]["landlord.dev/tenant"], "acme");
        assert_eq!(
            value["metadata"]["annotations"]["landlord.dev/tenant-uid"],
            UID
        );
        assert_eq!(
            value["metadata"]["annotations"][RECIPIENT_ANNOTATION],
            recipient.as_str()
        );
        assert_eq!(
            value["metadata"]["annotations"][KEY_ID_ANNOTATION],
            KeyId::of(&identity.to_public()).as_str()
        );
        assert!(value["metadata"].get("ownerReferences").is_none());
        assert_eq!(value["type"], SECRET_TYPE);
        assert_eq!(value["immutable"], true);
        // The identity is only in the data, never in the metadata.
        let metadata = value["metadata"].to_string();
        assert!(!metadata.contains("AGE-SECRET-KEY-"), "{metadata}");

        let key = public_key(&secret.metadata, &tenant(), "here").expect("valid metadata");
        assert_eq!(key.recipient, identity.to_public());
        assert!(!key.created);
        let read = identity_of(secret, &key, &tenant()).expect("valid identity");
        assert_eq!(read.recipient(), identity.to_public());
    }

    #[test]
    fn the_identity_file_is_what_age_keygen_writes() {
        let identity = Identity::generate();
        let file = identity_file(&tenant(), &identity);
        let lines: Vec<&str> = file.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], format!("# public key: {}", identity.to_public()));
        assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));
        let parsed = parse_identity_file(Zeroizing::new(file.as_bytes().to_vec())).expect("parses");
        assert_eq!(parsed.to_public(), identity.to_public());
        let two = format!("{}{}", file.as_str(), lines[2]);
        assert!(parse_identity_file(Zeroizing::new(two.into_bytes())).is_err());
        assert!(parse_identity_file(Zeroizing::new(b"# only a comment\n".to_vec())).is_err());
        assert!(parse_identity_file(Zeroizing::new(b"AGE-SECRET-KEY-1XYZ\n".to_vec())).is_err());
    }

    #[test]
    fn metadata_of_another_tenant_or_inconsistent_is_refused() {
        let identity = Identity::generate();
        let secret = key_secret("landlord", &tenant(), &identity);
        let other = TenantRef::new("acme", "9f8e7d6c-0000-4000-8000-000000000000").expect("valid");
        let err = public_key(&secret.metadata, &other, "here").expect_err("another UID");
        assert_eq!(err.category(), "key_conflict");
        assert!(err.to_string().contains(UID), "{err}");

        let mut foreign = secret.metadata.clone();
        foreign
            .annotations
            .as_mut()
            .expect("a")
            .remove(TENANT_UID_ANNOTATION);
        let err = public_key(&foreign, &tenant(), "here").expect_err("no UID");
        assert_eq!(err.category(), "key_conflict");

        let mut wrong_id = secret.metadata.clone();
        wrong_id
            .annotations
            .as_mut()
            .expect("a")
            .insert(KEY_ID_ANNOTATION.into(), "sha256:0000000000000000".into());
        assert_eq!(
            public_key(&wrong_id, &tenant(), "here")
                .expect_err("id")
                .category(),
            "key_invalid"
        );

        let mut no_recipient = secret.metadata.clone();
        no_recipient
            .annotations
            .as_mut()
            .expect("a")
            .remove(RECIPIENT_ANNOTATION);
        assert_eq!(
            public_key(&no_recipient, &tenant(), "here")
                .expect_err("r")
                .category(),
            "key_invalid"
        );

        let mut deleting = secret.metadata.clone();
        deleting.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(
            public_key(&deleting, &tenant(), "here")
                .expect_err("d")
                .category(),
            "key_being_deleted"
        );
    }

    #[test]
    fn an_identity_that_is_not_the_recipients_is_refused() {
        let identity = Identity::generate();
        let mut secret = key_secret("landlord", &tenant(), &identity);
        let key = public_key(&secret.metadata, &tenant(), "here").expect("valid metadata");
        // Someone swaps the identity (the metadata stays).
        let swapped = key_secret("landlord", &tenant(), &Identity::generate());
        secret.data = swapped.data;
        let err = identity_of(secret, &key, &tenant()).expect_err("mismatch");
        assert_eq!(err.category(), "key_invalid");
        assert!(!format!("{err} {err:?}").contains("AGE-SECRET-KEY-"));

        let mut empty = key_secret("landlord", &tenant(), &identity);
        empty.data = None;
        assert_eq!(
            identity_of(empty, &key, &tenant())
                .expect_err("none")
                .category(),
            "key_invalid"
        );
    }
}
