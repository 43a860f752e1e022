//! The Tenant's backup step: its schedule creates TenantBackups, its retention deletes
//! them, and its status records the newest completed one.
//!
//! The decisions are the pure functions of [`crate::backup::schedule`] and
//! [`crate::backup::retention`]; this module feeds them what the caches hold and carries
//! out what they say:
//!
//! - a slot that is due creates one TenantBackup named `<tenant>-<uid8>-<yyyymmddhhmm>`
//!   (the slot in UTC), labelled with the tenant, annotated with the Tenant's UID and the
//!   slot. The name is deterministic, so a crash between creating it and anything else
//!   creates nothing twice; the newest slot recorded on the tenant's TenantBackups is what
//!   the next decision starts from, so a restart never repeats or skips a slot, and an
//!   operator down for days runs one backup, not one per missed slot;
//! - retention deletes the TenantBackups its plan removes (their finalizer deletes the
//!   objects); those held by Object Lock are named in the condition until it expires;
//! - `BackupScheduled` says when the next backup is due, `Suspended` while suspended,
//!   and turns False (`BackupOverdue`, with a Warning Event) when the newest completed
//!   backup is older than two schedule intervals, or with the reason when the schedule
//!   or the storage cannot be used.
//!
//! Only TenantBackups recording this Tenant's UID count: an earlier Tenant's, left behind
//! under the same name, are neither scheduled from, kept nor deleted.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::info;

use super::tenant_backup::{self, SCHEDULED_FOR_ANNOTATION};
use super::{Context, Error, backup_storage};
use crate::api::{
    BackupPhase, Condition, ConditionStatus, LastBackup, Tenant, TenantBackup, TenantBackupSpec,
    find_condition,
};
use crate::backup::retention::{self, Outcome};
use crate::backup::schedule::{self, Decision, Schedule};
use crate::isolation::labels::{MANAGED_BY, MANAGED_BY_LABEL, TENANT_LABEL};
use crate::isolation::ownership::{self, TENANT_UID_ANNOTATION};

/// The condition of the backup step.
pub const BACKUP_SCHEDULED: &str = "BackupScheduled";

/// What the backup step found, for the Tenant's status.
pub struct Report {
    /// `BackupScheduled`, when the Tenant has `spec.backup`.
    pub condition: Option<Condition>,
    /// The newest completed backup.
    pub last_backup: Option<LastBackup>,
    /// When to look again (the next slot).
    pub wake_in: Option<Duration>,
    /// The newest restore drill.
    pub last_verified: Option<crate::api::LastVerified>,
}

/// The TenantBackups of `tenant`: named for it and recording its UID.
pub fn backups_of(ctx: &Context, tenant: &Tenant) -> Vec<Arc<TenantBackup>> {
    let name = tenant.name_any();
    let uid = tenant.uid().unwrap_or_default();
    ctx.stores
        .backups_by_tenant
        .names(&name)
        .into_iter()
        .filter_map(|backup| ctx.stores.tenant_backups.get(&ObjectRef::new(&backup)))
        .filter(|b| b.spec.tenant_ref == name && recorded_uid(b).as_deref() == Some(uid.as_str()))
        .collect()
}

/// The Tenant UID a backup is for: in its status once looked at, else as the schedule
/// annotated it.
fn recorded_uid(backup: &TenantBackup) -> Option<String> {
    backup
        .status
        .as_ref()
        .and_then(|s| s.tenant_uid.clone())
        .or_else(|| {
            ownership::recorded_uid(backup.metadata.annotations.as_ref()).map(str::to_owned)
        })
}

fn slot_of(backup: &TenantBackup) -> Option<Timestamp> {
    backup
        .annotations()
        .get(SCHEDULED_FOR_ANNOTATION)
        .and_then(|s| s.parse().ok())
}

/// The name of the backup for `slot`.
pub fn scheduled_name(tenant: &str, uid: &str, slot: Timestamp) -> String {
    let short: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("{tenant}-{short}-{}", slot.strftime("%Y%m%d%H%M"))
}

/// The TenantBackup the schedule creates for `slot`.
pub fn scheduled_backup(tenant: &Tenant, slot: Timestamp) -> TenantBackup {
    let name = tenant.name_any();
    let uid = tenant.uid().unwrap_or_default();
    TenantBackup {
        metadata: ObjectMeta {
            name: Some(scheduled_name(&name, &uid, slot)),
            labels: Some(
                [
                    (TENANT_LABEL.to_owned(), name.clone()),
                    (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
                ]
                .into(),
            ),
            annotations: Some(
                [
                    (TENANT_UID_ANNOTATION.to_owned(), uid),
                    (SCHEDULED_FOR_ANNOTATION.to_owned(), slot.to_string()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: TenantBackupSpec {
            tenant_ref: name,
            storage_ref: None,
        },
        status: None,
    }
}

fn condition(
    tenant: &Tenant,
    status: ConditionStatus,
    reason: &str,
    message: impl Into<String>,
) -> Condition {
    Condition::new(
        BACKUP_SCHEDULED,
        status,
        reason,
        message,
        tenant.metadata.generation,
    )
}

/// The backup step of one Tenant reconcile.
pub async fn reconcile(tenant: &Tenant, ctx: &Context) -> Result<Report, Error> {
    let now = Timestamp::now();
    let backups = backups_of(ctx, tenant);
    let newest = backups
        .iter()
        .filter(|b| b.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Completed))
        .filter_map(|b| {
            let status = b.status.as_ref()?;
            Some((status.completion_time.clone()?, b))
        })
        .max_by(|(a, _), (b, _)| a.0.cmp(&b.0));
    let last_backup = newest.map(|(time, b)| LastBackup {
        name: b.name_any(),
        completion_time: time.clone(),
        size_bytes: b.status.as_ref().and_then(|s| s.size_bytes),
    });
    if let Some(last) = &last_backup {
        ctx.metrics
            .set_last_backup(&tenant.name_any(), last.completion_time.0.as_second());
    }
    let Some(policy) = tenant.spec.backup.as_ref() else {
        return Ok(Report {
            condition: None,
            last_backup,
            wake_in: None,
            last_verified: super::drill::last_verified(&backups),
        });
    };
    let invalid = |e: schedule::ScheduleError| Report {
        condition: Some(condition(
            tenant,
            ConditionStatus::False,
            "InvalidSchedule",
            e.to_string(),
        )),
        last_backup: last_backup.clone(),
        wake_in: None,
        last_verified: super::drill::last_verified(&backups),
    };
    let tz = match schedule::time_zone(policy.time_zone.as_deref()) {
        Ok(tz) => tz,
        Err(e) => return Ok(invalid(e)),
    };
    let parsed = match Schedule::parse(&policy.schedule) {
        Ok(s) => s.spread_by(&tenant.uid().unwrap_or_default()),
        Err(e) => return Ok(invalid(e)),
    };

    // retention first: what it deletes is not what the schedule counts from
    let retained = apply_retention(tenant, ctx, &backups, &tz, now).await?;

    // the storage the scheduled backups go to
    let storage = ctx
        .stores
        .backup_storages
        .get(&ObjectRef::new(&policy.storage_ref));
    let storage_problem = match &storage {
        None => Some((
            "StorageNotFound",
            format!("there is no BackupStorage {}", policy.storage_ref),
        )),
        Some(s) => match ctx.storages.lookup(s) {
            // unusable at this replica's last look, or by the status of the current spec
            // (a replica that has not looked yet reports what the last one found)
            _ if unavailable(s) => Some((
                "StorageUnavailable",
                format!(
                    "the BackupStorage {} cannot be used: {}",
                    policy.storage_ref,
                    s.status
                        .as_ref()
                        .and_then(|st| find_condition(
                            &st.conditions,
                            backup_storage::conditions::AVAILABLE
                        ))
                        .map(|c| format!("{} ({})", c.message, c.reason))
                        .unwrap_or_default()
                ),
            )),
            backup_storage::Lookup::Unusable => Some((
                "StorageUnavailable",
                format!("the BackupStorage {} cannot be used", policy.storage_ref),
            )),
            _ => None,
        },
    };

    if policy.suspend {
        return Ok(Report {
            condition: Some(condition(
                tenant,
                ConditionStatus::True,
                "Suspended",
                "spec.backup.suspend is set: no backups are scheduled",
            )),
            last_backup,
            wake_in: None,
            last_verified: super::drill::last_verified(&backups),
        });
    }

    // restore drills of the newest completed backup, as spec.backup.verify asks
    if let Some(backup) = super::drill::due(tenant, &backups, &tz, now) {
        super::drill::request(ctx, backup).await?;
    }

    let created = tenant
        .meta()
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let last_scheduled = backups.iter().filter_map(|b| slot_of(b)).max();
    let decision = match schedule::due(&parsed, &tz, last_scheduled, created, now) {
        Ok(d) => d,
        Err(e) => return Ok(invalid(e)),
    };
    if let Decision::Run { slot, missed, .. } = decision {
        let backup = scheduled_backup(tenant, slot);
        if tenant_backup::create(ctx, &backup).await? {
            info!(tenant = %tenant.name_any(), backup = %backup.name_any(), %slot, missed, "scheduled backup created");
        }
    }
    let wake_at = decision.wake_at();
    let wake_in = Some(
        now.duration_until(wake_at)
            .unsigned_abs()
            .max(Duration::from_secs(1)),
    );

    let last_success = last_backup
        .as_ref()
        .map_or(created, |l| l.completion_time.0);
    let stale = schedule::stale(last_success, &parsed, &tz, now).unwrap_or(false);
    let mut message = format!(
        "schedule {:?} in {}: next backup at {wake_at}",
        policy.schedule,
        policy.time_zone.as_deref().unwrap_or("UTC")
    );
    match &last_backup {
        Some(last) => message.push_str(&format!(
            "; newest completed: {} at {}",
            last.name, last.completion_time.0
        )),
        None => message.push_str("; no completed backup yet"),
    }
    if !retained.is_empty() {
        message.push_str(&format!(
            "; past retention but under Object Lock: {}",
            retained
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let condition = if let Some((reason, problem)) = storage_problem {
        condition(
            tenant,
            ConditionStatus::False,
            reason,
            format!("{problem}; {message}"),
        )
    } else if stale {
        condition(
            tenant,
            ConditionStatus::False,
            "BackupOverdue",
            format!("the newest completed backup is older than two schedule intervals; {message}"),
        )
    } else {
        condition(tenant, ConditionStatus::True, "Scheduled", message)
    };
    Ok(Report {
        condition: Some(condition),
        last_backup,
        wake_in,
        last_verified: super::drill::last_verified(&backups),
    })
}

/// Whether the storage's `Available` condition, for its current spec, is False.
fn unavailable(storage: &crate::api::BackupStorage) -> bool {
    storage.status.as_ref().is_some_and(|status| {
        find_condition(&status.conditions, backup_storage::conditions::AVAILABLE).is_some_and(|c| {
            c.status == ConditionStatus::False
                && c.observed_generation == storage.metadata.generation
        })
    })
}

/// Deletes the backups retention removes; returns those Object Lock holds back.
async fn apply_retention(
    tenant: &Tenant,
    ctx: &Context,
    backups: &[Arc<TenantBackup>],
    tz: &jiff::tz::TimeZone,
    now: Timestamp,
) -> Result<Vec<retention::Retained>, Error> {
    let Some(policy) = tenant.spec.backup.as_ref() else {
        return Ok(Vec::new());
    };
    let finished: Vec<retention::Backup> = backups
        .iter()
        .filter(|b| b.metadata.deletion_timestamp.is_none())
        .filter_map(|b| {
            let status = b.status.as_ref()?;
            let outcome = match status.phase? {
                BackupPhase::Completed => Outcome::Completed,
                BackupPhase::Failed => Outcome::Failed,
                _ => return None,
            };
            let finished = status
                .completion_time
                .as_ref()
                .map(|t| t.0)
                .or_else(|| b.meta().creation_timestamp.as_ref().map(|t| t.0))?;
            Some(retention::Backup {
                name: b.name_any(),
                outcome,
                finished,
                locked_until: status.retain_until.as_ref().map(|t: &Time| t.0),
            })
        })
        .collect();
    let plan = retention::plan(&(&policy.retention).into(), &finished, tz, now);
    let api: Api<TenantBackup> = Api::all(ctx.client.clone());
    for name in &plan.remove {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                info!(tenant = %tenant.name_any(), backup = %name, "retention: backup deleted")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(Error::Object {
                    kind: "TenantBackup",
                    name: name.clone(),
                    source,
                });
            }
        }
    }
    Ok(plan.retained)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_names_are_deterministic_per_tenant_uid_and_slot() {
        let slot: Timestamp = "2026-12-01T03:00:00Z".parse().unwrap();
        assert_eq!(
            scheduled_name("acme", "1f2e3d4c-0000-1111-2222-333344445555", slot),
            "acme-1f2e3d4c-202612010300"
        );
        assert_ne!(
            scheduled_name("acme", "aaaaaaaa-0000", slot),
            scheduled_name("acme", "bbbbbbbb-0000", slot),
            "a later Tenant of the same name never collides with an earlier one's backups"
        );
    }
}
