//! The TenantRestore controller: restores one TenantBackup into a new database on the
//! tenant's server, or over the tenant's own database when the spec confirms it.
//!
//! # Phases
//!
//! `Pending` → `Running` → `Completed` or `Failed`, with the condition `Completed` giving
//! the reason. A restore runs once: a failed one is not tried again (create another
//! TenantRestore), and a restore found `Running` at the start of a reconcile was
//! interrupted (a crash, a lost leadership: a restore runs inside its reconcile, so no
//! other reconcile of it can be under way) and is marked `Failed` with `Interrupted`.
//!
//! # What it checks before anything reaches a database
//!
//! - the backup is `Completed` and was taken of this very Tenant (its UID): a Tenant
//!   re-created under the same name never gets an earlier one's data;
//! - the tenant's key is still there (else `KeyDestroyed`: the backup was crypto-shredded
//!   with its tenant) and is the key the backup recorded (else `KeyMismatch`);
//! - the object is downloaded whole into a private file and its size and SHA-256 are
//!   those the backup recorded ([`crate::backup::restore`]); a tampered, truncated or
//!   missing object fails the restore and touches nothing.
//!
//! The identity is read with a GET from the key provider for this restore only: never
//! cached, never logged, dropped (and zeroed) when the restore ends.
//!
//! # Into a new database
//!
//! `spec.targetDatabase` is created owned by the tenant's role (CONNECT for it only) and
//! marked with this restore's UID; one that exists already is never restored over
//! (`TargetExists`). A restore that fails after creating it drops it again, so a retry
//! starts clean, and says so in the condition `TargetDropped`. When the server cannot be
//! reached at that moment (it went down mid-restore: reason `DatabaseUnavailable`),
//! `TargetDropped` is False and the drop is tried again, with back-off, until it succeeds:
//! what `pg_restore --single-transaction` left is an empty database, and it does not stay.
//!
//! # In place
//!
//! Only with `spec.replaceTenantDatabase: true` (the schema refuses a restore without a
//! target otherwise). The tenant's sessions are terminated first, then `pg_restore
//! --clean --if-exists --single-transaction` replaces the contents, all or nothing; both
//! steps are announced as Events.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use tracing::{info, warn};

use super::status::Conditions;
use super::tenant_backup::{Check, Login, tenant_login};
use super::{Context, Error, tenant_database};
use crate::api::{
    BackupPhase, Condition, ConditionStatus, RestorePhase, Tenant, TenantBackup, TenantRestore,
    TenantRestoreStatus, find_condition, set_condition,
};
use crate::backup::pg_dump::Compression;
use crate::backup::restore::{self, Expected, Mode};
use crate::database::TenantIdentifiers;
use crate::keys::{KeyError, TenantRef};
use crate::storage::ObjectStore;

/// Condition types of a TenantRestore.
pub mod conditions {
    /// Whether the restore completed, and if not, why.
    pub const COMPLETED: &str = "Completed";
    /// On a failed restore into a new database: whether the database it created is gone.
    pub const TARGET_DROPPED: &str = "TargetDropped";
}

/// How long a failed restore waits before trying again to drop the database it created.
const DROP_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// The name of this controller in metrics and back-off.
const CONTROLLER: &str = "tenantrestore";

impl Conditions for TenantRestoreStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

fn restore_error(restore: &TenantRestore) -> impl Fn(kube::Error) -> Error + '_ {
    move |source| Error::Object {
        kind: "TenantRestore",
        name: restore.name_any(),
        source,
    }
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// The comment a restore's new database records: only this restore drops it.
fn marker(restore: &TenantRestore) -> String {
    format!(
        "landlord.dev restore {} uid {}",
        restore.name_any(),
        restore.uid().unwrap_or_default()
    )
}

/// Entry point for the controller runtime.
pub async fn reconcile(restore: Arc<TenantRestore>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::reconcile_counted(&ctx, CONTROLLER, &restore.name_any(), async {
        if restore.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let phase = |r: &TenantRestore| r.status.as_ref().and_then(|s| s.phase);
        if let Some(RestorePhase::Completed | RestorePhase::Failed) = phase(&restore)
            && !drop_pending(&restore)
        {
            return Ok(Action::await_change());
        }
        // The cache can lag behind this controller's own writes: the reconcile that the
        // `Running` write queued runs once the restore has finished, and may still see
        // `Running`. Whether to restore, to call a restore interrupted or to drop its
        // database is decided on the object as the API server has it now.
        let api: Api<TenantRestore> = Api::all(ctx.client.clone());
        let Some(current) = api
            .get_opt(&restore.name_any())
            .await
            .map_err(restore_error(&restore))?
        else {
            return Ok(Action::await_change());
        };
        match phase(&current) {
            Some(RestorePhase::Failed) if drop_pending(&current) => {
                drop_again(&current, &ctx).await
            }
            Some(RestorePhase::Completed | RestorePhase::Failed) => Ok(Action::await_change()),
            Some(RestorePhase::Running) => interrupted(&current, &ctx).await,
            Some(RestorePhase::Pending) | None => run(&current, &ctx).await,
        }
    })
    .await
}

/// Backs off by error category.
pub fn error_policy(restore: Arc<TenantRestore>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retries
        .requeue(CONTROLLER, "TenantRestore", &restore.name_any(), error)
}

async fn write(
    ctx: &Context,
    restore: &TenantRestore,
    status: &TenantRestoreStatus,
) -> Result<(), Error> {
    let api: Api<TenantRestore> = Api::all(ctx.client.clone());
    super::status::write(&api, restore, status)
        .await
        .map_err(restore_error(restore))
}

/// Writes the final status, with the Events of its condition changes.
async fn finish(
    ctx: &Context,
    restore: &TenantRestore,
    before: &TenantRestoreStatus,
    status: &TenantRestoreStatus,
) -> Result<(), Error> {
    write(ctx, restore, status).await?;
    for (type_, reason, note) in super::status::news(
        before.conditions(),
        status.conditions(),
        conditions::COMPLETED,
    ) {
        super::status::event(ctx, restore, type_, &reason, &note).await;
    }
    Ok(())
}

fn completed(
    status: ConditionStatus,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition::new(conditions::COMPLETED, status, reason, message, generation)
}

/// Marks the restore Failed with `reason`, dropping the new database it created. When the
/// server cannot be reached for the drop, a `RestoreFailed` was the server going away
/// (`DatabaseUnavailable`), and the drop is left to [`drop_again`].
async fn failed(
    ctx: &Context,
    restore: &TenantRestore,
    mut status: TenantRestoreStatus,
    reason: &str,
    message: &str,
) -> Result<Action, Error> {
    let before = restore.status.clone().unwrap_or_default();
    let mut reason = reason.to_owned();
    let mut message = message.to_owned();
    let dropped = drop_target(restore, ctx, &status).await;
    let generation = restore.metadata.generation;
    let mut action = Action::await_change();
    match &dropped {
        TargetDrop::Nothing => {}
        TargetDrop::Done(target) => {
            message.push_str(&format!("; the database {target} it created was dropped"));
            set_condition(
                &mut status.conditions,
                target_dropped(ConditionStatus::True, "Dropped", target, generation),
            );
        }
        TargetDrop::Pending {
            target,
            error,
            unreachable,
        } => {
            if *unreachable && reason == "RestoreFailed" {
                reason = "DatabaseUnavailable".to_owned();
                message = format!(
                    "the database server went away during the restore, which was rolled back: {message}"
                );
            }
            message.push_str(&format!(
                "; the database {target} it created could not be dropped yet ({error}): Landlord drops it once the server can be reached"
            ));
            set_condition(
                &mut status.conditions,
                Condition::new(
                    conditions::TARGET_DROPPED,
                    ConditionStatus::False,
                    if *unreachable {
                        "DatabaseUnavailable"
                    } else {
                        "DropFailed"
                    },
                    format!(
                        "the database {target} this restore created is still there ({error}); dropping it is tried again every {}s",
                        DROP_RETRY.as_secs()
                    ),
                    generation,
                ),
            );
            action = Action::requeue(DROP_RETRY);
        }
    }
    status.phase = Some(RestorePhase::Failed);
    status.completion_time = Some(now());
    set_condition(
        &mut status.conditions,
        completed(ConditionStatus::False, &reason, message, generation),
    );
    warn!(restore = %restore.name_any(), reason, "restore failed");
    finish(ctx, restore, &before, &status).await?;
    Ok(action)
}

fn target_dropped(
    status: ConditionStatus,
    reason: &str,
    target: &str,
    generation: Option<i64>,
) -> Condition {
    Condition::new(
        conditions::TARGET_DROPPED,
        status,
        reason,
        format!("the database {target} this restore created was dropped"),
        generation,
    )
}

/// Whether a failed restore still has to drop the database it created.
fn drop_pending(restore: &TenantRestore) -> bool {
    restore.status.as_ref().is_some_and(|s| {
        find_condition(&s.conditions, conditions::TARGET_DROPPED)
            .is_some_and(|c| c.status == ConditionStatus::False)
    })
}

/// Tries again to drop the database a failed restore created.
async fn drop_again(restore: &TenantRestore, ctx: &Context) -> Result<Action, Error> {
    let before = restore.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let generation = restore.metadata.generation;
    match drop_target(restore, ctx, &status).await {
        TargetDrop::Pending { .. } => Ok(Action::requeue(DROP_RETRY)),
        TargetDrop::Done(target) => {
            set_condition(
                &mut status.conditions,
                target_dropped(ConditionStatus::True, "Dropped", &target, generation),
            );
            info!(restore = %restore.name_any(), target, "the failed restore's database was dropped");
            finish(ctx, restore, &before, &status).await?;
            Ok(Action::await_change())
        }
        // Gone already (dropped by hand): nothing is left behind either.
        TargetDrop::Nothing => {
            let target = restore.spec.target_database.clone().unwrap_or_default();
            let mut gone = target_dropped(ConditionStatus::True, "Gone", &target, generation);
            gone.message = format!(
                "nothing of this restore is left to drop: the database {target} (or its Tenant) is gone"
            );
            set_condition(&mut status.conditions, gone);
            finish(ctx, restore, &before, &status).await?;
            Ok(Action::await_change())
        }
    }
}

/// What became of the new database a failed restore created.
enum TargetDrop {
    /// There is none (in place, never created, or not this restore's).
    Nothing,
    /// It was dropped now.
    Done(String),
    /// It could not be dropped now.
    Pending {
        target: String,
        error: String,
        /// The server could not be reached.
        unreachable: bool,
    },
}

/// Drops the new database this restore created, if it did.
async fn drop_target(
    restore: &TenantRestore,
    ctx: &Context,
    status: &TenantRestoreStatus,
) -> TargetDrop {
    let Some(target) = restore.spec.target_database.clone() else {
        return TargetDrop::Nothing;
    };
    let Some(tenant) = status.tenant_uid.as_ref().and(restore_tenant(restore, ctx)) else {
        return TargetDrop::Nothing;
    };
    let Some(server) = tenant
        .status
        .as_ref()
        .and_then(|s| s.database.as_ref())
        .map(|d| d.server.clone())
    else {
        return TargetDrop::Nothing;
    };
    let ids = TenantIdentifiers::for_tenant(&tenant.name_any());
    let Some(connection) = ctx.databases.get(&server) else {
        return TargetDrop::Pending {
            target,
            error: format!("the DatabaseServer {server} cannot be reached"),
            unreachable: true,
        };
    };
    match connection
        .admin
        .drop_restore_target(&ids, &target, &marker(restore))
        .await
    {
        Ok(true) => TargetDrop::Done(target),
        Ok(false) => TargetDrop::Nothing,
        Err(e) => TargetDrop::Pending {
            target,
            unreachable: matches!(e, crate::database::DatabaseError::Unreachable { .. }),
            error: e.to_string(),
        },
    }
}

/// The Tenant a restore is of: the backup's.
fn restore_tenant(restore: &TenantRestore, ctx: &Context) -> Option<Arc<Tenant>> {
    let name = restore.spec.tenant_ref.clone().or_else(|| {
        let backup = restore.spec.backup_ref.as_ref()?;
        Some(
            ctx.stores
                .tenant_backups
                .get(&ObjectRef::new(backup))?
                .spec
                .tenant_ref
                .clone(),
        )
    })?;
    ctx.stores.tenants.get(&ObjectRef::new(&name))
}

/// A restore found Running: it was interrupted.
async fn interrupted(restore: &TenantRestore, ctx: &Context) -> Result<Action, Error> {
    let status = restore.status.clone().unwrap_or_default();
    failed(
        ctx,
        restore,
        status,
        "Interrupted",
        "the operator stopped (or lost its leadership) while the restore ran; pg_restore's transaction was rolled back with its session. Create a new TenantRestore to try again",
    )
    .await
}

/// The backup to restore: the one named, or the tenant's newest Completed one.
fn backup_of(restore: &TenantRestore, ctx: &Context) -> Check<Arc<TenantBackup>> {
    if let Some(name) = &restore.spec.backup_ref {
        return match ctx.stores.tenant_backups.get(&ObjectRef::new(name)) {
            Some(b) => Check::Ready(b),
            None => Check::Fail {
                reason: "BackupNotFound",
                message: format!("there is no TenantBackup {name}"),
            },
        };
    }
    let Some(tenant_name) = &restore.spec.tenant_ref else {
        return Check::Fail {
            reason: "BackupNotFound",
            message: "neither backupRef nor tenantRef is set".to_owned(),
        };
    };
    let Some(tenant) = ctx.stores.tenants.get(&ObjectRef::new(tenant_name)) else {
        return Check::Fail {
            reason: "TenantNotFound",
            message: format!("there is no Tenant {tenant_name}"),
        };
    };
    let newest = super::backup_schedule::backups_of(ctx, &tenant)
        .into_iter()
        .filter(|b| b.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Completed))
        .filter_map(|b| Some((b.status.as_ref()?.completion_time.clone()?, b)))
        .max_by(|(a, x), (b, y)| a.0.cmp(&b.0).then_with(|| x.name_any().cmp(&y.name_any())));
    match newest {
        Some((_, b)) => Check::Ready(b),
        None => Check::Fail {
            reason: "NoCompletedBackup",
            message: format!("the Tenant {tenant_name} has no Completed backup"),
        },
    }
}

async fn run(restore: &TenantRestore, ctx: &Context) -> Result<Action, Error> {
    let generation = restore.metadata.generation;
    let mut status = restore.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.phase = Some(RestorePhase::Pending);
    macro_rules! check {
        ($check:expr) => {
            match $check {
                Check::Ready(value) => value,
                Check::Wait {
                    reason,
                    message,
                    after,
                } => {
                    set_condition(
                        &mut status.conditions,
                        completed(ConditionStatus::Unknown, reason, message, generation),
                    );
                    if restore.status.as_ref() != Some(&status) {
                        write(ctx, restore, &status).await?;
                    }
                    return Ok(Action::requeue(after));
                }
                Check::Fail { reason, message } => {
                    return failed(ctx, restore, status, reason, &message).await;
                }
            }
        };
    }
    let fail = |reason: &'static str, message: String| Check::<()>::Fail { reason, message };

    // the backup, and whose it is
    let backup = check!(backup_of(restore, ctx));
    let backup_status = backup.status.clone().unwrap_or_default();
    status.backup = Some(backup.name_any());
    if backup_status.phase != Some(BackupPhase::Completed) {
        check!(fail(
            "BackupNotCompleted",
            format!("the TenantBackup {} is not Completed", backup.name_any())
        ));
    }
    if let Some(tenant) = &restore.spec.tenant_ref
        && *tenant != backup.spec.tenant_ref
    {
        check!(fail(
            "BackupOfAnotherTenant",
            format!(
                "the TenantBackup {} is of the Tenant {}, not {tenant}",
                backup.name_any(),
                backup.spec.tenant_ref
            )
        ));
    }
    let Some(tenant) = ctx
        .stores
        .tenants
        .get(&ObjectRef::new(&backup.spec.tenant_ref))
    else {
        check!(fail(
            "TenantNotFound",
            format!("there is no Tenant {}", backup.spec.tenant_ref)
        ));
        unreachable!("check! returns on Fail");
    };
    let tenant_uid = tenant.uid().unwrap_or_default();
    if backup_status.tenant_uid.as_deref() != Some(tenant_uid.as_str()) {
        check!(fail(
            "TenantReplaced",
            format!(
                "the TenantBackup {} is of the Tenant {} with UID {}; the Tenant of that name now has UID {tenant_uid}, and never gets an earlier tenant's data",
                backup.name_any(),
                backup.spec.tenant_ref,
                backup_status.tenant_uid.as_deref().unwrap_or("unknown")
            )
        ));
    }
    status.tenant_uid = Some(tenant_uid.clone());
    if tenant.metadata.deletion_timestamp.is_some() {
        // Its erasure waits for running restores and then drops whatever they wrote; a
        // restore that started now would bring back what the erasure destroys.
        check!(fail(
            "TenantDeleting",
            format!("the Tenant {} is being erased", tenant.name_any())
        ));
    }
    let tenant_status = tenant.status.clone().unwrap_or_default();
    let ready = find_condition(&tenant_status.conditions, tenant_database::DATABASE_READY)
        .is_some_and(Condition::is_true);
    let Some(db) = tenant_status.database.clone().filter(|_| ready) else {
        check!(Check::<()>::Wait {
            reason: "WaitingForDatabase",
            message: format!("the database of Tenant {} is not ready", tenant.name_any()),
            after: std::time::Duration::from_secs(10),
        });
        unreachable!("check! returns on Wait");
    };
    let (mode, target) = match &restore.spec.target_database {
        Some(target) => (Mode::NewDatabase, target.clone()),
        None => (Mode::InPlace, db.name.clone()),
    };
    if mode == Mode::InPlace && !restore.spec.replace_tenant_database {
        check!(fail(
            "NotConfirmed",
            "restoring into the tenant's own database needs spec.replaceTenantDatabase: true"
                .to_owned()
        ));
    }
    if mode == Mode::NewDatabase && target == db.name {
        check!(fail(
            "TargetIsTenantDatabase",
            format!(
                "{target} is the tenant's own database: omit targetDatabase and set replaceTenantDatabase: true to restore over it"
            )
        ));
    }
    status.target_database = Some(target.clone());

    // the object
    let (Some(object_key), Some(sha256), Some(size)) = (
        backup_status.object_key.clone(),
        backup_status.sha256.clone(),
        backup_status.size_bytes.and_then(|s| u64::try_from(s).ok()),
    ) else {
        check!(fail(
            "BackupIncomplete",
            format!(
                "the TenantBackup {} records no object, SHA-256 or size",
                backup.name_any()
            )
        ));
        unreachable!("check! returns on Fail");
    };
    let compression = match backup_status.compression.as_deref() {
        Some("pgdump") => Compression::PgDump,
        Some("none") => Compression::None,
        _ => Compression::Zstd,
    };
    let storage_name = backup_status.storage_ref.clone().unwrap_or_default();
    let store: Arc<dyn ObjectStore> = match ctx
        .stores
        .backup_storages
        .get(&ObjectRef::new(&storage_name))
        .and_then(|s| ctx.storages.get(&s))
    {
        Some(store) => store,
        None => {
            check!(Check::<()>::Wait {
                reason: "StorageUnavailable",
                message: format!("the BackupStorage {storage_name} is missing or cannot be used"),
                after: std::time::Duration::from_secs(10),
            });
            unreachable!("check! returns on Wait");
        }
    };

    // the key: the identity, read for this restore only
    let tenant_ref = TenantRef::of(&tenant).map_err(|source| Error::Key {
        tenant: tenant.name_any(),
        source,
    })?;
    let identity = match ctx.keys.identity(&tenant_ref).await {
        Ok(identity) => identity,
        Err(KeyError::Missing { location, .. }) => {
            check!(fail(
                "KeyDestroyed",
                format!(
                    "the tenant's key is gone ({location} does not exist): every backup encrypted to it is unreadable, by design of crypto-shredding"
                )
            ));
            unreachable!("check! returns on Fail");
        }
        Err(source) => {
            return Err(Error::Key {
                tenant: tenant.name_any(),
                source,
            });
        }
    };
    // Landlord never rotates a tenant key: another key means the one the backup was
    // encrypted to was destroyed (and a new one made for the Tenant since).
    if backup_status.key_id.as_deref() != Some(identity.key_id().as_str()) {
        check!(fail(
            "KeyDestroyed",
            format!(
                "the backup is encrypted to {}, which is gone: the tenant's key is now {}, and nothing can decrypt the backup",
                backup_status
                    .key_id
                    .as_deref()
                    .unwrap_or("an unrecorded key"),
                identity.key_id()
            )
        ));
    }

    // where to restore, as the tenant's role
    let login: Login = check!(tenant_login(ctx, &tenant, &db, &target).await?);
    let Some(connection) = ctx.databases.get(&db.server) else {
        check!(Check::<()>::Wait {
            reason: "DatabaseUnavailable",
            message: format!("the DatabaseServer {} cannot be reached", db.server),
            after: std::time::Duration::from_secs(10),
        });
        unreachable!("check! returns on Wait");
    };
    let ids = TenantIdentifiers::for_tenant(&tenant.name_any());

    // Running from here on: a crash leaves it Running, and the next look fails it.
    status.phase = Some(RestorePhase::Running);
    status.start_time = Some(now());
    set_condition(
        &mut status.conditions,
        completed(
            ConditionStatus::Unknown,
            "Running",
            format!("restoring {} into {target}", backup.name_any()),
            generation,
        ),
    );
    write(ctx, restore, &status).await?;
    match mode {
        Mode::NewDatabase => {
            if let Err(e) = connection
                .admin
                .create_restore_target(&ids, &target, &marker(restore))
                .await
            {
                let reason = if matches!(e, crate::database::DatabaseError::Conflict { .. }) {
                    "TargetExists"
                } else {
                    "DatabaseUnavailable"
                };
                return failed(ctx, restore, status, reason, &e.to_string()).await;
            }
        }
        Mode::InPlace => {
            let terminated = match connection.admin.terminate_tenant_sessions(&ids).await {
                Ok(n) => n,
                Err(e) => {
                    return failed(ctx, restore, status, "DatabaseUnavailable", &e.to_string())
                        .await;
                }
            };
            super::status::event(
                ctx,
                restore,
                EventType::Normal,
                "ReplacingTenantDatabase",
                &format!(
                    "terminated {terminated} sessions of {target} and replacing its contents with the backup {} (one transaction)",
                    backup.name_any()
                ),
            )
            .await;
        }
    }
    let expected = Expected { sha256, size };
    let downloaded = match restore::download_verified(&*store, &object_key, &expected).await {
        Ok(d) => d,
        Err(e) => return failed(ctx, restore, status, e.reason(), &e.to_string()).await,
    };
    let pg_restore = pg_restore_binary(ctx);
    let source = login.source.clone();
    let result = tokio::task::spawn_blocking(move || {
        let result = restore::restore_file(
            &downloaded,
            identity.as_age(),
            compression,
            &pg_restore,
            &source,
            mode,
        );
        drop(identity);
        result
    })
    .await;
    drop(login);
    let restored = match result {
        Ok(Ok(restored)) => restored,
        Ok(Err(e)) => return failed(ctx, restore, status, e.reason(), &e.to_string()).await,
        Err(_) => {
            return failed(
                ctx,
                restore,
                status,
                "RestoreFailed",
                "the restore thread panicked",
            )
            .await;
        }
    };
    let before = restore.status.clone().unwrap_or_default();
    status.phase = Some(RestorePhase::Completed);
    status.completion_time = Some(now());
    status.sha256 = Some(expected.sha256.clone());
    status.restored_bytes = i64::try_from(restored.dump_size).ok();
    set_condition(
        &mut status.conditions,
        completed(
            ConditionStatus::True,
            "Restored",
            format!(
                "{} restored into {target} ({} bytes of dump; the object's SHA-256 was the backup's)",
                backup.name_any(),
                restored.dump_size
            ),
            generation,
        ),
    );
    info!(restore = %restore.name_any(), backup = %backup.name_any(), target, "restore completed");
    finish(ctx, restore, &before, &status).await?;
    Ok(Action::await_change())
}

/// `pg_restore` beside the configured `pg_dump`, else the newest installed.
pub(super) fn pg_restore_binary(ctx: &Context) -> std::path::PathBuf {
    let pg_dump = ctx
        .config
        .backup
        .pg_dump
        .clone()
        .unwrap_or_else(super::tenant_backup::default_pg_dump);
    match pg_dump.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("pg_restore"),
        _ => std::path::PathBuf::from("pg_restore"),
    }
}
