//! Benchmark: the operator's own backups and restores of a tenant database of random
//! text, and the stock restore pipeline beside them, on the same PostgreSQL 15 and the
//! same S3 server (moto, on loopback).
//!
//! The operator is the release `landlord run` in its own process, against the in-process
//! emulator, with a DatabaseServer for the tests' PostgreSQL (TLS `verify-full`) and a
//! BackupStorage on moto, as `tests/tenant_backup.rs` sets them up (`tests/support`). A
//! Tenant's database is loaded with `--size-mib` of the random text of `benches/backup.rs`
//! (rows of md5 hex digests: it compresses to about half and no further); then
//! `--runs` rounds of each of:
//!
//! - (B) a TenantBackup, from its creation to its `Completed` phase;
//! - (S) the stock pipeline `aws s3 cp s3://…/<object> - | age -d -i key.txt | zstd -d |
//!   pg_restore --no-owner --dbname=…` (the README's path by hand) of that backup's object
//!   into a new database owned by the tenant's role, as that role, over the same TLS;
//! - (L) a TenantRestore of the same backup into a new database, from its creation to its
//!   `Completed` phase (download, SHA-256 and size checked, then age, zstd and
//!   `pg_restore --single-transaction --exit-on-error`).
//!
//! For (B) and (L): the operator's peak RSS during the run (`VmHWM`, reset to the resident
//! size just before with `/proc/<pid>/clear_refs`) against its resident size just before
//! (idle: the same process, everything reconciled), and the CPU seconds of the operator
//! itself, of its children (pg_dump, pg_restore), of moto and of PostgreSQL (postmaster
//! and backends); for (S) the CPU of the pipeline (aws, age, zstd, pg_restore). The
//! 1-minute load average is printed with every run.
//!
//! ```sh
//! cargo build --release --locked --bin landlord && cargo bench --locked --bench restore
//! ```
//!
//! Options after `--`: `--size-mib=N` (default 1024), `--runs=N` (default 3),
//! `--only=BSL` (which of the three to measure; one unmeasured backup is taken when B is
//! left out).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Failure, Operator, check, load_average, median, mib, option_arg};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use landlord::api::{BackupPhase, RestorePhase, Tenant, TenantBackup, TenantRestore};
use landlord::keys::TenantRef;
use landlord::keys::kubernetes::{IDENTITY_KEY, secret_name};
use serde_json::json;
use support::landlord::{OPERATOR_NAMESPACE, create_database_server, create_s3_storage};
use support::postgres::{self, PostgresServer};
use support::s3::S3Server;

const BUCKET: &str = "bench";
const TENANT: &str = "bench";
/// The tenant's role and database, as Landlord names them.
const ROLE: &str = "tenant_bench";

/// One measured run.
#[derive(Default)]
struct Run {
    seconds: f64,
    /// What the controller recorded: completion time minus start time.
    controller_seconds: Option<f64>,
    /// The operator's resident KiB just before, and its peak during the run.
    idle_kib: Option<u64>,
    peak_kib: Option<u64>,
    operator_cpu: Option<f64>,
    /// pg_dump or pg_restore under the operator; the whole pipeline for (S).
    children_cpu: f64,
    moto_cpu: f64,
    postgres_cpu: f64,
    load: f64,
}

struct Bench {
    admin: Client,
    pg: PostgresServer,
    s3: S3Server,
    operator: Operator,
    dir: PathBuf,
    /// The tenant's password in a PGPASSFILE, the CA and the identity (key.txt).
    pgpass: PathBuf,
    ca: PathBuf,
    identity: PathBuf,
    rows: i64,
}

/// CPU seconds of what a run costs besides its own process: moto, PostgreSQL, children.
struct Meter {
    moto: f64,
    postgres: f64,
    operator: f64,
    operator_children: f64,
    waited: f64,
    started: Instant,
}

impl Bench {
    fn meter(&self) -> Meter {
        Meter {
            moto: common::cpu_seconds(self.s3.pid()),
            postgres: self
                .pg
                .postmaster_pid()
                .map_or(0.0, common::tree_cpu_seconds),
            operator: self.operator.cpu_seconds(),
            operator_children: self.operator.children_cpu_seconds(),
            waited: common::waited_children_cpu_seconds(),
            started: Instant::now(),
        }
    }

    /// The run since `meter`: wall time, and the CPU of moto and PostgreSQL.
    fn since(&self, meter: &Meter) -> Run {
        Run {
            seconds: meter.started.elapsed().as_secs_f64(),
            moto_cpu: common::cpu_seconds(self.s3.pid()) - meter.moto,
            postgres_cpu: self
                .pg
                .postmaster_pid()
                .map_or(0.0, common::tree_cpu_seconds)
                - meter.postgres,
            load: load_average(),
            ..Run::default()
        }
    }

    /// `since`, with the operator's CPU, its children's and its peak RSS.
    fn operator_run(&self, meter: &Meter, idle_kib: u64) -> Result<Run, Failure> {
        Ok(Run {
            idle_kib: Some(idle_kib),
            peak_kib: Some(self.operator.peak_rss_kib()?),
            operator_cpu: Some(self.operator.cpu_seconds() - meter.operator),
            children_cpu: self.operator.children_cpu_seconds() - meter.operator_children,
            ..self.since(meter)
        })
    }

    /// The operator's resident size now, its peak reset to it.
    fn idle(&self) -> Result<u64, Failure> {
        self.operator.reset_peak_rss()?;
        self.operator.rss_kib()
    }

    /// Creates `object`, then looks at it every 100 ms until `outcome` says it finished
    /// (`Ok` with the controller's own seconds, or `Err` saying why it failed); measured
    /// from just before the creation, with the operator's peak RSS.
    async fn measured<K>(
        &self,
        object: K,
        outcome: impl Fn(&K) -> Option<Result<Option<f64>, String>>,
    ) -> Result<Run, Failure>
    where
        K: kube::Resource<DynamicType = (), Scope = kube::core::ClusterResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::all(self.admin.clone());
        let name = object.name_any();
        let idle = self.idle()?;
        let meter = self.meter();
        api.create(&PostParams::default(), &object).await?;
        let controller_seconds = loop {
            match outcome(&api.get(&name).await?) {
                Some(Ok(seconds)) => break seconds,
                Some(Err(why)) => return Err(format!("{name} failed: {why}").into()),
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Ok(Run {
            controller_seconds,
            ..self.operator_run(&meter, idle)?
        })
    }

    /// (B): a TenantBackup from creation to Completed.
    async fn backup(&self, name: &str) -> Result<Run, Failure> {
        let backup: TenantBackup = serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "TenantBackup",
            "metadata": {"name": name}, "spec": {"tenantRef": TENANT}
        }))?;
        self.measured(backup, |b: &TenantBackup| {
            let status = b.status.as_ref()?;
            match status.phase? {
                BackupPhase::Completed => {
                    Some(Ok(between(&status.start_time, &status.completion_time)))
                }
                BackupPhase::Failed => Some(Err(format!("{:?}", status.conditions))),
                _ => None,
            }
        })
        .await
    }

    /// (L): a TenantRestore of `backup` into `target`, from creation to Completed.
    async fn landlord_restore(
        &self,
        name: &str,
        backup: &str,
        target: &str,
    ) -> Result<Run, Failure> {
        let restore: TenantRestore = serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "TenantRestore",
            "metadata": {"name": name},
            "spec": {"backupRef": backup, "targetDatabase": target}
        }))?;
        let run = self
            .measured(restore, |r: &TenantRestore| {
                let status = r.status.as_ref()?;
                match status.phase? {
                    RestorePhase::Completed => {
                        Some(Ok(between(&status.start_time, &status.completion_time)))
                    }
                    RestorePhase::Failed => Some(Err(format!("{:?}", status.conditions))),
                    _ => None,
                }
            })
            .await?;
        self.check_restored(target).await?;
        Ok(run)
    }

    /// (S): the stock pipeline of `object` into a new database `target`.
    async fn stock_restore(&self, object: &str, target: &str) -> Result<Run, Failure> {
        self.pg
            .superuser("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE {target} OWNER {ROLE}"))
            .await?;
        let conn = format!(
            "host=127.0.0.1 port={} dbname={target} user={ROLE} sslmode=verify-full sslrootcert={}",
            self.pg.port,
            self.ca.display()
        );
        let script = "aws --endpoint-url \"$S3\" s3 cp \"s3://$BUCKET/$OBJECT\" - | age -d -i \"$IDENTITY\" | zstd -d | pg_restore --no-owner --dbname=\"$CONN\"";
        let meter = self.meter();
        let out = Command::new("bash")
            .args(["-o", "pipefail", "-c", script])
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    postgres::DEFAULT_BIN,
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("S3", &self.s3.endpoint)
            .env("BUCKET", BUCKET)
            .env("OBJECT", object)
            .env("IDENTITY", &self.identity)
            .env("CONN", conn)
            .env("PGPASSFILE", &self.pgpass)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .stdin(Stdio::null())
            .output()?;
        let mut run = self.since(&meter);
        check(out, "the stock restore pipeline")?;
        run.children_cpu = common::waited_children_cpu_seconds() - meter.waited;
        self.check_restored(target).await?;
        Ok(run)
    }

    /// Every row is in `target`; then it is dropped, to make room.
    async fn check_restored(&self, target: &str) -> Result<(), Failure> {
        let rows: i64 = self
            .pg
            .superuser(target)
            .await
            .query_one("SELECT count(*) FROM documents", &[])
            .await?
            .get(0);
        if rows != self.rows {
            return Err(format!("{target} has {rows} rows, not {}", self.rows).into());
        }
        self.pg
            .superuser("postgres")
            .await
            .batch_execute(&format!("DROP DATABASE {target} WITH (FORCE)"))
            .await?;
        Ok(())
    }
}

fn between(
    start: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    end: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> Option<f64> {
    let (start, end) = (start.as_ref()?, end.as_ref()?);
    Some(end.0.duration_since(start.0).as_secs_f64())
}

fn label(which: char) -> &'static str {
    match which {
        'B' => "(B) TenantBackup, operator (`landlord run`)",
        'S' => "(S) `aws s3 cp … - \\| age -d \\| zstd -d \\| pg_restore`",
        'L' => "(L) TenantRestore, operator (`landlord run`)",
        _ => "?",
    }
}

fn kib_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print(results: &BTreeMap<char, Vec<Run>>) {
    println!();
    println!(
        "| run | seconds | controller's own | load | operator idle → peak RSS (above idle) | operator CPU | children CPU | moto CPU | PostgreSQL CPU |"
    );
    println!("|---|---:|---:|---:|---|---:|---:|---:|---:|");
    for (which, runs) in results {
        for (n, r) in runs.iter().enumerate() {
            let rss = match (r.idle_kib, r.peak_kib) {
                (Some(i), Some(p)) => format!(
                    "{:.1} → {:.1} MiB ({:.1})",
                    kib_mib(i),
                    kib_mib(p),
                    kib_mib(p.saturating_sub(i))
                ),
                _ => "–".to_owned(),
            };
            println!(
                "| {} #{} | {:.2} s | {} | {:.1} | {rss} | {} | {:.2} s | {:.2} s | {:.2} s |",
                label(*which),
                n + 1,
                r.seconds,
                r.controller_seconds
                    .map_or("–".to_owned(), |s| format!("{s:.2} s")),
                r.load,
                r.operator_cpu
                    .map_or("–".to_owned(), |s| format!("{s:.2} s")),
                r.children_cpu,
                r.moto_cpu,
                r.postgres_cpu
            );
        }
    }
    println!();
    let mut medians = BTreeMap::new();
    for (which, runs) in results {
        let mut seconds: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
        let m = median(&mut seconds);
        medians.insert(*which, m);
        let mut above: Vec<f64> = runs
            .iter()
            .filter_map(|r| Some(kib_mib(r.peak_kib?.saturating_sub(r.idle_kib?))))
            .collect();
        let above = if above.is_empty() {
            String::new()
        } else {
            format!(
                "; peak RSS above idle: median {:.1} MiB, max {:.1} MiB",
                median(&mut above),
                above.iter().copied().fold(0.0, f64::max)
            )
        };
        println!("median of {}: {m:.2} s{above}", label(*which));
    }
    if let (Some(s), Some(l)) = (medians.get(&'S'), medians.get(&'L')) {
        println!(
            "(S) / (L) = {:.2} (above 1.00: Landlord's restore is faster)",
            s / l
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    if !common::invoked_by_cargo_bench() {
        println!("restore: a benchmark, run by `cargo bench` only");
        return Ok(());
    }
    let size_mib: u64 = option_arg("size-mib", 1024)?;
    let runs: usize = option_arg("runs", 3)?;
    let only: String = option_arg("only", "BSL".to_owned())?;
    common::require_tools(&["age", "zstd", "aws"])?;
    let dir = common::private_dir("restore")?;

    let pg = PostgresServer::start_with_settings("max_wal_size = 8GB\ncheckpoint_timeout = 1h\n")?;
    let s3 = S3Server::start().await;
    let emulator = kube_emulator::Emulator::builder().serve().await?;
    let admin = emulator.client()?;
    let kubeconfig = dir.join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig)?;
    common::prepare_cluster(&admin).await?;
    create_database_server(&admin, "pg", &pg).await;
    create_s3_storage(&admin, "s3", &s3, BUCKET).await;
    let pg_dump = Path::new(postgres::DEFAULT_BIN).join("pg_dump");
    let operator = Operator::start_with(
        &admin,
        &kubeconfig,
        8,
        300,
        &["--pg-dump", pg_dump.to_str().ok_or("path")?],
    )
    .await?;

    let tenants: Api<Tenant> = Api::all(admin.clone());
    let tenant: Tenant = serde_json::from_value(json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": TENANT},
        "spec": {"database": {"serverRef": "pg"}, "backup": {"storageRef": "s3", "schedule": "@yearly"}}
    }))?;
    tenants.create(&PostParams::default(), &tenant).await?;
    let started = Instant::now();
    common::wait_until_all(&tenants, 1, &["Ready"], started, Duration::from_secs(120)).await?;
    let tenant = tenants.get(TENANT).await?;
    let secret = Api::<Secret>::namespaced(admin.clone(), &tenant.primary_namespace())
        .get(&format!("{TENANT}-db"))
        .await?;
    let password = String::from_utf8(secret.data.ok_or("no data")?["password"].0.clone())?;
    let key = Api::<Secret>::namespaced(admin.clone(), OPERATOR_NAMESPACE)
        .get(&secret_name(&TenantRef::new(
            TENANT,
            tenant.uid().as_deref().ok_or("uid")?,
        )?))
        .await?;
    let private = |name: &str, bytes: &[u8]| -> Result<PathBuf, Failure> {
        let path = dir.join(name);
        std::fs::write(&path, bytes)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(path)
    };
    let identity = private("key.txt", &key.data.ok_or("no key data")?[IDENTITY_KEY].0)?;
    let pgpass = private(
        "pgpass",
        format!("127.0.0.1:{}:*:{ROLE}:{password}\n", pg.port).as_bytes(),
    )?;
    let ca = private("ca.pem", &pg.ca_pem)?;

    let owner = pg.connect(ROLE, &password, ROLE).await?;
    let mut sessions = Vec::new();
    for _ in 0..2 {
        sessions.push(pg.connect(ROLE, &password, ROLE).await?);
    }
    let loading = Instant::now();
    common::load_random_text(&owner, &sessions, size_mib).await?;
    let size: i64 = owner
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await?
        .get(0);
    let rows: i64 = owner
        .query_one("SELECT count(*) FROM documents", &[])
        .await?
        .get(0);
    drop((owner, sessions));
    let version: String = pg
        .superuser("postgres")
        .await
        .query_one("SHOW server_version", &[])
        .await?
        .get(0);
    println!(
        "PostgreSQL {version}; moto on {}; `landlord run` pid {}; database {} ({rows} rows, loaded in {:.0} s); {runs} rounds of {only}",
        s3.endpoint,
        operator.pid(),
        mib(size as u64),
        loading.elapsed().as_secs_f64()
    );
    let bench = Bench {
        admin,
        pg,
        s3,
        operator,
        dir: dir.clone(),
        pgpass,
        ca,
        identity,
        rows,
    };

    let mut results: BTreeMap<char, Vec<Run>> = BTreeMap::new();
    // The backups: each run's TenantBackup; all but the last are deleted (with their
    // objects) once measured, so that moto holds one.
    let backups = if only.contains('B') { runs } else { 1 };
    let backup_api: Api<TenantBackup> = Api::all(bench.admin.clone());
    let mut last = String::new();
    for n in 1..=backups {
        let name = format!("{TENANT}-{n}");
        let run = bench.backup(&name).await?;
        eprintln!(
            "  backup {n}: {:.2} s, peak RSS {:.1} MiB above idle, load {:.1}",
            run.seconds,
            kib_mib(
                run.peak_kib
                    .unwrap_or(0)
                    .saturating_sub(run.idle_kib.unwrap_or(0))
            ),
            run.load
        );
        if only.contains('B') {
            results.entry('B').or_default().push(run);
        }
        if !last.is_empty() {
            backup_api.delete(&last, &Default::default()).await?;
        }
        last = name;
    }
    let status = backup_api.get(&last).await?.status.ok_or("no status")?;
    let object = status.object_key.ok_or("no objectKey")?;
    println!(
        "backup {last}: {} of ciphertext",
        mib(status.size_bytes.unwrap_or(0) as u64)
    );
    // Let the deletions finish before the restores are measured.
    tokio::time::sleep(Duration::from_secs(5)).await;

    for round in 1..=runs {
        for which in only.chars().filter(|c| *c != 'B') {
            let run = match which {
                'S' => {
                    bench
                        .stock_restore(&object, &format!("stock_{round}"))
                        .await?
                }
                'L' => {
                    bench
                        .landlord_restore(
                            &format!("{TENANT}-restore-{round}"),
                            &last,
                            &format!("landlord_{round}"),
                        )
                        .await?
                }
                other => return Err(format!("no run {other:?}: --only takes B, S, L").into()),
            };
            eprintln!(
                "  round {round} ({which}): {:.2} s, load {:.1}",
                run.seconds, run.load
            );
            results.entry(which).or_default().push(run);
        }
    }
    print(&results);
    let Bench { operator, dir, .. } = bench;
    operator.stop()?;
    drop(emulator);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
