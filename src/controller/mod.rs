//! The controllers: one module per kind they reconcile, the one module that writes
//! ([`apply`]), and the wiring that runs them while this replica leads.
//!
//! Every controller reads from reflector caches ([`Stores`]) and never GETs in the hot
//! path; the caches are filled by watches that the controller itself polls.

mod analysis;
pub mod apply;
mod error;
mod tenant;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Client, Resource};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::api::{DatabaseServer, Tenant};
use crate::isolation::IsolationConfig;
use crate::isolation::analysis::{AnalysisConfig, TenantIsolation};
use crate::isolation::labels::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::operator::Metrics;

pub use error::Error;

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
    pub isolation: Arc<RwLock<BTreeMap<String, TenantIsolation>>>,
}

/// The Tenant that controls an object, if any. Tenants are cluster-scoped, so the
/// reference carries no namespace even for a namespaced child (kube-runtime's `owns`
/// would put the child's namespace in it and reconcile one Tenant under two keys).
fn owning_tenant<K: Resource>(object: K) -> Option<ObjectRef<Tenant>> {
    object
        .meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| {
            r.controller == Some(true)
                && r.kind == "Tenant"
                && r.api_version == "landlord.dev/v1alpha1"
        })
        .map(|r| ObjectRef::new(&r.name))
}

fn managed() -> watcher::Config {
    watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"))
}

/// Runs the controllers until `stop` turns true.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let (tenants, tenant_writer) = reflector::store();
    let (database_servers, dbs_writer) = reflector::store();
    let (namespaces, ns_writer) = reflector::store();
    let (quotas, quota_writer) = reflector::store();
    let (limits, limit_writer) = reflector::store();
    let (bindings, binding_writer) = reflector::store();
    let (policies, policy_writer) = reflector::store();
    let stores = Stores {
        tenants: tenants.clone(),
        database_servers,
        namespaces,
        quotas,
        limits,
        bindings,
        policies,
    };

    let tenant_stream = reflector::reflector(
        tenant_writer,
        watcher(
            Api::<Tenant>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
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
    let dbs_stream = reflector::reflector(
        dbs_writer,
        watcher(
            Api::<DatabaseServer>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();

    let isolation = Arc::new(RwLock::new(BTreeMap::new()));
    let (trigger_tx, trigger_rx) = futures::channel::mpsc::unbounded::<ObjectRef<Tenant>>();
    let analysis = tokio::spawn(analysis::keep_analyzing(
        stores.clone(),
        config.analysis.clone(),
        isolation.clone(),
        trigger_tx,
        stop.clone(),
    ));

    let context = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), config.reporter.clone()),
        stores: stores.clone(),
        config: config.clone(),
        metrics,
        isolation,
    });

    let users_of = {
        let tenants = tenants.clone();
        move |server: DatabaseServer| {
            let name = server.meta().name.clone().unwrap_or_default();
            tenants
                .state()
                .into_iter()
                .filter(|t| {
                    t.spec
                        .database
                        .as_ref()
                        .is_some_and(|d| d.server_ref == name)
                })
                .map(|t| ObjectRef::from_obj(&*t))
                .collect::<Vec<_>>()
        }
    };

    info!("starting the Tenant controller");
    let mut stop_graceful = stop.clone();
    let controller = Controller::for_stream(tenant_stream, tenants.clone())
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .watches_stream(ns_stream, owning_tenant)
        .watches_stream(policy_stream, owning_tenant)
        .watches_stream(quota_stream, owning_tenant)
        .watches_stream(limit_stream, owning_tenant)
        .watches_stream(binding_stream, owning_tenant)
        .watches_stream(dbs_stream, users_of)
        .reconcile_on(trigger_rx)
        .graceful_shutdown_on(async move {
            let _ = stop_graceful.wait_for(|stopping| *stopping).await;
        })
        .run(tenant::reconcile, tenant::error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                match e {
                    // Logged by the error policy, with the tenant and category.
                    controller::Error::ObjectNotFound(_)
                    | controller::Error::ReconcilerFailed(..) => {}
                    other => warn!(error = %other, "Tenant controller"),
                }
            }
        });
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
        () = controller => {}
        () = deadline => {}
    }
    analysis.abort();
    info!("Tenant controller stopped");
}
