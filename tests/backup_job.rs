//! `backup::job::run` when the store fails part-way, against a real PostgreSQL 15 and the
//! real pg_dump: the backup fails with the store's reason (the one to fix), not with
//! "pg_dump failed" because Landlord stopped the pg_dump whose output nobody took.
//!
//! The store is a stand-in that takes the first chunk and then fails as a broken
//! connection would: a real S3 server cannot be made to fail at one chosen moment.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use landlord::backup::job::{self, Job};
use landlord::backup::pg_dump::{Compression, DumpSource, PgDump};
use landlord::database::Password;
use landlord::storage::{
    ByteStream, Deletion, ObjectInfo, ObjectStore, PendingUpload, RangeRead, Retention,
    StorageError, Written,
};
use support::postgres;

mod support;

/// Reads `chunks` chunks of an upload, then fails as `Unreachable`.
struct BreaksAfter {
    chunks: usize,
    read: AtomicUsize,
}

fn unused() -> StorageError {
    StorageError::Service("not used by a backup".to_owned())
}

#[async_trait]
impl ObjectStore for BreaksAfter {
    fn location(&self) -> String {
        "a store that breaks".to_owned()
    }
    async fn check(&self, _: bool) -> Result<(), StorageError> {
        Ok(())
    }
    async fn put_stream(
        &self,
        _key: &str,
        mut body: ByteStream,
        _: Option<Retention>,
    ) -> Result<Written, StorageError> {
        for _ in 0..self.chunks {
            if body.next().await.is_some() {
                self.read.fetch_add(1, Ordering::Relaxed);
            }
        }
        Err(StorageError::Unreachable(
            "the connection to the store was reset".to_owned(),
        ))
    }
    async fn put(&self, _: &str, _: Bytes, _: Option<Retention>) -> Result<Written, StorageError> {
        Err(unused())
    }
    async fn get_range(&self, _: &str, _: Range<u64>) -> Result<RangeRead, StorageError> {
        Err(unused())
    }
    async fn get(&self, _: &str) -> Result<ByteStream, StorageError> {
        Err(unused())
    }
    async fn list(&self, _: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        Err(unused())
    }
    async fn delete(&self, _: &str) -> Result<Deletion, StorageError> {
        Err(unused())
    }
    async fn pending_uploads(&self, _: &str) -> Result<Vec<PendingUpload>, StorageError> {
        Err(unused())
    }
    async fn abort_upload(&self, _: &PendingUpload) -> Result<(), StorageError> {
        Err(unused())
    }
}

#[tokio::test]
async fn a_store_failing_mid_upload_is_the_reason_not_pg_dump() {
    let server = postgres::shared();
    let name = "job_store_breaks";
    let password = "pw-job-store-breaks";
    let admin = server.superuser("postgres").await;
    admin
        .batch_execute(&format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'"))
        .await
        .expect("role");
    admin
        .batch_execute(&format!("CREATE DATABASE {name} OWNER {name}"))
        .await
        .expect("database");
    server
        .connect(name, password, name)
        .await
        .expect("tenant connects")
        .batch_execute(
            "CREATE TABLE t AS SELECT i, md5(i::text) AS v FROM generate_series(1, 100000) AS i",
        )
        .await
        .expect("rows");
    let pg_dump = PgDump::find(&std::path::Path::new(postgres::DEFAULT_BIN).join("pg_dump"))
        .expect("pg_dump");
    let store = Arc::new(BreaksAfter {
        chunks: 1,
        read: AtomicUsize::new(0),
    });
    let result = job::run(Job {
        pg_dump,
        server_major: Some(15),
        server_version: None,
        server: String::new(),
        source: DumpSource {
            host: "127.0.0.1".to_owned(),
            port: server.port,
            database: name.to_owned(),
            user: name.to_owned(),
            password: Password::new(password),
            sslmode: "disable".to_owned(),
            ca_file: None,
        },
        recipient: age::x25519::Identity::generate().to_public(),
        compression: Compression::None,
        store: store.clone(),
        tenant: "t".to_owned(),
        tenant_uid: "u".to_owned(),
        backup: "b".to_owned(),
        object_lock: None,
        // Small chunks: the dump (several MiB) is far from done when the store breaks.
        chunk: 16 << 10,
    })
    .await;
    assert_eq!(
        store.read.load(Ordering::Relaxed),
        1,
        "the store took a chunk"
    );
    let error = result.expect_err("a broken store is not a backup");
    assert_eq!(error.reason(), "Unreachable", "{error}");
    assert_eq!(error.category(), "storage_unreachable", "{error}");
    assert!(error.is_transient(), "{error}");
    assert!(!error.to_string().contains("pg_dump failed"), "{error}");
}
