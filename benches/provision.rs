//! Benchmark: provision many tenant databases on one PostgreSQL server and measure the
//! time until every Tenant is Ready, the administrative connections open at peak, the
//! statements sent per tenant, the operator's peak memory, and what one steady-state
//! resync of all the tenants costs (statements, API writes).
//!
//! The emulator runs in this process (its request counters are read from here); the
//! operator is the release `landlord` binary in its own process. PostgreSQL 15 is the
//! test harness's server (`tests/support/postgres.rs`, `fsync = off`) with every
//! statement logged with its user and duration: statements are counted in that log,
//! connections by polling `pg_stat_activity` as the superuser every 50 ms.
//!
//! ```sh
//! cargo build --release --bin landlord && cargo bench --bench provision -- 500
//! ```
//!
//! Options after `--`: the tenant count (default 500), `--concurrency=N` (the operator's
//! `--concurrency`, default 8 as the operator's), `--max-connections=N` (the
//! DatabaseServer's `maxConnections`, default 5 as the CRD's), `--resync-seconds=N`
//! (default 10), `--keep-log=PATH` (a copy of the server's log, which is otherwise removed
//! with the server).

mod common;
#[allow(dead_code)]
#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Failure, Operator, option_arg, print_writes, total, wait_until_all, writes};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use kube_emulator::Emulator;
use landlord::api::{DatabaseServer, Tenant, find_condition};
use postgres::{ADMIN_USER, PostgresServer};

/// Every statement and its duration, with the user and database of the session.
const LOG_SETTINGS: &str = "log_statement = 'all'\n\
     log_duration = on\n\
     log_connections = on\n\
     log_line_prefix = '%m [%p] %u@%d '\n";

/// The statements of `log` sent by the administrative role: how many of each kind, the
/// server time they took, and the connections the role opened.
#[derive(Default)]
struct Statements {
    /// Kind → (count, server milliseconds).
    kinds: BTreeMap<String, (u64, f64)>,
    connections: u64,
}

impl Statements {
    fn parse(log: &str) -> Statements {
        let mut out = Statements::default();
        let marker = format!(" {ADMIN_USER}@");
        // The kind of the last statement of each backend that has no duration yet.
        let mut pending: HashMap<&str, String> = HashMap::new();
        for line in log.lines() {
            let Some(at) = line.find(&marker) else {
                continue;
            };
            let pid = line[..at].rsplit(' ').next().unwrap_or_default();
            let rest = &line[at..];
            if let Some(sql) = rest
                .split_once("LOG:  statement: ")
                .or_else(|| rest.split_once("LOG:  execute "))
                .map(|(_, sql)| sql)
            {
                // `execute <name>: <sql>` for the extended protocol.
                let sql = if rest.contains("LOG:  execute ") {
                    sql.split_once(": ").map_or(sql, |(_, s)| s)
                } else {
                    sql
                };
                let kind = kind(sql);
                out.kinds.entry(kind.clone()).or_default().0 += 1;
                pending.insert(pid, kind);
            } else if let Some(ms) = rest
                .split_once("LOG:  duration: ")
                .and_then(|(_, d)| d.split_whitespace().next()?.parse::<f64>().ok())
            {
                // Parse and bind durations come before their statement is logged: only
                // the first duration after a statement is its own.
                if let Some(kind) = pending.remove(pid) {
                    out.kinds.entry(kind).or_default().1 += ms;
                }
            } else if rest.contains("LOG:  connection authorized:") {
                out.connections += 1;
            }
        }
        out
    }

    fn count(&self) -> u64 {
        self.kinds.values().map(|(n, _)| n).sum()
    }

    fn of(&self, kind: &str) -> u64 {
        self.kinds.get(kind).map_or(0, |(n, _)| *n)
    }

    fn print(&self, per: usize) {
        let mut kinds: Vec<_> = self.kinds.iter().collect();
        kinds.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
        for (kind, (n, ms)) in kinds {
            println!(
                "    {n:>6} ({:>5.2}/tenant) {:>9.1} s server time ({:>7.2} ms each)  {kind}",
                *n as f64 / per as f64,
                ms / 1000.0,
                ms / *n as f64
            );
        }
    }
}

/// A statement's kind: its leading keywords for DDL, the catalog (or function) it reads
/// for a query; names and literals left out.
fn kind(sql: &str) -> String {
    let sql = sql.replace("pg_catalog.", "");
    let words: Vec<&str> = sql.split_whitespace().collect();
    if words.first() == Some(&"SELECT") {
        return match words.iter().rposition(|w| *w == "FROM") {
            Some(i) => format!("SELECT … FROM {}", words.get(i + 1).unwrap_or(&"?")),
            None => format!(
                "SELECT {}(…)",
                words
                    .get(1)
                    .and_then(|w| w.split('(').next())
                    .unwrap_or("?")
            ),
        };
    }
    words
        .iter()
        .take_while(|w| {
            w.chars()
                .all(|c| c.is_ascii_uppercase() || c == ',' || c == '_')
        })
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints each error the server reported to the administrative role (at most `limit`),
/// after the last lines its session logged before it: what a failed reconcile did.
fn print_errors(log: &str, limit: usize) {
    let marker = format!(" {ADMIN_USER}@");
    let lines: Vec<&str> = log.lines().collect();
    let errors: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(&marker) && lines[i].contains(" ERROR:  "))
        .collect();
    if errors.is_empty() {
        return;
    }
    println!(
        "server errors for {ADMIN_USER}: {} (each after its session's last lines)",
        errors.len()
    );
    for &i in errors.iter().take(limit) {
        // The session: "<date> <time> <zone> [<pid>] ".
        let Some(session) = lines[i]
            .split_once("] ")
            .map(|(head, _)| format!("[{}] ", head.rsplit('[').next().unwrap_or_default()))
        else {
            continue;
        };
        let before: Vec<&str> = lines[..=i]
            .iter()
            .rev()
            .filter(|l| l.contains(&session) && !l.contains("LOG:  duration: "))
            .take(12)
            .copied()
            .collect();
        for line in before.iter().rev() {
            println!("  | {line}");
        }
        for line in lines[i + 1..]
            .iter()
            .filter(|l| l.contains(&session))
            .take(2)
        {
            println!("  | {line}");
        }
    }
}

/// The log so far, up to its last complete line.
fn log_now(pg: &PostgresServer) -> String {
    let mut log = pg.log();
    let end = log.rfind('\n').map_or(0, |i| i + 1);
    log.truncate(end);
    log
}

async fn create_server(
    admin: &kube::Client,
    pg: &PostgresServer,
    max_connections: i32,
) -> Result<(), Failure> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("main-admin".into()),
            namespace: Some("landlord".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("username".into(), ByteString(ADMIN_USER.into())),
            (
                "password".into(),
                ByteString(pg.admin_password.clone().into_bytes()),
            ),
        ])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(admin.clone(), "landlord")
        .create(&PostParams::default(), &secret)
        .await?;
    let server: DatabaseServer = serde_json::from_value(serde_json::json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "DatabaseServer",
        "metadata": {"name": "main"},
        "spec": {
            "host": "127.0.0.1",
            "port": pg.port,
            "tls": {"mode": "disable"},
            "adminCredentials": {"secret": {"name": "main-admin", "namespace": "landlord"}},
            "maxConnections": max_connections
        }
    }))?;
    let servers: Api<DatabaseServer> = Api::all(admin.clone());
    servers.create(&PostParams::default(), &server).await?;
    let started = Instant::now();
    loop {
        let reachable = servers.get("main").await?.status.and_then(|s| {
            find_condition(&s.conditions, "Reachable").map(|c| (c.is_true(), c.message.clone()))
        });
        match reachable {
            Some((true, _)) => return Ok(()),
            last if started.elapsed() > Duration::from_secs(60) => {
                return Err(format!("DatabaseServer main not Reachable: {last:?}").into());
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// What the `pg_stat_activity` samples showed of the administrative role's sessions.
#[derive(Default)]
struct Sessions {
    peak: AtomicI64,
    samples: AtomicU64,
    /// Samples that showed more than the DatabaseServer's `maxConnections`.
    over: AtomicU64,
}

impl Sessions {
    /// (peak, samples, samples over the bound) since the last call.
    fn take(&self) -> (i64, u64, u64) {
        (
            self.peak.swap(0, Ordering::Relaxed),
            self.samples.swap(0, Ordering::Relaxed),
            self.over.swap(0, Ordering::Relaxed),
        )
    }
}

/// Polls `pg_stat_activity` every 50 ms for the administrative role's sessions.
async fn watch_sessions(client: tokio_postgres::Client, bound: i64, sessions: Arc<Sessions>) {
    loop {
        if let Ok(row) = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
                &[&ADMIN_USER],
            )
            .await
        {
            let open = row.get::<_, i64>(0);
            sessions.peak.fetch_max(open, Ordering::Relaxed);
            sessions.samples.fetch_add(1, Ordering::Relaxed);
            if open > bound {
                sessions.over.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    if !common::invoked_by_cargo_bench() {
        println!("provision: a benchmark, run by `cargo bench` only");
        return Ok(());
    }
    let tenants = common::count_arg(500);
    let concurrency: u16 = option_arg("concurrency", 8)?;
    let max_connections: i32 = option_arg("max-connections", 5)?;
    let resync_seconds: u64 = option_arg("resync-seconds", 10)?;
    let keep_log: String = option_arg("keep-log", String::new())?;

    let pg = PostgresServer::start_with_settings(LOG_SETTINGS)?;
    let su = pg.superuser("postgres").await;
    let version: String = su.query_one("SHOW server_version", &[]).await?.get(0);
    let emulator = Emulator::builder().history_limit(200_000).serve().await?;
    let admin = emulator.client()?;
    let dir = std::env::temp_dir().join(format!("landlord-provision-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig)?;
    common::prepare_cluster(&admin).await?;
    let operator = Operator::start(&admin, &kubeconfig, concurrency, resync_seconds).await?;
    create_server(&admin, &pg, max_connections).await?;
    let rss_idle = operator.peak_rss_kib()?;

    let sessions = Arc::new(Sessions::default());
    let poller = tokio::spawn(watch_sessions(
        pg.superuser("postgres").await,
        i64::from(max_connections),
        sessions.clone(),
    ));

    // Onboard.
    let postmaster = pg.postmaster_pid().ok_or("no postmaster.pid")?;
    let me = std::process::id();
    let cpu_before = [
        operator.cpu_seconds(),
        common::tree_cpu_seconds(postmaster),
        common::cpu_seconds(me),
    ];
    let log_start = log_now(&pg).len();
    sessions.take();
    emulator.reset_request_counts();
    let api: Api<Tenant> = Api::all(admin.clone());
    let started = Instant::now();
    let created_ok = common::create_tenants(
        &api,
        tenants,
        serde_json::json!({"database": {"serverRef": "main"}}),
    )
    .await;
    let create_done = started.elapsed();
    let (all_ready, our_lists) = wait_until_all(
        &api,
        tenants,
        &["DatabaseReady", "Ready"],
        started,
        Duration::from_secs(3600),
    )
    .await?;
    let cpu = [
        operator.cpu_seconds() - cpu_before[0],
        common::tree_cpu_seconds(postmaster) - cpu_before[1],
        common::cpu_seconds(me) - cpu_before[2],
    ];
    let (onboarding_peak, onboarding_samples, onboarding_over) = sessions.take();
    // No Tenant existed before: every Tenant reconcile so far was during the onboarding.
    let onboarding_reconciles = operator.reconciles_by_result("tenant").await?;
    let log = log_now(&pg);
    let onboarding = Statements::parse(&log[log_start..]);
    let log_ready = log.len();
    let requests = emulator.request_counts();
    let operator_requests = total(&requests) - created_ok as u64 - our_lists;
    let operator_writes = writes(&requests) - created_ok as u64;

    // Steady state: let the last reconciles settle, then watch one resync period.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log_settled = log_now(&pg).len();
    sessions.take();
    emulator.reset_request_counts();
    let tenant_before = operator.reconciles("tenant").await?;
    let server_before = operator.reconciles("databaseserver").await?;
    tokio::time::sleep(Duration::from_secs(resync_seconds)).await;
    let tenant_reconciles = operator.reconciles("tenant").await? - tenant_before;
    let server_reconciles = operator.reconciles("databaseserver").await? - server_before;
    let steady_requests = emulator.request_counts();
    let (steady_peak, _, steady_over) = sessions.take();
    let log = log_now(&pg);
    let steady = Statements::parse(&log[log_settled..]);
    let settling = Statements::parse(&log[log_ready..log_settled]);
    let rss_peak = operator.peak_rss_kib()?;
    poller.abort();
    let size: String = su
        .query_one(
            "SELECT pg_size_pretty(sum(pg_database_size(oid))) FROM pg_database",
            &[],
        )
        .await?
        .get(0);
    let databases: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant\\_%'",
            &[],
        )
        .await?
        .get(0);

    println!(
        "PostgreSQL {version}; operator --concurrency {concurrency}, --resync-seconds {resync_seconds}; DatabaseServer maxConnections {max_connections}, tls disable"
    );
    println!("tenants:                         {tenants} ({created_ok} created)");
    println!(
        "all created after:               {:.2} s",
        create_done.as_secs_f64()
    );
    println!(
        "all DatabaseReady and Ready:     {:.2} s",
        all_ready.as_secs_f64()
    );
    println!(
        "CPU until then:                  operator {:.1} s, PostgreSQL {:.1} s, emulator and benchmark {:.1} s: {:.2} of the 2 cores on average",
        cpu[0],
        cpu[1],
        cpu[2],
        cpu.iter().sum::<f64>() / all_ready.as_secs_f64()
    );
    println!("tenant databases on the server:  {databases} (all databases: {size})");
    println!(
        "admin connections at peak:       {onboarding_peak} (maxConnections {max_connections}; {onboarding_over} of {onboarding_samples} samples over it); {} opened",
        onboarding.connections
    );
    println!(
        "admin statements:                {} ({:.2} per tenant); CREATE DATABASE {}, steady-state checks (catalog reads without the lock) {}",
        onboarding.count(),
        onboarding.count() as f64 / tenants as f64,
        onboarding.of("CREATE DATABASE"),
        onboarding
            .of("SELECT … FROM pg_roles")
            .saturating_sub(onboarding.of("SELECT pg_advisory_lock(…)"))
    );
    onboarding.print(tenants);
    print_errors(&log[log_start..log_ready], 3);
    println!(
        "Tenant reconciles until then:    {} ({})",
        onboarding_reconciles.values().sum::<u64>(),
        onboarding_reconciles
            .iter()
            .map(|(result, n)| format!("{result} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    common::print_operator_cost(
        tenants,
        operator_requests,
        operator_writes,
        rss_peak,
        rss_idle,
    );
    println!(
        "settling (3 s after all Ready):  {} statements",
        settling.count()
    );
    println!(
        "steady state, {resync_seconds} s window:      {tenant_reconciles} Tenant reconciles, {server_reconciles} DatabaseServer reconciles, {} statements ({:.2} per Tenant reconcile), {} write requests (excluding the Lease), admin connections at peak {steady_peak} ({steady_over} samples over maxConnections), {} opened",
        steady.count(),
        steady.count() as f64 / tenant_reconciles.max(1) as f64,
        writes(&steady_requests),
        steady.connections
    );
    steady.print(tenants);
    print_writes("steady-state write", &steady_requests);

    operator.stop()?;
    std::fs::remove_dir_all(&dir)?;
    if !keep_log.is_empty() {
        std::fs::write(&keep_log, pg.log())?;
    }
    drop(pg);
    Ok(())
}
