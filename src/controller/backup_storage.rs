//! The BackupStorage controller: reads each storage's credentials (with a GET, only from
//! the operator's own namespace, never cached), builds its [`ObjectStore`], checks that it
//! can be used, keeps it in the [`Registry`] that backups and receipts are written through,
//! and reports the outcome as the condition `Available`, with the reason and what to fix.
//!
//! A usable storage is looked at again every resync (a bucket deleted, a key revoked); an
//! unusable one sooner, backing off by reason. Landlord may not watch Secrets, so a Secret
//! created or corrected later is noticed at the next of those looks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use sha2::{Digest, Sha256};

use super::{Context, Error};
use crate::api::{
    BackupStorage, BackupStorageSpec, BackupStorageStatus, Condition, ConditionStatus,
    SecretKeyRef, set_condition,
};
use crate::storage::filesystem::FilesystemStore;
use crate::storage::s3::{S3Settings, S3Store, StaticCredentials};
use crate::storage::{Multipart, ObjectStore, StorageError};

/// Condition types of a BackupStorage.
pub mod conditions {
    /// Landlord can use the storage.
    pub const AVAILABLE: &str = "Available";
}

/// The name of this controller in metrics and back-off.
const CONTROLLER: &str = "backupstorage";

struct Entry {
    /// The object and spec generation this store was built and checked for.
    uid: Option<String>,
    generation: Option<i64>,
    fingerprint: [u8; 32],
    store: Arc<dyn ObjectStore>,
    usable: bool,
}

/// What the registry knows of a storage.
pub enum Lookup {
    /// The last look found it usable.
    Usable(Arc<dyn ObjectStore>),
    /// The last look failed (see the storage's `Available` condition).
    Unusable,
    /// Not looked at since this replica started leading, or not since it was re-created or
    /// its spec changed.
    NotYetChecked,
}

/// The store of every BackupStorage, by name, replaced when its settings or credentials
/// change. A store is handed out only for the very object (UID) and spec generation it
/// was checked for: a storage deleted and re-created under the same name, or edited and
/// not yet looked at again, has none.
#[derive(Default)]
pub struct Registry {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Registry {
    /// What is known of `storage`.
    pub fn lookup(&self, storage: &BackupStorage) -> Lookup {
        match self.lock().get(&storage.name_any()) {
            Some(entry)
                if entry.uid != storage.metadata.uid
                    || entry.generation != storage.metadata.generation =>
            {
                Lookup::NotYetChecked
            }
            Some(entry) if entry.usable => Lookup::Usable(entry.store.clone()),
            Some(_) => Lookup::Unusable,
            None => Lookup::NotYetChecked,
        }
    }

    /// The store of `storage`, if the last look at it found it usable.
    pub fn get(&self, storage: &BackupStorage) -> Option<Arc<dyn ObjectStore>> {
        match self.lookup(storage) {
            Lookup::Usable(store) => Some(store),
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store for `resolved`, the current one when nothing changed. It is handed out
    /// only once [`Registry::checked`] says it is usable.
    fn ensure(
        &self,
        storage: &BackupStorage,
        resolved: Resolved,
    ) -> Result<Arc<dyn ObjectStore>, StorageError> {
        let name = storage.name_any();
        let fingerprint = resolved.fingerprint();
        let mut entries = self.lock();
        let store: Arc<dyn ObjectStore> = match entries.get(&name) {
            Some(entry) if entry.fingerprint == fingerprint => entry.store.clone(),
            _ => match resolved {
                Resolved::S3(settings) => Arc::new(S3Store::new(settings)?),
                Resolved::Filesystem(path) => Arc::new(FilesystemStore::new(path)),
            },
        };
        entries.insert(
            name,
            Entry {
                uid: storage.metadata.uid.clone(),
                generation: storage.metadata.generation,
                fingerprint,
                store: store.clone(),
                usable: false,
            },
        );
        Ok(store)
    }

    /// Records the outcome of a look at the storage called `name`.
    fn checked(&self, name: &str, usable: bool) {
        if let Some(entry) = self.lock().get_mut(name) {
            entry.usable = usable;
        }
    }

    fn forget(&self, name: &str) {
        self.lock().remove(name);
    }
}

/// A storage's settings with its Secrets read.
enum Resolved {
    S3(S3Settings),
    Filesystem(String),
}

impl Resolved {
    /// A digest of everything the store is built from, so that a rotated key replaces the
    /// store without keeping the secret around for comparison.
    fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        let mut part = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        };
        match self {
            Resolved::S3(s) => {
                part(b"s3");
                part(s.bucket.as_bytes());
                part(s.prefix.as_bytes());
                part(s.region.as_bytes());
                part(s.endpoint.as_deref().unwrap_or_default().as_bytes());
                part(&[u8::from(s.endpoint.is_some()), u8::from(s.force_path_style)]);
                part(s.credentials.access_key_id.as_bytes());
                part(s.credentials.secret_access_key.as_bytes());
                part(
                    s.credentials
                        .session_token
                        .as_deref()
                        .unwrap_or_default()
                        .as_bytes(),
                );
                part(s.ca_pem.as_deref().unwrap_or_default());
                part(&s.multipart.part_size.to_be_bytes());
                part(&s.multipart.parts_in_flight.to_be_bytes());
            }
            Resolved::Filesystem(path) => {
                part(b"filesystem");
                part(path.as_bytes());
            }
        }
        hash.finalize().into()
    }
}

/// Refuses a Secret outside the operator's own namespace, before any request is made.
fn check_namespace(
    name: &str,
    namespace: &str,
    what: &str,
    operator_namespace: &str,
) -> Result<(), StorageError> {
    if namespace == operator_namespace {
        return Ok(());
    }
    Err(StorageError::SecretForbidden(format!(
        "the {what} is named in the Secret {namespace}/{name}, outside Landlord's own namespace {operator_namespace}: Landlord reads the Secrets that configure it only from its own namespace, and did not read this one; move the Secret to {operator_namespace}"
    )))
}

/// The data of the Secret `namespace/name`, read now (never from a cache).
async fn secret_data(
    access: &Access<'_>,
    name: &str,
    namespace: &str,
    what: &str,
) -> Result<std::collections::BTreeMap<String, Vec<u8>>, StorageError> {
    check_namespace(name, namespace, what, access.operator_namespace)?;
    let api: Api<Secret> = Api::namespaced(access.client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(secret)) => Ok(secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()),
        Ok(None) => Err(StorageError::SecretMissing(format!(
            "the Secret {namespace}/{name} holding the {what} does not exist: create it"
        ))),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            Err(StorageError::SecretForbidden(format!(
                "Landlord may not read the Secret {namespace}/{name} holding the {what}: {}",
                status.message
            )))
        }
        Err(e) => Err(StorageError::Unreachable(format!(
            "reading the Secret {namespace}/{name} holding the {what} failed: {e}"
        ))),
    }
}

/// The text under `key` of a Secret's data: present, UTF-8, not empty, without the
/// trailing newline an edited file leaves. The value itself is never part of an error.
fn text(
    data: &mut std::collections::BTreeMap<String, Vec<u8>>,
    key: &str,
    secret: &str,
    what: &str,
) -> Result<String, StorageError> {
    let bytes = data.remove(key).ok_or_else(|| {
        StorageError::SecretMissing(format!(
            "the Secret {secret} has no key {key:?} (the {what}): add it, or name the right key in spec.s3.credentials"
        ))
    })?;
    let value = String::from_utf8(bytes).map_err(|_| {
        StorageError::SecretInvalid(format!(
            "the {what} in the Secret {secret} (key {key:?}) is not UTF-8 text"
        ))
    })?;
    let value = value.trim_end_matches(['\r', '\n']).to_owned();
    if value.is_empty() {
        return Err(StorageError::SecretInvalid(format!(
            "the {what} in the Secret {secret} (key {key:?}) is empty"
        )));
    }
    Ok(value)
}

/// Who reads a storage's Secrets: a client, allowed only the operator's namespace.
struct Access<'a> {
    client: &'a kube::Client,
    operator_namespace: &'a str,
}

/// Opens the store of the BackupStorage `spec` outside the controller (`landlord backup
/// download`), reading its Secrets with `client` from `operator_namespace` only, as the
/// operator does. The store is not checked: the first request says whether it works.
pub async fn open(
    client: &kube::Client,
    operator_namespace: &str,
    spec: &BackupStorageSpec,
) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let access = Access {
        client,
        operator_namespace,
    };
    Ok(match resolve(spec, &access).await? {
        Resolved::S3(settings) => Arc::new(S3Store::new(settings)?),
        Resolved::Filesystem(path) => Arc::new(FilesystemStore::new(path)),
    })
}

/// The storage's settings, with its Secrets read. Every Secret reference is checked before
/// any is read.
async fn resolve(spec: &BackupStorageSpec, access: &Access<'_>) -> Result<Resolved, StorageError> {
    if let Some(filesystem) = &spec.filesystem {
        return Ok(Resolved::Filesystem(filesystem.path.clone()));
    }
    let Some(s3) = &spec.s3 else {
        return Err(StorageError::Invalid(
            "neither spec.s3 nor spec.filesystem is set".to_owned(),
        ));
    };
    let operator_namespace = access.operator_namespace;
    if let Some(credentials) = &s3.credentials {
        let secret = &credentials.secret;
        check_namespace(
            &secret.name,
            &secret.namespace,
            "S3 access key",
            operator_namespace,
        )?;
    }
    if let Some(SecretKeyRef {
        name, namespace, ..
    }) = &s3.ca_secret
    {
        check_namespace(name, namespace, "CA certificate", operator_namespace)?;
    }
    let credentials = match &s3.credentials {
        Some(reference) => {
            let secret = &reference.secret;
            let shown = format!("{}/{}", secret.namespace, secret.name);
            let mut data =
                secret_data(access, &secret.name, &secret.namespace, "S3 access key").await?;
            StaticCredentials {
                access_key_id: text(
                    &mut data,
                    &reference.access_key_id_key,
                    &shown,
                    "access key id",
                )?,
                secret_access_key: text(
                    &mut data,
                    &reference.secret_access_key_key,
                    &shown,
                    "secret access key",
                )?,
                session_token: None,
            }
        }
        None => StaticCredentials::from_env().ok_or_else(|| {
            StorageError::CredentialsMissing(
                "spec.s3.credentials is not set and the operator has no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in its environment: name a Secret with the access key in spec.s3.credentials".to_owned(),
            )
        })?,
    };
    let ca_pem = match &s3.ca_secret {
        Some(reference) => {
            let mut data = secret_data(
                access,
                &reference.name,
                &reference.namespace,
                "CA certificate",
            )
            .await?;
            let shown = format!("{}/{}", reference.namespace, reference.name);
            let pem = data.remove(&reference.key).ok_or_else(|| {
                StorageError::SecretMissing(format!(
                    "the Secret {shown} has no key {:?} (the CA certificate)",
                    reference.key
                ))
            })?;
            Some(crate::database::certificates_only(&pem).map_err(|e| {
                StorageError::CaInvalid(format!(
                    "the CA certificate in the Secret {shown} (key {:?}) {e}",
                    reference.key
                ))
            })?)
        }
        None => None,
    };
    Ok(Resolved::S3(S3Settings {
        bucket: s3.bucket.clone(),
        prefix: s3.prefix.clone(),
        region: s3.region.clone(),
        endpoint: s3.endpoint.clone(),
        force_path_style: s3.force_path_style,
        credentials,
        ca_pem,
        multipart: Multipart::default(),
    }))
}

/// Builds (or reuses) the storage's store and checks it.
async fn probe(storage: &BackupStorage, ctx: &Context) -> Result<String, StorageError> {
    let access = Access {
        client: &ctx.client,
        operator_namespace: &ctx.config.isolation.operator_namespace,
    };
    let resolved = resolve(&storage.spec, &access).await?;
    let store = ctx.storages.ensure(storage, resolved)?;
    let lock = storage.spec.object_lock.as_ref();
    store.check(lock.is_some()).await?;
    let location = store.location();
    Ok(match lock {
        Some(lock) => format!(
            "{location} can be used; objects are locked ({:?}) for {} days",
            lock.mode, lock.retention_days
        ),
        None => format!("{location} can be used"),
    })
}

/// The Tenants backed up to the storage `name`.
fn users(ctx: &Context, name: &str) -> Vec<String> {
    ctx.stores
        .tenants
        .state()
        .iter()
        .filter(|t| {
            t.spec
                .backup
                .as_ref()
                .is_some_and(|b| b.storage_ref == name)
        })
        .map(|t| t.name_any())
        .collect()
}

/// Entry point for the controller runtime.
pub async fn reconcile(storage: Arc<BackupStorage>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = storage.name_any();
    super::reconcile_counted(&ctx, CONTROLLER, &name, async {
        if storage.metadata.deletion_timestamp.is_some() {
            ctx.storages.forget(&name);
            return Ok(Action::await_change());
        }
        observe(&storage, &ctx).await
    })
    .await
}

/// Backs off by error category, and says so in the log.
pub fn error_policy(storage: Arc<BackupStorage>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retries
        .requeue(CONTROLLER, "BackupStorage", &storage.name_any(), error)
}

/// The `Available` condition for the outcome of a look.
fn available(outcome: &Result<String, StorageError>, generation: Option<i64>) -> Condition {
    match outcome {
        Ok(message) => Condition::new(
            conditions::AVAILABLE,
            ConditionStatus::True,
            "Checked",
            message,
            generation,
        ),
        Err(e) => Condition::new(
            conditions::AVAILABLE,
            ConditionStatus::False,
            e.reason(),
            e.to_string(),
            generation,
        ),
    }
}

async fn observe(storage: &BackupStorage, ctx: &Context) -> Result<Action, Error> {
    let name = storage.name_any();
    let was_usable = matches!(ctx.storages.lookup(storage), Lookup::Usable(_));
    let outcome = probe(storage, ctx).await;
    ctx.storages.checked(&name, outcome.is_ok());
    if outcome.is_ok() && !was_usable {
        // The Tenants waiting for it (an erasure deleting their backups) go on now, also
        // when its status does not change (a first look after a start or a spec change
        // whose `Unavailable` was never written).
        for tenant in users(ctx, &name) {
            let _ = ctx.tenant_triggers.unbounded_send(ObjectRef::new(&tenant));
        }
    }
    let generation = storage.metadata.generation;
    let mut status = storage.status.clone().unwrap_or_default();
    set_condition(&mut status.conditions, available(&outcome, generation));
    status.observed_generation = generation;
    finish_status(storage, ctx, status).await?;
    match outcome {
        Ok(_) => Ok(Action::requeue(ctx.config.resync)),
        Err(source) => Err(Error::Storage { name, source }),
    }
}

/// Writes `status` if it changed, with an Event when `Available` changes status or reason.
async fn finish_status(
    storage: &BackupStorage,
    ctx: &Context,
    status: BackupStorageStatus,
) -> Result<(), Error> {
    let old = storage.status.clone().unwrap_or_default();
    let api: Api<BackupStorage> = Api::all(ctx.client.clone());
    super::status::finish(ctx, &api, storage, &old, &status, conditions::AVAILABLE)
        .await
        .map_err(|source| Error::Object {
            kind: "BackupStorage",
            name: storage.name_any(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(secret: &str) -> Resolved {
        Resolved::S3(S3Settings {
            bucket: "backups".into(),
            prefix: String::new(),
            region: "us-east-1".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            force_path_style: true,
            credentials: StaticCredentials {
                access_key_id: "AKID".into(),
                secret_access_key: secret.into(),
                session_token: None,
            },
            ca_pem: None,
            multipart: Multipart::default(),
        })
    }

    #[test]
    fn fingerprint_changes_with_the_secret() {
        assert_eq!(s3("one").fingerprint(), s3("one").fingerprint());
        assert_ne!(s3("one").fingerprint(), s3("two").fingerprint());
        assert_ne!(
            Resolved::Filesystem("/a".into()).fingerprint(),
            Resolved::Filesystem("/b".into()).fingerprint()
        );
    }

    fn storage(uid: &str, generation: i64) -> BackupStorage {
        let mut storage = BackupStorage::new(
            "main",
            serde_json::from_value(serde_json::json!({"filesystem": {"path": "/backups"}}))
                .expect("spec"),
        );
        storage.metadata.uid = Some(uid.to_owned());
        storage.metadata.generation = Some(generation);
        storage
    }

    #[test]
    fn the_registry_reuses_a_store_until_the_settings_change() {
        let registry = Registry::default();
        let main = storage("uid-1", 1);
        assert!(matches!(registry.lookup(&main), Lookup::NotYetChecked));
        let first = registry.ensure(&main, s3("one")).expect("store");
        // Built but not checked yet: not handed out.
        assert!(matches!(registry.lookup(&main), Lookup::Unusable));
        registry.checked("main", true);
        let usable = registry.get(&main).expect("usable");
        assert!(Arc::ptr_eq(&first, &usable));
        let again = registry.ensure(&main, s3("one")).expect("store");
        assert!(Arc::ptr_eq(&first, &again));
        let rotated = registry.ensure(&main, s3("two")).expect("store");
        assert!(!Arc::ptr_eq(&first, &rotated));
        assert!(
            registry.get(&main).is_none(),
            "a new store is checked first"
        );
        registry.forget("main");
        assert!(matches!(registry.lookup(&main), Lookup::NotYetChecked));
    }

    #[test]
    fn a_store_is_only_for_the_object_and_generation_it_was_checked_for() {
        let registry = Registry::default();
        registry
            .ensure(&storage("uid-1", 1), s3("one"))
            .expect("store");
        registry.checked("main", true);
        assert!(registry.get(&storage("uid-1", 1)).is_some());
        // Edited and not looked at since: maybe another bucket.
        assert!(matches!(
            registry.lookup(&storage("uid-1", 2)),
            Lookup::NotYetChecked
        ));
        // Deleted and re-created under the same name.
        assert!(registry.get(&storage("uid-2", 1)).is_none());
    }

    #[test]
    fn secret_values_are_checked_and_never_shown() {
        let mut data = std::collections::BTreeMap::from([
            ("id".to_owned(), b"AKID\n".to_vec()),
            ("empty".to_owned(), b"\n".to_vec()),
            ("binary".to_owned(), vec![0xff, 0xfe]),
        ]);
        assert_eq!(
            text(&mut data, "id", "landlord/s3", "access key id").expect("valid"),
            "AKID"
        );
        let empty = text(&mut data, "empty", "landlord/s3", "secret").expect_err("empty");
        assert_eq!(empty.reason(), "SecretInvalid");
        let binary = text(&mut data, "binary", "landlord/s3", "secret").expect_err("binary");
        assert_eq!(binary.reason(), "SecretInvalid");
        let missing = text(&mut data, "nope", "landlord/s3", "secret").expect_err("missing");
        assert_eq!(missing.reason(), "SecretMissing");
        assert!(missing.to_string().contains("\"nope\""));
    }

    #[test]
    fn another_namespace_is_refused() {
        let e =
            check_namespace("s3", "tenant-acme", "S3 access key", "landlord").expect_err("refused");
        assert_eq!(e.reason(), "SecretForbidden");
        assert!(e.to_string().contains("tenant-acme/s3"));
        assert!(check_namespace("s3", "landlord", "S3 access key", "landlord").is_ok());
    }

    #[test]
    fn the_condition_carries_the_reason() {
        let ok = available(&Ok("s3://b/ can be used".to_owned()), Some(3));
        assert_eq!(ok.status, ConditionStatus::True);
        assert_eq!(ok.observed_generation, Some(3));
        let failed = available(
            &Err(StorageError::BucketMissing("no bucket b".to_owned())),
            Some(3),
        );
        assert_eq!(failed.status, ConditionStatus::False);
        assert_eq!(failed.reason, "BucketMissing");
        assert_eq!(failed.message, "no bucket b");
    }
}
