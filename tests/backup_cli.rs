//! `landlord backup run`, the built binary, against a real PostgreSQL 15 and moto's S3
//! server: the object it uploads, downloaded with boto3 (not Landlord's client), decrypts
//! with the stock `age` CLI and a key made by `age-keygen`, decompresses with the stock
//! `zstd`, and restores with the stock `pg_restore` with every row; the manifest on stdout
//! describes it (SHA-256, size). The same to a directory with pg_dump's own compression.
//! A wrong password fails with a one-line message without the password, and leaves no
//! object and no multipart upload behind.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};
use support::postgres::{self, PostgresServer};
use support::s3::S3Server;

mod support;

/// boto3 from the project's `.venv` (where `scripts/test` installs moto), given the
/// endpoint, access key and secret: `get BUCKET KEY PATH` downloads an object; `ls BUCKET`
/// prints the keys and the pending multipart uploads as JSON.
const BOTO: &str = r#"
import json, sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
if sys.argv[4] == "get":
    s3.download_file(sys.argv[5], sys.argv[6], sys.argv[7])
else:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=sys.argv[5]).get("Contents", [])]
    uploads = [u["Key"] for u in s3.list_multipart_uploads(Bucket=sys.argv[5]).get("Uploads", [])]
    print(json.dumps({"keys": keys, "uploads": uploads}))
"#;

fn boto(s3: &S3Server, args: &[&str]) -> String {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = Command::new(python)
        .args(["-c", BOTO, &s3.endpoint])
        .args([&s3.admin.access_key_id, &s3.admin.secret_access_key])
        .args(args)
        .output()
        .expect("boto3 runs");
    assert!(
        out.status.success(),
        "boto3 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The keys and pending uploads of `bucket`, as boto3 sees them.
fn bucket_contents(s3: &S3Server, bucket: &str) -> (Vec<String>, Vec<String>) {
    let listing: serde_json::Value =
        serde_json::from_str(&boto(s3, &["ls", bucket])).expect("listing JSON");
    let strings = |field: &str| -> Vec<String> {
        listing[field]
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_str().expect("string").to_owned())
            .collect()
    };
    (strings("keys"), strings("uploads"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("landlord-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn sh(command: &str, dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", command])
        .current_dir(dir)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("shell")
}

/// A tenant role and database with distinctive rows; returns the password.
async fn tenant_database(server: &PostgresServer, name: &str, rows: usize) -> String {
    let password = format!("pw-{name}-Zq9:\\x");
    let admin = server.superuser("postgres").await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {name} LOGIN PASSWORD '{}'",
            password.replace('\'', "''")
        ))
        .await
        .expect("role");
    admin
        .batch_execute(&format!("CREATE DATABASE {name} OWNER {name}"))
        .await
        .expect("database");
    let client = server
        .connect(name, &password, name)
        .await
        .expect("tenant connects");
    client
        .batch_execute(&format!(
            "CREATE TABLE customers (id int PRIMARY KEY, secret text NOT NULL);
             INSERT INTO customers SELECT i, 'client-record-' || i || '-' || md5(i::text)
             FROM generate_series(1, {rows}) AS i;"
        ))
        .await
        .expect("rows");
    password
}

/// A key made with the stock `age-keygen`: (key file, recipient).
fn stock_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("key.txt");
    let out = sh(
        "age-keygen -o key.txt 2>/dev/null && age-keygen -y key.txt",
        dir,
        &[],
    );
    assert!(
        out.status.success(),
        "age-keygen is missing: scripts/test installs age"
    );
    (key, String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn password_file(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join("password");
    std::fs::write(&path, format!("{password}\n")).expect("password file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

/// `landlord backup run` with the database arguments and `extra`.
/// `landlord backup run` of database `name`; `s3` gives the S3 credentials (moto's
/// defaults when `None`).
fn landlord_backup(
    server: &PostgresServer,
    name: &str,
    password: &Path,
    extra: &[&str],
    s3: Option<&S3Server>,
) -> Output {
    let (key, secret) = s3
        .map(|s| {
            (
                s.admin.access_key_id.as_str(),
                s.admin.secret_access_key.as_str(),
            )
        })
        .unwrap_or(("testing", "testing"));
    Command::new(env!("CARGO_BIN_EXE_landlord"))
        .args(["backup", "run", "--host", "127.0.0.1", "--port"])
        .arg(server.port.to_string())
        .args(["--dbname", name, "--user", name, "--sslmode", "disable"])
        .arg("--password-file")
        .arg(password)
        .arg("--pg-dump")
        .arg(Path::new(postgres::DEFAULT_BIN).join("pg_dump"))
        .args([
            "--tenant",
            name,
            "--tenant-uid",
            "7f0c-uid",
            "--backup",
            "nightly-1",
        ])
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .stdin(Stdio::null())
        .output()
        .expect("landlord runs")
}

/// Restores `file` (in `dir`) with `pipeline` into a new database and returns its rows.
async fn restore(server: &PostgresServer, dir: &Path, pipeline: &str, database: &str) -> i64 {
    let admin = server.superuser("postgres").await;
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .expect("restore target");
    let target = format!(
        "host=127.0.0.1 port={} user=postgres dbname={database}",
        server.port
    );
    let out = sh(
        pipeline,
        dir,
        &[
            ("TARGET", &target),
            ("PGPASSWORD", &server.superuser_password),
        ],
    );
    assert!(
        out.status.success(),
        "{pipeline}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = server.superuser(database).await;
    let row = check
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE secret = 'client-record-' || id || '-' || md5(id::text)) FROM customers",
            &[],
        )
        .await
        .expect("restored table");
    let (all, intact): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(all, intact, "every restored row is the original");
    all
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The same backup to moto and to MinIO (which refuses a part without its checksum).
mod a_backup_to_s3_restores_with_stock_tools {
    #[tokio::test]
    async fn moto() {
        super::a_backup_to_s3_restores_with_stock_tools(super::S3Server::start().await, "cli_s3")
            .await;
    }

    #[tokio::test]
    async fn minio() {
        super::a_backup_to_s3_restores_with_stock_tools(
            super::S3Server::start_minio().await,
            "cli_minio",
        )
        .await;
    }
}

async fn a_backup_to_s3_restores_with_stock_tools(s3: S3Server, name: &str) {
    let server = postgres::shared();
    s3.create_bucket("backups", false).await;
    let password = tenant_database(server, name, 3000).await;
    let dir = scratch(name);
    let (_, recipient) = stock_key(&dir);
    let password_path = password_file(&dir, &password);

    let out = landlord_backup(
        server,
        name,
        &password_path,
        &[
            "--recipient",
            &recipient,
            "--s3-endpoint",
            &s3.endpoint,
            "--s3-bucket",
            "backups",
            "--s3-prefix",
            "landlord",
            "--s3-path-style",
        ],
        Some(&s3),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "landlord backup run: {stderr}");
    assert!(!stderr.contains(&password), "{stderr}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the manifest on stdout");
    let object = format!("{name}/7f0c-uid/backups/nightly-1.dump.zst.age");
    assert_eq!(manifest["objectKey"], object.as_str());
    assert_eq!(manifest["compression"], "zstd");
    assert_eq!(manifest["encryption"]["recipient"], recipient.as_str());
    assert_eq!(manifest["tenant"]["uid"], "7f0c-uid");
    assert_eq!(manifest["database"]["role"], name);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&password));

    let (keys, uploads) = bucket_contents(&s3, "backups");
    assert_eq!(
        keys,
        [
            format!("landlord/{object}"),
            format!("landlord/{name}/7f0c-uid/backups/nightly-1.manifest.json")
        ]
    );
    assert!(uploads.is_empty(), "{uploads:?}");
    let path = dir.join("backup.age");
    boto(
        &s3,
        &[
            "get",
            "backups",
            &format!("landlord/{object}"),
            path.to_str().expect("path"),
        ],
    );
    let bytes = std::fs::read(&path).expect("downloaded");
    assert_eq!(manifest["sizeBytes"], bytes.len() as u64);
    assert_eq!(manifest["sha256"], sha256_hex(&bytes).as_str());
    // One X25519 recipient stanza in the age header (the age crate sometimes adds a
    // "grease" stanza, which carries no key).
    let header_end = bytes
        .windows(4)
        .position(|w| w == b"\n---")
        .expect("age header");
    let header = String::from_utf8_lossy(&bytes[..header_end]);
    assert!(header.starts_with("age-encryption.org/v1\n"), "{header}");
    let stanzas: Vec<&str> = header
        .lines()
        .filter_map(|l| l.strip_prefix("-> "))
        .filter_map(|l| l.split(' ').next())
        .filter(|t| !t.ends_with("-grease"))
        .collect();
    assert_eq!(stanzas, ["X25519"], "{header}");
    assert!(
        !String::from_utf8_lossy(&bytes).contains("client-record-"),
        "plaintext in the object"
    );
    let manifest_path = dir.join("manifest.json");
    boto(
        &s3,
        &[
            "get",
            "backups",
            &format!("landlord/{name}/7f0c-uid/backups/nightly-1.manifest.json"),
            manifest_path.to_str().expect("path"),
        ],
    );
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("manifest")).expect("JSON");
    assert_eq!(stored, manifest, "the printed manifest is the stored one");

    let rows = restore(
        server,
        &dir,
        "age -d -i key.txt backup.age | zstd -d | pg_restore --no-owner -d \"$TARGET\"",
        &format!("{name}_restored"),
    )
    .await;
    assert_eq!(rows, 3000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_backup_to_a_directory_with_pg_dump_compression_restores_without_zstd() {
    let server = postgres::shared();
    let name = "cli_dir";
    let password = tenant_database(server, name, 1500).await;
    let dir = scratch(name);
    let (_, recipient) = stock_key(&dir);
    let password_path = password_file(&dir, &password);
    let store = dir.join("store");
    std::fs::create_dir(&store).expect("store dir");

    let out = landlord_backup(
        server,
        name,
        &password_path,
        &[
            "--recipient",
            &recipient,
            "--compression",
            "pgdump",
            "--storage-dir",
            store.to_str().expect("path"),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).expect("manifest");
    assert_eq!(manifest["compression"], "pgdump");
    let object = store.join("cli_dir/7f0c-uid/backups/nightly-1.dump.age");
    let bytes = std::fs::read(&object).expect("the object");
    assert_eq!(manifest["sha256"], sha256_hex(&bytes).as_str());
    assert!(
        store
            .join("cli_dir/7f0c-uid/backups/nightly-1.manifest.json")
            .is_file()
    );
    let rows = restore(
        server,
        &dir,
        &format!(
            "age -d -i key.txt {} | pg_restore --no-owner -d \"$TARGET\"",
            object.display()
        ),
        "cli_dir_restored",
    )
    .await;
    assert_eq!(rows, 1500);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_wrong_password_fails_in_one_line_without_it_and_leaves_nothing() {
    let server = postgres::shared();
    let s3 = S3Server::start().await;
    s3.create_bucket("backups", false).await;
    let name = "cli_badpw";
    tenant_database(server, name, 10).await;
    let dir = scratch(name);
    let (_, recipient) = stock_key(&dir);
    let wrong = "not-the-password-5be1c9";
    let password_path = password_file(&dir, wrong);
    let s3_args = [
        "--recipient",
        &recipient,
        "--s3-endpoint",
        &s3.endpoint,
        "--s3-bucket",
        "backups",
        "--s3-path-style",
    ];

    let out = landlord_backup(server, name, &password_path, &s3_args, Some(&s3));
    assert!(!out.status.success(), "a wrong password is not a backup");
    assert!(out.stdout.is_empty(), "no manifest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("DumpFailed") && stderr.contains("password authentication failed"),
        "{stderr}"
    );
    assert!(!stderr.contains(wrong), "{stderr}");
    let (keys, uploads) = bucket_contents(&s3, "backups");
    assert!(keys.is_empty(), "{keys:?}");
    assert!(uploads.is_empty(), "{uploads:?}");

    // A password file others can read is refused before anything runs.
    std::fs::set_permissions(&password_path, std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let out = landlord_backup(server, name, &password_path, &s3_args, Some(&s3));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("accessible to others"), "{stderr}");
    assert!(!stderr.contains(wrong), "{stderr}");

    // An identity given as the recipient is refused without being echoed.
    std::fs::set_permissions(&password_path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    let identity = std::fs::read_to_string(dir.join("key.txt")).expect("key");
    let identity = identity
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("identity line");
    let mut args = s3_args;
    args[1] = identity;
    let out = landlord_backup(server, name, &password_path, &args, Some(&s3));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("public recipient"), "{stderr}");
    assert!(!stderr.contains(&identity[15..]), "{stderr}");
    let (keys, _) = bucket_contents(&s3, "backups");
    assert!(keys.is_empty(), "{keys:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
