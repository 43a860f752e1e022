//! `DeleteBackups`: every object under the tenant's prefix is recorded (key, SHA-256,
//! size) in `status.erasure.objects` before any is deleted, then deleted where Object
//! Lock allows; incomplete uploads are aborted and the tenant's TenantBackups deleted.
//!
//! The SHA-256 of a backup is the one its manifest records (checked against the listed
//! size); a manifest's own is computed from its bytes (a few KiB); any other object is
//! read once, streaming, to hash it. A crash between recording and deleting only means
//! recording again: what was recorded stays recorded, and deleting what is gone is a
//! no-op ([`Deletion::Absent`]).

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
use crate::backup::manifest::{self, Manifest};
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
pub const IN_FLIGHT: usize = 16;

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
    Ok(Some((kept, hex(&hasher.finalize()), size)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Records every object under the tenant's prefix that is not recorded yet.
async fn record(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    objects: &mut Vec<ErasureObject>,
) -> Result<usize, StorageError> {
    let listed = store.list(prefix).await?;
    let known = |key: &str, objects: &[ErasureObject]| objects.iter().any(|o| o.key == key);
    let (manifest_infos, other_infos): (Vec<ObjectInfo>, Vec<ObjectInfo>) = listed
        .into_iter()
        .partition(|i| i.key.ends_with(MANIFEST_SUFFIX));
    // Manifests first: they give the SHA-256 of their backups.
    let manifest_reads: Vec<(ObjectInfo, Option<Read>)> = stream::iter(manifest_infos)
        .map(|info| {
            let store = store.clone();
            async move {
                let read = read_all(store.as_ref(), &info.key, Some(MANIFEST_LIMIT)).await?;
                Ok::<_, StorageError>((info, read))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    let mut manifests = Vec::new();
    let mut added = 0;
    for (info, read) in manifest_reads {
        let Some((bytes, sha256, size)) = read else {
            continue;
        };
        if let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) {
            manifests.push(manifest);
        }
        if !known(&info.key, objects) {
            objects.push(recorded(&info.key, sha256, size));
            added += 1;
        }
    }
    let others: Vec<(ObjectInfo, Option<String>)> = other_infos
        .into_iter()
        .filter(|i| !known(&i.key, objects))
        .map(|info| {
            let from_manifest = manifests
                .iter()
                .find(|m| m.object_key == info.key && m.size_bytes == info.size)
                .map(|m| m.sha256.clone());
            (info, from_manifest)
        })
        .collect();
    let hashed: Vec<(ObjectInfo, Option<String>)> = stream::iter(others)
        .map(|(info, from_manifest)| {
            let store = store.clone();
            async move {
                let sha256 = match from_manifest {
                    Some(sha256) => Some(sha256),
                    None => read_all(store.as_ref(), &info.key, None)
                        .await?
                        .map(|(_, sha256, _)| sha256),
                };
                Ok::<_, StorageError>((info, sha256))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    for (info, sha256) in hashed {
        if let Some(sha256) = sha256 {
            objects.push(recorded(&info.key, sha256, info.size));
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
        delete_tenant_backups(tenant, ctx).await?;
        return Ok("the tenant has no backup storage: no backup objects".to_owned());
    };
    let failed = storage_error(&name);
    let (_, store) = store(ctx, &name).map_err(&failed)?;
    let erased = erased_storage(tenant, &name, store.as_ref());
    let prefix = erased.prefix.clone();
    let mut progress = status.erasure.clone().unwrap_or_default();
    progress.storage = Some(erased);
    // Until a listing finds nothing new: an upload that completed while this step ran
    // is recorded and deleted too.
    let mut aborted = 0;
    loop {
        let added = record(&store, &prefix, &mut progress.objects)
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
        let unrecorded = remaining
            .iter()
            .any(|i| !progress.objects.iter().any(|o| o.key == i.key));
        if !unrecorded {
            break;
        }
    }
    delete_tenant_backups(tenant, ctx).await?;
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

/// Deletes the tenant's TenantBackups (their finalizer removes what is left of their
/// objects; one whose objects are locked stays until the lock expires).
async fn delete_tenant_backups(tenant: &Tenant, ctx: &Context) -> Result<(), Error> {
    let api: Api<TenantBackup> = Api::all(ctx.client.clone());
    for backup in backup_schedule::backups_of(ctx, tenant) {
        if backup.metadata.deletion_timestamp.is_none() {
            crate::controller::apply::delete(&api, &backup.name_any()).await?;
        }
    }
    Ok(())
}
