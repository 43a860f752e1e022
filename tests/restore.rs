//! The way back, against a real PostgreSQL 15 and a real S3 server (moto): a backup
//! written by `backup::job::run` is downloaded, checked against the SHA-256 and size the
//! backup recorded, decrypted with the tenant's identity and restored with `pg_restore`
//! in one transaction; a tampered, truncated or missing object, or the wrong key, is
//! refused before anything reaches the database.

mod support;

use std::path::Path;
use std::sync::Arc;

use landlord::backup::job::{self, Job};
use landlord::backup::pg_dump::{Compression, DumpSource, PgDump};
use landlord::backup::restore::{self, Expected, Mode};
use landlord::database::Password;
use landlord::storage::ObjectStore;
use support::postgres::{self, PostgresServer, shared};
use support::s3::S3Server;

fn pg_dump() -> PgDump {
    PgDump::find(&Path::new(postgres::DEFAULT_BIN).join("pg_dump")).expect("pg_dump")
}

fn pg_restore() -> std::path::PathBuf {
    Path::new(postgres::DEFAULT_BIN).join("pg_restore")
}

/// A tenant-like role owning `name` with `rows` rows in `customers`.
async fn tenant_database(server: &PostgresServer, name: &str, rows: i64) -> DumpSource {
    let password = format!("pw-{name}-Rs9:\\q");
    let admin = server.superuser("postgres").await;
    for statement in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("DROP DATABASE IF EXISTS {name}_copy"),
        format!("DROP ROLE IF EXISTS {name}"),
        format!(
            "CREATE ROLE {name} LOGIN PASSWORD '{}'",
            password.replace('\'', "''")
        ),
        format!("CREATE DATABASE {name} OWNER {name}"),
    ] {
        admin.batch_execute(&statement).await.expect("setup");
    }
    let client = server
        .connect(name, &password, name)
        .await
        .expect("tenant connects");
    client
        .batch_execute(&format!(
            "CREATE TABLE customers (id int PRIMARY KEY, secret text NOT NULL);
             INSERT INTO customers SELECT i, 'record-' || i FROM generate_series(1, {rows}) AS i;"
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

async fn rows(source: &DumpSource, database: &str) -> Option<i64> {
    let client = shared()
        .connect(&source.user, source.password.expose(), database)
        .await
        .expect("connects");
    client
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .ok()
        .map(|r| r.get(0))
}

/// A database `name` owned by the tenant's role, as a restore into a new database gets.
async fn empty_database(source: &DumpSource, name: &str) -> DumpSource {
    let admin = shared().superuser("postgres").await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name} OWNER {}", source.user))
        .await
        .expect("target database");
    DumpSource {
        database: name.to_owned(),
        ..source.clone()
    }
}

/// Backs up `source` to `store`, encrypted to `identity`; returns the object key and what
/// the backup recorded.
async fn backup(
    store: Arc<dyn ObjectStore>,
    source: &DumpSource,
    identity: &age::x25519::Identity,
) -> (String, Expected) {
    let done = job::run(Job {
        pg_dump: pg_dump(),
        server_major: Some(15),
        server_version: None,
        server: "test".to_owned(),
        source: source.clone(),
        recipient: identity.to_public(),
        compression: Compression::Zstd,
        store,
        tenant: source.database.replace('_', "-"),
        tenant_uid: "uid-1".to_owned(),
        backup: "b1".to_owned(),
        object_lock: None,
        chunk: 64 << 10,
    })
    .await
    .expect("backup");
    (
        done.keys.object,
        Expected {
            sha256: done.summary.sha256,
            size: done.summary.size,
        },
    )
}

async fn restore_into(
    store: &dyn ObjectStore,
    key: &str,
    expected: &Expected,
    identity: age::x25519::Identity,
    target: DumpSource,
    mode: Mode,
) -> Result<restore::Restored, restore::RestoreError> {
    let downloaded = restore::download_verified(store, key, expected).await?;
    tokio::task::spawn_blocking(move || {
        restore::restore_file(
            &downloaded,
            &identity,
            Compression::Zstd,
            &pg_restore(),
            &target,
            mode,
        )
    })
    .await
    .expect("restore thread")
}

#[tokio::test]
async fn a_backup_restores_into_a_new_database_and_in_place_with_the_rows_it_had() {
    let s3 = S3Server::start().await;
    s3.create_bucket("restore", false).await;
    let store: Arc<dyn ObjectStore> = Arc::new(s3.store("restore", ""));
    let source = tenant_database(shared(), "rs_acme", 500).await;
    let identity = age::x25519::Identity::generate();
    let (key, expected) = backup(store.clone(), &source, &identity).await;

    // Rows written after the backup are not in what it restores.
    let client = shared()
        .connect(&source.user, source.password.expose(), &source.database)
        .await
        .expect("connects");
    client
        .batch_execute(
            "INSERT INTO customers SELECT i, 'later' FROM generate_series(501, 600) AS i",
        )
        .await
        .expect("later rows");
    assert_eq!(rows(&source, "rs_acme").await, Some(600));

    let copy = empty_database(&source, "rs_acme_copy").await;
    let restored = restore_into(
        &*store,
        &key,
        &expected,
        identity.clone(),
        copy,
        Mode::NewDatabase,
    )
    .await
    .expect("restored into a new database");
    assert!(restored.dump_size > 0);
    assert_eq!(
        rows(&source, "rs_acme_copy").await,
        Some(500),
        "the rows of the backup"
    );
    assert_eq!(
        rows(&source, "rs_acme").await,
        Some(600),
        "the live database untouched"
    );

    // In place: the tenant's own database goes back to the backup, in one transaction.
    restore_into(
        &*store,
        &key,
        &expected,
        identity,
        source.clone(),
        Mode::InPlace,
    )
    .await
    .expect("restored in place");
    assert_eq!(rows(&source, "rs_acme").await, Some(500));
}

#[tokio::test]
async fn a_tampered_truncated_or_missing_object_or_the_wrong_key_is_refused_before_the_database() {
    let s3 = S3Server::start().await;
    s3.create_bucket("refuse", false).await;
    let store: Arc<dyn ObjectStore> = Arc::new(s3.store("refuse", ""));
    let source = tenant_database(shared(), "rs_tamper", 50).await;
    let identity = age::x25519::Identity::generate();
    let (key, expected) = backup(store.clone(), &source, &identity).await;
    let original = s3
        .client()
        .get_object()
        .bucket("refuse")
        .key(&key)
        .send()
        .await
        .expect("object")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec();
    let put = |bytes: Vec<u8>| {
        let client = s3.client();
        let key = key.clone();
        async move {
            client
                .put_object()
                .bucket("refuse")
                .key(&key)
                .body(bytes.into())
                .send()
                .await
                .expect("replaced");
        }
    };
    let target = empty_database(&source, "rs_tamper_copy").await;
    let untouched = || async {
        let client = shared().superuser("rs_tamper_copy").await;
        let tables: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                &[],
            )
            .await
            .expect("counted")
            .get(0);
        tables == 0
    };

    // One byte changed in the bucket.
    let mut tampered = original.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    put(tampered).await;
    let e = restore_into(
        &*store,
        &key,
        &expected,
        identity.clone(),
        target.clone(),
        Mode::NewDatabase,
    )
    .await
    .expect_err("a tampered object is refused");
    assert_eq!(e.reason(), "ChecksumMismatch", "{e}");
    assert!(untouched().await, "nothing reached the database");

    // Cut short.
    put(original[..original.len() - 100].to_vec()).await;
    let e = restore_into(
        &*store,
        &key,
        &expected,
        identity.clone(),
        target.clone(),
        Mode::NewDatabase,
    )
    .await
    .expect_err("a truncated object is refused");
    assert_eq!(e.reason(), "SizeMismatch", "{e}");
    assert!(untouched().await);

    // The right object, the wrong key.
    put(original.clone()).await;
    let e = restore_into(
        &*store,
        &key,
        &expected,
        age::x25519::Identity::generate(),
        target.clone(),
        Mode::NewDatabase,
    )
    .await
    .expect_err("the wrong key is refused");
    assert_eq!(e.reason(), "DecryptFailed", "{e}");
    assert!(untouched().await);

    // No object at all.
    let e = restore_into(
        &*store,
        "rs-tamper/uid-1/backups/none.dump.zst.age",
        &expected,
        identity,
        target,
        Mode::NewDatabase,
    )
    .await
    .expect_err("a missing object is refused");
    assert_eq!(e.reason(), "BackupObjectMissing", "{e}");
    assert!(untouched().await);
}
