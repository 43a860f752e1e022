//! Restore drills: a Completed backup restored into a scratch database on its tenant's
//! server, checked and dropped, so that a backup is known to restore before anyone needs
//! it.
//!
//! The Tenant's backup step asks for a drill ([`request`], per `spec.backup.verify`) by
//! annotating the newest Completed TenantBackup with [`REQUEST_ANNOTATION`]; the
//! TenantBackup controller answers it with [`run`]: download, size and SHA-256 checked,
//! decryption with the tenant's identity (read for this drill only), `pg_restore` into a
//! scratch database owned by the tenant's role, every table of the dump's table of
//! contents looked for and its rows counted, the scratch database dropped. The result is
//! the TenantBackup's `status.verification` and condition `Verified` (a Warning Event
//! when it fails), the metric `landlord_restore_drills_total{result}`, and the Tenant's
//! `status.lastVerifiedBackup`. A drill never touches the tenant's live database, and at
//! most `--drill-concurrency` (default 1) run at once on one server.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::tenant_backup::{Check, tenant_login};
use super::{Context, Error, tenant_database};
use crate::api::{
    Condition, ConditionStatus, Tenant, TenantBackup, Verification, find_condition, set_condition,
};
use crate::backup::pg_dump::Compression;
use crate::backup::restore::{self, Expected, Mode};
use crate::database::TenantIdentifiers;
use crate::keys::TenantRef;

/// Annotation of a TenantBackup asking for a drill: when it was asked (RFC 3339).
pub const REQUEST_ANNOTATION: &str = "landlord.dev/verify-requested";

/// The condition a drill sets on its TenantBackup.
pub const VERIFIED: &str = "Verified";

/// The drills this replica runs: which backups, and a limit per server.
pub struct Drills {
    per_server: usize,
    servers: Mutex<HashMap<String, Arc<Semaphore>>>,
    running: Mutex<HashSet<String>>,
}

impl Drills {
    /// At most `per_server` drills at once on each server.
    pub fn new(per_server: usize) -> Drills {
        Drills {
            per_server: per_server.max(1),
            servers: Mutex::new(HashMap::new()),
            running: Mutex::new(HashSet::new()),
        }
    }

    fn server(&self, name: &str) -> Arc<Semaphore> {
        self.servers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_server)))
            .clone()
    }

    /// Claims the drill of backup `uid`; false when one runs already.
    fn claim(&self, uid: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uid.to_owned())
    }

    /// Whether a drill of the backup with `uid` runs now on this replica.
    pub fn is_running(&self, uid: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(uid)
    }

    fn release(&self, uid: &str) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(uid);
    }
}

/// The pending request of a Completed backup, if its latest drill does not answer it.
pub fn pending_request(backup: &TenantBackup) -> Option<String> {
    let requested = backup.annotations().get(REQUEST_ANNOTATION)?.clone();
    let answered = backup
        .status
        .as_ref()
        .and_then(|s| s.verification.as_ref())
        .is_some_and(|v| v.requested == requested);
    (!answered).then_some(requested)
}

/// Asks for a drill of `backup`.
pub async fn request(ctx: &Context, backup: &TenantBackup) -> Result<(), Error> {
    let api: Api<TenantBackup> = Api::all(ctx.client.clone());
    let now = jiff::Timestamp::now().to_string();
    let patch = json!({"metadata": {"annotations": {REQUEST_ANNOTATION: now}}});
    api.patch(
        &backup.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|source| Error::Object {
        kind: "TenantBackup",
        name: backup.name_any(),
        source,
    })?;
    info!(backup = %backup.name_any(), "restore drill requested");
    Ok(())
}

/// Starts the drill `requested` of `backup` on a task, unless one runs already.
pub fn start(backup: Arc<TenantBackup>, ctx: Arc<super::Context>, requested: String) {
    let uid = backup.uid().unwrap_or_default();
    if !ctx.drills.claim(&uid) {
        return;
    }
    tokio::spawn(async move {
        let outcome = run(&backup, &ctx, &requested).await;
        ctx.drills.release(&uid);
        if let Err(e) = outcome {
            warn!(backup = %backup.name_any(), error = %e, "recording the restore drill failed; the next look tries again");
        }
    });
}

/// The scratch database of a drill of backup `uid`: a name no tenant database has.
fn scratch_name(uid: &str) -> String {
    let short: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    format!("landlord_drill_{short}")
}

/// What a drill found.
struct Found {
    passed: bool,
    reason: &'static str,
    message: String,
    tables: i32,
    rows: i64,
}

async fn run(backup: &TenantBackup, ctx: &Context, requested: &str) -> Result<(), Error> {
    let found = match drill(backup, ctx).await? {
        Check::Ready(found) => found,
        // Not yet (the database or storage not usable): look at this backup again later.
        Check::Wait { after, .. } => {
            let trigger = ctx.backup_triggers.clone();
            let again = ObjectRef::from_obj(backup);
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = trigger.unbounded_send(again);
            });
            return Ok(());
        }
        Check::Fail { reason, message } => Found {
            passed: false,
            reason,
            message,
            tables: 0,
            rows: 0,
        },
    };
    let mut status = backup.status.clone().unwrap_or_default();
    let before = status.conditions.clone();
    status.verification = Some(Verification {
        requested: requested.to_owned(),
        time: Time(jiff::Timestamp::now()),
        passed: found.passed,
        tables: found.tables,
        rows: found.rows,
    });
    set_condition(
        &mut status.conditions,
        Condition::new(
            VERIFIED,
            if found.passed {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            found.reason,
            found.message.clone(),
            backup.metadata.generation,
        ),
    );
    ctx.metrics.record_drill(found.passed);
    let api: Api<TenantBackup> = Api::all(ctx.client.clone());
    super::status::write(&api, backup, &status)
        .await
        .map_err(|source| Error::Object {
            kind: "TenantBackup",
            name: backup.name_any(),
            source,
        })?;
    let type_ = if found.passed {
        EventType::Normal
    } else {
        EventType::Warning
    };
    let changed = find_condition(&before, VERIFIED).map(|c| (c.status, c.reason.clone()))
        != find_condition(&status.conditions, VERIFIED).map(|c| (c.status, c.reason.clone()));
    if changed || !found.passed {
        super::status::event(
            ctx,
            backup,
            type_,
            found.reason,
            &format!("{VERIFIED}: {}", found.message),
        )
        .await;
    }
    let _ = ctx
        .tenant_triggers
        .unbounded_send(ObjectRef::new(&backup.spec.tenant_ref));
    Ok(())
}

async fn drill(backup: &TenantBackup, ctx: &Context) -> Result<Check<Found>, Error> {
    let status = backup.status.clone().unwrap_or_default();
    #[allow(
        clippy::result_large_err,
        reason = "the controllers' Error is what every step returns"
    )]
    let fail = |reason: &'static str, message: String| Ok(Check::Fail { reason, message });
    let Some(tenant) = ctx
        .stores
        .tenants
        .get(&ObjectRef::new(&backup.spec.tenant_ref))
    else {
        return fail(
            "TenantNotFound",
            format!("there is no Tenant {}", backup.spec.tenant_ref),
        );
    };
    if status.tenant_uid.as_deref() != tenant.uid().as_deref() {
        return fail(
            "TenantReplaced",
            "the backup is of an earlier Tenant of this name".to_owned(),
        );
    }
    let Some(db) = tenant.status.as_ref().and_then(|s| {
        let ready = find_condition(&s.conditions, tenant_database::DATABASE_READY)
            .is_some_and(Condition::is_true);
        s.database.clone().filter(|_| ready)
    }) else {
        return Ok(Check::Wait {
            reason: "WaitingForDatabase",
            message: String::new(),
            after: std::time::Duration::from_secs(10),
        });
    };
    let (Some(key), Some(sha256), Some(size)) = (
        status.object_key.clone(),
        status.sha256.clone(),
        status.size_bytes.and_then(|s| u64::try_from(s).ok()),
    ) else {
        return fail(
            "BackupIncomplete",
            "the backup records no object, SHA-256 or size".to_owned(),
        );
    };
    let Some(store) = ctx
        .stores
        .backup_storages
        .get(&ObjectRef::new(
            status.storage_ref.as_deref().unwrap_or_default(),
        ))
        .and_then(|s| ctx.storages.get(&s))
    else {
        return Ok(Check::Wait {
            reason: "StorageUnavailable",
            message: String::new(),
            after: std::time::Duration::from_secs(10),
        });
    };
    let compression = match status.compression.as_deref() {
        Some("pgdump") => Compression::PgDump,
        Some("none") => Compression::None,
        _ => Compression::Zstd,
    };
    let tenant_ref = TenantRef::of(&tenant).map_err(|source| Error::Key {
        tenant: tenant.name_any(),
        source,
    })?;
    let identity = match ctx.keys.identity(&tenant_ref).await {
        Ok(identity) => identity,
        Err(crate::keys::KeyError::Missing { location, .. }) => {
            return fail(
                "KeyDestroyed",
                format!("the tenant's key is gone ({location} does not exist)"),
            );
        }
        Err(source) => {
            return Err(Error::Key {
                tenant: tenant.name_any(),
                source,
            });
        }
    };
    let scratch = scratch_name(&backup.uid().unwrap_or_default());
    let login = match tenant_login(ctx, &tenant, &db, &scratch).await? {
        Check::Ready(login) => login,
        Check::Wait {
            reason,
            message,
            after,
        } => {
            return Ok(Check::Wait {
                reason,
                message,
                after,
            });
        }
        Check::Fail { reason, message } => return fail(reason, message),
    };
    let Some(connection) = ctx.databases.get(&db.server) else {
        return Ok(Check::Wait {
            reason: "DatabaseUnavailable",
            message: String::new(),
            after: std::time::Duration::from_secs(10),
        });
    };
    // One drill at a time per server (or as many as --drill-concurrency allows).
    let permit = ctx.drills.server(&db.server).acquire_owned().await;
    let Ok(_permit) = permit else {
        return Ok(Check::Wait {
            reason: "Stopping",
            message: String::new(),
            after: std::time::Duration::from_secs(10),
        });
    };
    let ids = TenantIdentifiers::for_tenant(&tenant.name_any());
    let marker = format!(
        "landlord.dev drill of {} uid {}",
        backup.name_any(),
        backup.uid().unwrap_or_default()
    );
    if let Err(e) = connection
        .admin
        .create_restore_target(&ids, &scratch, &marker)
        .await
    {
        return fail(
            "DrillFailed",
            format!("cannot create the scratch database {scratch}: {e}"),
        );
    }
    let outcome = async {
        let downloaded = restore::download_verified(&*store, &key, &Expected { sha256, size })
            .await
            .map_err(|e| (e.reason(), e.to_string()))?;
        let pg_restore = super::tenant_restore::pg_restore_binary(ctx);
        let source = login.source.clone();
        let tables = tokio::task::spawn_blocking(move || {
            restore::restore_file(
                &downloaded,
                identity.as_age(),
                compression,
                &pg_restore,
                &source,
                Mode::NewDatabase,
            )?;
            restore::list_tables(&downloaded, identity.as_age(), compression, &pg_restore)
        })
        .await
        .map_err(|_| ("DrillFailed", "the drill thread panicked".to_owned()))?
        .map_err(|e| (e.reason(), e.to_string()))?;
        let counts = connection
            .admin
            .count_rows(&scratch, &tables)
            .await
            .map_err(|e| ("DrillFailed", e.to_string()))?;
        let missing: Vec<String> = tables
            .iter()
            .zip(&counts)
            .filter(|(_, c)| c.is_none())
            .map(|((s, t), _)| format!("{s}.{t}"))
            .collect();
        if !missing.is_empty() {
            return Err((
                "TablesMissing",
                format!(
                    "tables of the dump missing after the restore: {}",
                    missing.join(", ")
                ),
            ));
        }
        let rows: i64 = counts.iter().flatten().sum();
        let shown: Vec<String> = tables
            .iter()
            .zip(&counts)
            .take(10)
            .map(|((s, t), c)| format!("{s}.{t} {}", c.unwrap_or(0)))
            .collect();
        Ok((tables.len(), rows, shown))
    }
    .await;
    drop(login);
    let dropped = connection
        .admin
        .drop_restore_target(&ids, &scratch, &marker)
        .await;
    let dropped_note = match dropped {
        Ok(_) => String::new(),
        Err(e) => {
            format!("; the scratch database {scratch} could not be dropped ({e}): drop it by hand")
        }
    };
    Ok(Check::Ready(match outcome {
        Ok((tables, rows, shown)) => Found {
            passed: true,
            reason: "Restored",
            message: format!(
                "restored into a scratch database and dropped again: {tables} tables, {rows} rows ({}){dropped_note}",
                shown.join(", ")
            ),
            tables: i32::try_from(tables).unwrap_or(i32::MAX),
            rows,
        },
        Err((reason, message)) => Found {
            passed: false,
            reason,
            message: format!("{message}{dropped_note}"),
            tables: 0,
            rows: 0,
        },
    }))
}

/// The newest drill among a tenant's backups, for `status.lastVerifiedBackup`.
pub fn last_verified(backups: &[Arc<TenantBackup>]) -> Option<crate::api::LastVerified> {
    backups
        .iter()
        .filter_map(|b| {
            let v = b.status.as_ref()?.verification.as_ref()?;
            Some(crate::api::LastVerified {
                name: b.name_any(),
                time: v.time.clone(),
                passed: v.passed,
            })
        })
        .max_by(|a, b| a.time.0.cmp(&b.time.0))
}

/// Whether `tenant`'s policy asks for a drill now, and of which backup.
pub fn due<'a>(
    tenant: &Tenant,
    backups: &'a [Arc<TenantBackup>],
    tz: &jiff::tz::TimeZone,
    now: jiff::Timestamp,
) -> Option<&'a Arc<TenantBackup>> {
    let verify = tenant.spec.backup.as_ref()?.verify.as_ref()?;
    let mut completed: Vec<&Arc<TenantBackup>> = backups
        .iter()
        .filter(|b| {
            b.status.as_ref().and_then(|s| s.phase) == Some(crate::api::BackupPhase::Completed)
        })
        .filter(|b| {
            b.status
                .as_ref()
                .and_then(|s| s.completion_time.as_ref())
                .is_some()
        })
        .collect();
    completed.sort_by(|a, b| {
        let t = |x: &TenantBackup| {
            x.status
                .as_ref()
                .and_then(|s| s.completion_time.clone())
                .map(|t| t.0)
        };
        t(a).cmp(&t(b))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    let newest = *completed.last()?;
    if newest.annotations().contains_key(REQUEST_ANNOTATION) {
        return None;
    }
    let requested_at = |b: &TenantBackup| -> Option<jiff::Timestamp> {
        b.annotations().get(REQUEST_ANNOTATION)?.parse().ok()
    };
    if let Some(every) = verify.after_every_backups {
        // Any request counts, also one made by hand with a value of its own.
        let last = completed
            .iter()
            .rposition(|b| b.annotations().contains_key(REQUEST_ANNOTATION));
        let since = match last {
            Some(i) => completed.len() - 1 - i,
            None => completed.len(),
        };
        return (since >= usize::try_from(every).unwrap_or(1)).then_some(newest);
    }
    let expression = verify.schedule.as_deref()?;
    let schedule = crate::backup::schedule::Schedule::parse(expression).ok()?;
    let last = backups.iter().filter_map(|b| requested_at(b)).max();
    let created = tenant
        .meta()
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    match crate::backup::schedule::due(&schedule, tz, last, created, now).ok()? {
        crate::backup::schedule::Decision::Run { .. } => Some(newest),
        crate::backup::schedule::Decision::Wait { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BackupPhase, TenantBackupSpec, TenantBackupStatus};
    use kube::api::ObjectMeta;

    fn tenant(verify: serde_json::Value) -> Tenant {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme", "uid": "u1", "creationTimestamp": "2026-11-01T00:00:00Z"},
            "spec": {"database": {"serverRef": "pg"},
                     "backup": {"storageRef": "s3", "schedule": "@daily", "verify": verify}}
        }))
        .expect("tenant")
    }

    fn backup(name: &str, completed: &str, requested: Option<&str>) -> Arc<TenantBackup> {
        Arc::new(TenantBackup {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                annotations: requested
                    .map(|r| [(REQUEST_ANNOTATION.to_owned(), r.to_owned())].into()),
                ..ObjectMeta::default()
            },
            spec: TenantBackupSpec {
                tenant_ref: "acme".to_owned(),
                storage_ref: None,
            },
            status: Some(TenantBackupStatus {
                phase: Some(BackupPhase::Completed),
                completion_time: Some(Time(completed.parse().expect("time"))),
                ..TenantBackupStatus::default()
            }),
        })
    }

    fn name(found: Option<&Arc<TenantBackup>>) -> Option<String> {
        found.map(|b| b.name_any())
    }

    #[test]
    fn after_every_n_backups_the_newest_is_drilled_once() {
        let t = tenant(serde_json::json!({"afterEveryBackups": 2}));
        let tz = jiff::tz::TimeZone::UTC;
        let now: jiff::Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let one = [backup("b1", "2026-11-28T03:00:00Z", None)];
        assert_eq!(
            name(due(&t, &one, &tz, now)),
            None,
            "one backup is not yet two"
        );
        let two = [one[0].clone(), backup("b2", "2026-11-29T03:00:00Z", None)];
        assert_eq!(name(due(&t, &two, &tz, now)).as_deref(), Some("b2"));
        let asked = [
            one[0].clone(),
            backup("b2", "2026-11-29T03:00:00Z", Some("x")),
        ];
        assert_eq!(name(due(&t, &asked, &tz, now)), None, "asked already");
        let three = [
            asked[0].clone(),
            asked[1].clone(),
            backup("b3", "2026-11-30T03:00:00Z", None),
        ];
        assert_eq!(
            name(due(&t, &three, &tz, now)),
            None,
            "one since the last drill"
        );
        let four = [
            three[0].clone(),
            three[1].clone(),
            three[2].clone(),
            backup("b4", "2026-12-01T03:00:00Z", None),
        ];
        assert_eq!(name(due(&t, &four, &tz, now)).as_deref(), Some("b4"));
    }

    #[test]
    fn a_drill_schedule_asks_once_per_slot() {
        let t = tenant(serde_json::json!({"schedule": "0 6 * * 0"}));
        let tz = jiff::tz::TimeZone::UTC;
        // Sunday 2026-11-29 06:00 is a slot; the last drill was asked before it.
        let now: jiff::Timestamp = "2026-11-30T12:00:00Z".parse().unwrap();
        let backups = [
            backup("b1", "2026-11-20T03:00:00Z", Some("2026-11-22T06:00:00Z")),
            backup("b2", "2026-11-28T03:00:00Z", None),
        ];
        assert_eq!(name(due(&t, &backups, &tz, now)).as_deref(), Some("b2"));
        // Asked after that slot: nothing until the next one.
        let asked = [
            backups[0].clone(),
            backup("b2", "2026-11-28T03:00:00Z", Some("2026-11-29T06:10:00Z")),
            backup("b3", "2026-11-30T03:00:00Z", None),
        ];
        assert_eq!(name(due(&t, &asked, &tz, now)), None);
        let next_week: jiff::Timestamp = "2026-12-06T07:00:00Z".parse().unwrap();
        assert_eq!(name(due(&t, &asked, &tz, next_week)).as_deref(), Some("b3"));
    }

    #[test]
    fn a_request_is_pending_until_a_drill_answers_it() {
        let mut b = (*backup("b1", "2026-11-28T03:00:00Z", Some("r1"))).clone();
        assert_eq!(pending_request(&b).as_deref(), Some("r1"));
        b.status.as_mut().unwrap().verification = Some(Verification {
            requested: "r1".to_owned(),
            time: Time("2026-11-28T04:00:00Z".parse().unwrap()),
            passed: true,
            tables: 1,
            rows: 1,
        });
        assert_eq!(pending_request(&b), None);
    }
}
