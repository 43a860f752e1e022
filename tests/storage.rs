//! Object storage against real S3 servers (moto and MinIO, on loopback) and a temporary
//! directory, and the BackupStorage controller against the emulator: every `Available`
//! reason is produced by the fault it names.
//!
//! The store's own tests run against both servers (`<test>::moto` and `<test>::minio`):
//! moto has the IAM users the permission tests need, MinIO refuses requests moto lets
//! through (a part without the checksum its upload was created with, for one).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use landlord::api::{BackupStorage, BackupStorageSpec, ObjectLockMode, find_condition};
use landlord::storage::filesystem::FilesystemStore;
use landlord::storage::s3::S3Store;
use landlord::storage::{
    ByteStream, Deletion, MAX_RANGE, MIN_PART_SIZE, ObjectStore, Retention, StorageError,
};
use serde_json::json;
use support::cluster::Harness;
use support::s3::{S3Server, closed_port};
use support::wait::{eventually, wait_for};

/// Runs the store test `$name(server)` twice: against moto and against MinIO.
macro_rules! on_moto_and_minio {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn moto() {
                super::$name(super::S3Server::start().await).await;
            }

            #[tokio::test]
            async fn minio() {
                super::$name(super::S3Server::start_minio().await).await;
            }
        }
    };
}

/// `len` bytes that do not repeat in any short period (xorshift), so a misplaced part
/// cannot compare equal.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// `bytes` as a stream of chunks of an awkward size, which never line up with parts.
fn chunked(bytes: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

/// A stream that yields `good` bytes and then fails.
fn failing_after(good: &[u8]) -> ByteStream {
    let mut items: Vec<std::io::Result<Bytes>> = good
        .chunks(1024 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    items.push(Err(std::io::Error::other("pg_dump died")));
    Box::pin(futures::stream::iter(items))
}

async fn read_all(store: &dyn ObjectStore, key: &str) -> Vec<u8> {
    let mut stream = store.get(key).await.expect("object readable");
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

/// Incomplete multipart uploads in `bucket`, asked with a client that is not Landlord's.
async fn raw_uploads(server: &S3Server, bucket: &str) -> Vec<String> {
    server
        .client()
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("uploads listed")
        .uploads()
        .iter()
        .filter_map(|u| u.key().map(str::to_owned))
        .collect()
}

on_moto_and_minio!(a_multipart_upload_round_trips_byte_exact);
async fn a_multipart_upload_round_trips_byte_exact(server: S3Server) {
    server.create_bucket("round-trip", false).await;
    let store = server.store("round-trip", "landlord/");
    // Two full parts of 5 MiB and a short third, in chunks that straddle part edges.
    let body = data(2 * MIN_PART_SIZE + 1_234_567, 7);
    let written = store
        .put_stream("acme/uid-1/backup.age", chunked(&body, 100_003), None)
        .await
        .expect("uploaded");
    assert_eq!(written.size, body.len() as u64);
    assert!(read_all(&store, "acme/uid-1/backup.age").await == body);

    // It is under the prefix, and was really sent in three parts (the ETag of a multipart
    // object ends in -<parts>).
    let head = server
        .client()
        .head_object()
        .bucket("round-trip")
        .key("landlord/acme/uid-1/backup.age")
        .send()
        .await
        .expect("object under the prefix");
    assert!(
        head.e_tag()
            .is_some_and(|e| e.trim_matches('"').ends_with("-3")),
        "{:?}",
        head.e_tag()
    );
    let listed = store.list("acme/").await.expect("listed");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "acme/uid-1/backup.age");
    assert_eq!(listed[0].size, body.len() as u64);
    // The listing shows the entity tag the upload answered.
    assert!(written.etag.is_some());
    assert_eq!(listed[0].etag, written.etag);
    assert!(store.list("other/").await.expect("listed").is_empty());

    // An empty stream is an empty object, not an error.
    let empty = store
        .put_stream("acme/uid-1/empty", chunked(&[], 1), None)
        .await
        .expect("empty upload");
    assert_eq!(empty.size, 0);
    assert!(read_all(&store, "acme/uid-1/empty").await.is_empty());
    assert!(raw_uploads(&server, "round-trip").await.is_empty());
}

on_moto_and_minio!(a_failed_upload_leaves_no_object_and_no_incomplete_upload);
async fn a_failed_upload_leaves_no_object_and_no_incomplete_upload(server: S3Server) {
    server.create_bucket("failing", false).await;
    let store = server.store("failing", "");
    // Three parts' worth is read (and uploaded, two at a time) before the stream fails.
    let good = data(3 * MIN_PART_SIZE + 10, 3);
    let failed = store
        .put_stream("acme/backup.age", failing_after(&good), None)
        .await
        .expect_err("the stream failed");
    assert!(matches!(failed, StorageError::Source { .. }), "{failed:?}");
    assert!(failed.to_string().contains("pg_dump died"), "{failed}");
    assert!(store.list("").await.expect("listed").is_empty());
    assert!(store.pending_uploads("").await.expect("listed").is_empty());
    assert!(raw_uploads(&server, "failing").await.is_empty());
    assert!(matches!(
        store.get("acme/backup.age").await.err(),
        Some(StorageError::NotFound(_))
    ));
}

on_moto_and_minio!(uploads_left_by_a_crash_are_found_and_aborted);
async fn uploads_left_by_a_crash_are_found_and_aborted(server: S3Server) {
    server.create_bucket("crashed", false).await;
    let store = server.store("crashed", "landlord/");
    let client = server.client();
    for key in ["landlord/acme/uid/backup.age", "elsewhere/backup.age"] {
        client
            .create_multipart_upload()
            .bucket("crashed")
            .key(key)
            .send()
            .await
            .expect("upload started");
    }
    let pending = store.pending_uploads("acme/").await.expect("listed");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].key, "acme/uid/backup.age");
    assert!(pending[0].initiated.is_some());
    store.abort_upload(&pending[0]).await.expect("aborted");
    // Twice is fine (a crash during recovery).
    store
        .abort_upload(&pending[0])
        .await
        .expect("aborted again");
    assert!(store.pending_uploads("").await.expect("listed").is_empty());
    // Outside the prefix: not Landlord's to touch.
    assert_eq!(
        raw_uploads(&server, "crashed").await,
        ["elsewhere/backup.age"]
    );
}

on_moto_and_minio!(a_ranged_read_returns_only_the_range);
async fn a_ranged_read_returns_only_the_range(server: S3Server) {
    server.create_bucket("ranges", false).await;
    let store = server.store("ranges", "p/");
    let body = data(200_000, 11);
    store
        .put("header", Bytes::from(body.clone()), None)
        .await
        .expect("written");
    let head = store.get_range("header", 0..64).await.expect("read");
    assert_eq!(&head.bytes[..], &body[..64]);
    assert_eq!(head.lock, None, "not locked");
    let middle = store.get_range("header", 1000..1010).await.expect("read");
    assert_eq!(&middle.bytes[..], &body[1000..1010]);
    // Past the end: what there is; beyond the end: nothing.
    let tail = store
        .get_range("header", 199_990..300_000)
        .await
        .expect("read");
    assert_eq!(&tail.bytes[..], &body[199_990..]);
    let beyond = store
        .get_range("header", 500_000..500_010)
        .await
        .expect("read");
    assert!(beyond.bytes.is_empty());
    // Never more than MAX_RANGE, however much is asked.
    let capped = store.get_range("header", 0..u64::MAX).await.expect("read");
    assert_eq!(capped.bytes.len() as u64, MAX_RANGE);
    assert_eq!(&capped.bytes[..], &body[..MAX_RANGE as usize]);
    assert!(matches!(
        store.get_range("absent", 0..10).await,
        Err(StorageError::NotFound(_))
    ));
}

on_moto_and_minio!(object_lock_is_required_checked_and_respected);
async fn object_lock_is_required_checked_and_respected(server: S3Server) {
    server.create_bucket("unlocked", false).await;
    server.create_bucket("locked", true).await;
    let unlocked = server.store("unlocked", "");
    unlocked.check(false).await.expect("usable without lock");
    let refused = unlocked.check(true).await.expect_err("no Object Lock");
    assert_eq!(refused.reason(), "ObjectLockNotEnabled", "{refused}");
    assert!(refused.to_string().contains("unlocked"), "{refused}");

    let store = server.store("locked", "landlord/");
    store.check(true).await.expect("Object Lock enabled");
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
    let retention = Retention {
        mode: ObjectLockMode::Compliance,
        retain_until: until,
    };
    store
        .put(
            "acme/receipt.json",
            Bytes::from_static(b"{}"),
            Some(retention),
        )
        .await
        .expect("locked object written");
    let body = data(MIN_PART_SIZE + 5, 5);
    store
        .put_stream("acme/backup.age", chunked(&body, 65_536), Some(retention))
        .await
        .expect("locked upload");
    let head = server
        .client()
        .head_object()
        .bucket("locked")
        .key("landlord/acme/backup.age")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("COMPLIANCE")
    );

    for key in ["acme/receipt.json", "acme/backup.age"] {
        match store.delete(key).await.expect("delete answered") {
            Deletion::Locked { until: Some(t) } => {
                assert!((t - until).get_seconds().abs() <= 1, "{t} vs {until}");
            }
            other => panic!("{key}: {other:?}"),
        }
    }
    // Still there and readable, and a read reports the lock.
    assert!(read_all(&store, "acme/backup.age").await == body);
    let read = store
        .get_range("acme/backup.age", 0..16)
        .await
        .expect("read");
    let lock = read
        .lock
        .expect("a read of a locked object reports its lock");
    assert!(
        lock.until
            .is_some_and(|t| (t - until).get_seconds().abs() <= 1),
        "{lock:?} vs {until}"
    );

    // An object written without retention in the same bucket goes, every version of it.
    store
        .put("acme/scratch", Bytes::from_static(b"x"), None)
        .await
        .expect("written");
    store
        .put("acme/scratch", Bytes::from_static(b"y"), None)
        .await
        .expect("written twice");
    assert_eq!(
        store.delete("acme/scratch").await.expect("deleted"),
        Deletion::Deleted
    );
    let versions = server
        .client()
        .list_object_versions()
        .bucket("locked")
        .prefix("landlord/acme/scratch")
        .send()
        .await
        .expect("versions");
    assert!(versions.versions().is_empty(), "{versions:?}");
    assert!(versions.delete_markers().is_empty(), "{versions:?}");
    assert_eq!(
        store.delete("acme/scratch").await.expect("answered"),
        Deletion::Absent
    );
}

#[tokio::test]
async fn check_names_each_fault() {
    let server = S3Server::start_with_auth().await;
    server.create_bucket("present", false).await;

    server
        .store("present", "landlord/")
        .check(false)
        .await
        .expect("usable");
    let missing = server
        .store("absent-bucket", "")
        .check(false)
        .await
        .expect_err("no bucket");
    assert_eq!(missing.reason(), "BucketMissing", "{missing}");

    let mut wrong = server.settings("present", "", None);
    wrong.credentials.secret_access_key = "not-the-secret-access-key".to_owned();
    let refused = S3Store::new(wrong)
        .expect("store")
        .check(false)
        .await
        .expect_err("wrong secret");
    assert_eq!(refused.reason(), "AuthFailed", "{refused}");
    assert!(!refused.to_string().contains("not-the-secret"), "{refused}");

    let mut unknown = server.settings("present", "", None);
    unknown.credentials.access_key_id = "AKIAUNKNOWNUNKNOWN00".to_owned();
    let unknown = S3Store::new(unknown)
        .expect("store")
        .check(false)
        .await
        .expect_err("unknown key");
    assert_eq!(unknown.reason(), "AuthFailed", "{unknown}");

    let nobody = server.nobody.clone().expect("a user without permissions");
    let denied = S3Store::new(server.settings("present", "", Some(&nobody)))
        .expect("store")
        .check(false)
        .await
        .expect_err("no permission");
    assert_eq!(denied.reason(), "Denied", "{denied}");
    assert!(!denied.to_string().contains(&nobody.secret_access_key));

    let mut closed = server.settings("present", "", None);
    closed.endpoint = Some(format!("http://127.0.0.1:{}", closed_port()));
    let unreachable = S3Store::new(closed)
        .expect("store")
        .check(false)
        .await
        .expect_err("nothing listens");
    assert_eq!(unreachable.reason(), "Unreachable", "{unreachable}");
}

#[tokio::test]
async fn tls_is_verified_against_the_given_ca() {
    let server = S3Server::start_with_tls().await;
    server.create_bucket("tls", false).await;
    server
        .store("tls", "")
        .check(false)
        .await
        .expect("trusted with the CA");
    let mut system_roots = server.settings("tls", "", None);
    system_roots.ca_pem = None;
    let failed = S3Store::new(system_roots)
        .expect("store")
        .check(false)
        .await
        .expect_err("an unknown CA");
    assert_eq!(failed.reason(), "TLSFailed", "{failed}");
}

#[tokio::test]
async fn the_filesystem_store_never_shows_a_partial_object() {
    let dir = std::env::temp_dir().join(format!("landlord-fs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = FilesystemStore::new(&dir);
    let missing = store.check(false).await.expect_err("no directory");
    assert_eq!(missing.reason(), "BucketMissing", "{missing}");
    std::fs::create_dir_all(&dir).expect("directory");
    store.check(false).await.expect("usable");
    assert_eq!(
        store.check(true).await.expect_err("no lock").reason(),
        "ObjectLockNotEnabled"
    );

    let body = data(3_000_000, 9);
    let written = store
        .put_stream("acme/uid/backup.age", chunked(&body, 77_777), None)
        .await
        .expect("written");
    assert_eq!(written.size, body.len() as u64);
    assert_eq!(written.etag, None, "files have no entity tag");
    assert!(read_all(&store, "acme/uid/backup.age").await == body);
    let header = store
        .get_range("acme/uid/backup.age", 10..20)
        .await
        .expect("range");
    assert_eq!(&header.bytes[..], &body[10..20]);
    store
        .put("acme/uid/manifest.json", Bytes::from_static(b"{}"), None)
        .await
        .expect("written");
    let keys: Vec<String> = store
        .list("acme/")
        .await
        .expect("listed")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["acme/uid/backup.age", "acme/uid/manifest.json"]);

    // A failing stream: nothing under the final name, no upload left.
    let failed = store
        .put_stream("acme/uid/failed.age", failing_after(&body), None)
        .await
        .expect_err("the stream failed");
    assert!(matches!(failed, StorageError::Source { .. }), "{failed:?}");
    assert!(!dir.join("acme/uid/failed.age").exists());
    assert!(store.pending_uploads("").await.expect("listed").is_empty());

    // A crash (the writer stops mid-stream and never returns): the final name never
    // appears, and recovery finds the upload and aborts it.
    let (tx, rx) = futures::channel::mpsc::unbounded::<std::io::Result<Bytes>>();
    tx.unbounded_send(Ok(Bytes::from(body.clone())))
        .expect("sent");
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .put_stream("acme/uid/crash.age", Box::pin(rx), None)
                .await
        })
    };
    wait_for("the upload is under way", || {
        let store = store.clone();
        async move {
            let pending = store.pending_uploads("acme/").await.ok()?;
            pending.into_iter().find(|u| u.key == "acme/uid/crash.age")
        }
    })
    .await;
    writer.abort();
    let _ = writer.await;
    drop(tx);
    assert!(!dir.join("acme/uid/crash.age").exists());
    let pending = store.pending_uploads("acme/").await.expect("listed");
    assert_eq!(pending.len(), 1, "{pending:?}");
    store.abort_upload(&pending[0]).await.expect("aborted");
    assert!(store.pending_uploads("").await.expect("listed").is_empty());

    assert_eq!(
        store
            .delete("acme/uid/manifest.json")
            .await
            .expect("deleted"),
        Deletion::Deleted
    );
    assert_eq!(
        store
            .delete("acme/uid/manifest.json")
            .await
            .expect("answered"),
        Deletion::Absent
    );
    assert!(matches!(
        store.get("../../etc/passwd").await.err(),
        Some(StorageError::Invalid(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

// --- the controller -----------------------------------------------------------------------

async fn create_secret(harness: &Harness, namespace: &str, name: &str, data: &[(&str, &str)]) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(harness.client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("Secret created");
}

fn storages(harness: &Harness) -> Api<BackupStorage> {
    Api::all(harness.client.clone())
}

async fn create_storage(harness: &Harness, name: &str, spec: serde_json::Value) {
    let spec: BackupStorageSpec = serde_json::from_value(spec).expect("valid spec");
    storages(harness)
        .create(&PostParams::default(), &BackupStorage::new(name, spec))
        .await
        .expect("BackupStorage created");
}

fn s3_spec(endpoint: &str, bucket: &str, secret: &str) -> serde_json::Value {
    json!({"s3": {
        "bucket": bucket, "endpoint": endpoint, "forcePathStyle": true,
        "credentials": {"secret": {"name": secret, "namespace": "landlord"}},
    }})
}

/// Waits until the storage's `Available` condition has `status` and `reason`, for its
/// current generation; returns the message.
async fn wait_available(harness: &Harness, name: &str, status: &str, reason: &str) -> String {
    let api = storages(harness);
    let found = support::wait::poll(|| async {
        let storage = api.get(name).await.ok()?;
        let status_ = storage.status?;
        if status_.observed_generation != storage.metadata.generation {
            return None;
        }
        let c = find_condition(&status_.conditions, "Available")?;
        (format!("{:?}", c.status) == status && c.reason == reason).then(|| c.message.clone())
    })
    .await;
    match found {
        Some(message) => message,
        None => {
            let last = api.get(name).await.ok().and_then(|s| s.status);
            panic!("{name}: Available never became {status}/{reason}; status {last:?}");
        }
    }
}

async fn events_for(harness: &Harness, name: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::all(harness.client.clone());
    events
        .list(&ListParams::default())
        .await
        .expect("events listed")
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("BackupStorage")
        })
        .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn the_controller_reports_each_reason_with_the_charts_permissions() {
    let server = S3Server::start_with_auth().await;
    server.create_bucket("backups", false).await;
    server.create_bucket("backups-locked", true).await;
    let harness = Harness::start_with(true).await;
    let admin = server.admin.clone();
    create_secret(
        &harness,
        "landlord",
        "s3",
        &[
            ("accessKeyId", &admin.access_key_id),
            ("secretAccessKey", &admin.secret_access_key),
        ],
    )
    .await;
    create_secret(
        &harness,
        "landlord",
        "s3-wrong",
        &[
            ("accessKeyId", &admin.access_key_id),
            ("secretAccessKey", "a-wrong-secret-access-key"),
        ],
    )
    .await;
    create_secret(
        &harness,
        "default",
        "s3",
        &[
            ("accessKeyId", &admin.access_key_id),
            ("secretAccessKey", &admin.secret_access_key),
        ],
    )
    .await;
    let endpoint = server.endpoint.clone();
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let fs_dir = std::env::temp_dir().join(format!("landlord-fs-ctl-{}", std::process::id()));
    std::fs::create_dir_all(&fs_dir).expect("directory");

    create_storage(&harness, "good", s3_spec(&endpoint, "backups", "s3")).await;
    create_storage(
        &harness,
        "no-secret",
        s3_spec(&endpoint, "backups", "s3-later"),
    )
    .await;
    create_storage(
        &harness,
        "wrong-key",
        s3_spec(&endpoint, "backups", "s3-wrong"),
    )
    .await;
    create_storage(
        &harness,
        "no-bucket",
        s3_spec(&endpoint, "nonexistent", "s3"),
    )
    .await;
    create_storage(&harness, "down", s3_spec(&closed, "backups", "s3")).await;
    let mut elsewhere = s3_spec(&endpoint, "backups", "s3");
    elsewhere["s3"]["credentials"]["secret"]["namespace"] = json!("default");
    create_storage(&harness, "elsewhere", elsewhere).await;
    let mut lock_missing = s3_spec(&endpoint, "backups", "s3");
    lock_missing["objectLock"] = json!({"mode": "Compliance", "retentionDays": 7});
    create_storage(&harness, "lock-missing", lock_missing).await;
    let mut locked = s3_spec(&endpoint, "backups-locked", "s3");
    locked["objectLock"] = json!({"mode": "Governance", "retentionDays": 7});
    create_storage(&harness, "locked", locked).await;
    create_storage(
        &harness,
        "directory",
        json!({"filesystem": {"path": fs_dir.display().to_string()}}),
    )
    .await;

    let message = wait_available(&harness, "good", "True", "Checked").await;
    assert!(message.contains("s3://backups/"), "{message}");
    let message = wait_available(&harness, "no-secret", "False", "SecretMissing").await;
    assert!(message.contains("landlord/s3-later"), "{message}");
    let message = wait_available(&harness, "wrong-key", "False", "AuthFailed").await;
    assert!(!message.contains("a-wrong-secret"), "{message}");
    wait_available(&harness, "no-bucket", "False", "BucketMissing").await;
    wait_available(&harness, "down", "False", "Unreachable").await;
    let message = wait_available(&harness, "elsewhere", "False", "SecretForbidden").await;
    assert!(message.contains("default/s3"), "{message}");
    wait_available(&harness, "lock-missing", "False", "ObjectLockNotEnabled").await;
    let message = wait_available(&harness, "locked", "True", "Checked").await;
    assert!(message.contains("Governance"), "{message}");
    wait_available(&harness, "directory", "True", "Checked").await;

    // No status anywhere holds a secret value.
    for storage in storages(&harness)
        .list(&ListParams::default())
        .await
        .expect("list")
    {
        let text = serde_json::to_string(&storage.status).expect("status");
        assert!(!text.contains(&admin.secret_access_key), "{text}");
        assert!(!text.contains("a-wrong-secret"), "{text}");
    }

    // The missing Secret is created: the back-off looks again (Landlord does not watch
    // Secrets, and the resync is the production 5 minutes), and the storage becomes
    // Available, with a Warning and then a Normal event.
    create_secret(
        &harness,
        "landlord",
        "s3-later",
        &[
            ("accessKeyId", &admin.access_key_id),
            ("secretAccessKey", &admin.secret_access_key),
        ],
    )
    .await;
    wait_available(&harness, "no-secret", "True", "Checked").await;
    eventually("the transitions are announced as events", || async {
        let events = events_for(&harness, "no-secret").await;
        events.contains(&("Warning".to_owned(), "SecretMissing".to_owned()))
            && events.contains(&("Normal".to_owned(), "Checked".to_owned()))
    })
    .await;
    let _ = std::fs::remove_dir_all(&fs_dir);
}

#[tokio::test]
async fn a_usable_storage_is_looked_at_again() {
    let server = S3Server::start().await;
    server.create_bucket("drifting", false).await;
    let mut harness = Harness::start().await;
    // A short resync, so that drift outside Kubernetes (the bucket deleted) is noticed
    // within the test: nothing in the cluster changes.
    harness.stop_operator().await;
    harness.resync = Duration::from_secs(2);
    harness.start_operator().await;
    create_secret(
        &harness,
        "landlord",
        "s3",
        &[("accessKeyId", "testing"), ("secretAccessKey", "testing")],
    )
    .await;
    create_storage(
        &harness,
        "drifting",
        s3_spec(&server.endpoint, "drifting", "s3"),
    )
    .await;
    wait_available(&harness, "drifting", "True", "Checked").await;
    server
        .client()
        .delete_bucket()
        .bucket("drifting")
        .send()
        .await
        .expect("bucket deleted");
    wait_available(&harness, "drifting", "False", "BucketMissing").await;
}

on_moto_and_minio!(a_batch_deletion_refuses_locked_objects_and_a_rewrite_changes_the_entity_tag);
async fn a_batch_deletion_refuses_locked_objects_and_a_rewrite_changes_the_entity_tag(
    server: S3Server,
) {
    server.create_bucket("batch", true).await;
    let store = server.store("batch", "landlord/");
    let retention = Retention {
        mode: ObjectLockMode::Governance,
        retain_until: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24),
    };
    let locked = store
        .put("t/u/locked", Bytes::from_static(b"kept"), Some(retention))
        .await
        .expect("locked object");
    let first = store
        .put("t/u/free", Bytes::from_static(b"one"), None)
        .await
        .expect("written");
    // Written again with other bytes: another entity tag, which the listing shows.
    let second = store
        .put("t/u/free", Bytes::from_static(b"two"), None)
        .await
        .expect("written again");
    assert_ne!(first.etag, second.etag);
    let listed = store.list("t/u/").await.expect("listed");
    let tag = |key: &str| {
        listed
            .iter()
            .find(|i| i.key == key)
            .and_then(|i| i.etag.clone())
    };
    assert_eq!(tag("t/u/free"), second.etag);
    assert_eq!(tag("t/u/locked"), locked.etag);

    // One request tells whether a lock keeps an object, and until when.
    assert_eq!(store.lock("t/u/free").await.expect("answered"), None);
    let lock = store
        .lock("t/u/locked")
        .await
        .expect("answered")
        .expect("locked");
    assert!(
        lock.until
            .is_some_and(|t| (t - retention.retain_until).get_seconds().abs() <= 1),
        "{lock:?}"
    );
    let keys = ["t/u/free", "t/u/locked", "t/u/absent"].map(str::to_owned);
    let done = store.delete_all("t/u/", &keys).await.expect("answered");
    assert_eq!(
        done,
        vec![Deletion::Deleted, Deletion::Refused, Deletion::Absent],
        "every version of the free object goes; the locked one is refused"
    );
    // Asked alone, the store says why: the lock, with its date.
    assert!(matches!(
        store.delete("t/u/locked").await.expect("answered"),
        Deletion::Locked { until: Some(_) }
    ));
    let left: Vec<String> = store
        .list("t/u/")
        .await
        .expect("listed")
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(left, vec!["t/u/locked".to_owned()]);
}

#[tokio::test]
async fn a_deletion_refused_without_a_lock_is_told_apart_from_one_a_lock_refuses() {
    let server = S3Server::start_with_auth().await;
    server.create_bucket("kept", true).await;
    let admin = server.store("kept", "p/");
    admin
        .put("t/u/backup", Bytes::from_static(b"data"), None)
        .await
        .expect("written");
    let keeper =
        S3Store::new(server.settings("kept", "p/", server.keeper.as_ref())).expect("store");
    let keys = vec!["t/u/backup".to_owned()];
    // Refused key by key (S3 answers AccessDenied in the batch), and no lock explains it.
    assert_eq!(
        keeper.delete_all("t/u/", &keys).await.expect("answered"),
        vec![Deletion::Refused]
    );
    assert_eq!(keeper.lock("t/u/backup").await.expect("HEAD allowed"), None);
    assert_eq!(
        admin.list("t/u/").await.expect("listed").len(),
        1,
        "nothing was deleted"
    );
}
