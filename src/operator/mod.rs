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

use tokio::sync::watch;
use tracing::{error, info};

pub use health::serve as serve_health;
pub use leader::{LeaseSettings, campaign};
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
}

/// Errors that stop the operator.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "no Kubernetes configuration found (in-cluster service account, $KUBECONFIG or ~/.kube/config)"
    )]
    Config(#[source] kube::Error),
    #[error("cannot serve the health and metrics endpoints on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the operator until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), RunError> {
    let client = kube::Client::try_default()
        .await
        .map_err(RunError::Config)?;
    let operator = Operator::start(config, client).await?;
    shutdown_signal().await;
    operator.stop().await;
    Ok(())
}

/// A running operator: its tasks, and the address of its health endpoints.
pub struct Operator {
    local_addr: SocketAddr,
    readiness: Readiness,
    stop_tx: watch::Sender<bool>,
    tasks: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
}

impl Operator {
    /// Starts the health endpoints, the leader election and the API checks.
    pub async fn start(config: Config, client: kube::Client) -> Result<Operator, RunError> {
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

        let lease = LeaseSettings::new(
            config
                .lease_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned()),
            config.lease_name.clone(),
            config.identity.clone(),
        );
        let (leading_tx, mut leading_rx) = watch::channel(false);
        let election = tokio::spawn(leader::campaign(
            client.clone(),
            lease,
            leading_tx,
            stop_rx.clone(),
        ));
        let leader_metrics = metrics.clone();
        let leadership = tokio::spawn(async move {
            // Controllers start and stop on this signal as they land; for now it is
            // published as the `landlord_leader` gauge.
            while leading_rx.changed().await.is_ok() {
                leader_metrics.set_leader(*leading_rx.borrow());
            }
        });

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
            tasks: vec![
                ("leader election", election),
                ("leadership", leadership),
                ("API check", checker),
                ("health server", server),
            ],
        })
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops every task: `/readyz` fails at once, the Lease is released, then the
    /// endpoints close.
    pub async fn stop(self) {
        info!("stopping");
        self.readiness.set_stopping();
        self.stop_tx.send_replace(true);
        for (name, task) in self.tasks {
            if let Err(e) = task.await {
                error!(error = %e, task = name, "task ended abnormally");
            }
        }
        info!("stopped");
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
