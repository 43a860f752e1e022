//! The controllers: one module per kind they reconcile, the one module that writes
//! ([`apply`]), and the wiring that runs them while this replica leads.
//!
//! Every controller reads from reflector caches ([`Stores`]) and never GETs in the hot
//! path; the caches are filled by watches that the controller itself polls.

mod analysis;
pub mod apply;
pub(crate) mod backup_schedule;
pub mod backup_storage;
pub mod database_server;
pub(crate) mod drill;
mod error;
pub(crate) mod finalizers;
mod index;
pub(crate) mod status;
mod subscription;
pub(crate) mod tenant;
pub mod tenant_backup;
pub mod tenant_database;
pub mod tenant_key;
pub mod tenant_restore;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Client, Resource};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::api::{BackupStorage, DatabaseServer, Tenant, TenantBackup, TenantRestore};
use crate::isolation::IsolationConfig;
use crate::isolation::analysis::AnalysisConfig;
use crate::isolation::labels::{MANAGED_BY, MANAGED_BY_LABEL, TENANT_LABEL};
use crate::keys::{KeyProvider, KubernetesKeyProvider};
use crate::operator::Metrics;

pub use error::{Error, describe};
pub use tenant_backup::BackupConfig;

/// How long a stopping operator waits for running reconciles.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Operator-level settings of the controllers.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Settings of the isolation builders (the operator's namespace).
    pub isolation: IsolationConfig,
    /// What the isolation analyzer knows of the cluster (pod CIDRs).
    pub analysis: AnalysisConfig,
    /// How often an unchanged Tenant is looked at again; catches drift outside
    /// Kubernetes (databases, keys) that no watch reports.
    pub resync: Duration,
    /// How many Tenants are reconciled at once.
    pub concurrency: u16,
    /// Who publishes the events (the Deployment's name and this pod).
    pub reporter: Reporter,
    /// Labels of the operator's own pods. When given, every DatabaseServer with a
    /// `spec.network` gets an egress NetworkPolicy for these pods in the operator's
    /// namespace.
    pub operator_pod_labels: Option<BTreeMap<String, String>>,
    /// How backups run: their concurrency and pg_dump.
    pub backup: BackupConfig,
}

/// The reflector caches every reconcile reads from.
#[derive(Clone)]
pub struct Stores {
    pub tenants: Store<Tenant>,
    pub database_servers: Store<DatabaseServer>,
    pub namespaces: Store<Namespace>,
    pub quotas: Store<ResourceQuota>,
    pub limits: Store<LimitRange>,
    pub bindings: Store<RoleBinding>,
    pub policies: Store<NetworkPolicy>,
    pub backup_storages: Store<BackupStorage>,
    pub tenant_backups: Store<TenantBackup>,
    /// The names of each tenant's TenantBackups (by `spec.tenantRef`).
    pub backups_by_tenant: Arc<index::ByTenant<TenantBackup>>,
    // No Secrets: Landlord keeps no Secret cache (cluster-wide it may only get, create
    // and patch them; list and watch only in its own namespace, for the metadata-only
    // watch in `run`); the database step reads the one credentials Secret it needs.
}

impl Stores {
    /// Waits until every cache holds a complete initial list. Before that, an object that
    /// exists (a namespace someone else owns) could look absent.
    ///
    /// kube-runtime's readiness signal wakes only one of several concurrent waiters (the
    /// controller itself waits too), so the wait is retried on a short timer; once the
    /// signal has fired, every later check returns at once.
    pub async fn ready(&self) -> Result<(), Error> {
        loop {
            match tokio::time::timeout(Duration::from_millis(100), self.wait_all()).await {
                Ok(result) => return result,
                Err(_) => continue,
            }
        }
    }

    async fn wait_all(&self) -> Result<(), Error> {
        let results = [
            self.tenants.wait_until_ready().await,
            self.database_servers.wait_until_ready().await,
            self.namespaces.wait_until_ready().await,
            self.quotas.wait_until_ready().await,
            self.limits.wait_until_ready().await,
            self.bindings.wait_until_ready().await,
            self.policies.wait_until_ready().await,
            self.backup_storages.wait_until_ready().await,
            self.tenant_backups.wait_until_ready().await,
        ];
        results
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
            .map_err(|_| Error::CacheClosed)
    }
}

/// Everything a reconcile needs: the client, the caches, the writer, the recorder.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub stores: Stores,
    pub config: ControllerConfig,
    pub metrics: Arc<Metrics>,
    /// The latest isolation verdict of every tenant, by name.
    pub isolation: Arc<RwLock<BTreeMap<String, analysis::Verdict>>>,
    /// The connection pool of every usable DatabaseServer.
    pub databases: Arc<database_server::Registry>,
    /// The object store of every usable BackupStorage.
    pub storages: Arc<backup_storage::Registry>,
    /// Where the tenants' keys live (the `kubernetes` provider: Secrets in the operator's
    /// namespace).
    pub keys: Arc<dyn KeyProvider>,
    /// Consecutive failures per object, for the back-off.
    pub retries: Retries,
    /// Asks the Tenant controller to look at a tenant now.
    pub tenant_triggers: futures::channel::mpsc::UnboundedSender<ObjectRef<Tenant>>,
    /// The backups this replica runs.
    pub backups: Arc<tenant_backup::Runner>,
    /// Asks the TenantBackup controller to look at a backup now.
    pub backup_triggers: futures::channel::mpsc::UnboundedSender<ObjectRef<TenantBackup>>,
    /// The restore drills this replica runs.
    pub drills: Arc<drill::Drills>,
    /// The operator's receipt signing key (loaded once at start-up).
    pub receipt_signer: Arc<crate::erasure::signing::ReceiptSigner>,
}

/// Runs one reconcile of `controller` for the object `name` once every cache is filled,
/// counts it in the metrics by outcome, and forgets the object's failures when it
/// succeeds.
async fn reconcile_counted(
    ctx: &Context,
    controller: &'static str,
    name: &str,
    work: impl std::future::Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    ctx.stores.ready().await?;
    let result = work.await;
    ctx.metrics
        .record_reconcile(controller, result.as_ref().err().map(Error::category));
    if result.is_ok() {
        ctx.retries.succeeded(controller, name);
    }
    result
}

/// Consecutive failed reconciles per object and error category, for exponential
/// back-off: a failure of another category than the last starts again from that
/// category's base. An object is in it only while it keeps failing.
///
/// Only a failure of the retry itself (at or after the time it was scheduled for) counts
/// as one more: a reconcile brought early by a watch event (the Tenant's own status
/// write, a related object changing) that fails the same way keeps the count and the
/// time already scheduled. Without that, a burst of events would raise the count in
/// milliseconds and push the next look minutes away from a fault that has cleared.
#[derive(Default)]
pub struct Retries(std::sync::Mutex<std::collections::HashMap<RetryKey, Failures>>);

/// A controller and the name of the object it failed on.
type RetryKey = (&'static str, String);

/// An object's run of failures.
struct Failures {
    category: &'static str,
    count: u32,
    /// When the retry scheduled after the last counted failure is due.
    due: std::time::Instant,
}

impl Retries {
    fn succeeded(&self, controller: &'static str, name: &str) {
        self.lock().remove(&(controller, name.to_owned()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<RetryKey, Failures>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a failure of `category` at `now`: the number of failures in a row (1 for
    /// the first) and the wait until the next retry, from `backoff` of that number.
    fn failed(
        &self,
        controller: &'static str,
        name: &str,
        category: &'static str,
        now: std::time::Instant,
        backoff: impl FnOnce(u32) -> Duration,
    ) -> (u32, Duration) {
        let mut map = self.lock();
        let entry = map
            .entry((controller, name.to_owned()))
            .or_insert(Failures {
                category,
                count: 0,
                due: now,
            });
        if entry.category != category {
            *entry = Failures {
                category,
                count: 0,
                due: now,
            };
        }
        if now < entry.due {
            return (entry.count, entry.due - now);
        }
        entry.count = entry.count.saturating_add(1);
        let delay = backoff(entry.count);
        entry.due = now + delay;
        (entry.count, delay)
    }

    /// The requeue after a failed reconcile of `controller` for `name`.
    pub fn requeue(
        &self,
        controller: &'static str,
        kind: &str,
        name: &str,
        error: &Error,
    ) -> Action {
        let (attempt, delay) = self.failed(
            controller,
            name,
            error.category(),
            std::time::Instant::now(),
            |attempt| error.backoff(attempt),
        );
        error.report(kind, name, attempt, delay)
    }
}

/// The Tenant an object was created for, by its `landlord.dev/tenant` label. Only a
/// trigger: the reconcile then decides by the UID the object records, so a forged label
/// costs the forger one reconcile and gains nothing. Tenants are cluster-scoped, so the
/// reference carries no namespace even for a namespaced object.
fn labelled_tenant<K: Resource>(object: K) -> Option<ObjectRef<Tenant>> {
    object
        .meta()
        .labels
        .as_ref()?
        .get(TENANT_LABEL)
        .map(|name| ObjectRef::new(name))
}

fn managed() -> watcher::Config {
    watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"))
}

/// How many objects a shared watch stream buffers for each controller subscribed to it.
const SUBSCRIBER_BUFFER: usize = 1024;

/// Drives a shared reflector (which fills its store and feeds its subscribers) for as
/// long as the controllers run. Objects are cached without their managedFields.
fn drive<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
) -> tokio::task::JoinHandle<()>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    drive_indexed(api, config, writer, |_| {})
}

/// [`drive`], showing every watch event to `index` too.
fn drive_indexed<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
    index: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    tokio::spawn(
        watcher(api, config)
            .default_backoff()
            // No controller reads managedFields: a cached object does without them
            // (they are often the larger part of a small object's metadata).
            .modify(|object| object.meta_mut().managed_fields = None)
            .inspect_ok(move |event| index(event))
            .reflect_shared(writer)
            .for_each(|event| async move {
                if let Err(e) = event {
                    warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                }
            }),
    )
}

/// Runs the controllers until `stop` turns true.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    receipt_signer: Arc<crate::erasure::signing::ReceiptSigner>,
    mut stop: watch::Receiver<bool>,
) {
    // Tenants and DatabaseServers are watched once and shared by both controllers.
    let (tenants, tenant_writer) = reflector::store_shared(SUBSCRIBER_BUFFER);
    let (database_servers, dbs_writer) = reflector::store_shared(SUBSCRIBER_BUFFER);
    let subscribe = "a shared store has subscribers";
    let tenant_events = subscription::rewake(tenant_writer.subscribe().expect(subscribe));
    let tenant_events_for_servers =
        subscription::rewake(tenant_writer.subscribe().expect(subscribe));
    let server_events = subscription::rewake(dbs_writer.subscribe().expect(subscribe));
    let server_events_for_tenants = subscription::rewake(dbs_writer.subscribe().expect(subscribe));
    let (backup_storages, storage_writer) = reflector::store_shared(SUBSCRIBER_BUFFER);
    let storage_events = subscription::rewake(storage_writer.subscribe().expect(subscribe));
    let storage_events_for_tenants =
        subscription::rewake(storage_writer.subscribe().expect(subscribe));
    let (tenant_backups, backup_writer) = reflector::store_shared(SUBSCRIBER_BUFFER);
    let backup_events = subscription::rewake(backup_writer.subscribe().expect(subscribe));
    let backup_events_for_tenants =
        subscription::rewake(backup_writer.subscribe().expect(subscribe));
    let backups_by_tenant = Arc::new(index::ByTenant::new(|b: &TenantBackup| {
        b.spec.tenant_ref.clone()
    }));
    let (namespaces, ns_writer) = reflector::store();
    let (quotas, quota_writer) = reflector::store();
    let (limits, limit_writer) = reflector::store();
    let (bindings, binding_writer) = reflector::store();
    let (policies, policy_writer) = reflector::store();
    let stores = Stores {
        tenants: tenants.clone(),
        database_servers: database_servers.clone(),
        namespaces,
        quotas,
        limits,
        bindings,
        policies,
        backup_storages: backup_storages.clone(),
        tenant_backups: tenant_backups.clone(),
        backups_by_tenant: backups_by_tenant.clone(),
    };
    let shared_watches = [
        drive(
            Api::<Tenant>::all(client.clone()),
            watcher::Config::default(),
            tenant_writer,
        ),
        drive(
            Api::<DatabaseServer>::all(client.clone()),
            watcher::Config::default(),
            dbs_writer,
        ),
        drive(
            Api::<BackupStorage>::all(client.clone()),
            watcher::Config::default(),
            storage_writer,
        ),
        drive_indexed(
            Api::<TenantBackup>::all(client.clone()),
            watcher::Config::default(),
            backup_writer,
            move |event| backups_by_tenant.apply(event),
        ),
    ];

    // Namespaces and NetworkPolicies are watched whole: the no-hijack check must see
    // namespaces Landlord did not create, and the isolation analysis must see the
    // policies tenant admins write themselves.
    let ns_stream = reflector::reflector(
        ns_writer,
        watcher(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    let policy_stream = reflector::reflector(
        policy_writer,
        watcher(
            Api::<NetworkPolicy>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    let quota_stream = reflector::reflector(
        quota_writer,
        watcher(Api::<ResourceQuota>::all(client.clone()), managed()),
    )
    .default_backoff()
    .touched_objects();
    let limit_stream = reflector::reflector(
        limit_writer,
        watcher(Api::<LimitRange>::all(client.clone()), managed()),
    )
    .default_backoff()
    .touched_objects();
    let binding_stream = reflector::reflector(
        binding_writer,
        watcher(Api::<RoleBinding>::all(client.clone()), managed()),
    )
    .default_backoff()
    .touched_objects();

    let isolation = Arc::new(RwLock::new(BTreeMap::new()));
    let (trigger_tx, trigger_rx) = futures::channel::mpsc::unbounded::<ObjectRef<Tenant>>();
    let (backup_trigger_tx, backup_trigger_rx) =
        futures::channel::mpsc::unbounded::<ObjectRef<TenantBackup>>();
    let analysis = tokio::spawn(analysis::keep_analyzing(
        stores.clone(),
        config.analysis.clone(),
        isolation.clone(),
        trigger_tx.clone(),
        stop.clone(),
    ));

    let context = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), config.reporter.clone()),
        stores: stores.clone(),
        config: config.clone(),
        metrics,
        isolation,
        databases: Arc::new(database_server::Registry::default()),
        storages: Arc::new(backup_storage::Registry::default()),
        keys: Arc::new(KubernetesKeyProvider::new(
            client.clone(),
            &config.isolation.operator_namespace,
        )),
        retries: Retries::default(),
        tenant_triggers: trigger_tx,
        backups: Arc::new(tenant_backup::Runner::new(config.backup.concurrency)),
        backup_triggers: backup_trigger_tx,
        drills: Arc::new(drill::Drills::new(config.backup.drill_concurrency)),
        receipt_signer,
    });

    info!(
        "starting the Tenant, DatabaseServer, BackupStorage, TenantBackup and TenantRestore controllers"
    );
    let graceful = |mut stop: watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
    };
    let tenant_controller = Controller::for_shared_stream(tenant_events, tenants.clone())
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .watches_stream(ns_stream, labelled_tenant)
        .watches_stream(policy_stream, labelled_tenant)
        .watches_stream(quota_stream, labelled_tenant)
        .watches_stream(limit_stream, labelled_tenant)
        .watches_stream(binding_stream, labelled_tenant)
        .watches_shared_stream(
            server_events_for_tenants,
            tenants_of_server(tenants.clone()),
        )
        // a BackupStorage appears, changes or becomes (un)usable: the Tenants backed up to
        // it report that in BackupScheduled
        .watches_shared_stream(
            storage_events_for_tenants,
            tenants_of_storage(tenants.clone()),
        )
        // a backup's phase changes: the Tenant records its newest backup and applies
        // retention, from the cache that now holds the change
        .watches_shared_stream(backup_events_for_tenants, tenant_backup::tenant_of_backup())
        .reconcile_on(trigger_rx)
        .graceful_shutdown_on(graceful(stop.clone()))
        .run(tenant::reconcile, tenant::error_policy, context.clone())
        .for_each(|result| log_failure("Tenant", result));
    let server_controller = Controller::for_shared_stream(server_events, database_servers.clone())
        .with_config(controller::Config::default().concurrency(2))
        .watches_stream(
            operator_secrets(&client, &config.isolation.operator_namespace),
            configured_by(database_servers.clone(), |server: &DatabaseServer, name| {
                server.spec.admin_credentials.secret.name == name
                    || server
                        .spec
                        .tls
                        .ca_secret
                        .as_ref()
                        .is_some_and(|ca| ca.name == name)
            }),
        )
        .watches_shared_stream(
            tenant_events_for_servers,
            database_server::server_of_tenant(),
        )
        .graceful_shutdown_on(graceful(stop.clone()))
        .run(
            database_server::reconcile,
            database_server::error_policy,
            context.clone(),
        )
        .for_each(|result| log_failure("DatabaseServer", result));
    let storages = backup_storages.clone();
    let storage_controller = Controller::for_shared_stream(storage_events, backup_storages)
        .with_config(controller::Config::default().concurrency(2))
        .watches_stream(
            operator_secrets(&client, &config.isolation.operator_namespace),
            configured_by(storages, |storage: &BackupStorage, name| {
                storage.spec.s3.as_ref().is_some_and(|s3| {
                    s3.credentials
                        .as_ref()
                        .is_some_and(|c| c.secret.name == name)
                        || s3.ca_secret.as_ref().is_some_and(|ca| ca.name == name)
                })
            }),
        )
        .graceful_shutdown_on(graceful(stop.clone()))
        .run(
            backup_storage::reconcile,
            backup_storage::error_policy,
            context.clone(),
        )
        .for_each(|result| log_failure("BackupStorage", result));
    let backup_controller = Controller::for_shared_stream(backup_events, tenant_backups)
        .with_config(controller::Config::default().concurrency(4))
        .reconcile_on(backup_trigger_rx)
        .graceful_shutdown_on(graceful(stop.clone()))
        .run(
            tenant_backup::reconcile,
            tenant_backup::error_policy,
            context.clone(),
        )
        .for_each(|result| log_failure("TenantBackup", result));
    let restore_context = context;
    // Restores are few and run inside their reconcile: their own small cache.
    let restore_controller = Controller::new(
        Api::<TenantRestore>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(controller::Config::default().concurrency(2))
    .graceful_shutdown_on(graceful(stop.clone()))
    .run(
        tenant_restore::reconcile,
        tenant_restore::error_policy,
        restore_context,
    )
    .for_each(|result| log_failure("TenantRestore", result));
    let controllers = async move {
        tokio::join!(
            tenant_controller,
            server_controller,
            storage_controller,
            backup_controller,
            restore_controller
        );
    };
    // A graceful stop lets running reconciles finish. It cannot end while the Tenant
    // cache has never filled (the CRD is missing: nothing can be reconciling), and it is
    // bounded in any case, well within the pod's termination grace period.
    let deadline = async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
        let filled =
            tokio::time::timeout(Duration::from_millis(100), tenants.wait_until_ready()).await;
        if !matches!(filled, Ok(Ok(()))) {
            return;
        }
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        warn!(grace = ?SHUTDOWN_GRACE, "reconciles still running after the grace period: abandoned");
    };
    tokio::select! {
        () = controllers => {}
        () = deadline => {}
    }
    analysis.abort();
    for watch in shared_watches {
        watch.abort();
    }
    info!("controllers stopped");
}

/// Changes to the Secrets in the operator's namespace, metadata only: what tells a
/// DatabaseServer or BackupStorage that the Secret it was missing now exists, or that its
/// credentials changed. No Secret data is kept or even received (a metadata-only watch),
/// and no Secret outside the operator's namespace is watched.
fn operator_secrets(
    client: &Client,
    namespace: &str,
) -> impl futures::Stream<Item = Result<kube::core::PartialObjectMeta<Secret>, watcher::Error>>
+ Send
+ 'static {
    watcher(
        Api::<kube::core::PartialObjectMeta<Secret>>::namespaced(client.clone(), namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects()
}

/// The objects in `store` that `uses` says are configured by the Secret that changed.
fn configured_by<K>(
    store: Store<K>,
    uses: impl Fn(&K, &str) -> bool + Send + Sync + 'static,
) -> impl Fn(kube::core::PartialObjectMeta<Secret>) -> Vec<ObjectRef<K>> + Send + Sync + 'static
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    move |secret| {
        let name = secret.metadata.name.unwrap_or_default();
        store
            .state()
            .into_iter()
            .filter(|o| uses(o, &name))
            .map(|o| ObjectRef::from_obj(&*o))
            .collect()
    }
}

async fn log_failure<K: Resource, Q>(
    kind: &'static str,
    result: Result<(ObjectRef<K>, Action), controller::Error<Error, Q>>,
) where
    Q: std::error::Error,
{
    if let Err(e) = result {
        match e {
            // Logged by the error policy, with the object and category.
            controller::Error::ObjectNotFound(_) | controller::Error::ReconcilerFailed(..) => {}
            other => warn!(error = %other, "{kind} controller"),
        }
    }
}

/// The Tenants to look at again when a BackupStorage changes: those backed up to it, when
/// its spec or its `Available` status changed (not on every status write).
fn tenants_of_storage(
    tenants: Store<Tenant>,
) -> impl Fn(Arc<BackupStorage>) -> Vec<ObjectRef<Tenant>> + Send + Sync {
    tenants_depending_on(
        tenants,
        |storage: &BackupStorage| {
            storage
                .status
                .as_ref()
                .and_then(|s| {
                    crate::api::find_condition(&s.conditions, backup_storage::conditions::AVAILABLE)
                })
                .map(|c| format!("{:?}", c.status))
        },
        |tenant, name| {
            tenant
                .spec
                .backup
                .as_ref()
                .is_some_and(|b| b.storage_ref == name)
        },
    )
}

/// The Tenants to look at again when a DatabaseServer changes: those that use it, but
/// only when something they depend on changed (its spec, or whether it is reachable), not
/// on every status write (the server's tenant count changes with each new tenant).
fn tenants_of_server(
    tenants: Store<Tenant>,
) -> impl Fn(Arc<DatabaseServer>) -> Vec<ObjectRef<Tenant>> + Send + Sync {
    tenants_depending_on(
        tenants,
        |server: &DatabaseServer| {
            server
                .status
                .as_ref()
                .and_then(|s| {
                    crate::api::find_condition(
                        &s.conditions,
                        database_server::conditions::REACHABLE,
                    )
                })
                .map(|c| format!("{:?}", c.status))
        },
        database_server::uses,
    )
}

/// The Tenants that `uses` an object of kind `K`, when the object's generation or its
/// `health` (a condition's status) changed since the last call for it.
fn tenants_depending_on<K>(
    tenants: Store<Tenant>,
    health: impl Fn(&K) -> Option<String> + Send + Sync,
    uses: impl Fn(&Tenant, &str) -> bool + Send + Sync,
) -> impl Fn(Arc<K>) -> Vec<ObjectRef<Tenant>> + Send + Sync
where
    K: Resource,
{
    /// What tenants depend on: the object's generation and its health.
    type Dependency = (Option<i64>, Option<String>);
    let seen: std::sync::Mutex<BTreeMap<String, Dependency>> =
        std::sync::Mutex::new(BTreeMap::new());
    move |object: Arc<K>| {
        let name = object.meta().name.clone().unwrap_or_default();
        let state = (object.meta().generation, health(&object));
        let changed = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.clone(), state.clone())
            != Some(state);
        if !changed {
            return Vec::new();
        }
        tenants
            .state()
            .into_iter()
            .filter(|t| uses(t, &name))
            .map(|t| ObjectRef::from_obj(&*t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Retries;

    /// A back-off of one second per attempt, to read the counts off the delays.
    fn linear(attempt: u32) -> Duration {
        Duration::from_secs(u64::from(attempt))
    }

    #[test]
    fn only_a_failed_retry_raises_the_count_not_a_burst_of_early_failures() {
        let retries = Retries::default();
        let t0 = Instant::now();
        assert_eq!(
            retries.failed("tenant", "a", "storage_unreachable", t0, linear),
            (1, Duration::from_secs(1))
        );
        // Three reconciles brought by watch events before the retry is due: the count
        // stays, and each is told to wait for the retry already scheduled.
        for ms in [10, 20, 400] {
            let (count, delay) = retries.failed(
                "tenant",
                "a",
                "storage_unreachable",
                t0 + Duration::from_millis(ms),
                linear,
            );
            assert_eq!(count, 1);
            assert_eq!(delay, Duration::from_millis(1000 - ms));
        }
        // The retry itself fails: now it counts.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            retries.failed("tenant", "a", "storage_unreachable", t1, linear),
            (2, Duration::from_secs(2))
        );
        // Another object and another controller have counts of their own.
        assert_eq!(
            retries
                .failed("tenant", "b", "storage_unreachable", t1, linear)
                .0,
            1
        );
        assert_eq!(
            retries
                .failed("backupstorage", "a", "storage_unreachable", t1, linear)
                .0,
            1
        );
    }

    #[test]
    fn another_category_or_a_success_starts_the_count_again() {
        let retries = Retries::default();
        let t0 = Instant::now();
        retries.failed("tenant", "a", "conflict", t0, linear);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(retries.failed("tenant", "a", "conflict", t1, linear).0, 2);
        // A different failure, even early, is a first failure of its kind.
        let t2 = t1 + Duration::from_millis(1);
        assert_eq!(
            retries.failed("tenant", "a", "api_error", t2, linear),
            (1, Duration::from_secs(1))
        );
        retries.succeeded("tenant", "a");
        assert_eq!(retries.failed("tenant", "a", "api_error", t2, linear).0, 1);
    }
}
