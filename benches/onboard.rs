//! Benchmark: onboard many Tenants against the emulator and measure time to Ready, API
//! requests per Tenant, the operator's peak memory, and the writes of a full resync of
//! unchanged Tenants.
//!
//! The emulator runs in this process (so its request counters can be read); the operator
//! runs as its own process — the release `landlord` binary — so its memory is its own.
//!
//! ```sh
//! cargo build --release --bin landlord && cargo bench --bench onboard -- 1000
//! ```

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube_emulator::Emulator;
use landlord::api::{Tenant, TenantSpec, find_condition};

type Failure = Box<dyn std::error::Error>;

const RESYNC_SECONDS: u64 = 10;

fn free_port() -> Result<u16, Failure> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn peak_rss_kib(child: &Child) -> Result<u64, Failure> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/<pid>/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("malformed VmHWM")?
        .parse()?)
}

async fn reconciles(metrics_url: &str) -> Result<u64, Failure> {
    let (host, path) = metrics_url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or("bad metrics URL")?;
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("landlord_reconciles_total{controller=\"tenant\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum())
}

fn writes(counts: &BTreeMap<(String, String), u64>) -> u64 {
    counts
        .iter()
        .filter(|((verb, resource), _)| {
            ["create", "update", "patch", "delete"].contains(&verb.as_str()) && resource != "leases"
        })
        .map(|(_, n)| n)
        .sum()
}

fn total(counts: &BTreeMap<(String, String), u64>) -> u64 {
    counts
        .iter()
        .filter(|((_, resource), _)| resource != "leases")
        .map(|(_, n)| n)
        .sum()
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    // `cargo bench` passes `--bench`; the first number is the tenant count.
    let tenants: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let emulator = Emulator::builder().history_limit(200_000).serve().await?;
    let admin = emulator.client()?;
    let dir = std::env::temp_dir().join(format!("landlord-onboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig)?;

    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for crd in landlord::api::crds() {
        crds.create(&PostParams::default(), &crd).await?;
    }
    let operator_ns = Namespace {
        metadata: ObjectMeta {
            name: Some("landlord".into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &operator_ns)
        .await?;

    let landlord = std::env::current_exe()?
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("landlord"))
        .ok_or("cannot locate the landlord binary")?;
    let health_port = free_port()?;
    let mut operator = Command::new(&landlord)
        .args([
            "run",
            "--log-format",
            "json",
            "--log-level",
            "warn",
            "--lease-namespace",
            "landlord",
        ])
        .args(["--listen-addr", &format!("127.0.0.1:{health_port}")])
        .args(["--identity", "bench", "--concurrency", "16"])
        .args(["--resync-seconds", &RESYNC_SECONDS.to_string()])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {}: {e} (build it with --release first)",
                landlord.display()
            )
        })?;
    let metrics_url = format!("http://127.0.0.1:{health_port}/metrics");

    let leases: Api<Lease> = Api::namespaced(admin.clone(), "landlord");
    while leases
        .get_opt("landlord-leader")
        .await?
        .and_then(|l| l.spec?.holder_identity)
        .as_deref()
        != Some("bench")
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_idle = peak_rss_kib(&operator)?;

    // Onboard.
    emulator.reset_request_counts();
    let api: Api<Tenant> = Api::all(admin.clone());
    let started = Instant::now();
    let created: Vec<Result<Tenant, kube::Error>> = stream::iter(0..tenants)
        .map(|i| {
            let api = api.clone();
            async move {
                let spec: TenantSpec = serde_json::from_value(serde_json::json!({
                    "owners": [{"kind": "Group", "name": format!("client-{i}-admins")}],
                    "isolation": {"quota": {"pods": 20, "requests.cpu": "2"}}
                }))
                .map_err(kube::Error::SerdeError)?;
                api.create(
                    &PostParams::default(),
                    &Tenant::new(&format!("client-{i}"), spec),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let created_ok = created.iter().filter(|r| r.is_ok()).count();
    let create_done = started.elapsed();
    let mut our_lists = 0u64;
    let all_ready = loop {
        let list = api.list(&ListParams::default()).await?;
        our_lists += 1;
        let ready = list
            .items
            .iter()
            .filter(|t| {
                t.status
                    .as_ref()
                    .and_then(|s| find_condition(&s.conditions, "Ready").map(|c| c.is_true()))
                    .unwrap_or(false)
            })
            .count();
        if ready == tenants {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("only {ready} of {tenants} Ready after 10 minutes").into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let onboarding = emulator.request_counts();
    // Our own requests: the Tenant creates and the polling lists.
    let operator_requests = total(&onboarding) - created_ok as u64 - our_lists;
    let operator_writes = writes(&onboarding) - created_ok as u64;

    // Steady state: let the last reconciles settle, then watch a full resync period.
    tokio::time::sleep(Duration::from_secs(3)).await;
    emulator.reset_request_counts();
    let before = reconciles(&metrics_url).await?;
    tokio::time::sleep(Duration::from_secs(RESYNC_SECONDS + 5)).await;
    let after = reconciles(&metrics_url).await?;
    let steady = emulator.request_counts();
    let rss_peak = peak_rss_kib(&operator)?;

    println!("tenants:                         {tenants} ({created_ok} created)");
    println!(
        "all created after:               {:.2} s",
        create_done.as_secs_f64()
    );
    println!(
        "all Ready after:                 {:.2} s",
        all_ready.as_secs_f64()
    );
    println!(
        "operator API requests:           {operator_requests} ({:.1} per tenant), of which writes {operator_writes} ({:.1} per tenant)",
        operator_requests as f64 / tenants as f64,
        operator_writes as f64 / tenants as f64
    );
    println!(
        "operator peak RSS:               {:.1} MiB (idle leader before onboarding: {:.1} MiB)",
        rss_peak as f64 / 1024.0,
        rss_idle as f64 / 1024.0
    );
    println!(
        "steady state, {}s window:        {} reconciles, {} write requests (excluding the Lease)",
        RESYNC_SECONDS + 5,
        after - before,
        writes(&steady)
    );
    for ((verb, resource), n) in steady
        .iter()
        .filter(|((v, r), _)| v != "get" && v != "list" && v != "watch" && r != "leases")
    {
        println!("  steady-state write: {verb} {resource}: {n}");
    }

    operator.kill()?;
    operator.wait()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
