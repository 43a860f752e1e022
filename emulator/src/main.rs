//! `kube-emulator`: serves an in-memory Kubernetes API until killed.

use std::path::PathBuf;

use clap::Parser;
use kube_emulator::Emulator;

/// An in-memory Kubernetes API server for tests, demos and benchmarks.
#[derive(Parser, Debug)]
#[command(name = "kube-emulator", version)]
struct Args {
    /// Address to listen on (loopback). Plain HTTP, or HTTPS with --tls (the default with
    /// --token-file).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: String,
    /// Where to write a kubeconfig for kubectl and kube-rs (with the emulator's CA as
    /// certificate-authority-data when serving HTTPS).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// A kube-apiserver static token file (`token,user,uid,"group1,group2"`): requests are
    /// then authenticated by bearer token and authorized by the stored RBAC objects. The
    /// kubeconfig carries the token of the first user in group `system:masters`. Turns on
    /// HTTPS unless --tls=false: kubectl sends bearer tokens only over HTTPS.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Serve HTTPS with a CA and serving certificate (127.0.0.1, ::1, localhost) generated
    /// at start; `--tls=false` forces plain HTTP. Default: HTTPS exactly when --token-file
    /// is given.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    tls: Option<bool>,
    /// How many changes are kept for watches and paged lists (older resourceVersions get
    /// 410 Gone). `POST /emulator/compact` forgets them all at once.
    #[arg(long, default_value_t = 100_000)]
    history_limit: usize,
    /// Turn on the WatchList feature gate (streaming lists: watches with
    /// `sendInitialEvents`), off by default as in kube-apiserver v1.33.
    #[arg(long)]
    watch_list: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let mut emulator = Emulator::builder()
        .listen(&args.listen)
        .watch_list(args.watch_list)
        .history_limit(args.history_limit);
    if let Some(path) = &args.token_file {
        emulator = emulator.token_file(&std::fs::read_to_string(path)?);
    }
    if let Some(tls) = args.tls {
        emulator = emulator.tls(tls);
    }
    let handle = emulator.serve().await?;
    handle.write_kubeconfig(&args.kubeconfig)?;
    eprintln!(
        "kube-emulator serving {} (kubeconfig {})",
        handle.url(),
        args.kubeconfig.display()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
