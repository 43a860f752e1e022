//! The `landlord` command: the operator and the tools around it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Landlord: segregated, encrypted, verifiably erasable client tenants on Kubernetes.
#[derive(Parser, Debug)]
#[command(name = "landlord", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator against the cluster of the current kubeconfig (or in-cluster).
    Run(Box<RunArgs>),
    /// Print every Landlord CustomResourceDefinition as YAML, or write one file per CRD.
    Crds {
        /// Write `<plural>.landlord.dev.yaml` files into this directory instead of printing.
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
    /// Backups outside the operator: `landlord backup run` takes one.
    Backup(landlord::backup::cli::BackupArgs),
    /// Erasure receipts: `landlord receipt verify` checks one offline, `show` prints it as
    /// a certificate of sanitization, `public-key` prints the operator's public key.
    Receipt(landlord::erasure::cli::ReceiptArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(long, env = "LANDLORD_LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    listen_addr: SocketAddr,
    /// Log format: `json` (one object per line, for log pipelines) or `text`.
    #[arg(long, env = "LANDLORD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    /// Log filter in `tracing` syntax, e.g. `info` or `landlord=debug,kube=info`.
    #[arg(long, env = "LANDLORD_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Seconds between the API checks behind /readyz.
    #[arg(long, env = "LANDLORD_RECHECK_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    recheck_seconds: u64,
    /// Namespace of the leader-election Lease; defaults to the kubeconfig's namespace (the
    /// service account's in a pod).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, env = "LANDLORD_LEASE_NAME", default_value = "landlord-leader")]
    lease_name: String,
    /// This replica's identity in the election; defaults to the pod name, else the host
    /// name and process id.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a standby waits, after it last saw the leader renew the Lease, before it
    /// takes over (the Lease's leaseDurationSeconds).
    #[arg(long, env = "LANDLORD_LEASE_DURATION_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=3600))]
    lease_duration_seconds: u64,
    /// Seconds the leader keeps leading without a successful renewal; it then stops
    /// reconciling at once. Must be shorter than the lease duration.
    #[arg(long, env = "LANDLORD_RENEW_DEADLINE_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    renew_deadline_seconds: u64,
    /// Seconds between two renewals by the leader, or two attempts by a standby. The
    /// renew deadline must exceed 1.2 retry periods.
    #[arg(long, env = "LANDLORD_RETRY_PERIOD_SECONDS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    retry_period_seconds: u64,
    /// Seconds between two looks at an unchanged Tenant (drift outside Kubernetes that no
    /// watch reports).
    #[arg(long, env = "LANDLORD_RESYNC_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=86400))]
    resync_seconds: u64,
    /// How many Tenants are reconciled at once.
    #[arg(long, env = "LANDLORD_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Labels of this operator's pods (`key=value,...`; the chart sets them when its
    /// NetworkPolicy is on). Landlord then keeps, in its namespace, an egress
    /// NetworkPolicy for these pods to every DatabaseServer that has `spec.network`.
    #[arg(long, env = "LANDLORD_POD_LABELS", value_parser = parse_labels)]
    pod_labels: Option<BTreeMap<String, String>>,
    /// How many backups run at once, over all tenants; the others wait in a queue, in
    /// the order they were created. At most one backup per tenant runs at a time.
    #[arg(long, env = "LANDLORD_BACKUP_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    backup_concurrency: u16,
    /// How many restore drills (`spec.backup.verify`) run at once on one database server.
    #[arg(long, env = "LANDLORD_DRILL_CONCURRENCY", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    drill_concurrency: u16,
    /// The pg_dump binary backups run; by default the newest
    /// /usr/lib/postgresql/<major>/bin/pg_dump, else `pg_dump` on PATH. It must be at
    /// least as new as the servers it dumps.
    #[arg(long, env = "LANDLORD_PG_DUMP", value_name = "PATH")]
    pg_dump: Option<PathBuf>,
}

/// `key=value,key=value` into a map; keys and values must be valid label parts.
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not key=value"))?;
        let valid = |s: &str, allow_slash: bool| {
            s.len() <= 317
                && s.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, '-' | '_' | '.')
                        || (allow_slash && c == '/')
                })
        };
        if key.is_empty() || !valid(key, true) || !valid(value, false) || value.len() > 63 {
            return Err(format!("{pair:?} is not a valid label"));
        }
        labels.insert(key.to_owned(), value.to_owned());
    }
    if labels.is_empty() {
        return Err("no labels given".to_owned());
    }
    Ok(labels)
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

fn init_logging(format: LogFormat, filter: &str) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(filter).map_err(|e| format!("invalid --log-level {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| format!("cannot start logging: {e}"))
}

fn write_crds(output_dir: Option<PathBuf>) -> Result<(), String> {
    match output_dir {
        None => {
            let stream = landlord::crd::render_stream().map_err(|e| format!("{e}"))?;
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(stream.as_bytes())
                .and_then(|()| stdout.flush())
            {
                // A reader that stops early (`landlord crds | head`) is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(format!("cannot write to standard output: {e}"));
                }
                _ => {}
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            for (file, yaml) in landlord::crd::render_all().map_err(|e| format!("{e}"))? {
                let path = dir.join(file);
                std::fs::write(&path, yaml)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "landlord".to_owned());
    format!("{host}-{}", std::process::id())
}

async fn run(args: RunArgs) -> Result<(), String> {
    init_logging(args.log_format, &args.log_level)?;
    let config = landlord::operator::Config {
        listen_addr: args.listen_addr,
        recheck_interval: Duration::from_secs(args.recheck_seconds),
        lease_name: args.lease_name,
        lease_namespace: args.lease_namespace,
        identity: args.identity.unwrap_or_else(default_identity),
        resync: Duration::from_secs(args.resync_seconds),
        concurrency: args.concurrency,
        pod_labels: args.pod_labels,
        backup: landlord::controller::BackupConfig {
            concurrency: usize::from(args.backup_concurrency),
            drill_concurrency: usize::from(args.drill_concurrency),
            pg_dump: args.pg_dump,
            ..landlord::controller::BackupConfig::default()
        },
    };
    let election = landlord::operator::Election {
        lease_duration: Duration::from_secs(args.lease_duration_seconds),
        renew_deadline: Duration::from_secs(args.renew_deadline_seconds),
        retry_period: Duration::from_secs(args.retry_period_seconds),
        ..landlord::operator::Election::default()
    };
    let stopped = landlord::operator::run(config, election).await;
    stopped.map_err(|e| {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(error = %message, "operator stopped");
        message
    })
}

fn block_on(task: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(task),
        Err(e) => Err(format!("cannot start the async runtime: {e}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crds { output_dir } => write_crds(output_dir),
        Command::Run(args) => block_on(run(*args)),
        // Warnings only (an upload that could not be aborted): stdout is the manifest's.
        Command::Backup(args) => init_logging(LogFormat::Text, "warn")
            .and_then(|()| block_on(landlord::backup::cli::run(args))),
        Command::Receipt(args) => init_logging(LogFormat::Text, "warn")
            .and_then(|()| block_on(landlord::erasure::cli::run(args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("landlord: {message}");
            ExitCode::FAILURE
        }
    }
}
