//! The operator's receipt signing key, and where its public keys are published.
//!
//! - The key: the Secret [`SECRET_NAME`] in the operator's namespace, its data
//!   [`SEED_KEY`] the 32-byte Ed25519 seed (RFC 8032's private key) drawn from the
//!   operating system's random source, labelled `app.kubernetes.io/managed-by=landlord`,
//!   `immutable`. Created at the operator's first start with a plain `create`: when two
//!   replicas race, the API server lets one create it, the other gets a 409 and reads
//!   the winner, so there is never more than one key. It is read with a GET at start-up
//!   (no watch, no cache of Secrets) and never logged; a malformed one is an error that
//!   says what is wrong with it, never silently replaced.
//! - The public keys: the ConfigMap [`PUBLIC_KEYS_NAME`] in the same namespace, one data
//!   entry per key id ([`super::signing::key_id`]) holding the base64 public key, and
//!   [`CURRENT_KEY`] naming the key in use. Entries are only ever added: an earlier key is
//!   never removed, nor an entry overwritten with another key.
//!
//! # Rotation
//!
//! Delete the Secret and restart the operator (`kubectl -n <ns> delete secret
//! landlord-receipt-signing-key && kubectl -n <ns> rollout restart deploy/landlord`): the
//! first replica to start creates a new key, adds its public key to the ConfigMap and
//! makes it `current`; receipts signed before still verify against their key, which stays
//! in the ConfigMap. Restart every replica: one still running keeps signing with the
//! earlier (still published) key until it restarts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tracing::{error, info, warn};
use zeroize::{Zeroize, Zeroizing};

use super::signing::{ReceiptSigner, key_id, parse_public_key};
use crate::isolation::labels::{MANAGED_BY, MANAGED_BY_LABEL};

/// The Secret holding the signing key.
pub const SECRET_NAME: &str = "landlord-receipt-signing-key";
/// Its data key: the 32-byte seed.
pub const SEED_KEY: &str = "ed25519.seed";
/// The `type` of that Secret.
pub const SECRET_TYPE: &str = "landlord.dev/ed25519-seed";
/// The ConfigMap publishing every receipt public key.
pub const PUBLIC_KEYS_NAME: &str = "landlord-receipt-public-keys";
/// Its entry naming the key in use.
pub const CURRENT_KEY: &str = "current";
/// How often a write is tried again when another writer changed the object in between.
const ATTEMPTS: usize = 5;

/// Why the signing key is not usable. Messages never carry key material.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read the Secret {namespace}/{SECRET_NAME}")]
    ReadSecret {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot create the Secret {namespace}/{SECRET_NAME}")]
    CreateSecret {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the Secret {namespace}/{SECRET_NAME} is malformed: {detail}. Landlord does not replace it: restore it, or delete it to rotate the receipt signing key (earlier receipts keep verifying with the public keys in the ConfigMap {namespace}/{PUBLIC_KEYS_NAME})"
    )]
    Malformed { namespace: String, detail: String },
    #[error("the Secret {namespace}/{SECRET_NAME} kept changing while it was read")]
    Unsettled { namespace: String },
    #[error("cannot draw a key from the operating system's random source: {0}")]
    Random(getrandom::Error),
    #[error("cannot publish the public key in the ConfigMap {namespace}/{PUBLIC_KEYS_NAME}")]
    Publish {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the ConfigMap {namespace}/{PUBLIC_KEYS_NAME} maps the key id {key_id} to another public key; Landlord never overwrites a published key: remove or fix that entry"
    )]
    PublishedConflict { namespace: String, key_id: String },
    #[error("the ConfigMap {namespace}/{PUBLIC_KEYS_NAME} kept changing while it was updated")]
    PublishUnsettled { namespace: String },
}

impl SigningKeyError {
    /// Whether only a person can fix it (trying again does not help until they do).
    pub fn needs_attention(&self) -> bool {
        matches!(
            self,
            SigningKeyError::Malformed { .. } | SigningKeyError::PublishedConflict { .. }
        )
    }
}

fn managed() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())])
}

/// The Secret holding `seed` (pure).
fn key_secret(namespace: &str, seed: &[u8; 32]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(managed()),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.to_owned()),
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            SEED_KEY.to_owned(),
            ByteString(seed.to_vec()),
        )])),
        ..Default::default()
    }
}

/// Zeroes a Secret's data (best effort: the HTTP client's buffers are out of reach).
fn wipe(secret: &mut Secret) {
    for value in secret.data.iter_mut().flat_map(|d| d.values_mut()) {
        value.0.zeroize();
    }
    for value in secret.string_data.iter_mut().flat_map(|d| d.values_mut()) {
        value.zeroize();
    }
}

/// The signer of the key in `secret`, whose data is zeroed (pure).
pub fn signer_from_secret(
    namespace: &str,
    mut secret: Secret,
) -> Result<ReceiptSigner, SigningKeyError> {
    let malformed = |detail: String| SigningKeyError::Malformed {
        namespace: namespace.to_owned(),
        detail,
    };
    let seed = secret
        .data
        .as_mut()
        .and_then(|d| d.remove(SEED_KEY))
        .map(|b| Zeroizing::new(b.0));
    wipe(&mut secret);
    let seed = seed.ok_or_else(|| malformed(format!("it has no data {SEED_KEY}")))?;
    let seed: Zeroizing<[u8; 32]> = match <[u8; 32]>::try_from(seed.as_slice()) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(_) => {
            return Err(malformed(format!(
                "its data {SEED_KEY} holds {} bytes, not the 32 of an Ed25519 seed",
                seed.len()
            )));
        }
    };
    Ok(ReceiptSigner::from_seed(&seed))
}

/// The signing key of the operator in `namespace`: the one in its Secret, or a new one
/// when there is none (then created); its public key published in the ConfigMap.
pub async fn ensure(client: &Client, namespace: &str) -> Result<ReceiptSigner, SigningKeyError> {
    let signer = ensure_secret(client, namespace).await?;
    publish(client, namespace, &signer).await?;
    Ok(signer)
}

async fn ensure_secret(client: &Client, namespace: &str) -> Result<ReceiptSigner, SigningKeyError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read_error = |source| SigningKeyError::ReadSecret {
        namespace: namespace.to_owned(),
        source,
    };
    for _ in 0..ATTEMPTS {
        if let Some(secret) = api.get_opt(SECRET_NAME).await.map_err(read_error)? {
            return signer_from_secret(namespace, secret);
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(SigningKeyError::Random)?;
        let mut secret = key_secret(namespace, &seed);
        let created = api.create(&PostParams::default(), &secret).await;
        wipe(&mut secret);
        match created {
            Ok(mut created) => {
                wipe(&mut created);
                let signer = ReceiptSigner::from_seed(&seed);
                info!(
                    namespace,
                    secret = SECRET_NAME,
                    key_id = %signer.key_id(),
                    "created the receipt signing key"
                );
                return Ok(signer);
            }
            // Another replica created it first: read theirs.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(source) => {
                return Err(SigningKeyError::CreateSecret {
                    namespace: namespace.to_owned(),
                    source,
                });
            }
        }
    }
    Err(SigningKeyError::Unsettled {
        namespace: namespace.to_owned(),
    })
}

/// The ConfigMap data with `signer`'s key added and made current, or `None` when it is
/// already so (pure).
fn with_key(
    namespace: &str,
    data: &BTreeMap<String, String>,
    signer: &ReceiptSigner,
) -> Result<Option<BTreeMap<String, String>>, SigningKeyError> {
    let (id, public) = (signer.key_id(), signer.public_key());
    match data.get(&id) {
        Some(published) if published != &public => {
            return Err(SigningKeyError::PublishedConflict {
                namespace: namespace.to_owned(),
                key_id: id,
            });
        }
        Some(_) if data.get(CURRENT_KEY) == Some(&id) => return Ok(None),
        _ => {}
    }
    let mut data = data.clone();
    data.insert(id.clone(), public);
    data.insert(CURRENT_KEY.to_owned(), id);
    Ok(Some(data))
}

async fn publish(
    client: &Client,
    namespace: &str,
    signer: &ReceiptSigner,
) -> Result<(), SigningKeyError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let error = |source| SigningKeyError::Publish {
        namespace: namespace.to_owned(),
        source,
    };
    for _ in 0..ATTEMPTS {
        let written = match api.get_opt(PUBLIC_KEYS_NAME).await.map_err(error)? {
            None => {
                let data = with_key(namespace, &BTreeMap::new(), signer)?.unwrap_or_default();
                let map = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(PUBLIC_KEYS_NAME.to_owned()),
                        namespace: Some(namespace.to_owned()),
                        labels: Some(managed()),
                        ..Default::default()
                    },
                    data: Some(data),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &map).await
            }
            Some(mut map) => {
                let Some(data) =
                    with_key(namespace, &map.data.clone().unwrap_or_default(), signer)?
                else {
                    return Ok(());
                };
                map.data = Some(data);
                // A replace carries the resourceVersion read: a concurrent change makes it
                // a 409, and the entries it added are read again, never lost.
                api.replace(PUBLIC_KEYS_NAME, &PostParams::default(), &map)
                    .await
            }
        };
        match written {
            Ok(_) => {
                info!(
                    namespace,
                    config_map = PUBLIC_KEYS_NAME,
                    key_id = %signer.key_id(),
                    "published the receipt public key"
                );
                return Ok(());
            }
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(source) => return Err(error(source)),
        }
    }
    Err(SigningKeyError::PublishUnsettled {
        namespace: namespace.to_owned(),
    })
}

/// [`ensure`], tried again with back-off (1 s doubling to 1 min) until it succeeds or
/// `stop` turns true (then `None`). Each failure is logged with its cause (no key
/// material); one only a person can fix at error level.
pub async fn ensure_until_stopped(
    client: &Client,
    namespace: &str,
    stop: &mut watch::Receiver<bool>,
) -> Option<Arc<ReceiptSigner>> {
    let mut delay = Duration::from_secs(1);
    loop {
        let attempt = tokio::select! {
            result = ensure(client, namespace) => result,
            _ = stop.wait_for(|s| *s) => return None,
        };
        match attempt {
            Ok(signer) => {
                info!(key_id = %signer.key_id(), public_key = %signer.public_key(), "receipt signing key ready");
                return Some(Arc::new(signer));
            }
            Err(e) => {
                let message = crate::controller::describe(&e);
                if e.needs_attention() {
                    error!(error = %message, retry_in = ?delay, "the receipt signing key is not usable; the controllers wait for it");
                } else {
                    warn!(error = %message, retry_in = ?delay, "cannot load the receipt signing key yet; the controllers wait for it");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => return None,
        }
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}

/// The public keys published in the ConfigMap (pure view of its data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKeys {
    /// The key id of the key in use, when the ConfigMap names one.
    pub current: Option<String>,
    /// Every published key: key id → base64 public key.
    pub keys: BTreeMap<String, String>,
}

impl PublishedKeys {
    /// The published keys in a ConfigMap's data.
    pub fn from_data(data: &BTreeMap<String, String>) -> PublishedKeys {
        PublishedKeys {
            current: data.get(CURRENT_KEY).cloned(),
            keys: data
                .iter()
                .filter(|(k, _)| k.as_str() != CURRENT_KEY)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The current key's id and base64 public key.
    pub fn current_key(&self) -> Option<(&str, &str)> {
        let id = self.current.as_deref()?;
        self.keys.get(id).map(|k| (id, k.as_str()))
    }

    /// Why the entry `id` → `public_key` cannot be trusted, if it cannot: not a valid
    /// key, or published under another key's id.
    pub fn entry_problem(id: &str, public_key: &str) -> Option<String> {
        match parse_public_key(public_key) {
            Err(e) => Some(format!("not an Ed25519 public key ({e})")),
            Ok(key) if key_id(&key) != id => {
                Some(format!("its public key's id is {}, not {id}", key_id(&key)))
            }
            Ok(_) => None,
        }
    }
}

/// Reads the published keys from the ConfigMap in `namespace`.
pub async fn published_keys(
    client: &Client,
    namespace: &str,
) -> Result<Option<PublishedKeys>, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .get_opt(PUBLIC_KEYS_NAME)
        .await?
        .map(|map| PublishedKeys::from_data(&map.data.unwrap_or_default())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_with(data: Option<Vec<u8>>) -> Secret {
        Secret {
            data: data.map(|d| BTreeMap::from([(SEED_KEY.to_owned(), ByteString(d))])),
            ..Default::default()
        }
    }

    #[test]
    fn the_secret_holds_the_seed_and_gives_back_the_same_key() {
        let seed = [9u8; 32];
        let secret = key_secret("landlord", &seed);
        assert_eq!(secret.metadata.name.as_deref(), Some(SECRET_NAME));
        assert_eq!(
            secret
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(MANAGED_BY_LABEL))
                .map(String::as_str),
            Some("landlord")
        );
        assert_eq!(secret.immutable, Some(true));
        let signer = signer_from_secret("landlord", secret).expect("well formed");
        assert_eq!(
            signer.public_key(),
            ReceiptSigner::from_seed(&seed).public_key()
        );
    }

    #[test]
    fn a_malformed_secret_is_an_error_without_key_material() {
        for (data, says) in [
            (Some(vec![9u8; 31]), "holds 31 bytes, not the 32"),
            (Some(vec![9u8; 33]), "holds 33 bytes"),
            (Some(vec![]), "holds 0 bytes"),
            (None, "has no data ed25519.seed"),
        ] {
            let error = signer_from_secret("landlord", secret_with(data)).expect_err("malformed");
            let message = error.to_string();
            assert!(message.contains(says), "{message}");
            assert!(
                message.contains("landlord/landlord-receipt-signing-key"),
                "{message}"
            );
            assert!(message.contains("does not replace it"), "{message}");
            assert!(
                !message.contains("9, 9") && !message.contains("CQkJ"),
                "{message}"
            );
            assert!(error.needs_attention());
        }
    }

    #[test]
    fn publishing_adds_the_key_and_keeps_every_earlier_one() {
        let first = ReceiptSigner::from_seed(&[1; 32]);
        let second = ReceiptSigner::from_seed(&[2; 32]);
        let data = with_key("ns", &BTreeMap::new(), &first)
            .expect("ok")
            .expect("changed");
        assert_eq!(data.len(), 2);
        assert_eq!(data.get(CURRENT_KEY), Some(&first.key_id()));
        assert_eq!(data.get(&first.key_id()), Some(&first.public_key()));
        // Already published and current: nothing to write.
        assert_eq!(with_key("ns", &data, &first).expect("ok"), None);
        // Rotation: the new key is added and current, the first stays.
        let rotated = with_key("ns", &data, &second)
            .expect("ok")
            .expect("changed");
        assert_eq!(rotated.get(CURRENT_KEY), Some(&second.key_id()));
        assert_eq!(rotated.get(&first.key_id()), Some(&first.public_key()));
        assert_eq!(rotated.get(&second.key_id()), Some(&second.public_key()));
        // Published but not current (a replica of the earlier key restarted): current again.
        let mut not_current = rotated.clone();
        not_current.insert(CURRENT_KEY.to_owned(), first.key_id());
        let again = with_key("ns", &not_current, &second)
            .expect("ok")
            .expect("changed");
        assert_eq!(again, rotated);
        // An entry of this id with another key is never overwritten.
        let mut forged = data.clone();
        forged.insert(second.key_id(), first.public_key());
        let error = with_key("ns", &forged, &second).expect_err("conflict");
        assert!(error.needs_attention());
        let view = PublishedKeys::from_data(&rotated);
        assert_eq!(
            view.current_key(),
            Some((second.key_id().as_str(), second.public_key().as_str()))
        );
        assert_eq!(view.keys.len(), 2);
        assert_eq!(
            PublishedKeys::entry_problem(&first.key_id(), &first.public_key()),
            None
        );
        assert!(PublishedKeys::entry_problem(&second.key_id(), &first.public_key()).is_some());
        assert!(PublishedKeys::entry_problem(&first.key_id(), "junk").is_some());
    }
}
