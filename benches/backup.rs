//! Benchmark: one backup of a tenant database, Landlord against the stock tools, side by
//! side on the same PostgreSQL 15 and the same S3 server on loopback: moto, or MinIO with
//! `--s3=minio` (built by `scripts/minio`; it costs far less CPU per byte than moto, which
//! shares the 2 cores with everything else).
//!
//! Two databases: random text (md5 hex, which compresses to about half and no further:
//! what the time of compression looks like on real client data) of `--size-mib`, and a
//! pgbench database of `--pgbench-scale` (whose tables shrink about 50:1 and hide the
//! cost of compression). For each, after one warm-up dump (so every run reads from the
//! page cache), `--runs` rounds of, one after the other:
//!
//! - (a) `pg_dump -Fc -Z0 > /dev/null`: reading the database, the floor;
//! - (b) `pg_dump -Fc > /dev/null`: pg_dump's own gzip;
//! - (c) `pg_dump -Fc | age -r R | aws s3 cp - s3://...`: the shell pipeline with the stock
//!   AWS CLI, to the same S3 server;
//! - (d) `landlord backup run ... --s3-bucket` (the release binary): zstd, age, S3
//!   multipart, manifest; its peak RSS (VmHWM, polled every 20 ms from /proc);
//! - (e) `landlord backup run ... --storage-dir`;
//! - (f) `pg_dump -Fc -Z0 | zstd -1 -T2 | age -r R > /dev/null`: the stock tools doing
//!   Landlord's compression and encryption, with no hashing and no storage: the floor of
//!   (d) and (e) on this machine's cores.
//!
//! Every pg_dump (Landlord's too) logs in as the database's owner, a plain role, with its
//! password in a PGPASSFILE. The medians, sizes and peak RSS are printed as Markdown. The
//! "idle" RSS is the peak of the same command backing up a database of one row.
//!
//! ```sh
//! cargo build --release --locked --bin landlord && cargo bench --bench backup
//! ```
//!
//! Options after `--`: `--size-mib=N` (random text, default 1024; 0 skips it),
//! `--pgbench-scale=N` (default 70, about 1 GiB; 0 skips it), `--runs=N` (default 3),
//! `--only=abcdef` (which of the commands to run; default abcde), `--s3=moto|minio` (default moto).

mod common;
#[allow(dead_code)]
#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Failure, check, median, mib, option_arg, proc_status_kib};
use postgres::PostgresServer;

const BUCKET: &str = "bench";
const REGION: &str = "us-east-1";
/// The S3 server's credentials (MinIO's root user; moto takes any).
const ACCESS_KEY: &str = "testing";
const SECRET_KEY: &str = "testing-secret";

/// Everything the commands need.
struct Bench {
    pg: PostgresServer,
    /// The S3 server's process (for its CPU time).
    server_pid: u32,
    landlord: PathBuf,
    bin: PathBuf,
    s3: String,
    dir: PathBuf,
    recipient: String,
}

/// A database to back up, owned by a role of the same name.
struct Database {
    name: String,
    password_file: PathBuf,
    pgpass: PathBuf,
}

/// What one command did.
struct Run {
    seconds: f64,
    /// Bytes written (object size), when known.
    size: Option<u64>,
    /// pg_dump's bytes before Landlord's compression, when known.
    dump_size: Option<u64>,
    /// Peak RSS of the landlord process, KiB.
    peak_rss_kib: Option<u64>,
    /// CPU seconds of the landlord process itself (pg_dump aside), when it ran.
    landlord_cpu: Option<f64>,
    /// CPU seconds the S3 server used meanwhile.
    server_cpu: f64,
}

impl Bench {
    fn aws_env(&self, command: &mut Command) {
        command
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_DEFAULT_REGION", REGION);
    }

    /// `bash -o pipefail -c script` with pg_dump's directory first on PATH.
    fn shell(&self, db: &Database, script: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .args(["-o", "pipefail", "-c", script])
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("PGPASSFILE", &db.pgpass)
            .env(
                "CONN",
                format!(
                    "host=127.0.0.1 port={} dbname={} user={} sslmode=disable",
                    self.pg.port, db.name, db.name
                ),
            )
            .env("RECIPIENT", &self.recipient)
            .env("S3", &self.s3)
            .stdin(Stdio::null());
        self.aws_env(&mut command);
        command
    }

    fn aws(&self, args: &[&str]) -> Result<String, Failure> {
        let mut command = Command::new("aws");
        command.args(["--endpoint-url", &self.s3]).args(args);
        self.aws_env(&mut command);
        let out = check(command.stdin(Stdio::null()).output()?, "aws")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn timed_shell(&self, db: &Database, script: &str) -> Result<f64, Failure> {
        let start = Instant::now();
        check(self.shell(db, script).output()?, script)?;
        Ok(start.elapsed().as_secs_f64())
    }

    /// `landlord backup run` to `destination`, timed, its peak RSS polled.
    fn landlord(&self, db: &Database, backup: &str, destination: &[&str]) -> Result<Run, Failure> {
        let start = Instant::now();
        let child = Command::new(&self.landlord)
            .args(["backup", "run", "--host", "127.0.0.1", "--port"])
            .arg(self.pg.port.to_string())
            .args([
                "--dbname",
                &db.name,
                "--user",
                &db.name,
                "--sslmode",
                "disable",
            ])
            .arg("--password-file")
            .arg(&db.password_file)
            .arg("--pg-dump")
            .arg(self.bin.join("pg_dump"))
            .args(["--recipient", &self.recipient])
            .args([
                "--tenant",
                "bench",
                "--tenant-uid",
                &db.name,
                "--backup",
                backup,
            ])
            .args(destination)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = child.id();
        let peak = Arc::new(AtomicU64::new(0));
        // CPU clock ticks of landlord itself, as last seen.
        let ticks = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let poller = {
            let (peak, ticks, done) = (peak.clone(), ticks.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if let Some(kib) = proc_status_kib(pid, "VmHWM") {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    if let Some(t) = cpu_ticks(pid) {
                        ticks.fetch_max(t, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let out = child.wait_with_output();
        let seconds = start.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        let _ = poller.join();
        let out = check(out?, "landlord backup run")?;
        let manifest: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok(Run {
            seconds,
            size: manifest["sizeBytes"].as_u64(),
            dump_size: manifest["dumpSizeBytes"].as_u64(),
            peak_rss_kib: Some(peak.load(Ordering::Relaxed)).filter(|&k| k > 0),
            landlord_cpu: Some(ticks.load(Ordering::Relaxed) as f64 / 100.0),
            server_cpu: 0.0,
        })
    }

    fn run(&self, db: &Database, which: char, round: usize) -> Result<Run, Failure> {
        let before = cpu_ticks(self.server_pid).unwrap_or(0);
        let mut run = self.run_one(db, which, round)?;
        // (Cleaning up after (c) and (d) also costs the server a little; it is counted too.)
        run.server_cpu = cpu_ticks(self.server_pid)
            .unwrap_or(0)
            .saturating_sub(before) as f64
            / 100.0;
        Ok(run)
    }

    fn run_one(&self, db: &Database, which: char, round: usize) -> Result<Run, Failure> {
        let plain = |seconds| Run {
            seconds,
            size: None,
            dump_size: None,
            peak_rss_kib: None,
            landlord_cpu: None,
            server_cpu: 0.0,
        };
        match which {
            'a' => Ok(plain(self.timed_shell(
                db,
                "pg_dump -Fc -Z0 --dbname=\"$CONN\" > /dev/null",
            )?)),
            'b' => Ok(plain(
                self.timed_shell(db, "pg_dump -Fc --dbname=\"$CONN\" > /dev/null")?,
            )),
            'f' => Ok(plain(self.timed_shell(
                db,
                "pg_dump -Fc -Z0 --dbname=\"$CONN\" | zstd -q -1 -T2 | age -r \"$RECIPIENT\" > /dev/null",
            )?)),
            'c' => {
                let key = format!("shell/{}-{round}.dump.age", db.name);
                let seconds = self.timed_shell(
                    db,
                    &format!(
                        "pg_dump -Fc --dbname=\"$CONN\" | age -r \"$RECIPIENT\" | aws --endpoint-url \"$S3\" s3 cp - s3://{BUCKET}/{key}"
                    ),
                )?;
                let head: serde_json::Value = serde_json::from_str(&self.aws(&[
                    "s3api",
                    "head-object",
                    "--bucket",
                    BUCKET,
                    "--key",
                    &key,
                ])?)?;
                self.aws(&["s3", "rm", &format!("s3://{BUCKET}/{key}")])?;
                Ok(Run {
                    size: head["ContentLength"].as_u64(),
                    ..plain(seconds)
                })
            }
            'd' => {
                let backup = format!("s3-{round}");
                let run = self.landlord(
                    db,
                    &backup,
                    &[
                        "--s3-endpoint",
                        &self.s3,
                        "--s3-bucket",
                        BUCKET,
                        "--s3-path-style",
                    ],
                )?;
                self.aws(&[
                    "s3",
                    "rm",
                    "--recursive",
                    &format!("s3://{BUCKET}/bench/{}/", db.name),
                ])?;
                Ok(run)
            }
            'e' => {
                let store = self.dir.join("store");
                let _ = std::fs::remove_dir_all(&store);
                std::fs::create_dir_all(&store)?;
                let run = self.landlord(
                    db,
                    &format!("dir-{round}"),
                    &["--storage-dir", store.to_str().ok_or("path")?],
                )?;
                std::fs::remove_dir_all(&store)?;
                Ok(run)
            }
            other => Err(format!("no command {other:?}: --only takes letters of abcdef").into()),
        }
    }

    /// A role and a database of `name` owned by it, with its password files.
    async fn database(&self, name: &str) -> Result<(Database, String), Failure> {
        let password = postgres_password();
        let su = self.pg.superuser("postgres").await;
        su.batch_execute(&format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'"))
            .await?;
        su.batch_execute(&format!("CREATE DATABASE {name} OWNER {name}"))
            .await?;
        let password_file = self.dir.join(format!("{name}.password"));
        let pgpass = self.dir.join(format!("{name}.pgpass"));
        std::fs::write(&password_file, format!("{password}\n"))?;
        std::fs::write(
            &pgpass,
            format!("127.0.0.1:{}:{name}:{name}:{password}\n", self.pg.port),
        )?;
        for file in [&password_file, &pgpass] {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok((
            Database {
                name: name.to_owned(),
                password_file,
                pgpass,
            },
            password,
        ))
    }

    async fn size_of(&self, db: &Database) -> Result<i64, Failure> {
        let su = self.pg.superuser("postgres").await;
        Ok(su
            .query_one("SELECT pg_database_size($1)", &[&db.name])
            .await?
            .get(0))
    }
}

fn postgres_password() -> String {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).expect("randomness");
    random.iter().map(|b| format!("{b:02x}")).collect()
}

/// The S3 server on `127.0.0.1:port`, started: moto from the project's `.venv` (which
/// `scripts/test` installs), or MinIO (which `scripts/minio` builds, or `LANDLORD_MINIO_BIN`)
/// with its data under `dir`.
fn start_s3(kind: &str, port: u16, dir: &Path) -> Result<std::process::Child, Failure> {
    let mut command = match kind {
        "moto" => {
            let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
            if !python.exists() {
                return Err(
                    format!("{} is missing: run scripts/test once", python.display()).into(),
                );
            }
            let mut command = Command::new(python);
            command.args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]);
            command
        }
        "minio" => {
            let binary = match std::env::var_os("LANDLORD_MINIO_BIN") {
                Some(binary) => PathBuf::from(binary),
                None => {
                    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/minio");
                    let out = check(Command::new(script).output()?, "scripts/minio")?;
                    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
                }
            };
            let mut command = Command::new(binary);
            command
                .arg("server")
                .arg(dir.join("minio"))
                .args(["--address", &format!("127.0.0.1:{port}")])
                .args([
                    "--console-address",
                    &format!("127.0.0.1:{}", common::free_port()?),
                ])
                .arg("--quiet")
                .env("MINIO_ROOT_USER", ACCESS_KEY)
                .env("MINIO_ROOT_PASSWORD", SECRET_KEY)
                .env("MINIO_BROWSER", "off")
                .env("MINIO_UPDATE", "off");
            command
        }
        other => return Err(format!("--s3={other}: moto or minio").into()),
    };
    Ok(command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {kind}: {e}"))?)
}

/// utime + stime of `pid` in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Loads `mib` MiB of random text ([`common::load_random_text`]) in two sessions at once.
async fn load_random(
    bench: &Bench,
    db: &Database,
    password: &str,
    mib: u64,
) -> Result<(), Failure> {
    let owner = bench.pg.connect(&db.name, password, &db.name).await?;
    let mut sessions = Vec::new();
    for _ in 0..2 {
        sessions.push(bench.pg.connect(&db.name, password, &db.name).await?);
    }
    common::load_random_text(&owner, &sessions, mib).await
}

fn load_pgbench(bench: &Bench, db: &Database, scale: u64) -> Result<(), Failure> {
    let mut command = Command::new(bench.bin.join("pgbench"));
    command
        .args(["-i", "-q", "-I", "dtGvp", "-s", &scale.to_string()])
        .args(["-h", "127.0.0.1", "-p", &bench.pg.port.to_string()])
        .args(["-U", &db.name, &db.name])
        .env("PGPASSFILE", &db.pgpass)
        .stdin(Stdio::null());
    check(command.output()?, "pgbench -i")?;
    Ok(())
}

fn label(which: char) -> &'static str {
    match which {
        'a' => "(a) `pg_dump -Fc -Z0 > /dev/null`",
        'b' => "(b) `pg_dump -Fc > /dev/null`",
        'c' => "(c) `pg_dump -Fc \\| age -r … \\| aws s3 cp - s3://…`",
        'd' => "(d) `landlord backup run` to S3",
        'e' => "(e) `landlord backup run` to a directory",
        'f' => "(f) `pg_dump -Fc -Z0 \\| zstd -1 -T2 \\| age -r … > /dev/null`",
        _ => "?",
    }
}

/// Runs every command `runs` times on `db`, round after round, and prints the table.
fn measure(bench: &Bench, db: &Database, only: &str, runs: usize) -> Result<(), Failure> {
    // The warm-up: the database in the page cache, hint bits set.
    bench.timed_shell(db, "pg_dump -Fc -Z0 --dbname=\"$CONN\" > /dev/null")?;
    let mut results: BTreeMap<char, Vec<Run>> = BTreeMap::new();
    for round in 0..runs {
        for which in only.chars() {
            let run = bench.run(db, which, round)?;
            eprintln!(
                "  {} round {} ({which}): {:.2} s, S3 server CPU {:.2} s{}{}",
                db.name,
                round + 1,
                run.seconds,
                run.server_cpu,
                run.peak_rss_kib
                    .map(|k| format!(", peak RSS {k} KiB"))
                    .unwrap_or_default(),
                run.landlord_cpu
                    .map(|c| format!(", landlord CPU {c:.2} s"))
                    .unwrap_or_default()
            );
            results.entry(which).or_default().push(run);
        }
    }
    let medians: BTreeMap<char, f64> = results
        .iter()
        .map(|(w, runs)| {
            let mut seconds: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
            (*w, median(&mut seconds))
        })
        .collect();
    println!();
    println!("| command | median | runs (s) | vs (a) | written | S3 server CPU | landlord CPU |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    for (which, runs) in &results {
        let all: Vec<String> = runs.iter().map(|r| format!("{:.2}", r.seconds)).collect();
        let vs_a = medians
            .get(&'a')
            .map(|a| format!("{:.2}×", medians[which] / a))
            .unwrap_or_default();
        let written = runs
            .last()
            .and_then(|r| r.size)
            .map(|s| {
                let before = runs.last().and_then(|r| r.dump_size);
                match before {
                    Some(d) => format!("{} (of {} dumped)", mib(s), mib(d)),
                    None => mib(s),
                }
            })
            .unwrap_or_else(|| "–".to_owned());
        let mut server: Vec<f64> = runs.iter().map(|r| r.server_cpu).collect();
        let mut own: Vec<f64> = runs.iter().filter_map(|r| r.landlord_cpu).collect();
        let own = if own.is_empty() {
            "–".to_owned()
        } else {
            format!("{:.2} s", median(&mut own))
        };
        println!(
            "| {} | {:.2} s | {} | {vs_a} | {written} | {:.2} s | {own} |",
            label(*which),
            medians[which],
            all.join(", "),
            median(&mut server)
        );
    }
    if let (Some(c), Some(d)) = (medians.get(&'c'), medians.get(&'d')) {
        println!("\n(c) / (d) = {:.2}", c / d);
    }
    for which in ['d', 'e'] {
        if let Some(runs) = results.get(&which) {
            let peaks: Vec<String> = runs
                .iter()
                .filter_map(|r| r.peak_rss_kib)
                .map(|k| format!("{:.1}", k as f64 / 1024.0))
                .collect();
            println!("peak RSS of {} (MiB): {}", label(which), peaks.join(", "));
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    if !common::invoked_by_cargo_bench() {
        println!("backup: a benchmark, run by `cargo bench` only");
        return Ok(());
    }
    let size_mib: u64 = option_arg("size-mib", 1024)?;
    let pgbench_scale: u64 = option_arg("pgbench-scale", 70)?;
    let runs: usize = option_arg("runs", 3)?;
    let only: String = option_arg("only", "abcde".to_owned())?;

    let landlord = std::env::current_exe()?
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("landlord"))
        .ok_or("cannot locate the landlord binary")?;
    if !landlord.exists() {
        return Err(format!(
            "{} is missing: cargo build --release --locked --bin landlord",
            landlord.display()
        )
        .into());
    }
    common::require_tools(&["age", "age-keygen", "aws", "zstd"])?;
    let dir = common::private_dir("backup")?;
    let out = check(
        Command::new("sh")
            .args([
                "-c",
                "age-keygen -o key.txt 2>/dev/null && age-keygen -y key.txt",
            ])
            .current_dir(&dir)
            .output()?,
        "age-keygen",
    )?;
    let recipient = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let s3_kind: String = option_arg("s3", "moto".to_owned())?;
    let port = common::free_port()?;
    let mut server = start_s3(&s3_kind, port, &dir)?;
    let s3 = format!("http://127.0.0.1:{port}");

    let pg = PostgresServer::start_with_settings("max_wal_size = 8GB\ncheckpoint_timeout = 1h\n")?;
    let version: String = pg
        .superuser("postgres")
        .await
        .query_one("SHOW server_version", &[])
        .await?
        .get(0);
    let bench = Bench {
        pg,
        server_pid: server.id(),
        landlord,
        bin: PathBuf::from(postgres::DEFAULT_BIN),
        s3,
        dir: dir.clone(),
        recipient,
    };
    // The server may listen before it serves S3 (MinIO does): create the bucket when it
    // answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = bench.aws(&["s3api", "create-bucket", "--bucket", BUCKET]) {
        if Instant::now() > deadline {
            return Err(format!("{s3_kind} on {} does not serve S3: {e}", bench.s3).into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let aws_version = check(
        Command::new("aws").arg("--version").output()?,
        "aws --version",
    )?;
    println!(
        "PostgreSQL {version}; {s3_kind} on {}; {}; {} rounds of {only}",
        bench.s3,
        String::from_utf8_lossy(&aws_version.stdout).trim(),
        runs
    );

    // Idle: the same command on a database of one row.
    let (idle, idle_password) = bench.database("bench_idle").await?;
    bench
        .pg
        .connect(&idle.name, &idle_password, &idle.name)
        .await?
        .batch_execute("CREATE TABLE one (id int); INSERT INTO one VALUES (1)")
        .await?;
    let idle_run = bench.run(&idle, 'd', 0)?;
    println!(
        "idle: `landlord backup run` to S3 of a one-row database: {:.2} s, peak RSS {:.1} MiB",
        idle_run.seconds,
        idle_run.peak_rss_kib.unwrap_or(0) as f64 / 1024.0
    );

    if size_mib > 0 {
        let (db, password) = bench.database("bench_random").await?;
        let start = Instant::now();
        load_random(&bench, &db, &password, size_mib).await?;
        println!(
            "\n## random text, {size_mib} MiB asked: database {} (loaded in {:.0} s)",
            mib(bench.size_of(&db).await? as u64),
            start.elapsed().as_secs_f64()
        );
        measure(&bench, &db, &only, runs)?;
    }
    if pgbench_scale > 0 {
        let (db, _) = bench.database("bench_pgbench").await?;
        let start = Instant::now();
        load_pgbench(&bench, &db, pgbench_scale)?;
        println!(
            "\n## pgbench, scale {pgbench_scale}: database {} (loaded in {:.0} s)",
            mib(bench.size_of(&db).await? as u64),
            start.elapsed().as_secs_f64()
        );
        measure(&bench, &db, &only, runs)?;
    }
    let _ = server.kill();
    let _ = server.wait();
    drop(bench);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
