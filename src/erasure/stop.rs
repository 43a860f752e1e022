//! `StopBackups`: nothing new starts, and what runs finishes first.
//!
//! The schedule stops by itself (a Tenant being deleted is not provisioned, so its
//! schedule creates nothing), and a TenantBackup or TenantRestore that has not started
//! yet is refused with reason `TenantDeleting` as soon as its controller looks at it. What
//! already runs is waited for (a backup, a restore drill of one of the tenant's backups, a
//! TenantRestore of the tenant): a dump cut short would leave an incomplete upload, and a
//! restore cut short a half-written database, that the later steps then remove anyway.

use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::api::{BackupPhase, RestorePhase, Tenant, TenantRestore};
use crate::controller::{Context, Error, backup_schedule};

/// Waits until no backup, drill or restore of `tenant` is pending or running.
pub async fn stop_backups(tenant: &Tenant, ctx: &Context) -> Result<String, Error> {
    let backups = backup_schedule::backups_of(ctx, tenant);
    let mut busy = Vec::new();
    let mut finished = 0;
    for backup in &backups {
        let phase = backup.status.as_ref().and_then(|s| s.phase);
        match phase {
            None | Some(BackupPhase::Pending) | Some(BackupPhase::Running) => {
                busy.push(format!("backup {}", backup.name_any()));
            }
            Some(BackupPhase::Completed) | Some(BackupPhase::Failed) => finished += 1,
        }
        if ctx.drills.is_running(&backup.uid().unwrap_or_default()) {
            busy.push(format!("restore drill of {}", backup.name_any()));
        }
    }
    let uid = tenant.uid().unwrap_or_default();
    // TenantRestores are not cached (they are few and short-lived): listed once here.
    let restores: Api<TenantRestore> = Api::all(ctx.client.clone());
    let list = restores
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::Object {
            kind: "TenantRestore",
            name: String::new(),
            source,
        })?;
    for restore in list.items {
        let Some(status) = restore.status.as_ref() else {
            continue;
        };
        if status.tenant_uid.as_deref() == Some(uid.as_str())
            && status.phase == Some(RestorePhase::Running)
        {
            busy.push(format!("restore {}", restore.name_any()));
        }
    }
    if !busy.is_empty() {
        return Err(Error::Erasure(format!(
            "waiting for {} to finish (nothing new starts for a Tenant being deleted)",
            busy.join(", ")
        )));
    }
    Ok(format!(
        "the schedule is stopped and nothing of the tenant runs: {finished} backups finished, none pending or running, no restore drill or restore running"
    ))
}
