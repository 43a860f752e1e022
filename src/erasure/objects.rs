//! `DeleteBackups`: every object under the tenant's prefix is recorded (key, SHA-256,
//! size) in `status.erasure.objects` before any is deleted, then deleted where Object
//! Lock allows; incomplete uploads are aborted and the tenant's TenantBackups deleted.
//!
//! An object the bucket still holds as Landlord wrote it (the listing shows the entity
//! tag its TenantBackup recorded) is recorded with the SHA-256 recorded then; any other
//! (written again since, or with no TenantBackup) is read once, streaming, to hash it.
//! Deletion goes in batches; an object written under a lock that has not expired, which
//! the store refuses to delete, is recorded as kept until then ([`super::verify`] reads
//! the lock again); any other refusal is asked about alone. A crash between recording
//! and deleting only means recording again: what was recorded stays recorded, and
//! deleting what is gone is a no-op ([`Deletion::Absent`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt, stream};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use sha2::{Digest, Sha256};

use crate::api::Tenant;
use crate::api::{
    BackupStorage, ErasedStorage, ErasureObject, ErasureObjectState, TenantBackup, TenantStatus,
};
use crate::backup::manifest;
use crate::controller::{Context, Error, backup_schedule};
use crate::storage::{Deletion, ObjectInfo, ObjectStore, StorageError};

/// How a manifest's key ends.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";
/// The largest manifest read whole (a Landlord manifest is under 2 KiB).
pub(super) const MANIFEST_LIMIT: usize = 64 * 1024;
/// How many objects one [`ObjectStore::delete_all`] deletes (S3 takes 1,000 per request),
/// and so how many between two status writes.
const DELETE_BATCH: usize = 1000;
/// How many requests to the store at once.
pub const IN_FLIGHT: usize = 32;

/// The BackupStorage of the tenant's backups: its spec's, or the one its backups name.
fn storage_name(tenant: &Tenant, ctx: &Context) -> Option<String> {
    if let Some(policy) = &tenant.spec.backup {
        return Some(policy.storage_ref.clone());
    }
    backup_schedule::backups_of(ctx, tenant)
        .iter()
        .find_map(|b| b.status.as_ref().and_then(|s| s.storage_ref.clone()))
}

fn storage_error(name: &str) -> impl Fn(StorageError) -> Error + '_ {
    move |source| Error::Storage {
        name: name.to_owned(),
        source,
    }
}

/// The usable store of the BackupStorage `name`, or why there is none.
pub fn store(
    ctx: &Context,
    name: &str,
) -> Result<(Arc<BackupStorage>, Arc<dyn ObjectStore>), StorageError> {
    let storage = ctx
        .stores
        .backup_storages
        .get(&ObjectRef::new(name))
        .ok_or_else(|| {
            StorageError::Unreachable(
                "it does not exist; the erasure deletes the tenant's backups once it is back"
                    .to_owned(),
            )
        })?;
    let store = ctx.storages.get(&storage).ok_or_else(|| {
        StorageError::Unreachable(
            "it is not usable now (see its Available condition); the erasure goes on once it is"
                .to_owned(),
        )
    })?;
    Ok((storage, store))
}

/// The tenant's storage as the receipt names it.
pub fn erased_storage(tenant: &Tenant, name: &str, store: &dyn ObjectStore) -> ErasedStorage {
    ErasedStorage {
        name: name.to_owned(),
        location: store.location(),
        prefix: manifest::tenant_prefix(&tenant.name_any(), &tenant.uid().unwrap_or_default()),
    }
}

/// An object as read: its first bytes (up to a limit), its SHA-256 and its size.
pub(super) type Read = (Vec<u8>, String, u64);

pub(super) async fn read_all(
    store: &dyn ObjectStore,
    key: &str,
    limit: Option<usize>,
) -> Result<Option<Read>, StorageError> {
    let mut stream = match store.get(key).await {
        Ok(stream) => stream,
        Err(StorageError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hasher = Sha256::new();
    let mut kept = Vec::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.try_next().await.map_err(|source| StorageError::Io {
        what: format!("reading {key}"),
        source,
    })? {
        hasher.update(&chunk);
        size += chunk.len() as u64;
        if let Some(limit) = limit
            && kept.len() < limit
        {
            kept.extend_from_slice(&chunk[..chunk.len().min(limit - kept.len())]);
        }
    }
    Ok(Some((
        kept,
        crate::backup::pipeline::hex(&hasher.finalize()),
        size,
    )))
}

/// What Landlord recorded in a TenantBackup's status when it wrote an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct WrittenObject {
    pub sha256: String,
    /// The store's entity tag of the object as written.
    pub etag: String,
    /// The Object Lock it was written under.
    pub retain_until: Option<jiff::Timestamp>,
}

/// The objects the tenant's TenantBackups (of its UID, in the cache) say Landlord wrote
/// to the storage `storage`, by key: only those whose entity tag was recorded.
pub(super) fn written_objects(
    ctx: &Context,
    tenant: &Tenant,
    storage: &str,
) -> HashMap<String, WrittenObject> {
    let mut written = HashMap::new();
    for backup in backup_schedule::backups_of(ctx, tenant) {
        let Some(status) = &backup.status else {
            continue;
        };
        if status.storage_ref.as_deref() != Some(storage) {
            continue;
        }
        let retain_until = status.retain_until.as_ref().map(|t| t.0);
        let objects = [
            (&status.object_key, &status.sha256, &status.etag),
            (
                &status.manifest_key,
                &status.manifest_sha256,
                &status.manifest_etag,
            ),
        ];
        for (key, sha256, etag) in objects {
            if let (Some(key), Some(sha256), Some(etag)) = (key, sha256, etag) {
                written.insert(
                    key.clone(),
                    WrittenObject {
                        sha256: sha256.clone(),
                        etag: etag.clone(),
                        retain_until,
                    },
                );
            }
        }
    }
    written
}

/// Records every object under the tenant's prefix that is not recorded yet.
///
/// An object whose listed entity tag is the one its TenantBackup recorded at writing is
/// the object Landlord wrote (S3 gives an object written again a new tag), and is
/// recorded with the SHA-256 recorded then, without a read. Any other is read once,
/// streaming, and hashed.
async fn record(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    written: &HashMap<String, WrittenObject>,
    objects: &mut Vec<ErasureObject>,
) -> Result<usize, StorageError> {
    let listed = store.list(prefix).await?;
    let known: HashSet<String> = objects.iter().map(|o| o.key.clone()).collect();
    let mut added = 0;
    let mut unknown = Vec::new();
    for info in listed {
        if known.contains(&info.key) {
            continue;
        }
        match written.get(&info.key) {
            Some(w) if info.etag.as_deref() == Some(w.etag.as_str()) => {
                objects.push(recorded(&info.key, w.sha256.clone(), info.size));
                added += 1;
            }
            _ => unknown.push(info),
        }
    }
    let hashed: Vec<(ObjectInfo, Option<Read>)> = stream::iter(unknown)
        .map(|info| {
            let store = store.clone();
            async move {
                let read = read_all(store.as_ref(), &info.key, Some(0)).await?;
                Ok::<_, StorageError>((info, read))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    for (info, read) in hashed {
        // Gone since the listing: nothing to record.
        if let Some((_, sha256, size)) = read {
            objects.push(recorded(&info.key, sha256, size));
            added += 1;
        }
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(added)
}

fn recorded(key: &str, sha256: String, size: u64) -> ErasureObject {
    ErasureObject {
        key: key.to_owned(),
        sha256,
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        state: ErasureObjectState::Recorded,
        locked_until: None,
        header: None,
    }
}

/// Records, then deletes, every backup object of the tenant; aborts its incomplete
/// uploads; deletes its TenantBackups.
pub async fn delete_backups(
    tenant: &Tenant,
    ctx: &Context,
    status: &mut TenantStatus,
) -> Result<String, Error> {
    let Some(name) = storage_name(tenant, ctx) else {
        release_tenant_backups(tenant, ctx, &[]).await?;
        return Ok("the tenant has no backup storage: no backup objects".to_owned());
    };
    let failed = storage_error(&name);
    let (_, store) = store(ctx, &name).map_err(&failed)?;
    let erased = erased_storage(tenant, &name, store.as_ref());
    let prefix = erased.prefix.clone();
    let mut progress = status.erasure.clone().unwrap_or_default();
    progress.storage = Some(erased);
    let written = written_objects(ctx, tenant, &name);
    // Until a listing finds nothing new: an upload that completed while this step ran
    // is recorded and deleted too.
    let mut aborted = 0;
    loop {
        let added = record(&store, &prefix, &written, &mut progress.objects)
            .await
            .map_err(&failed)?;
        status.erasure = Some(progress.clone());
        if added > 0 {
            super::workflow::write(tenant, ctx, status).await?;
        }
        super::crash::point(
            crate::api::ErasureStep::DeleteBackups,
            super::crash::Point::Inside,
        );
        let pending: Vec<usize> = (0..progress.objects.len())
            .filter(|i| progress.objects[*i].state == ErasureObjectState::Recorded)
            .collect();
        for chunk in pending.chunks(DELETE_BATCH) {
            let keys: Vec<String> = chunk
                .iter()
                .map(|i| progress.objects[*i].key.clone())
                .collect();
            let deleted = store.delete_all(&prefix, &keys).await.map_err(&failed)?;
            let deleted = explain_refusals(&store, &written, &keys, deleted)
                .await
                .map_err(&failed)?;
            for (index, deletion) in chunk.iter().zip(deleted) {
                let object = &mut progress.objects[*index];
                match deletion {
                    Deletion::Deleted | Deletion::Absent => {
                        object.state = ErasureObjectState::Deleted;
                    }
                    Deletion::Locked { until } => {
                        object.state = ErasureObjectState::Locked;
                        object.locked_until =
                            until.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
                    }
                    Deletion::Refused => {
                        return Err(failed(StorageError::Denied(format!(
                            "deleting {} was refused",
                            object.key
                        ))));
                    }
                }
            }
            status.erasure = Some(progress.clone());
            super::workflow::write(tenant, ctx, status).await?;
        }
        for upload in store.pending_uploads(&prefix).await.map_err(&failed)? {
            store.abort_upload(&upload).await.map_err(&failed)?;
            aborted += 1;
        }
        status.erasure = Some(progress.clone());
        let remaining = store.list(&prefix).await.map_err(&failed)?;
        let recorded: HashSet<&str> = progress.objects.iter().map(|o| o.key.as_str()).collect();
        if remaining.iter().all(|i| recorded.contains(i.key.as_str())) {
            break;
        }
    }
    release_tenant_backups(tenant, ctx, &progress.objects).await?;
    let deleted = progress
        .objects
        .iter()
        .filter(|o| o.state == ErasureObjectState::Deleted)
        .count();
    let locked = progress
        .objects
        .iter()
        .filter(|o| o.state == ErasureObjectState::Locked)
        .count();
    Ok(format!(
        "{} objects under {}{prefix} recorded: {deleted} deleted, {locked} kept by Object Lock; {aborted} incomplete uploads aborted; the tenant's TenantBackups deleted",
        progress.objects.len(),
        store.location().trim_end_matches('/').to_owned() + "/",
    ))
}

/// What each refusal of [`ObjectStore::delete_all`] was: an object written under a lock
/// that has not expired (its TenantBackup says until when; [`super::verify`] reads the
/// lock again) is kept by it; for any other the store is asked for its lock (one request),
/// and a refusal that no lock explains (a missing permission) fails the step.
async fn explain_refusals(
    store: &Arc<dyn ObjectStore>,
    written: &HashMap<String, WrittenObject>,
    keys: &[String],
    deletions: Vec<Deletion>,
) -> Result<Vec<Deletion>, StorageError> {
    let now = jiff::Timestamp::now();
    // Owned, so that the requests' futures borrow nothing.
    let asked: Vec<(String, Deletion, Option<jiff::Timestamp>)> = keys
        .iter()
        .zip(deletions)
        .map(|(key, deletion)| {
            let lock_ahead = written
                .get(key)
                .and_then(|w| w.retain_until)
                .filter(|until| *until > now);
            (key.clone(), deletion, lock_ahead)
        })
        .collect();
    stream::iter(asked)
        .map(|(key, deletion, lock_ahead)| {
            let store = store.clone();
            async move {
                match (deletion, lock_ahead) {
                    (Deletion::Refused, Some(until)) => Ok(Deletion::Locked { until: Some(until) }),
                    (Deletion::Refused, None) => match store.lock(&key).await? {
                        Some(lock) => Ok(Deletion::Locked { until: lock.until }),
                        None => Err(StorageError::Denied(format!(
                            "deleting {key} was refused, and no Object Lock keeps it: does the operator's storage identity have s3:DeleteObject and s3:DeleteObjectVersion?"
                        ))),
                    },
                    (other, _) => Ok(other),
                }
            }
        })
        .buffered(IN_FLIGHT)
        .try_collect()
        .await
}

/// Lets the tenant's TenantBackups go. One whose objects this erasure deleted (and
/// recorded) goes at once: its finalizer, which would delete them again, is removed
/// first. Any other is deleted, and its finalizer deletes what is left of its objects;
/// one whose objects are locked stays until the lock expires.
async fn release_tenant_backups(
    tenant: &Tenant,
    ctx: &Context,
    objects: &[ErasureObject],
) -> Result<(), Error> {
    let api: Api<TenantBackup> = Api::all(ctx.client.clone());
    let deleted: HashSet<&str> = objects
        .iter()
        .filter(|o| o.state == ErasureObjectState::Deleted)
        .map(|o| o.key.as_str())
        .collect();
    let backups: Vec<(Arc<TenantBackup>, bool)> = backup_schedule::backups_of(ctx, tenant)
        .into_iter()
        .map(|backup| {
            let status = backup.status.clone().unwrap_or_default();
            let erased = [&status.object_key, &status.manifest_key]
                .into_iter()
                .flatten()
                .all(|key| deleted.contains(key.as_str()));
            (backup, erased)
        })
        .collect();
    stream::iter(backups)
        .map(|(backup, erased)| {
            let api = api.clone();
            async move {
                let name = backup.name_any();
                if erased {
                    crate::controller::finalizers::remove_from(
                        &api,
                        backup.as_ref(),
                        crate::controller::tenant_backup::FINALIZER,
                    )
                    .await
                    .map_err(|source| Error::Object {
                        kind: "TenantBackup",
                        name: name.clone(),
                        source,
                    })?;
                }
                if backup.metadata.deletion_timestamp.is_none() {
                    crate::controller::apply::delete(&api, &name).await?;
                }
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}
