//! The TenantBackup controller: runs each backup, created by a tenant's schedule or by
//! hand, once, with bounded concurrency, and records what it wrote.
//!
//! # Phases
//!
//! `Pending` → `Running` → `Completed` or `Failed`, with the condition `Completed`
//! saying why at each step (`Queued`, `WaitingForTenant`, `WaitingForDatabase`,
//! `Running`, `Completed`, or the failure's reason).
//!
//! - A Pending backup is checked first: its Tenant exists, is the one it was created for
//!   (by UID: a Tenant re-created under the same name is another tenant), has its
//!   database, its key and a usable BackupStorage. What can come right by itself (a
//!   database still provisioning, a storage not yet checked) keeps it Pending, looked at
//!   again with back-off, for at most [`PENDING_DEADLINE`]; what cannot (no such Tenant,
//!   a key that is not the one the Tenant recorded, a pg_dump older than the server)
//!   fails it at once.
//! - At most one backup per tenant runs at a time, and at most `--backup-concurrency` in
//!   all ([`Runner`]); the others wait in a first-come queue (`Queued`), so ten thousand
//!   tenants due at 03:00 are dumped a few at a time.
//! - A running backup is a task of this replica's leadership term. A backup found
//!   `Running` that no task of this replica runs was interrupted (a crash, a lost
//!   leadership): its incomplete multipart upload is aborted and it is tried again,
//!   up to [`MAX_ATTEMPTS`] attempts, then `Failed` with reason `Interrupted`. It is never
//!   left `Running`.
//! - A failure that may pass (the database or the storage unreachable) is tried again
//!   after a back-off (30 s, then 60 s), up to [`MAX_ATTEMPTS`]; others fail at once.
//!
//! # Deletion
//!
//! The finalizer `landlord.dev/backup-objects` deletes the backup's object and manifest
//! before the TenantBackup goes (retention deletes TenantBackups; so may anyone). Objects
//! still under Object Lock cannot be deleted: the TenantBackup then stays, with the
//! condition `ObjectsDeleted=False` (reason `ObjectLocked`) until the lock expires.
//!
//! # What the backup reads
//!
//! The tenant key's public half only (a metadata-only GET of the key Secret, compared
//! with the Tenant's `status.keyId`: a key Secret replaced behind Landlord's back would
//! otherwise receive the backups); the tenant role's password from the credentials Secret
//! Landlord wrote in the tenant's primary namespace (one GET, checked to record the
//! Tenant's UID); the DatabaseServer's address and CA from the DatabaseServer registry.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::status::Conditions;
use super::{Context, Error, backup_storage, tenant_database};
use crate::api::{
    BackupPhase, Condition, ConditionStatus, Tenant, TenantBackup, TenantBackupStatus, TlsMode,
    find_condition, set_condition,
};
use crate::backup::job::{self, BackupError, Job};
use crate::backup::manifest;
use crate::backup::pg_dump::{Compression, DumpSource, PgDump};
use crate::database::Password;
use crate::isolation::ownership;
use crate::keys::TenantRef;
use crate::storage::{Deletion, ObjectStore, StorageError};

/// The finalizer that deletes a backup's objects with it.
pub const FINALIZER: &str = "landlord.dev/backup-objects";

/// Condition types of a TenantBackup.
pub mod conditions {
    /// Whether the backup completed, and if not, why.
    pub const COMPLETED: &str = "Completed";
    /// Set while a deleted backup's objects cannot be deleted yet.
    pub const OBJECTS_DELETED: &str = "ObjectsDeleted";
}

/// Annotation of a scheduled TenantBackup: the schedule slot it stands for (RFC 3339).
pub const SCHEDULED_FOR_ANNOTATION: &str = "landlord.dev/scheduled-for";

/// The name of this controller in metrics and back-off.
const CONTROLLER: &str = "tenantbackup";

/// Attempts per backup, interruptions included.
pub const MAX_ATTEMPTS: i32 = 3;

/// The longest a backup stays Pending for a reason other than the queue (its database,
/// key or storage not usable) before it fails with that reason.
pub const PENDING_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// The back-off before attempt `n + 1` after `n` attempts.
fn retry_delay(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 6)).unwrap_or(0);
    Duration::from_secs(30u64 << exponent)
}

impl Conditions for TenantBackupStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

/// Settings of the backups this operator runs.
#[derive(Clone, Debug)]
pub struct BackupConfig {
    /// How many backups run at once, over all tenants.
    pub concurrency: usize,
    /// How many restore drills run at once on one database server.
    pub drill_concurrency: usize,
    /// The pg_dump binary; the newest one found when unset.
    pub pg_dump: Option<PathBuf>,
    /// Bytes per streamed chunk (one multipart part).
    pub chunk: usize,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            concurrency: 2,
            drill_concurrency: 1,
            pg_dump: None,
            chunk: crate::backup::pipeline::DEFAULT_CHUNK,
        }
    }
}

/// A backup task of this term.
struct Active {
    backup_uid: String,
    backup: String,
    task: tokio::task::AbortHandle,
}

/// The backups this replica runs: a global limit, and one per tenant.
pub struct Runner {
    permits: Arc<Semaphore>,
    /// By the Tenant's UID.
    active: Mutex<HashMap<String, Active>>,
}

impl Runner {
    /// A runner of at most `concurrency` backups at once.
    pub fn new(concurrency: usize) -> Runner {
        Runner {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            active: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this replica runs (or queued) the backup with `uid`.
    fn runs(&self, uid: &str) -> bool {
        self.lock().values().any(|a| a.backup_uid == uid)
    }

    /// The backup of tenant `tenant_uid` that runs now, other than `uid`.
    fn other_of_tenant(&self, tenant_uid: &str, uid: &str) -> Option<String> {
        self.lock()
            .get(tenant_uid)
            .filter(|a| a.backup_uid != uid)
            .map(|a| a.backup.clone())
    }

    /// Stops the backup with `uid`, if this replica runs it. Its upload is then left
    /// incomplete: the caller aborts it.
    fn cancel(&self, uid: &str) -> bool {
        let mut active = self.lock();
        let Some(tenant) = active
            .iter()
            .find(|(_, a)| a.backup_uid == uid)
            .map(|(t, _)| t.clone())
        else {
            return false;
        };
        if let Some(a) = active.remove(&tenant) {
            a.task.abort();
        }
        true
    }

    fn finished(&self, tenant_uid: &str, uid: &str) {
        let mut active = self.lock();
        if active.get(tenant_uid).is_some_and(|a| a.backup_uid == uid) {
            active.remove(tenant_uid);
        }
    }

    /// Whether a backup started now would have to wait for a permit.
    fn saturated(&self) -> bool {
        self.permits.available_permits() == 0
    }
}

fn backup_error(backup: &TenantBackup) -> impl Fn(kube::Error) -> Error + '_ {
    move |source| Error::Object {
        kind: "TenantBackup",
        name: backup.name_any(),
        source,
    }
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Entry point for the controller runtime.
pub async fn reconcile(backup: Arc<TenantBackup>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::reconcile_counted(&ctx, CONTROLLER, &backup.name_any(), async {
        if backup.metadata.deletion_timestamp.is_some() {
            return delete(&backup, &ctx).await;
        }
        let api: Api<TenantBackup> = Api::all(ctx.client.clone());
        if !backup.finalizers().iter().any(|f| f == FINALIZER) {
            super::finalizers::ensure(&api, &*backup, FINALIZER)
                .await
                .map_err(backup_error(&backup))?;
            return Ok(Action::await_change());
        }
        match backup.status.as_ref().and_then(|s| s.phase) {
            Some(BackupPhase::Completed) => {
                if let Some(requested) = super::drill::pending_request(&backup) {
                    super::drill::start(backup.clone(), ctx.clone(), requested);
                }
                Ok(Action::await_change())
            }
            Some(BackupPhase::Failed) => Ok(Action::await_change()),
            Some(BackupPhase::Running) if ctx.backups.runs(&uid(&backup)) => {
                Ok(Action::await_change())
            }
            Some(BackupPhase::Running) => interrupted(&backup, &ctx).await,
            Some(BackupPhase::Pending) | None if ctx.backups.runs(&uid(&backup)) => {
                Ok(Action::await_change())
            }
            Some(BackupPhase::Pending) | None => start(backup, ctx.clone()).await,
        }
    })
    .await
}

/// Backs off by error category.
pub fn error_policy(backup: Arc<TenantBackup>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retries
        .requeue(CONTROLLER, "TenantBackup", &backup.name_any(), error)
}

fn uid(backup: &TenantBackup) -> String {
    backup.uid().unwrap_or_default()
}

/// Writes `status` if it changed, with an Event for each condition that changed.
async fn finish(
    ctx: &Context,
    backup: &TenantBackup,
    status: TenantBackupStatus,
) -> Result<(), Error> {
    let old = backup.status.clone().unwrap_or_default();
    let api: Api<TenantBackup> = Api::all(ctx.client.clone());
    super::status::finish(ctx, &api, backup, &old, &status, conditions::COMPLETED)
        .await
        .map_err(backup_error(backup))
}

fn completed(
    status: ConditionStatus,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition::new(conditions::COMPLETED, status, reason, message, generation)
}

/// What a Pending backup's checks found.
pub(super) enum Check<T> {
    Ready(T),
    /// Not yet: stays Pending with this reason, looked at again after `after`.
    Wait {
        reason: &'static str,
        message: String,
        after: Duration,
    },
    /// Never: Failed with this reason.
    Fail {
        reason: &'static str,
        message: String,
    },
}

fn wait<T>(reason: &'static str, message: impl Into<String>) -> Check<T> {
    Check::Wait {
        reason,
        message: message.into(),
        after: Duration::from_secs(10),
    }
}

fn fail<T>(reason: &'static str, message: impl Into<String>) -> Check<T> {
    Check::Fail {
        reason,
        message: message.into(),
    }
}

/// Everything resolved for one attempt.
struct Resolved {
    tenant_uid: String,
    storage_name: String,
    store: Arc<dyn ObjectStore>,
    job: Job,
    /// Keeps the CA file pg_dump verifies the server with until the dump is done.
    _ca_dir: Option<crate::backup::pg_dump::PrivateDir>,
}

/// Starts a Pending backup, or says why it waits or fails.
async fn start(backup: Arc<TenantBackup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let mut status = backup.status.clone().unwrap_or_default();
    let generation = backup.metadata.generation;
    status.phase = Some(BackupPhase::Pending);
    status.observed_generation = generation;
    let attempts = status.attempts.unwrap_or(0);
    // The back-off after a failed attempt, counted from its start.
    if attempts > 0
        && let Some(Time(started)) = &status.start_time
    {
        let next = started
            .checked_add(jiff::SignedDuration::try_from(retry_delay(attempts)).unwrap_or_default())
            .unwrap_or(*started);
        let now = jiff::Timestamp::now();
        if next > now {
            finish(&ctx, &backup, status).await?;
            let wait = now.duration_until(next).unsigned_abs();
            return Ok(Action::requeue(wait));
        }
    }
    let resolved = match resolve(&backup, &ctx).await? {
        Check::Ready(resolved) => resolved,
        Check::Wait {
            reason,
            message,
            after,
        } => {
            let age = backup
                .meta()
                .creation_timestamp
                .as_ref()
                .map(|t| jiff::Timestamp::now().duration_since(t.0).unsigned_abs())
                .unwrap_or_default();
            if age > PENDING_DEADLINE {
                return failed(
                    &ctx,
                    &backup,
                    status,
                    reason,
                    &format!(
                        "{message}; gave up after waiting {} minutes",
                        PENDING_DEADLINE.as_secs() / 60
                    ),
                )
                .await;
            }
            set_condition(
                &mut status.conditions,
                completed(ConditionStatus::Unknown, reason, message, generation),
            );
            finish(&ctx, &backup, status).await?;
            return Ok(Action::requeue(after));
        }
        Check::Fail { reason, message } => {
            return failed(&ctx, &backup, status, reason, &message).await;
        }
    };
    status.tenant_uid = Some(resolved.tenant_uid.clone());
    // One backup per tenant at a time: the other one triggers this when it ends.
    if let Some(other) = ctx
        .backups
        .other_of_tenant(&resolved.tenant_uid, &uid(&backup))
    {
        set_condition(
            &mut status.conditions,
            completed(
                ConditionStatus::Unknown,
                "WaitingForTenant",
                format!("the backup {other} of this tenant is running; this one starts after it"),
                generation,
            ),
        );
        finish(&ctx, &backup, status).await?;
        return Ok(Action::requeue(ctx.config.resync));
    }
    if ctx.backups.saturated() {
        set_condition(
            &mut status.conditions,
            completed(
                ConditionStatus::Unknown,
                "Queued",
                format!(
                    "waiting for one of the {} backups that may run at once (--backup-concurrency)",
                    ctx.config.backup.concurrency
                ),
                generation,
            ),
        );
    }
    finish(&ctx, &backup, status.clone()).await?;
    spawn(backup, ctx, resolved, status);
    Ok(Action::await_change())
}

/// Resolves what an attempt needs, from the caches and a few GETs.
async fn resolve(backup: &TenantBackup, ctx: &Context) -> Result<Check<Resolved>, Error> {
    let spec = &backup.spec;
    let Some(tenant) = ctx.stores.tenants.get(&ObjectRef::new(&spec.tenant_ref)) else {
        return Ok(wait(
            "TenantNotFound",
            format!("there is no Tenant {}", spec.tenant_ref),
        ));
    };
    let tenant_uid = tenant.uid().unwrap_or_default();
    // The UID this backup is for: recorded at the first look, or by the schedule.
    let recorded = backup
        .status
        .as_ref()
        .and_then(|s| s.tenant_uid.clone())
        .or_else(|| {
            ownership::recorded_uid(backup.metadata.annotations.as_ref()).map(str::to_owned)
        });
    if let Some(recorded) = recorded
        && recorded != tenant_uid
    {
        return Ok(fail(
            "TenantReplaced",
            format!(
                "this backup is for the Tenant {} with UID {recorded}, which no longer exists; the Tenant of that name now is another one (UID {tenant_uid})",
                spec.tenant_ref
            ),
        ));
    }
    if tenant.metadata.deletion_timestamp.is_some() {
        return Ok(fail(
            "TenantDeleting",
            format!("the Tenant {} is being deleted", spec.tenant_ref),
        ));
    }
    if tenant.spec.database.is_none() {
        return Ok(fail(
            "NoDatabase",
            format!("the Tenant {} has no database to back up", spec.tenant_ref),
        ));
    };
    let tenant_status = tenant.status.clone().unwrap_or_default();
    let database_condition =
        find_condition(&tenant_status.conditions, tenant_database::DATABASE_READY);
    if let Some(c) = database_condition.filter(|c| c.status == ConditionStatus::False) {
        return Ok(wait(
            "DatabaseUnavailable",
            format!(
                "the database of Tenant {} is not ready ({}: {})",
                spec.tenant_ref, c.reason, c.message
            ),
        ));
    }
    let database_ready = database_condition.is_some_and(Condition::is_true);
    let Some(db) = tenant_status.database.clone().filter(|_| database_ready) else {
        return Ok(wait(
            "WaitingForDatabase",
            format!(
                "the database of Tenant {} is not ready yet",
                spec.tenant_ref
            ),
        ));
    };
    let Some(recorded_key) = tenant_status.key_id.clone() else {
        return Ok(wait(
            "WaitingForKey",
            format!(
                "the Tenant {} has no key yet (status.keyId)",
                spec.tenant_ref
            ),
        ));
    };

    // storage
    let storage_name = spec
        .storage_ref
        .clone()
        .or_else(|| tenant.spec.backup.as_ref().map(|b| b.storage_ref.clone()));
    let Some(storage_name) = storage_name else {
        return Ok(fail(
            "NoStorage",
            format!(
                "neither spec.storageRef nor the Tenant {}'s spec.backup.storageRef names a BackupStorage",
                spec.tenant_ref
            ),
        ));
    };
    let storage = ctx
        .stores
        .backup_storages
        .get(&ObjectRef::new(&storage_name));
    let Some(storage) = storage else {
        return Ok(wait(
            "StorageNotFound",
            format!("there is no BackupStorage {storage_name}"),
        ));
    };
    let store = match ctx.storages.lookup(&storage) {
        backup_storage::Lookup::Usable(store) => store,
        backup_storage::Lookup::NotYetChecked => {
            return Ok(Check::Wait {
                reason: "StorageNotChecked",
                message: format!("the BackupStorage {storage_name} has not been checked yet"),
                after: Duration::from_secs(2),
            });
        }
        backup_storage::Lookup::Unusable => {
            let why = storage
                .status
                .as_ref()
                .and_then(|s| find_condition(&s.conditions, backup_storage::conditions::AVAILABLE))
                .map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_default();
            return Ok(wait(
                "StorageUnavailable",
                format!("the BackupStorage {storage_name} cannot be used ({why})"),
            ));
        }
    };

    // key: the public half only, and only the one the Tenant recorded
    let tenant_ref = TenantRef::of(&tenant).map_err(|source| Error::Key {
        tenant: spec.tenant_ref.clone(),
        source,
    })?;
    let key = ctx
        .keys
        .recipient(&tenant_ref)
        .await
        .map_err(|source| Error::Key {
            tenant: spec.tenant_ref.clone(),
            source,
        })?;
    let Some(key) = key else {
        return Ok(wait(
            "KeyMissing",
            format!(
                "the key of Tenant {} is missing from {}",
                spec.tenant_ref,
                ctx.keys.location(&tenant_ref)
            ),
        ));
    };
    if key.key_id.as_str() != recorded_key {
        return Ok(fail(
            "KeyMismatch",
            format!(
                "the key in {} is {}, not {recorded_key} as the Tenant recorded; nothing is encrypted to a key the Tenant did not record",
                key.location, key.key_id
            ),
        ));
    }

    // where the database is, and the tenant role's credentials
    let login = match tenant_login(ctx, &tenant, &db, &db.name).await? {
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
        Check::Fail { reason, message } => return Ok(Check::Fail { reason, message }),
    };
    let (server_version, server_major) = (login.server_version.clone(), login.server_major);

    // pg_dump
    let binary = ctx
        .config
        .backup
        .pg_dump
        .clone()
        .unwrap_or_else(default_pg_dump);
    let pg_dump = match tokio::task::spawn_blocking(move || PgDump::find(&binary)).await {
        Ok(Ok(pg_dump)) => pg_dump,
        Ok(Err(e)) => return Ok(fail("PgDumpMissing", e.to_string())),
        Err(_) => return Ok(fail("PgDumpMissing", "looking for pg_dump panicked")),
    };
    if let Some(major) = server_major
        && let Err(e) = pg_dump.check_server(major)
    {
        return Ok(fail("PgDumpTooOld", e.to_string()));
    }

    let compression: Compression = tenant
        .spec
        .backup
        .as_ref()
        .map(|b| b.compression.into())
        .unwrap_or(Compression::Zstd);
    let job = Job {
        pg_dump,
        server_major,
        server_version,
        server: db.server.clone(),
        source: login.source,
        recipient: key.recipient,
        compression,
        store: store.clone(),
        tenant: spec.tenant_ref.clone(),
        tenant_uid: tenant_uid.clone(),
        backup: backup.name_any(),
        object_lock: storage.spec.object_lock.clone(),
        chunk: ctx.config.backup.chunk,
    };
    Ok(Check::Ready(Resolved {
        tenant_uid,
        storage_name,
        store,
        job,
        _ca_dir: login.ca_dir,
    }))
}

/// How to log in to a tenant's database as its role: address, TLS and CA from the
/// DatabaseServer registry, the password from the credentials Secret Landlord wrote for
/// this Tenant (one GET, checked to record the Tenant's UID).
pub(super) struct Login {
    pub source: DumpSource,
    /// Keeps the CA file libpq verifies the server with.
    pub ca_dir: Option<crate::backup::pg_dump::PrivateDir>,
    pub server_version: Option<String>,
    pub server_major: Option<u32>,
}

/// The [`Login`] of `tenant` (whose database status is `db`) to `database_name`.
pub(super) async fn tenant_login(
    ctx: &Context,
    tenant: &Tenant,
    db: &crate::api::TenantDatabaseStatus,
    database_name: &str,
) -> Result<Check<Login>, Error> {
    let tenant_uid = tenant.uid().unwrap_or_default();
    // database server
    let Some(connection) = ctx.databases.get(&db.server) else {
        return Ok(wait(
            "DatabaseUnavailable",
            format!(
                "the DatabaseServer {} cannot be reached (see its Reachable condition)",
                db.server
            ),
        ));
    };
    let server_version = ctx
        .stores
        .database_servers
        .get(&ObjectRef::new(&db.server))
        .and_then(|s| s.status.as_ref()?.server_version.clone());
    let server_major = server_version
        .as_deref()
        .and_then(crate::backup::pg_dump::parse_version)
        .map(|(_, major)| major);

    // the tenant role's password, from the Secret Landlord wrote for this Tenant
    let Some(secret_ref) = db.credentials_secret.clone() else {
        return Ok(wait(
            "WaitingForDatabase",
            "the Tenant records no credentials Secret yet",
        ));
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &secret_ref.namespace);
    let secret = secrets
        .get_opt(&secret_ref.name)
        .await
        .map_err(|source| Error::Object {
            kind: "Secret",
            name: format!("{}/{}", secret_ref.namespace, secret_ref.name),
            source,
        })?;
    let Some(secret) = secret else {
        return Ok(wait(
            "CredentialsMissing",
            format!(
                "the Secret {}/{} is missing",
                secret_ref.namespace, secret_ref.name
            ),
        ));
    };
    if ownership::recorded_uid(secret.metadata.annotations.as_ref()) != Some(tenant_uid.as_str()) {
        return Ok(fail(
            "SecretTaken",
            format!(
                "the Secret {}/{} does not record this Tenant's UID; Landlord does not use its password",
                secret_ref.namespace, secret_ref.name
            ),
        ));
    }
    let Some(password) = secret
        .data
        .as_ref()
        .and_then(|d| d.get(tenant_database::PASSWORD_KEY))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|p| !p.is_empty())
    else {
        return Ok(wait(
            "CredentialsMissing",
            format!(
                "the Secret {}/{} has no password",
                secret_ref.namespace, secret_ref.name
            ),
        ));
    };

    let (sslmode, ca_dir, ca_file) = match (connection.tls, &connection.ca_pem) {
        (TlsMode::Disable, _) => ("disable", None, None),
        (TlsMode::Require, _) => ("require", None, None),
        (TlsMode::VerifyFull, None) => ("verify-full", None, None),
        (TlsMode::VerifyFull, Some(pem)) => {
            let dir = crate::backup::pg_dump::PrivateDir::new().map_err(|e| {
                Error::DatabaseNotReady(format!("cannot write the server's CA for pg_dump: {e}"))
            })?;
            let path = dir.write_file("ca.crt", pem).map_err(|e| {
                Error::DatabaseNotReady(format!("cannot write the server's CA for pg_dump: {e}"))
            })?;
            ("verify-full", Some(dir), Some(path))
        }
    };
    Ok(Check::Ready(Login {
        source: DumpSource {
            host: connection.host.clone(),
            port: connection.port,
            database: database_name.to_owned(),
            user: db.role.clone(),
            password: Password::new(password),
            sslmode: sslmode.to_owned(),
            ca_file,
        },
        ca_dir,
        server_version,
        server_major,
    }))
}

/// The newest `pg_dump` of the PostgreSQL packages installed, else `pg_dump` on PATH.
pub fn default_pg_dump() -> PathBuf {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let path = e.path().join("bin/pg_dump");
            path.exists().then_some((major, path))
        })
        .max_by_key(|(major, _)| *major);
    newest
        .map(|(_, p)| p)
        .unwrap_or_else(|| PathBuf::from("pg_dump"))
}

/// Runs one attempt on a task of this term: waits for a permit, records `Running`, runs
/// the backup, records the outcome.
fn spawn(
    backup: Arc<TenantBackup>,
    ctx: Arc<Context>,
    resolved: Resolved,
    status: TenantBackupStatus,
) {
    let backup_uid = uid(&backup);
    let tenant_uid = resolved.tenant_uid.clone();
    let name = backup.name_any();
    let context = ctx.clone();
    let (uid_for_task, tenant_for_task) = (backup_uid.clone(), tenant_uid.clone());
    // Holding the lock while spawning: the task's `finished` cannot run before the entry
    // exists.
    let mut active = ctx.backups.lock();
    let task = tokio::spawn(async move {
        let ctx = context;
        let outcome = attempt(&backup, &ctx, resolved, status).await;
        ctx.backups.finished(&tenant_for_task, &uid_for_task);
        if let Err(e) = outcome {
            warn!(backup = %backup.name_any(), error = %e, "recording the backup's outcome failed; the next look retries");
        }
        // The Tenant records its newest backup and applies retention; its other Pending
        // backups may start now.
        let _ = ctx
            .tenant_triggers
            .unbounded_send(ObjectRef::new(&backup.spec.tenant_ref));
        for name in ctx.stores.backups_by_tenant.names(&backup.spec.tenant_ref) {
            let Some(other) = ctx.stores.tenant_backups.get(&ObjectRef::new(&name)) else {
                continue;
            };
            let pending = matches!(
                other.status.as_ref().and_then(|s| s.phase),
                None | Some(BackupPhase::Pending)
            );
            if pending && other.uid() != backup.uid() {
                let _ = ctx
                    .backup_triggers
                    .unbounded_send(ObjectRef::from_obj(&*other));
            }
        }
    });
    active.insert(
        tenant_uid,
        Active {
            backup_uid,
            backup: name,
            task: task.abort_handle(),
        },
    );
}

async fn attempt(
    backup: &TenantBackup,
    ctx: &Context,
    resolved: Resolved,
    mut status: TenantBackupStatus,
) -> Result<(), Error> {
    let permit = ctx.backups.permits.clone().acquire_owned().await;
    let Ok(_permit) = permit else {
        return Ok(());
    };
    let generation = backup.metadata.generation;
    let keys = manifest::object_keys(
        &resolved.job.tenant,
        &resolved.tenant_uid,
        &resolved.job.backup,
        resolved.job.compression,
    );
    let attempts = status.attempts.unwrap_or(0) + 1;
    status.phase = Some(BackupPhase::Running);
    status.attempts = Some(attempts);
    status.start_time = Some(now());
    status.storage_ref = Some(resolved.storage_name.clone());
    status.object_key = Some(keys.object.clone());
    status.manifest_key = Some(keys.manifest.clone());
    status.compression = Some(resolved.job.compression.as_str().to_owned());
    status.key_id = Some(
        crate::keys::KeyId::of(&resolved.job.recipient)
            .as_str()
            .to_owned(),
    );
    set_condition(
        &mut status.conditions,
        completed(
            ConditionStatus::Unknown,
            "Running",
            format!(
                "attempt {attempts} of {MAX_ATTEMPTS}: pg_dump of {} to {}",
                resolved.job.source.database,
                resolved.store.location()
            ),
            generation,
        ),
    );
    let api: Api<TenantBackup> = Api::all(ctx.client.clone());
    super::status::write(&api, backup, &status)
        .await
        .map_err(backup_error(backup))?;
    info!(backup = %backup.name_any(), tenant = %backup.spec.tenant_ref, attempt = attempts, "backup started");
    ctx.metrics.backup_running(true);
    let started = std::time::Instant::now();
    let result = job::run(resolved.job).await;
    ctx.metrics.backup_running(false);
    let seconds = started.elapsed().as_secs_f64();
    let previous = status.clone();
    match result {
        Ok(done) => {
            ctx.metrics.record_backup(None, done.summary.size, seconds);
            status.phase = Some(BackupPhase::Completed);
            status.size_bytes = i64::try_from(done.summary.size).ok();
            status.sha256 = Some(done.summary.sha256.clone());
            status.etag = done.etag.clone();
            status.manifest_sha256 = Some(done.manifest_sha256.clone());
            status.manifest_etag = done.manifest_etag.clone();
            status.key_id = Some(done.key_id.as_str().to_owned());
            status.completion_time = Some(Time(done.finished));
            status.retain_until = done.retain_until.map(Time);
            set_condition(
                &mut status.conditions,
                completed(
                    ConditionStatus::True,
                    "Completed",
                    format!(
                        "{} bytes ({} before compression and encryption) in {seconds:.1} s, encrypted to {}",
                        done.summary.size, done.summary.dump_size, done.key_id
                    ),
                    generation,
                ),
            );
            info!(backup = %backup.name_any(), tenant = %backup.spec.tenant_ref, bytes = done.summary.size, seconds, "backup completed");
        }
        Err(e) => {
            ctx.metrics.record_backup(Some(e.category()), 0, seconds);
            // No partial object is left (the upload was aborted); say so only if that is
            // what the store reports.
            abort_uploads(&*resolved.store, &keys.object).await;
            record_failure(&mut status, &e, attempts, generation);
            warn!(backup = %backup.name_any(), tenant = %backup.spec.tenant_ref, reason = e.reason(), error = %e, "backup attempt failed");
        }
    }
    super::status::write(&api, backup, &status)
        .await
        .map_err(backup_error(backup))?;
    for (type_, reason, note) in super::status::news(
        &previous.conditions,
        &status.conditions,
        conditions::COMPLETED,
    ) {
        super::status::event(ctx, backup, type_, &reason, &note).await;
    }
    Ok(())
}

/// A failed attempt: Pending again after a back-off when it may pass, else Failed.
fn record_failure(
    status: &mut TenantBackupStatus,
    e: &BackupError,
    attempts: i32,
    generation: Option<i64>,
) {
    let again = e.is_transient() && attempts < MAX_ATTEMPTS;
    if again {
        status.phase = Some(BackupPhase::Pending);
        set_condition(
            &mut status.conditions,
            completed(
                ConditionStatus::Unknown,
                e.reason(),
                format!(
                    "attempt {attempts} of {MAX_ATTEMPTS} failed, trying again in {} s: {e}",
                    retry_delay(attempts).as_secs()
                ),
                generation,
            ),
        );
    } else {
        status.phase = Some(BackupPhase::Failed);
        status.completion_time = Some(now());
        set_condition(
            &mut status.conditions,
            completed(
                ConditionStatus::False,
                e.reason(),
                format!("attempt {attempts} of {MAX_ATTEMPTS} failed: {e}"),
                generation,
            ),
        );
    }
}

/// Aborts every incomplete upload of `key` (an upload interrupted by a crash, or one the
/// store did not abort itself).
async fn abort_uploads(store: &dyn ObjectStore, key: &str) -> usize {
    let Ok(pending) = store.pending_uploads(key).await else {
        return 0;
    };
    let mut aborted = 0;
    for upload in pending.iter().filter(|u| u.key == key) {
        match store.abort_upload(upload).await {
            Ok(()) => aborted += 1,
            Err(e) => warn!(key, error = %e, "could not abort an incomplete upload"),
        }
    }
    aborted
}

/// Marks a backup Failed, with an Event.
async fn failed(
    ctx: &Context,
    backup: &TenantBackup,
    mut status: TenantBackupStatus,
    reason: &str,
    message: &str,
) -> Result<Action, Error> {
    status.phase = Some(BackupPhase::Failed);
    status.completion_time = Some(now());
    set_condition(
        &mut status.conditions,
        completed(
            ConditionStatus::False,
            reason,
            message,
            backup.metadata.generation,
        ),
    );
    ctx.metrics
        .record_backup(Some(&reason_category(reason)), 0, 0.0);
    finish(ctx, backup, status).await?;
    let _ = ctx
        .tenant_triggers
        .unbounded_send(ObjectRef::new(&backup.spec.tenant_ref));
    Ok(Action::await_change())
}

/// `TenantNotFound` → `tenant_not_found`, for the metric label.
fn reason_category(reason: &str) -> String {
    let mut out = String::new();
    for (i, c) in reason.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A backup recorded `Running` that no task of this replica runs: the operator stopped
/// (crashed, or lost its leadership) during it. Its incomplete upload is aborted; it is
/// tried again, or Failed once its attempts are used up.
async fn interrupted(backup: &TenantBackup, ctx: &Context) -> Result<Action, Error> {
    let mut status = backup.status.clone().unwrap_or_default();
    let attempts = status.attempts.unwrap_or(1);
    if let Some(store) = store_of(backup, ctx).await?
        && let Some(key) = &status.object_key
    {
        let aborted = abort_uploads(&*store, key).await;
        if aborted > 0 {
            info!(backup = %backup.name_any(), aborted, "aborted the incomplete upload of an interrupted backup");
        }
    } else if status.object_key.is_some() {
        // The storage cannot be reached: the upload cannot be aborted yet, so the backup
        // cannot be tried again either. Try later.
        return Err(Error::Storage {
            name: status.storage_ref.clone().unwrap_or_default(),
            source: StorageError::Unreachable(
                "cannot abort the interrupted backup's upload: the storage is not usable"
                    .to_owned(),
            ),
        });
    }
    let message = format!(
        "attempt {attempts} of {MAX_ATTEMPTS} was interrupted (the operator stopped or lost its leadership while it ran); its incomplete upload was aborted"
    );
    let generation = backup.metadata.generation;
    if attempts < MAX_ATTEMPTS {
        status.phase = Some(BackupPhase::Pending);
        set_condition(
            &mut status.conditions,
            completed(
                ConditionStatus::Unknown,
                "Interrupted",
                format!("{message}; trying again"),
                generation,
            ),
        );
        ctx.metrics.record_backup(Some("interrupted"), 0, 0.0);
        finish(ctx, backup, status).await?;
        Ok(Action::await_change())
    } else {
        failed(ctx, backup, status, "Interrupted", &message).await
    }
}

/// The store of the backup's storage, if it is usable now.
async fn store_of(
    backup: &TenantBackup,
    ctx: &Context,
) -> Result<Option<Arc<dyn ObjectStore>>, Error> {
    let Some(name) = backup
        .status
        .as_ref()
        .and_then(|s| s.storage_ref.clone())
        .or_else(|| backup.spec.storage_ref.clone())
    else {
        return Ok(None);
    };
    let storage = ctx.stores.backup_storages.get(&ObjectRef::new(&name));
    Ok(storage.and_then(|s| ctx.storages.get(&s)))
}

/// Deletes the backup's objects, then lets the TenantBackup go.
async fn delete(backup: &TenantBackup, ctx: &Context) -> Result<Action, Error> {
    if !backup.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let status = backup.status.clone().unwrap_or_default();
    let cancelled = ctx.backups.cancel(&uid(backup));
    let keys: Vec<String> = [status.object_key.clone(), status.manifest_key.clone()]
        .into_iter()
        .flatten()
        .collect();
    let api: Api<TenantBackup> = Api::all(ctx.client.clone());
    if !keys.is_empty() {
        let storage_name = status.storage_ref.clone().unwrap_or_default();
        let storage = ctx
            .stores
            .backup_storages
            .get(&ObjectRef::new(&storage_name));
        match storage {
            None => {
                super::status::event(
                    ctx,
                    backup,
                    EventType::Warning,
                    "ObjectsNotDeleted",
                    &format!(
                        "the BackupStorage {storage_name} no longer exists: the objects {} were not deleted (they stay encrypted to the tenant's key)",
                        keys.join(", ")
                    ),
                )
                .await;
            }
            Some(storage) => {
                let Some(store) = ctx.storages.get(&storage) else {
                    return Err(Error::Storage {
                        name: storage_name,
                        source: StorageError::Unreachable(format!(
                            "the backup's objects cannot be deleted while the storage is not usable: {}",
                            keys.join(", ")
                        )),
                    });
                };
                if cancelled || status.phase == Some(BackupPhase::Running) {
                    abort_uploads(&*store, &keys[0]).await;
                }
                let mut locked = Vec::new();
                let mut until = None;
                // Objects written under a lock that has not expired are not asked to go:
                // the store would refuse (a TenantBackup erased with its tenant, or pruned,
                // waits here for its lock without a request per look).
                let lock_ahead = status
                    .retain_until
                    .as_ref()
                    .map(|t| t.0)
                    .filter(|t| *t > jiff::Timestamp::now());
                if let Some(at) = lock_ahead {
                    locked.clone_from(&keys);
                    until = Some(at);
                } else {
                    for key in &keys {
                        match store.delete(key).await.map_err(|source| Error::Storage {
                            name: storage_name.clone(),
                            source,
                        })? {
                            Deletion::Deleted | Deletion::Absent => {}
                            Deletion::Locked { until: at } => {
                                locked.push(key.clone());
                                until = until.max(at);
                            }
                            Deletion::Refused => locked.push(key.clone()),
                        }
                    }
                }
                if !locked.is_empty() {
                    let until = until
                        .or(status.retain_until.as_ref().map(|t| t.0))
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "an unknown date".to_owned());
                    let mut status = status.clone();
                    set_condition(
                        &mut status.conditions,
                        Condition::new(
                            conditions::OBJECTS_DELETED,
                            ConditionStatus::False,
                            "ObjectLocked",
                            format!(
                                "{} under Object Lock until {until}; the TenantBackup is deleted once the lock expires",
                                locked.join(" and ")
                            ),
                            backup.metadata.generation,
                        ),
                    );
                    finish(ctx, backup, status).await?;
                    return Ok(Action::requeue(lock_wait(lock_ahead)));
                }
            }
        }
    }
    super::finalizers::remove(&api, &backup.name_any(), FINALIZER)
        .await
        .map_err(backup_error(backup))?;
    Ok(Action::await_change())
}

/// How long a deleted backup whose objects are locked waits before it looks again: until
/// the lock it was written under expires (and a minute), at most an hour, so that a lock
/// shortened or lifted in the storage is noticed.
fn lock_wait(until: Option<jiff::Timestamp>) -> Duration {
    const MOST: Duration = Duration::from_secs(3600);
    until
        .and_then(|t| Duration::try_from(t.duration_since(jiff::Timestamp::now())).ok())
        .map_or(MOST, |left| (left + Duration::from_secs(60)).min(MOST))
}

/// Creates the TenantBackup `backup`; an existing one of that name is fine (a schedule
/// slot created twice, by a crash between create and status).
pub async fn create(ctx: &Context, backup: &TenantBackup) -> Result<bool, Error> {
    let api: Api<TenantBackup> = Api::all(ctx.client.clone());
    match api.create(&PostParams::default(), backup).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(source) => Err(Error::Object {
            kind: "TenantBackup",
            name: backup.name_any(),
            source,
        }),
    }
}

/// The Tenant to look at again when one of its backups changes phase (not on every
/// status write): it records its newest backup and applies retention.
pub fn tenant_of_backup() -> impl Fn(Arc<TenantBackup>) -> Option<ObjectRef<Tenant>> + Send + Sync {
    let seen: Mutex<HashMap<String, Option<BackupPhase>>> = Mutex::new(HashMap::new());
    move |backup| {
        let phase = backup.status.as_ref().and_then(|s| s.phase);
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = seen.insert(uid(&backup), phase) != Some(phase);
        // A finished backup changes no more: forget it, so the map holds only the
        // backups in flight (a relist then costs one Tenant reconcile per backup).
        if matches!(phase, Some(BackupPhase::Completed | BackupPhase::Failed)) {
            seen.remove(&uid(&backup));
        }
        changed.then(|| ObjectRef::new(&backup.spec.tenant_ref))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off() {
        assert_eq!(retry_delay(1), Duration::from_secs(30));
        assert_eq!(retry_delay(2), Duration::from_secs(60));
        assert_eq!(retry_delay(0), Duration::from_secs(30));
    }

    #[test]
    fn reasons_become_metric_labels() {
        assert_eq!(reason_category("TenantNotFound"), "tenant_not_found");
        assert_eq!(reason_category("Interrupted"), "interrupted");
    }
}
