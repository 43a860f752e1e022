//! The operator process that `landlord run` starts: configuration, logging, the API
//! connection, the health and metrics endpoints, and a clean stop on SIGTERM.
//!
//! Controllers are started from here as they land; until then the process connects,
//! checks that every Landlord CRD is served and that it may read them, and reports that
//! through `/readyz` and `/metrics`.

mod health;
mod leader;
mod metrics;
mod readiness;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::events::Reporter;
use tokio::sync::watch;

use crate::controller::{self, ControllerConfig};
use crate::erasure::signing::ReceiptSigner;
use crate::erasure::signing_key;
use crate::isolation::IsolationConfig;
use crate::isolation::analysis::AnalysisConfig;
use tracing::{error, info, warn};

pub use health::serve as serve_health;
pub use leader::{
    Clock, Election, ElectionError, LeaseSettings, SkewedClock, SystemClock, campaign,
};
pub use metrics::Metrics;
pub use readiness::{Readiness, check_api};

/// Settings of a running operator.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address of the `/healthz`, `/readyz` and `/metrics` endpoints.
    pub listen_addr: SocketAddr,
    /// How often the API check behind `/readyz` runs.
    pub recheck_interval: Duration,
    /// Name of the leader-election Lease.
    pub lease_name: String,
    /// Namespace of the Lease; the kubeconfig's (or service account's) namespace when unset.
    pub lease_namespace: Option<String>,
    /// This replica's identity in the election, usually the pod name.
    pub identity: String,
    /// How often an unchanged Tenant is reconciled again.
    pub resync: Duration,
    /// How many Tenants are reconciled at once.
    pub concurrency: u16,
    /// Labels of the operator's pods, for its egress NetworkPolicies to database servers;
    /// none are kept when unset.
    pub pod_labels: Option<std::collections::BTreeMap<String, String>>,
    /// How backups run.
    pub backup: controller::BackupConfig,
}

/// Errors that stop the operator.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "no Kubernetes configuration found (in-cluster service account, $KUBECONFIG or ~/.kube/config)"
    )]
    Config(#[source] kube::Error),
    #[error("invalid leader election timings")]
    Election(#[from] ElectionError),
    #[error("cannot serve the health and metrics endpoints on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the operator until SIGTERM or SIGINT.
pub async fn run(config: Config, election: Election) -> Result<(), RunError> {
    election.validate()?;
    let client = kube::Client::try_default()
        .await
        .map_err(RunError::Config)?;
    let operator = Operator::start_with_election(config, client, election).await?;
    shutdown_signal().await;
    operator.stop().await;
    Ok(())
}

/// A running operator: its tasks, and the address of its health endpoints.
pub struct Operator {
    local_addr: SocketAddr,
    readiness: Readiness,
    stop_tx: watch::Sender<bool>,
    release_tx: watch::Sender<bool>,
    leadership: tokio::task::JoinHandle<()>,
    election: tokio::task::JoinHandle<()>,
    tasks: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
}

impl Operator {
    /// Starts the health endpoints, the leader election (with client-go's default
    /// timings) and the API checks.
    pub async fn start(config: Config, client: kube::Client) -> Result<Operator, RunError> {
        Self::start_with_election(config, client, Election::default()).await
    }

    /// [`Operator::start`] with the given election timings and wall clock.
    pub async fn start_with_election(
        config: Config,
        client: kube::Client,
        election: Election,
    ) -> Result<Operator, RunError> {
        election.validate()?;
        let listen_error = |source| RunError::Listen {
            addr: config.listen_addr,
            source,
        };
        let metrics = Arc::new(Metrics::new());
        let readiness = Readiness::default();
        let (stop_tx, stop_rx) = watch::channel(false);

        let listener = tokio::net::TcpListener::bind(config.listen_addr)
            .await
            .map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        info!(addr = %local_addr, "serving /healthz, /readyz and /metrics");
        let server = tokio::spawn(health::serve(
            listener,
            readiness.clone(),
            metrics.clone(),
            stop_rx.clone(),
        ));

        let namespace = config
            .lease_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let lease = LeaseSettings {
            namespace: namespace.clone(),
            name: config.lease_name.clone(),
            identity: config.identity.clone(),
            election,
        };
        // The Lease is released only after the controllers stopped: two replicas never
        // reconcile at once, not even during a hand-over.
        let (release_tx, release_rx) = watch::channel(false);
        let (leading_tx, leading_rx) = watch::channel(false);
        let election = tokio::spawn(leader::campaign(
            client.clone(),
            lease,
            leading_tx,
            release_rx,
        ));
        let controllers = ControllerConfig {
            isolation: IsolationConfig {
                operator_namespace: namespace,
            },
            analysis: AnalysisConfig::default(),
            resync: config.resync,
            concurrency: config.concurrency,
            reporter: Reporter {
                controller: "landlord".to_owned(),
                instance: Some(config.identity.clone()),
            },
            operator_pod_labels: config.pod_labels.clone(),
            backup: config.backup.clone(),
        };
        let leadership = tokio::spawn(lead(
            client.clone(),
            controllers,
            metrics.clone(),
            leading_rx,
            stop_rx.clone(),
        ));

        let checker = tokio::spawn(readiness::keep_checking(
            client,
            readiness.clone(),
            metrics,
            config.recheck_interval,
            stop_rx,
        ));
        Ok(Operator {
            local_addr,
            readiness,
            stop_tx,
            release_tx,
            leadership,
            election,
            tasks: vec![("API check", checker), ("health server", server)],
        })
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops in order: `/readyz` fails at once, the controllers finish what they are
    /// doing, the Lease is released, then the endpoints close.
    pub async fn stop(self) {
        info!("stopping");
        self.readiness.set_stopping();
        self.stop_tx.send_replace(true);
        if let Err(e) = self.leadership.await {
            error!(error = %e, "the controllers ended abnormally");
        }
        self.release_tx.send_replace(true);
        if let Err(e) = self.election.await {
            error!(error = %e, "leader election ended abnormally");
        }
        for (name, task) in self.tasks {
            if let Err(e) = task.await {
                error!(error = %e, task = name, "task ended abnormally");
            }
        }
        info!("stopped");
    }
}

/// The controllers of one leadership term, on a runtime of their own. Ending the term
/// shuts that runtime down, which drops every task the controllers started (reconciles,
/// watches, the isolation analysis, database connections) at their next await: nothing
/// started in the term issues another request once it ended.
struct Term {
    runtime: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
    controllers: tokio::task::JoinHandle<()>,
}

impl Term {
    fn start(
        client: &kube::Client,
        config: &ControllerConfig,
        metrics: &Arc<Metrics>,
        receipt_signer: &Arc<ReceiptSigner>,
    ) -> std::io::Result<Term> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("landlord-controllers")
            .enable_all()
            .build()?;
        let (stop, stop_rx) = watch::channel(false);
        let controllers = runtime.spawn(controller::run(
            client.clone(),
            config.clone(),
            metrics.clone(),
            receipt_signer.clone(),
            stop_rx,
        ));
        Ok(Term {
            runtime: Some(runtime),
            stop,
            controllers,
        })
    }
}

impl Drop for Term {
    /// Aborts at once: no waiting, so also safe in an async context.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs the controllers while this replica leads, until `stop`.
///
/// First, once, whether leading or not: loads (or creates) the receipt signing key,
/// retrying with back-off; no controller runs without it.
///
/// Losing the lead aborts the controllers at once. A stop (SIGTERM) while leading lets
/// running reconciles finish first (bounded by the controllers' grace period), unless
/// leadership is lost meanwhile; the Lease is released only after this returns.
async fn lead(
    client: kube::Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    mut leading: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let namespace = config.isolation.operator_namespace.clone();
    let Some(receipt_signer) =
        signing_key::ensure_until_stopped(&client, &namespace, &mut stop).await
    else {
        return;
    };
    loop {
        tokio::select! {
            led = leading.wait_for(|l| *l) => if led.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        let mut term = match Term::start(&client, &config, &metrics, &receipt_signer) {
            Ok(term) => term,
            Err(e) => {
                error!(error = %e, "cannot start the controllers' runtime; not reconciling this term");
                tokio::select! {
                    _ = leading.wait_for(|l| !*l) => continue,
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        };
        metrics.set_leader(true);
        // A closed `leading` channel (the election ended) counts as lost.
        let stopping = tokio::select! {
            _ = leading.wait_for(|l| !*l) => false,
            _ = stop.wait_for(|s| *s) => true,
            ended = &mut term.controllers => {
                error!(result = ?ended, "the controllers stopped on their own");
                false
            }
        };
        if stopping && !term.controllers.is_finished() {
            term.stop.send_replace(true);
            tokio::select! {
                ended = &mut term.controllers => {
                    if let Err(e) = ended {
                        error!(error = %e, "the controllers ended abnormally");
                    }
                }
                _ = leading.wait_for(|l| !*l) => {
                    warn!("leadership lost while stopping: reconciles aborted");
                }
            }
        }
        drop(term);
        metrics.set_leader(false);
        if stopping {
            return;
        }
    }
}

/// Completes on SIGTERM (what the kubelet sends) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!(signal = "SIGINT", "received"),
        () = terminate => info!(signal = "SIGTERM", "received"),
    }
}
