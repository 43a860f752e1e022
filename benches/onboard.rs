//! Benchmark: onboard many Tenants and measure time to Ready, API requests per Tenant, the
//! operator's peak memory, and the writes of a full resync of unchanged Tenants.
//!
//! Two clusters, one onboarding:
//!
//! - the emulator (the default, `--cluster=emulator`), run in this process so that its
//!   request counters can be read;
//! - a real control plane (`--cluster=real`): etcd, kube-apiserver and
//!   kube-controller-manager started as the integration tests start them
//!   (`tests/support/control_plane.rs`, binaries from `LANDLORD_CONTROL_PLANE_BIN` or
//!   `scripts/control-plane`); requests are counted from kube-apiserver's own
//!   `apiserver_request_total` on `/metrics`, read before and after.
//!
//! Either way the operator runs as its own process — the release `landlord` binary — so
//! its memory is its own.
//!
//! ```sh
//! cargo build --release --bin landlord && cargo bench --bench onboard -- 1000
//! cargo bench --bench onboard -- 1000 --cluster=real
//! ```

mod common;

/// The real control plane of the integration tests, included as they include it.
#[path = "../tests/support/control_plane.rs"]
#[allow(dead_code)]
mod control_plane;

/// What `control_plane.rs` takes from the tests' `cluster.rs`.
mod cluster {
    pub const OPERATOR_USER: &str = "system:serviceaccount:landlord:landlord";
}

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Failure, Operator, print_writes, total, wait_until_all, writes};
use control_plane::ControlPlane;
use kube::Client;
use kube::api::Api;
use kube_emulator::{Emulator, EmulatorHandle};
use landlord::api::Tenant;

const RESYNC_SECONDS: u64 = 10;

/// Request counts by (verb, resource[/subresource]), as the emulator keys them.
type Counts = BTreeMap<(String, String), u64>;

/// Which cluster the Tenants are onboarded into (`--cluster=`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Emulator,
    Real,
}

impl std::str::FromStr for Kind {
    type Err = ();

    fn from_str(s: &str) -> Result<Kind, ()> {
        match s {
            "emulator" => Ok(Kind::Emulator),
            "real" => Ok(Kind::Real),
            _ => Err(()),
        }
    }
}

/// The resources the operator reads and writes. On the real control plane the API
/// server's counters also see kube-controller-manager (ServiceAccounts, the
/// `kube-root-ca.crt` ConfigMap and the ResourceQuota status in every new namespace) and
/// the API server's own loopback clients (endpoints, flow control, Leases): those
/// resources are not the operator's and are left out.
const OPERATOR_RESOURCES: &[&str] = &[
    "tenants",
    "tenants/status",
    "namespaces",
    "resourcequotas",
    "limitranges",
    "rolebindings",
    "networkpolicies",
    "secrets",
    "events",
    "databaseservers",
    "databaseservers/status",
    "backupstorages",
    "backupstorages/status",
];

enum Cluster {
    Emulator(EmulatorHandle),
    Real {
        plane: ControlPlane,
        /// The counters when [`Cluster::start_count`] was last called.
        baseline: Counts,
    },
}

impl Cluster {
    async fn start(kind: Kind) -> Result<Cluster, Failure> {
        Ok(match kind {
            Kind::Emulator => {
                Cluster::Emulator(Emulator::builder().history_limit(200_000).serve().await?)
            }
            Kind::Real => {
                let plane = ControlPlane::start().await?;
                println!(
                    "control plane started in:        {:.1} s",
                    plane.startup.as_secs_f64()
                );
                Cluster::Real {
                    plane,
                    baseline: Counts::new(),
                }
            }
        })
    }

    fn client(&self) -> Result<Client, Failure> {
        Ok(match self {
            Cluster::Emulator(emulator) => emulator.client()?,
            Cluster::Real { plane, .. } => plane.client(),
        })
    }

    fn write_kubeconfig(&self, path: &std::path::Path) -> Result<(), Failure> {
        match self {
            Cluster::Emulator(emulator) => emulator.write_kubeconfig(path)?,
            Cluster::Real { plane, .. } => plane.write_kubeconfig(path)?,
        }
        Ok(())
    }

    async fn name(&self) -> Result<String, Failure> {
        Ok(match self {
            Cluster::Emulator(_) => "emulator (in-process kube-emulator)".to_owned(),
            Cluster::Real { plane, .. } => format!(
                "real control plane, kube-apiserver {} (etcd, kube-controller-manager)",
                plane.client().apiserver_version().await?.git_version
            ),
        })
    }

    /// Starts counting requests from zero.
    async fn start_count(&mut self) -> Result<(), Failure> {
        match self {
            Cluster::Emulator(emulator) => emulator.reset_request_counts(),
            Cluster::Real { plane, baseline } => *baseline = apiserver_requests(plane).await?,
        }
        Ok(())
    }

    /// The requests since [`Cluster::start_count`]; on the real control plane, those to
    /// [`OPERATOR_RESOURCES`] only.
    async fn count(&self) -> Result<Counts, Failure> {
        Ok(match self {
            Cluster::Emulator(emulator) => emulator.request_counts(),
            Cluster::Real { plane, baseline } => apiserver_requests(plane)
                .await?
                .into_iter()
                .filter(|((_, resource), _)| OPERATOR_RESOURCES.contains(&resource.as_str()))
                .map(|(key, n)| {
                    let before = baseline.get(&key).copied().unwrap_or(0);
                    (key, n.saturating_sub(before))
                })
                .filter(|(_, n)| *n > 0)
                .collect(),
        })
    }
}

/// kube-apiserver's `apiserver_request_total` summed over codes, scopes, groups and
/// versions, by verb and resource (`resource/subresource`), in the emulator's verbs;
/// non-resource requests (`/metrics`, `/readyz`) left out.
async fn apiserver_requests(plane: &ControlPlane) -> Result<Counts, Failure> {
    let request = hyper::http::Request::get("/metrics").body(Vec::new())?;
    let text = plane.client().request_text(request).await?;
    let mut counts = Counts::new();
    for line in text.lines() {
        let Some((labels, value)) = line
            .strip_prefix("apiserver_request_total{")
            .and_then(|rest| rest.rsplit_once("} "))
        else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split("\",")
                .filter_map(|pair| pair.split_once("=\""))
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.trim_end_matches('"'))
                .unwrap_or("")
        };
        let (resource, subresource) = (label("resource"), label("subresource"));
        if resource.is_empty() {
            continue;
        }
        let verb = match label("verb") {
            "GET" => "get",
            "LIST" => "list",
            "WATCH" => "watch",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" | "APPLY" => "patch",
            "DELETE" => "delete",
            "DELETECOLLECTION" => "deletecollection",
            other => other,
        };
        let resource = if subresource.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}/{subresource}")
        };
        let n = value.trim().parse::<f64>()? as u64;
        *counts.entry((verb.to_owned(), resource)).or_default() += n;
    }
    if counts.is_empty() {
        return Err("no apiserver_request_total on kube-apiserver's /metrics".into());
    }
    Ok(counts)
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    if !common::invoked_by_cargo_bench() {
        println!("onboard: a benchmark, run by `cargo bench` only");
        return Ok(());
    }
    // The first number among the arguments is the tenant count.
    let tenants = common::count_arg(1000);
    let kind = common::option_arg("cluster", Kind::Emulator)?;
    let mut cluster = Cluster::start(kind).await?;
    let admin = cluster.client()?;
    let dir = std::env::temp_dir().join(format!("landlord-onboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig)?;
    common::prepare_cluster(&admin).await?;
    let operator = Operator::start(&admin, &kubeconfig, 16, RESYNC_SECONDS).await?;
    let rss_idle = operator.peak_rss_kib()?;

    // Onboard.
    cluster.start_count().await?;
    let api: Api<Tenant> = Api::all(admin.clone());
    let started = Instant::now();
    let created_ok = common::create_tenants(&api, tenants, serde_json::json!({})).await;
    let create_done = started.elapsed();
    let (all_ready, our_lists) =
        wait_until_all(&api, tenants, &["Ready"], started, Duration::from_secs(600)).await?;
    let onboarding = cluster.count().await?;
    // Our own requests: the Tenant creates and the polling lists.
    let operator_requests = total(&onboarding) - created_ok as u64 - our_lists;
    let operator_writes = writes(&onboarding) - created_ok as u64;

    // Steady state: let the last reconciles settle, then watch a full resync period.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start_count().await?;
    let before = operator.reconciles("tenant").await?;
    tokio::time::sleep(Duration::from_secs(RESYNC_SECONDS + 5)).await;
    let after = operator.reconciles("tenant").await?;
    let steady = cluster.count().await?;
    let rss_peak = operator.peak_rss_kib()?;

    println!("cluster:                         {}", cluster.name().await?);
    println!("tenants:                         {tenants} ({created_ok} created)");
    println!(
        "all created after:               {:.2} s",
        create_done.as_secs_f64()
    );
    println!(
        "all Ready after:                 {:.2} s",
        all_ready.as_secs_f64()
    );
    common::print_operator_cost(
        tenants,
        operator_requests,
        operator_writes,
        rss_peak,
        rss_idle,
    );
    print_writes("onboarding write", &onboarding);
    println!(
        "steady state, {}s window:        {} reconciles, {} write requests (excluding the Lease)",
        RESYNC_SECONDS + 5,
        after - before,
        writes(&steady)
    );
    print_writes("steady-state write", &steady);

    operator.stop()?;
    drop(cluster);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
