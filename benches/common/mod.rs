//! What the benchmarks share, included with `mod common;`: the emulator prepared for the
//! operator, the operator as its own process (the release `landlord` binary), and the
//! figures read from both. Each benchmark uses only part of it, hence the `dead_code`
//! allowance.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use landlord::api::{Tenant, TenantSpec, find_condition};

pub type Failure = Box<dyn std::error::Error>;

/// Whether `cargo bench` started us: it passes `--bench`, `cargo test --benches` (and
/// `--all-targets`) does not. Under `cargo test` a benchmark only has to compile.
pub fn invoked_by_cargo_bench() -> bool {
    std::env::args().skip(1).any(|a| a == "--bench")
}

/// The first plain number among the arguments, else `default`.
pub fn count_arg(default: usize) -> usize {
    std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(default)
}

/// The value of `--name=value` among the arguments, else `default`.
pub fn option_arg<T: std::str::FromStr>(name: &str, default: T) -> Result<T, Failure> {
    let prefix = format!("--{name}=");
    match std::env::args()
        .skip(1)
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
    {
        Some(value) => value
            .parse()
            .map_err(|_| format!("--{name}={value}: not a valid value").into()),
        None => Ok(default),
    }
}

pub fn free_port() -> Result<u16, Failure> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The CRDs and the operator's namespace `landlord`.
pub async fn prepare_cluster(admin: &Client) -> Result<(), Failure> {
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
    Ok(())
}

/// The operator, `landlord run` in its own process.
pub struct Operator {
    child: Child,
    metrics_url: String,
}

impl Operator {
    /// Starts the `landlord` binary next to the benchmark's `deps` directory (build it with
    /// `--release` first) against the cluster of `kubeconfig`, and waits until it leads.
    pub async fn start(
        admin: &Client,
        kubeconfig: &Path,
        concurrency: u16,
        resync_seconds: u64,
    ) -> Result<Operator, Failure> {
        Operator::start_with(admin, kubeconfig, concurrency, resync_seconds, &[]).await
    }

    /// [`Operator::start`] with more arguments of `landlord run` (e.g. `--pg-dump`).
    pub async fn start_with(
        admin: &Client,
        kubeconfig: &Path,
        concurrency: u16,
        resync_seconds: u64,
        extra: &[&str],
    ) -> Result<Operator, Failure> {
        let landlord = std::env::current_exe()?
            .parent()
            .and_then(|deps| deps.parent())
            .map(|dir| dir.join("landlord"))
            .ok_or("cannot locate the landlord binary")?;
        let health_port = free_port()?;
        let child = Command::new(&landlord)
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
            .args(["--identity", "bench"])
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--resync-seconds", &resync_seconds.to_string()])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {}: {e} (build it with --release first)",
                    landlord.display()
                )
            })?;
        let operator = Operator {
            child,
            metrics_url: format!("http://127.0.0.1:{health_port}/metrics"),
        };
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
        Ok(operator)
    }

    /// CPU seconds the operator used so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    /// The operator's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The operator's peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64, Failure> {
        proc_status_kib(self.child.id(), "VmHWM")
            .ok_or_else(|| "no VmHWM in /proc/<pid>/status".into())
    }

    /// The operator's resident memory now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Result<u64, Failure> {
        proc_status_kib(self.child.id(), "VmRSS")
            .ok_or_else(|| "no VmRSS in /proc/<pid>/status".into())
    }

    /// Resets the operator's `VmHWM` to its resident memory now (`5` to
    /// `/proc/<pid>/clear_refs`), so that the next [`Operator::peak_rss_kib`] is the peak
    /// since this call.
    pub fn reset_peak_rss(&self) -> Result<(), Failure> {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")?;
        Ok(())
    }

    /// CPU seconds of the operator's children it waited for (pg_dump, pg_restore).
    pub fn children_cpu_seconds(&self) -> f64 {
        stat(self.child.id()).map_or(0.0, |(t, _)| (t[2] + t[3]) as f64 / TICKS_PER_SECOND)
    }

    /// Reconciles of `controller` (`tenant`, `databaseserver`) so far, any result.
    pub async fn reconciles(&self, controller: &str) -> Result<u64, Failure> {
        Ok(self.reconciles_by_result(controller).await?.values().sum())
    }

    /// Reconciles of `controller` so far by result (`ok`, or the error category).
    pub async fn reconciles_by_result(
        &self,
        controller: &str,
    ) -> Result<BTreeMap<String, u64>, Failure> {
        let (host, path) = self
            .metrics_url
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
        let prefix = format!("landlord_reconciles_total{{controller=\"{controller}\",result=\"");
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            let Some((result, value)) = line
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split_once('"'))
            else {
                continue;
            };
            if let Some(n) = value.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()) {
                *counts.entry(result.to_owned()).or_default() += n;
            }
        }
        Ok(counts)
    }

    /// Kills the operator and waits for it to exit.
    pub fn stop(mut self) -> Result<(), Failure> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Operator {
    /// An operator left running by a failed benchmark is killed too.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `kB` field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`), in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU seconds of this process's children that exited and were waited for.
pub fn waited_children_cpu_seconds() -> f64 {
    stat(std::process::id()).map_or(0.0, |(t, _)| (t[2] + t[3]) as f64 / TICKS_PER_SECOND)
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The median of `values` (which it sorts).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// `output` if its command succeeded, else what it said.
pub fn check(output: std::process::Output, what: &str) -> Result<std::process::Output, Failure> {
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into())
    }
}

/// Fails naming the first of `tools` that is not on PATH.
pub fn require_tools(tools: &[&str]) -> Result<(), Failure> {
    for tool in tools {
        check(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()?,
            &format!("{tool} is missing; looking for it"),
        )?;
    }
    Ok(())
}

/// A new directory of mode 0700 for benchmark `name`'s files (keys, password files).
pub fn private_dir(name: &str) -> Result<std::path::PathBuf, Failure> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("landlord-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// Loads `mib` MiB of random text into a new table `documents` (rows of 30 md5 hex
/// digests, under the TOAST threshold so PostgreSQL does not compress them), with `owner`
/// creating the table and `sessions` inserting a share each at once. The random text of
/// the backup and restore benchmarks: it compresses to about half and no further.
pub async fn load_random_text(
    owner: &tokio_postgres::Client,
    sessions: &[tokio_postgres::Client],
    mib: u64,
) -> Result<(), Failure> {
    owner
        .batch_execute("CREATE TABLE documents (id bigint PRIMARY KEY, body text NOT NULL)")
        .await?;
    // About 1 KiB of heap per row, indexes aside (they are not dumped).
    let rows = mib * 1024;
    let share = rows.div_ceil(sessions.len().max(1) as u64);
    let inserts = sessions.iter().enumerate().map(|(n, client)| {
        let lo = n as u64 * share + 1;
        let hi = ((n as u64 + 1) * share).min(rows);
        let insert = format!(
            "INSERT INTO documents SELECT i, (SELECT string_agg(md5(random()::text || i || '-' || j), '') FROM generate_series(1, 30) AS j) FROM generate_series({lo}, {hi}) AS i"
        );
        async move { client.batch_execute(&insert).await }
    });
    for result in futures::future::join_all(inserts).await {
        result?;
    }
    owner.batch_execute("VACUUM ANALYZE documents").await?;
    Ok(())
}

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Fields 14 to 17 of `/proc/<pid>/stat`: utime, stime, cutime, cstime (ticks), and the
/// parent's pid.
fn stat(pid: u32) -> Option<([u64; 4], u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state, ppid, ... (field 3 onwards).
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let mut times = [0u64; 4];
    for (i, time) in times.iter_mut().enumerate() {
        *time = fields.get(11 + i)?.parse().ok()?;
    }
    Some((times, ppid))
}

/// CPU seconds used so far by `pid` itself.
pub fn cpu_seconds(pid: u32) -> f64 {
    stat(pid).map_or(0.0, |(t, _)| (t[0] + t[1]) as f64 / TICKS_PER_SECOND)
}

/// CPU seconds used so far by `pid`, its exited children it waited for, and its running
/// children: for a PostgreSQL postmaster, the whole server.
pub fn tree_cpu_seconds(pid: u32) -> f64 {
    let own = stat(pid).map_or(0, |(t, _)| t.iter().sum::<u64>());
    let children: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .filter(|(_, ppid)| *ppid == pid)
        .map(|(t, _)| t[0] + t[1])
        .sum();
    (own + children) as f64 / TICKS_PER_SECOND
}

/// Creates Tenants `client-0` .. `client-<count - 1>` from 16 concurrent clients, each with
/// an owner group and a quota, plus `extra` (spec fields merged in, e.g. a database);
/// returns how many were created.
pub async fn create_tenants(api: &Api<Tenant>, count: usize, extra: serde_json::Value) -> usize {
    let created: Vec<Result<Tenant, kube::Error>> = futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            let extra = extra.clone();
            async move {
                let mut spec = serde_json::json!({
                    "owners": [{"kind": "Group", "name": format!("client-{i}-admins")}],
                    "isolation": {"quota": {"pods": 20, "requests.cpu": "2"}}
                });
                if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
                    spec.extend(extra.clone());
                }
                let spec: TenantSpec =
                    serde_json::from_value(spec).map_err(kube::Error::SerdeError)?;
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
    created.iter().filter(|r| r.is_ok()).count()
}

/// Prints the operator's API requests and writes per tenant and its peak memory.
pub fn print_operator_cost(
    tenants: usize,
    requests: u64,
    writes: u64,
    rss_peak_kib: u64,
    rss_idle_kib: u64,
) {
    println!(
        "operator API requests:           {requests} ({:.1} per tenant), of which writes {writes} ({:.1} per tenant)",
        requests as f64 / tenants as f64,
        writes as f64 / tenants as f64
    );
    println!(
        "operator peak RSS:               {:.1} MiB (idle leader before onboarding: {:.1} MiB)",
        rss_peak_kib as f64 / 1024.0,
        rss_idle_kib as f64 / 1024.0
    );
}

/// Polls every 250 ms until `tenants` Tenants have every condition of `conditions` True;
/// returns the time since `started` and how many lists it took.
pub async fn wait_until_all(
    api: &Api<Tenant>,
    tenants: usize,
    conditions: &[&str],
    started: Instant,
    timeout: Duration,
) -> Result<(Duration, u64), Failure> {
    let mut lists = 0u64;
    loop {
        let list = api.list(&ListParams::default()).await?;
        lists += 1;
        let done = list
            .items
            .iter()
            .filter(|t| {
                t.status.as_ref().is_some_and(|s| {
                    conditions.iter().all(|c| {
                        find_condition(&s.conditions, c).is_some_and(|found| found.is_true())
                    })
                })
            })
            .count();
        if done == tenants {
            return Ok((started.elapsed(), lists));
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "only {done} of {tenants} have {} True after {:?}",
                conditions.join(" and "),
                timeout
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Write requests (create, update, patch, delete), the Lease excluded.
pub fn writes(counts: &BTreeMap<(String, String), u64>) -> u64 {
    counts
        .iter()
        .filter(|((verb, resource), _)| {
            ["create", "update", "patch", "delete"].contains(&verb.as_str()) && resource != "leases"
        })
        .map(|(_, n)| n)
        .sum()
}

/// All requests, the Lease excluded.
pub fn total(counts: &BTreeMap<(String, String), u64>) -> u64 {
    counts
        .iter()
        .filter(|((_, resource), _)| resource != "leases")
        .map(|(_, n)| n)
        .sum()
}

/// Prints each write request kind of `counts`, the Lease excluded.
pub fn print_writes(label: &str, counts: &BTreeMap<(String, String), u64>) {
    for ((verb, resource), n) in counts
        .iter()
        .filter(|((v, r), _)| v != "get" && v != "list" && v != "watch" && r != "leases")
    {
        println!("  {label}: {verb} {resource}: {n}");
    }
}
