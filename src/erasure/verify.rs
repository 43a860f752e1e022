//! `Verify`: every fact the receipt will claim is derived again from the world, after the
//! key was destroyed, never taken from earlier status:
//!
//! - each recorded namespace answers 404 to a GET;
//! - the server's catalog has no database and no role of the tenant's names;
//! - the key provider has no key for the tenant (a GET of the key Secret: 404);
//! - every object left under the tenant's prefix is one recorded as kept by Object Lock,
//!   and the read below reports a lock in force (the receipt names that lock's date, as
//!   the store reports it now); its age header (a ranged GET of [`FIRST_READ`] bytes,
//!   more only if the header is longer) has exactly one X25519 stanza and nothing else
//!   but grease, and its manifest (a ranged GET of its first 64 KiB) names the destroyed
//!   key;
//! - the canary sealed to the key at onboarding opens with no age identity found in any
//!   Secret of the operator's namespace (where every key the operator can read lives).
//!
//! Only checks that apply are made (no database check for a tenant without one), and a
//! check that fails fails the step: the evidence is kept in `status.erasure.evidence` for
//! the user to read, and the step is tried again; no receipt is issued until every check
//! passes.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt, stream};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::objects::{self, MANIFEST_SUFFIX};
use crate::api::{ErasureObjectState, Evidence, EvidenceCheck, ObjectHeader, Tenant, TenantStatus};
use crate::backup::manifest::Manifest;
use crate::controller::{Context, Error};
use crate::database::TenantIdentifiers;
use crate::keys::header::{self, HEADER_READ_BYTES, HeaderError};
use crate::keys::{TenantRef, crypto};
use crate::storage::{Lock, ObjectStore, StorageError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The first ranged read of an object's header: a Landlord backup's header (one X25519
/// stanza and one grease stanza) is under 400 bytes.
pub const FIRST_READ: u64 = 512;

fn evidence(check: EvidenceCheck, passed: bool, observation: String) -> Evidence {
    Evidence {
        check,
        passed,
        observation,
    }
}

/// Runs every check that applies, records the evidence, and fails unless all passed.
pub async fn verify(
    tenant: &Tenant,
    ctx: &Context,
    status: &mut TenantStatus,
) -> Result<String, Error> {
    let mut progress = status.erasure.clone().unwrap_or_default();
    let mut found = vec![namespaces(ctx, &progress.namespaces).await?];
    if let Some(database) = &progress.database {
        found.extend(database_checks(ctx, &database.server, &tenant.name_any()).await?);
    }
    found.push(key(tenant, ctx).await?);
    if let Some(storage) = progress.storage.clone() {
        let (_, store) = objects::store(ctx, &storage.name).map_err(|source| Error::Storage {
            name: storage.name.clone(),
            source,
        })?;
        let key_id = status.key_id.clone().unwrap_or_default();
        if let Some(check) = remaining_objects(
            &store,
            &storage.name,
            &storage.prefix,
            &key_id,
            &mut progress.objects,
        )
        .await?
        {
            found.push(check);
        }
    }
    // A tenant without a recorded key never had a canary (nor a backup) sealed to one.
    if status.key_id.is_some() {
        found.push(canary(ctx, status.canary.as_deref()).await?);
    }
    let failed: Vec<String> = found
        .iter()
        .filter(|e| !e.passed)
        .map(|e| format!("{}: {}", e.check, e.observation))
        .collect();
    progress.evidence = found;
    status.erasure = Some(progress);
    if !failed.is_empty() {
        return Err(Error::Erasure(format!(
            "verification failed, no receipt is issued until every check passes: {}",
            failed.join("; ")
        )));
    }
    let count = status.erasure.as_ref().map_or(0, |p| p.evidence.len());
    Ok(format!("{count} checks passed"))
}

async fn namespaces(ctx: &Context, names: &[String]) -> Result<Evidence, Error> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let mut present = Vec::new();
    for name in names {
        let live = api.get_opt(name).await.map_err(|source| Error::Object {
            kind: "Namespace",
            name: name.clone(),
            source,
        })?;
        if live.is_some() {
            present.push(name.clone());
        }
    }
    Ok(if present.is_empty() {
        evidence(
            EvidenceCheck::NamespacesNotFound,
            true,
            format!(
                "GET of each namespace answered 404 NotFound: {}",
                names.join(", ")
            ),
        )
    } else {
        evidence(
            EvidenceCheck::NamespacesNotFound,
            false,
            format!("still present: {}", present.join(", ")),
        )
    })
}

async fn database_checks(
    ctx: &Context,
    server: &str,
    tenant: &str,
) -> Result<Vec<Evidence>, Error> {
    let Some(connection) = ctx.databases.get(server) else {
        return Err(Error::DatabaseNotReady(format!(
            "the DatabaseServer {server} cannot be used now (see its Reachable condition); the erasure checks its catalog once it can"
        )));
    };
    let ids = TenantIdentifiers::for_tenant(tenant);
    let dropped = connection
        .admin
        .verify_dropped(&ids)
        .await
        .map_err(|source| Error::Database {
            tenant: tenant.to_owned(),
            source,
        })?;
    let mut out = Vec::new();
    for check in &dropped.checks {
        let kind = match check.catalog.as_str() {
            "pg_database" => EvidenceCheck::DatabaseAbsent,
            "pg_roles" => EvidenceCheck::RoleAbsent,
            _ => continue,
        };
        let passed = check.found.is_empty();
        let observation = format!(
            "{} on {} (PostgreSQL {}) at {} with $1 = {}: {}",
            check.query,
            dropped.server,
            dropped.server_version,
            dropped.checked_at,
            check.name,
            if passed {
                "no row".to_owned()
            } else {
                format!("found {}", check.found.join(", "))
            }
        );
        out.push(evidence(kind, passed, observation));
    }
    Ok(out)
}

async fn key(tenant: &Tenant, ctx: &Context) -> Result<Evidence, Error> {
    let failed = |source| Error::Key {
        tenant: tenant.name_any(),
        source,
    };
    let tenant_ref = TenantRef::of(tenant).map_err(failed)?;
    let location = ctx.keys.location(&tenant_ref);
    let exists = match ctx.keys.exists(&tenant_ref).await {
        Ok(exists) => exists,
        // What holds the key's name records another Tenant's UID (or none): it is not this
        // tenant's key, which is not there. (The canary check below tries its contents.)
        Err(crate::keys::KeyError::Conflict { recorded, .. }) => {
            return Ok(evidence(
                EvidenceCheck::KeyNotFound,
                true,
                format!(
                    "the {} key provider has no key for the tenant: {location} is not its key ({})",
                    ctx.keys.name(),
                    recorded.map_or_else(
                        || "it records no Tenant UID".to_owned(),
                        |uid| format!("it records the UID {uid}")
                    )
                ),
            ));
        }
        Err(e) => return Err(failed(e)),
    };
    Ok(if exists {
        evidence(
            EvidenceCheck::KeyNotFound,
            false,
            format!("the {} key provider still has {location}", ctx.keys.name()),
        )
    } else {
        evidence(
            EvidenceCheck::KeyNotFound,
            true,
            format!(
                "the {} key provider has no key for the tenant: {location} answered 404 NotFound to a GET",
                ctx.keys.name()
            ),
        )
    })
}

/// The manifest key of a backup object (`….dump.zst.age` or `….dump.age`).
fn manifest_of(key: &str) -> Option<String> {
    let base = key
        .strip_suffix(".dump.zst.age")
        .or_else(|| key.strip_suffix(".dump.age"))?;
    Some(format!("{base}{MANIFEST_SUFFIX}"))
}

/// A header as read: parsed (or why not), and how many bytes were read.
type HeaderRead = (Result<header::Header, HeaderError>, u64);

/// Reads an object's age header: [`FIRST_READ`] bytes, then up to
/// [`HEADER_READ_BYTES`] if the header is longer; with the lock the store reports.
async fn read_header(
    store: &dyn ObjectStore,
    key: &str,
) -> Result<(HeaderRead, Option<Lock>), StorageError> {
    let first = store.get_range(key, 0..FIRST_READ).await?;
    let mut read = first.bytes.len() as u64;
    let parsed = header::parse_header(&first.bytes);
    if matches!(parsed, Err(HeaderError::Truncated(_))) && read == FIRST_READ {
        let rest = store
            .get_range(key, FIRST_READ..HEADER_READ_BYTES as u64)
            .await?;
        read += rest.bytes.len() as u64;
        let mut whole = first.bytes.to_vec();
        whole.extend_from_slice(&rest.bytes);
        return Ok(((header::parse_header(&whole), read), first.lock));
    }
    Ok(((parsed, read), first.lock))
}

/// The manifest at `key` (its first [`objects::MANIFEST_LIMIT`] bytes, if they parse as
/// one), with the lock the store reports.
async fn read_manifest(
    store: &dyn ObjectStore,
    key: &str,
) -> Result<(Option<Manifest>, Option<Lock>), StorageError> {
    let read = store
        .get_range(key, 0..objects::MANIFEST_LIMIT as u64)
        .await?;
    Ok((serde_json::from_slice(&read.bytes).ok(), read.lock))
}

async fn remaining_objects(
    store: &Arc<dyn ObjectStore>,
    storage: &str,
    prefix: &str,
    key_id: &str,
    recorded: &mut [crate::api::ErasureObject],
) -> Result<Option<Evidence>, Error> {
    let failed = |source| Error::Storage {
        name: storage.to_owned(),
        source,
    };
    let listed = store.list(prefix).await.map_err(failed)?;
    if listed.is_empty() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let mut sealed = 0;
    let mut manifests = 0;
    let mut bytes_read = 0u64;
    // Each remaining manifest is read once (for itself and for its backup), and each
    // backup's header once, a few requests at a time.
    let manifest_keys: Vec<String> = listed
        .iter()
        .filter(|i| i.key.ends_with(MANIFEST_SUFFIX))
        .map(|i| i.key.clone())
        .collect();
    let read: HashMap<String, (Option<Manifest>, Option<Lock>)> = stream::iter(manifest_keys)
        .map(|key| {
            let store = store.clone();
            async move {
                let manifest = read_manifest(store.as_ref(), &key).await?;
                Ok::<_, StorageError>((key, manifest))
            }
        })
        .buffer_unordered(objects::IN_FLIGHT)
        .try_collect()
        .await
        .map_err(failed)?;
    let backup_keys: Vec<String> = listed
        .iter()
        .filter(|i| manifest_of(&i.key).is_some())
        .map(|i| i.key.clone())
        .collect();
    let mut headers: HashMap<String, (HeaderRead, Option<Lock>)> = stream::iter(backup_keys)
        .map(|key| {
            let store = store.clone();
            async move {
                let header = read_header(store.as_ref(), &key).await?;
                Ok::<_, StorageError>((key, header))
            }
        })
        .buffer_unordered(objects::IN_FLIGHT)
        .try_collect()
        .await
        .map_err(failed)?;
    let index: HashMap<String, usize> = recorded
        .iter()
        .enumerate()
        .map(|(i, o)| (o.key.clone(), i))
        .collect();
    for info in &listed {
        let Some(object) = index.get(&info.key).map(|i| &mut recorded[*i]) else {
            problems.push(format!("{} was never recorded", info.key));
            continue;
        };
        if object.state != ErasureObjectState::Locked {
            problems.push(format!(
                "{} is still there although recorded {:?}",
                info.key, object.state
            ));
            continue;
        }
        // The lock as the store reports it now is what the receipt says keeps it.
        let lock = read
            .get(&info.key)
            .map(|(_, lock)| *lock)
            .or_else(|| headers.get(&info.key).map(|(_, lock)| *lock))
            .flatten();
        let Some(lock) = lock else {
            problems.push(format!(
                "{} is still there, and no Object Lock keeps it (its deletion was refused for another reason: the storage's permissions?)",
                info.key
            ));
            continue;
        };
        object.locked_until = lock.until.map(Time);
        if info.key.ends_with(MANIFEST_SUFFIX) {
            match read.get(&info.key).and_then(|(m, _)| m.clone()) {
                Some(m) if m.encryption.key_id == key_id => manifests += 1,
                Some(m) => problems.push(format!(
                    "the manifest {} names the key {}, not the destroyed {key_id}",
                    info.key, m.encryption.key_id
                )),
                None => problems.push(format!("{} is not a backup manifest", info.key)),
            }
            continue;
        }
        let Some(manifest_key) = manifest_of(&info.key) else {
            problems.push(format!("{} is not a backup object", info.key));
            continue;
        };
        let Some(((parsed, header_read), _)) = headers.remove(&info.key) else {
            problems.push(format!("{} was not read", info.key));
            continue;
        };
        bytes_read += header_read;
        let named = read
            .get(&manifest_key)
            .and_then(|(m, _)| m.as_ref())
            .map(|m| m.encryption.key_id.clone())
            .unwrap_or_default();
        match parsed {
            Ok(header) => {
                let x25519 = header.x25519_count();
                let other = header
                    .stanzas
                    .iter()
                    .filter(|s| !s.is_grease() && s.kind() != header::X25519_TAG)
                    .count();
                object.header = Some(ObjectHeader {
                    x25519_stanzas: u32::try_from(x25519).unwrap_or(u32::MAX),
                    other_stanzas: u32::try_from(other).unwrap_or(u32::MAX),
                    key_id: named.clone(),
                    bytes_read: i64::try_from(header_read).unwrap_or(i64::MAX),
                });
                if header.single_x25519().is_none() {
                    problems.push(format!(
                        "{} has {x25519} X25519 and {other} other recipient stanzas",
                        info.key
                    ));
                } else if named != key_id {
                    problems.push(format!(
                        "{}: its manifest {}",
                        info.key,
                        if named.is_empty() {
                            "is missing".to_owned()
                        } else {
                            format!("names the key {named}, not the destroyed {key_id}")
                        }
                    ));
                } else {
                    sealed += 1;
                }
            }
            Err(e) => problems.push(format!("{} has no readable age header: {e}", info.key)),
        }
    }
    Ok(Some(if problems.is_empty() {
        evidence(
            EvidenceCheck::RemainingObjectsSealedToDestroyedKey,
            true,
            format!(
                "{} objects remain under {prefix}, each kept by Object Lock: {sealed} backups whose age header (ranged GETs, {bytes_read} bytes in all) has exactly one X25519 stanza and whose manifest names the destroyed key {key_id}, and {manifests} manifests naming it",
                listed.len()
            ),
        )
    } else {
        evidence(
            EvidenceCheck::RemainingObjectsSealedToDestroyedKey,
            false,
            problems.join("; "),
        )
    }))
}

/// Every age identity in the values of `secrets`: each line that parses as one.
fn identities(secrets: &[Secret]) -> Vec<age::x25519::Identity> {
    secrets
        .iter()
        .flat_map(|s| s.data.iter().flat_map(|d| d.values()))
        .filter_map(|v| std::str::from_utf8(&v.0).ok())
        .flat_map(str::lines)
        .map(str::trim)
        .filter(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .filter_map(|l| age::x25519::Identity::from_str(l).ok())
        .collect()
}

async fn canary(ctx: &Context, sealed: Option<&str>) -> Result<Evidence, Error> {
    let namespace = &ctx.config.isolation.operator_namespace;
    let Some(sealed) = sealed else {
        return Ok(evidence(
            EvidenceCheck::CanaryUndecryptable,
            false,
            "the Tenant records no canary, so this cannot be checked".to_owned(),
        ));
    };
    let Ok(ciphertext) = base64::engine::general_purpose::STANDARD.decode(sealed) else {
        return Ok(evidence(
            EvidenceCheck::CanaryUndecryptable,
            false,
            "the recorded canary is not base64".to_owned(),
        ));
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secrets = api
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::Object {
            kind: "Secret",
            name: format!("{namespace}/*"),
            source,
        })?
        .items;
    let found = identities(&secrets);
    let names: Vec<String> = secrets.iter().map(ResourceExt::name_any).collect();
    drop(secrets);
    match crypto::canary_opens(&ciphertext, found.iter()) {
        Ok(false) => Ok(evidence(
            EvidenceCheck::CanaryUndecryptable,
            true,
            format!(
                "tried the {} age identities found in the {} Secrets of namespace {namespace} (all the keys Landlord can read): none opens the canary",
                found.len(),
                names.len()
            ),
        )),
        Ok(true) => Ok(evidence(
            EvidenceCheck::CanaryUndecryptable,
            false,
            format!("an identity in a Secret of namespace {namespace} still opens the canary"),
        )),
        Err(e) => Ok(evidence(
            EvidenceCheck::CanaryUndecryptable,
            false,
            format!("the canary is not a readable age file: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_object_names_its_manifest() {
        assert_eq!(
            manifest_of("acme/u/backups/b.dump.zst.age").as_deref(),
            Some("acme/u/backups/b.manifest.json")
        );
        assert_eq!(
            manifest_of("acme/u/backups/b.dump.age").as_deref(),
            Some("acme/u/backups/b.manifest.json")
        );
        assert_eq!(manifest_of("acme/u/erasure-receipt.json"), None);
    }

    #[test]
    fn identities_are_found_in_any_secret_value() {
        let identity = age::x25519::Identity::generate();
        use age::secrecy::ExposeSecret;
        let text = format!("# created: now\n{}\n", identity.to_string().expose_secret());
        let secret = Secret {
            data: Some(
                [
                    (
                        "key.txt".to_owned(),
                        k8s_openapi::ByteString(text.into_bytes()),
                    ),
                    (
                        "other".to_owned(),
                        k8s_openapi::ByteString(b"password".to_vec()),
                    ),
                ]
                .into(),
            ),
            ..Secret::default()
        };
        let found = identities(&[secret]);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_public().to_string(),
            identity.to_public().to_string()
        );
    }
}
