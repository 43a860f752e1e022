//! The backup stream against a real PostgreSQL 15: what Landlord streams is an age file
//! with one X25519 recipient that the stock `age` CLI decrypts, (for zstd) the stock `zstd`
//! decompresses, and the stock `pg_restore` restores with every row; no row value appears
//! in the ciphertext; a failing dump ends the stream with an error and says why without
//! the password.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use futures::StreamExt;
use landlord::backup::pg_dump::{Compression, DumpSource, PgDump};
use landlord::backup::pipeline::{self, PipelineError};
use landlord::database::Password;
use sha2::{Digest, Sha256};
use support::postgres::{self, PostgresServer};

mod support;

/// A role and database like a tenant's, with a table of distinctive rows.
async fn tenant_database(server: &PostgresServer, name: &str, rows: usize) -> DumpSource {
    let password = format!("pw-{name}-Xy7:\\q");
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
    DumpSource {
        host: "127.0.0.1".to_owned(),
        port: server.port,
        database: name.to_owned(),
        user: name.to_owned(),
        password: Password::new(password),
        sslmode: "disable".to_owned(),
        ca_file: None,
    }
}

fn pg_dump() -> PgDump {
    PgDump::find(&Path::new(postgres::DEFAULT_BIN).join("pg_dump")).expect("pg_dump")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("landlord-pipeline-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Streams one backup into memory, as an upload would.
async fn backup(
    source: DumpSource,
    recipient: age::x25519::Recipient,
    compression: Compression,
) -> (
    Vec<u8>,
    Result<pipeline::Summary, PipelineError>,
    Option<String>,
) {
    let mut encrypted = pipeline::encrypt_dump(pg_dump(), source, recipient, compression, 64 << 10);
    let mut bytes = Vec::new();
    let mut error = None;
    {
        let mut chunks = encrypted.chunks();
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(c) => {
                    assert!(c.len() <= 64 << 10, "chunks are bounded");
                    bytes.extend_from_slice(&c);
                }
                Err(e) => error = Some(e.to_string()),
            }
        }
    }
    (bytes, encrypted.finish().await, error)
}

fn run(command: &str, dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", command])
        .current_dir(dir)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("shell")
}

#[tokio::test]
async fn every_compression_restores_with_stock_tools_only() {
    for tool in ["age", "zstd", "pg_restore"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is missing: scripts/test installs it (Debian packages age, zstd, postgresql-client)"
        );
    }
    let server = postgres::shared();
    for (compression, restore) in [
        (
            Compression::Zstd,
            "age -d -i key.txt backup.age | zstd -d | pg_restore --no-owner -d \"$TARGET\"",
        ),
        (
            Compression::PgDump,
            "age -d -i key.txt backup.age | pg_restore --no-owner -d \"$TARGET\"",
        ),
        (
            Compression::None,
            "age -d -i key.txt backup.age | pg_restore --no-owner -d \"$TARGET\"",
        ),
    ] {
        let name = format!("pipeline_{}", compression.as_str());
        let source = tenant_database(server, &name, 2000).await;
        let identity = age::x25519::Identity::generate();
        let (bytes, summary, error) = backup(source, identity.to_public(), compression).await;
        assert_eq!(error, None);
        let summary = summary.expect("backup");
        assert_eq!(summary.size, bytes.len() as u64);
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            summary.sha256, digest,
            "the hash is of exactly what was streamed"
        );
        assert_eq!(summary.compression, compression);

        // One X25519 recipient stanza, nothing else, in the header.
        let header_end = bytes
            .windows(4)
            .position(|w| w == b"\n---")
            .expect("age header");
        let header = String::from_utf8_lossy(&bytes[..header_end]);
        assert!(header.starts_with("age-encryption.org/v1\n"), "{header}");
        // The age crate adds a random "grease" stanza now and then (so that parsers
        // tolerate unknown types); it carries no key. Every other stanza is a recipient.
        let stanzas: Vec<&str> = header
            .lines()
            .filter_map(|l| l.strip_prefix("-> "))
            .filter_map(|l| l.split(' ').next())
            .filter(|t| !t.ends_with("-grease"))
            .collect();
        assert_eq!(stanzas, ["X25519"], "{header}");
        // No row value in the ciphertext.
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("client-record-"), "plaintext in the backup");

        let dir = scratch(compression.as_str());
        std::fs::write(dir.join("backup.age"), &bytes).expect("write");
        let mut key = std::fs::File::create(dir.join("key.txt")).expect("key file");
        use age::secrecy::ExposeSecret;
        writeln!(key, "{}", identity.to_string().expose_secret()).expect("key");
        drop(key);

        let restored = format!("{name}_restored");
        let admin = server.superuser("postgres").await;
        admin
            .batch_execute(&format!("CREATE DATABASE {restored}"))
            .await
            .expect("target");
        let target = format!(
            "host=127.0.0.1 port={} user=postgres dbname={restored}",
            server.port
        );
        let out = run(
            restore,
            &dir,
            &[
                ("TARGET", &target),
                ("PGPASSWORD", &server.superuser_password),
            ],
        );
        assert!(
            out.status.success(),
            "{compression:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let check = server.superuser(&restored).await;
        let row = check
            .query_one("SELECT count(*), max(secret) FROM customers", &[])
            .await
            .expect("restored table");
        assert_eq!(row.get::<_, i64>(0), 2000, "{compression:?}");
        assert!(row.get::<_, String>(1).starts_with("client-record-"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn a_failing_dump_ends_the_stream_with_the_reason_and_no_password() {
    let server = postgres::shared();
    let mut source = tenant_database(server, "pipeline_badpw", 10).await;
    let wrong = "definitely-not-the-password-8d1f";
    source.password = Password::new(wrong);
    let identity = age::x25519::Identity::generate();
    let (_, summary, error) = backup(source, identity.to_public(), Compression::Zstd).await;
    let error = error.expect("the stream ends with an error");
    let summary = summary.expect_err("a failed dump is not a backup");
    assert_eq!(summary.category(), "pg_dump_failed");
    let message = summary.to_string();
    assert!(
        message.contains("password authentication failed"),
        "{message}"
    );
    assert!(
        !message.contains(wrong) && !error.contains(wrong),
        "{message}"
    );
}

#[tokio::test]
async fn a_consumer_that_stops_reading_cancels_the_dump() {
    let server = postgres::shared();
    let source = tenant_database(server, "pipeline_cancel", 50_000).await;
    let identity = age::x25519::Identity::generate();
    let mut encrypted = pipeline::encrypt_dump(
        pg_dump(),
        source,
        identity.to_public(),
        Compression::None,
        16 << 10,
    );
    let first = encrypted.chunks().next().await;
    assert!(matches!(first, Some(Ok(_))));
    // The upload failed: the producer must stop, not block for ever.
    let result = tokio::time::timeout(support::wait::deadline(), encrypted.finish())
        .await
        .expect("the producer stops when nobody reads");
    assert!(result.is_err(), "an abandoned stream is not a backup");
}
