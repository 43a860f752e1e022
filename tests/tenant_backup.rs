//! Backups end to end: the TenantBackup controller and the Tenant's schedule, against the
//! emulator (with the chart's RBAC), a real PostgreSQL 15 and a real S3 server (moto) on
//! loopback. What Landlord writes is checked with tools that are not Landlord's: the S3
//! objects are downloaded with another S3 client, decrypted with the stock `age` CLI and
//! the identity from the key Secret, decompressed with the stock `zstd`, and restored with
//! the stock `pg_restore`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use landlord::api::{BackupPhase, Tenant, TenantBackup, find_condition};
use landlord::keys::TenantRef;
use landlord::keys::header::parse_header;
use landlord::keys::kubernetes::{IDENTITY_KEY, secret_name};
use serde_json::json;
use sha2::{Digest, Sha256};
use support::cluster::{Harness, exists};
use support::landlord::{OPERATOR_NAMESPACE, create_database_server, create_s3_storage};
use support::postgres::{self, shared};
use support::s3::S3Server;
use support::wait::{eventually, poll, wait_for};

/// Rows every tenant database gets: distinctive text that must never appear in a bucket.
const ROW_MARKER: &str = "client-record-";

fn backups(client: &Client) -> Api<TenantBackup> {
    Api::all(client.clone())
}

async fn create_backup(client: &Client, name: &str, tenant: &str) -> TenantBackup {
    let backup: TenantBackup = serde_json::from_value(json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "TenantBackup",
        "metadata": {"name": name}, "spec": {"tenantRef": tenant}
    }))
    .expect("TenantBackup");
    backups(client)
        .create(&PostParams::default(), &backup)
        .await
        .expect("TenantBackup created")
}

/// Waits until the backup reaches `phase`; returns it.
async fn wait_phase(client: &Client, name: &str, phase: BackupPhase) -> TenantBackup {
    let found = poll(|| async {
        let b = backups(client).get_opt(name).await.ok()??;
        (b.status.as_ref()?.phase == Some(phase)).then_some(b)
    })
    .await;
    match found {
        Some(b) => b,
        None => {
            let now = backups(client).get_opt(name).await.ok().flatten();
            panic!(
                "{name} never reached {phase:?}: {:?}",
                now.and_then(|b| b.status)
            );
        }
    }
}

fn completed_reason(backup: &TenantBackup) -> (String, String, String) {
    completed_condition(backup).expect("a Completed condition")
}

fn completed_condition(backup: &TenantBackup) -> Option<(String, String, String)> {
    let c = find_condition(&backup.status.as_ref()?.conditions, "Completed")?;
    Some((
        format!("{:?}", c.status),
        c.reason.clone(),
        c.message.clone(),
    ))
}

/// A Tenant with a database on the shared server and backups to `storage`, Ready, with
/// rows in its database. Returns the Tenant.
async fn tenant_with_rows(
    h: &Harness,
    name: &str,
    backup: serde_json::Value,
    rows: usize,
) -> Tenant {
    let mut spec = json!({"database": {"serverRef": "pg"}});
    if !backup.is_null() {
        spec["backup"] = backup;
    }
    h.create_tenant(name, spec).await;
    h.wait_condition(name, "DatabaseReady", "True").await;
    let tenant = h.tenants().get(name).await.expect("tenant");
    let db = tenant
        .status
        .clone()
        .expect("status")
        .database
        .expect("database");
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &tenant.primary_namespace());
    let secret = secrets
        .get(&format!("{name}-db"))
        .await
        .expect("credentials");
    let password =
        String::from_utf8(secret.data.expect("data")["password"].0.clone()).expect("utf-8");
    let client = shared()
        .connect(&db.role, &password, &db.name)
        .await
        .expect("tenant connects");
    client
        .batch_execute(&format!(
            "CREATE TABLE customers (id int PRIMARY KEY, secret text NOT NULL);
             INSERT INTO customers SELECT i, '{ROW_MARKER}' || i || '-' || md5(i::text)
             FROM generate_series(1, {rows}) AS i;"
        ))
        .await
        .expect("rows written");
    tenant
}

/// Everything a backup test needs: the harness, a DatabaseServer `pg` and a
/// BackupStorage `s3` on a fresh bucket.
async fn setup(bucket: &str) -> (Harness, S3Server) {
    let h = Harness::start_with(true).await;
    create_database_server(&h.client, "pg", shared()).await;
    let s3 = S3Server::start().await;
    create_s3_storage(&h.client, "s3", &s3, bucket).await;
    (h, s3)
}

async fn download(s3: &S3Server, bucket: &str, key: &str) -> Vec<u8> {
    let object = s3
        .client()
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{key} downloaded: {e:?}"));
    object
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

async fn keys_in(s3: &S3Server, bucket: &str) -> Vec<String> {
    let listed = s3
        .client()
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("listed");
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

async fn incomplete_uploads(s3: &S3Server, bucket: &str) -> Vec<String> {
    let listed = s3
        .client()
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("uploads listed");
    listed
        .uploads()
        .iter()
        .filter_map(|u| u.key().map(str::to_owned))
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("landlord-tb-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The tenant's identity, as an operator with access to the key Secret would save it.
async fn save_identity(client: &Client, tenant: &Tenant, dir: &Path) -> PathBuf {
    let secret = Api::<Secret>::namespaced(client.clone(), OPERATOR_NAMESPACE)
        .get(&secret_name(
            &TenantRef::new(&tenant.name_any(), tenant.uid().as_deref().expect("uid"))
                .expect("ref"),
        ))
        .await
        .expect("key Secret");
    let path = dir.join("key.txt");
    std::fs::write(&path, &secret.data.expect("data")[IDENTITY_KEY].0).expect("key.txt");
    path
}

/// `age -d -i key.txt` (the stock CLI), then `zstd -d` when `zstd`, into a dump file.
fn decrypt_with_stock_tools(ciphertext: &[u8], key: &Path, zstd: bool, dir: &Path) -> PathBuf {
    let encrypted = dir.join("backup.age");
    std::fs::write(&encrypted, ciphertext).expect("written");
    let dump = dir.join("backup.dump");
    let script = if zstd {
        format!(
            "age -d -i {} {} | zstd -d -q -o {}",
            key.display(),
            encrypted.display(),
            dump.display()
        )
    } else {
        format!(
            "age -d -i {} -o {} {}",
            key.display(),
            dump.display(),
            encrypted.display()
        )
    };
    let out = Command::new("sh")
        .args(["-ec", &script])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dump
}

/// Restores `dump` with the stock `pg_restore` into a new database; returns its rows.
async fn restore_with_pg_restore(dump: &Path, database: &str) -> i64 {
    let pg = shared();
    let admin = pg.superuser("postgres").await;
    for statement in [
        format!("DROP DATABASE IF EXISTS {database}"),
        format!("CREATE DATABASE {database}"),
    ] {
        admin
            .batch_execute(&statement)
            .await
            .expect("restore target");
    }
    let mut child = Command::new(Path::new(postgres::DEFAULT_BIN).join("pg_restore"))
        .args([
            "--no-owner",
            "--no-privileges",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .arg(format!("--port={}", pg.port))
        .arg(format!("--dbname={database}"))
        .arg(dump)
        .env("PGPASSWORD", &pg.superuser_password)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pg_restore");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut stderr).ok();
    assert!(
        child.wait().expect("pg_restore exits").success(),
        "pg_restore: {stderr}"
    );
    let restored = pg.superuser(database).await;
    let row = restored
        .query_one(
            &format!("SELECT count(*) FROM customers WHERE secret LIKE '{ROW_MARKER}%'"),
            &[],
        )
        .await
        .expect("rows counted");
    row.get(0)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_manual_and_a_scheduled_backup_complete_and_restore_with_stock_tools_only() {
    let (h, s3) = setup("backups").await;
    let tenant = tenant_with_rows(
        &h,
        "bkacme",
        json!({"storageRef": "s3", "schedule": "* * * * *"}),
        2000,
    )
    .await;
    let uid = tenant.uid().expect("uid");
    h.wait_condition("bkacme", "BackupScheduled", "True").await;
    h.wait_condition("bkacme", "Ready", "True").await;

    create_backup(&h.client, "bkacme-manual", "bkacme").await;
    let done = wait_phase(&h.client, "bkacme-manual", BackupPhase::Completed).await;
    let status = done.status.clone().expect("status");
    let (_, reason, message) = completed_reason(&done);
    assert_eq!(reason, "Completed", "{message}");
    let object_key = status.object_key.clone().expect("objectKey");
    assert_eq!(
        object_key,
        format!("bkacme/{uid}/backups/bkacme-manual.dump.zst.age"),
        "objects live under the Tenant's UID"
    );
    assert_eq!(status.compression.as_deref(), Some("zstd"));
    assert_eq!(status.tenant_uid.as_deref(), Some(uid.as_str()));
    assert_eq!(status.key_id, tenant.status.clone().expect("status").key_id);
    assert!(
        done.finalizers()
            .iter()
            .any(|f| f == "landlord.dev/backup-objects")
    );

    // The object, as another S3 client downloads it.
    let ciphertext = download(&s3, "backups", &object_key).await;
    assert_eq!(Some(ciphertext.len() as i64), status.size_bytes);
    let digest: String = Sha256::digest(&ciphertext)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        status.sha256.as_deref(),
        Some(digest.as_str()),
        "status.sha256 is the object's"
    );
    let header = parse_header(&ciphertext).expect("an age header");
    assert_eq!(header.x25519_count(), 1, "exactly one X25519 recipient");
    assert!(
        !contains(&ciphertext, ROW_MARKER.as_bytes()),
        "no plaintext row in the object"
    );

    // The manifest beside it.
    let manifest_key = status.manifest_key.clone().expect("manifestKey");
    let manifest: serde_json::Value =
        serde_json::from_slice(&download(&s3, "backups", &manifest_key).await)
            .expect("JSON manifest");
    assert_eq!(manifest["format"], "landlord.dev/backup-manifest/v1");
    assert_eq!(manifest["tenant"]["uid"], uid.as_str());
    assert_eq!(manifest["sha256"], digest.as_str());
    assert_eq!(manifest["compression"], "zstd");
    assert_eq!(
        manifest["encryption"]["keyId"].as_str(),
        status.key_id.as_deref()
    );
    assert!(
        manifest["pgDumpVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("15"))
    );
    for key in keys_in(&s3, "backups").await {
        let bytes = download(&s3, "backups", &key).await;
        assert!(
            !contains(&bytes, ROW_MARKER.as_bytes()),
            "no plaintext row in {key}"
        );
        assert!(
            !contains(&bytes, b"-----BEGIN") && !contains(&bytes, b"AGE-SECRET-KEY"),
            "no key material in {key}"
        );
    }

    // Stock age + zstd + pg_restore, and nothing of Landlord's.
    let dir = scratch("manual");
    let key = save_identity(&h.client, &tenant, &dir).await;
    let dump = decrypt_with_stock_tools(&ciphertext, &key, true, &dir);
    assert_eq!(
        restore_with_pg_restore(&dump, "bkacme_restored").await,
        2000
    );

    // The schedule's backup: every minute, so the first comes within about 75 s.
    let scheduled = wait_for_long(
        "a scheduled backup completes",
        Duration::from_secs(150),
        || async {
            backups(&h.client)
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|b| {
                    b.annotations().contains_key("landlord.dev/scheduled-for")
                        && b.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Completed)
                })
        },
    )
    .await;
    assert!(
        scheduled.name_any().starts_with("bkacme-"),
        "{}",
        scheduled.name_any()
    );
    assert_eq!(
        scheduled.annotations().get("landlord.dev/tenant-uid"),
        Some(&uid),
        "a scheduled backup records the Tenant's UID"
    );
    let last = wait_for("Tenant status.lastBackup", || async {
        let t = h.tenants().get("bkacme").await.ok()?;
        t.status?.last_backup
    })
    .await;
    assert!(last.size_bytes.is_some_and(|s| s > 0));
    let metrics = h.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("landlord_backups_total{result=\"completed\"}")),
        "{metrics}"
    );
    assert!(
        metrics.contains("landlord_tenant_last_backup_timestamp_seconds{tenant=\"bkacme\"}"),
        "{metrics}"
    );

    // Deleting a TenantBackup deletes its objects.
    backups(&h.client)
        .delete("bkacme-manual", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the TenantBackup is gone", || async {
        !exists(&backups(&h.client), "bkacme-manual").await
    })
    .await;
    let left = keys_in(&s3, "backups").await;
    assert!(
        !left.contains(&object_key) && !left.contains(&manifest_key),
        "{left:?}"
    );
}

/// [`wait_for`] with its own deadline, for a wait that a schedule (not the machine's
/// speed) makes long.
async fn wait_for_long<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < until, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn each_compression_setting_restores_with_stock_tools() {
    let (h, s3) = setup("compression").await;
    for (tenant, compression, zstd) in [("bkgz", "PgDump", false), ("bkraw", "None", false)] {
        let t = tenant_with_rows(
            &h,
            tenant,
            json!({"storageRef": "s3", "schedule": "@yearly", "compression": compression}),
            500,
        )
        .await;
        let name = format!("{tenant}-now");
        create_backup(&h.client, &name, tenant).await;
        let done = wait_phase(&h.client, &name, BackupPhase::Completed).await;
        let status = done.status.expect("status");
        let object_key = status.object_key.expect("objectKey");
        assert!(object_key.ends_with(".dump.age"), "{object_key}");
        let ciphertext = download(&s3, "compression", &object_key).await;
        assert!(!contains(&ciphertext, ROW_MARKER.as_bytes()));
        let dir = scratch(tenant);
        let key = save_identity(&h.client, &t, &dir).await;
        let dump = decrypt_with_stock_tools(&ciphertext, &key, zstd, &dir);
        assert_eq!(
            restore_with_pg_restore(&dump, &format!("{tenant}_restored")).await,
            500
        );
    }
}

#[tokio::test]
async fn retention_deletes_exactly_what_keep_last_leaves_and_their_objects() {
    let (h, s3) = setup("retention").await;
    let tenant = tenant_with_rows(
        &h,
        "bkret",
        json!({"storageRef": "s3", "schedule": "@yearly", "retention": {"keepLast": 2}}),
        10,
    )
    .await;
    let uid = tenant.uid().expect("uid");
    for n in 1..=4 {
        let name = format!("bkret-{n}");
        create_backup(&h.client, &name, "bkret").await;
        wait_phase(&h.client, &name, BackupPhase::Completed).await;
    }
    eventually("retention removed the two oldest backups", || async {
        !exists(&backups(&h.client), "bkret-1").await
            && !exists(&backups(&h.client), "bkret-2").await
    })
    .await;
    for kept in ["bkret-3", "bkret-4"] {
        assert!(
            exists(&backups(&h.client), kept).await,
            "{kept} is kept by keepLast 2"
        );
    }
    eventually("only the kept backups' objects remain", || async {
        let mut keys = keys_in(&s3, "retention").await;
        keys.sort();
        keys == [
            format!("bkret/{uid}/backups/bkret-3.dump.zst.age"),
            format!("bkret/{uid}/backups/bkret-3.manifest.json"),
            format!("bkret/{uid}/backups/bkret-4.dump.zst.age"),
            format!("bkret/{uid}/backups/bkret-4.manifest.json"),
        ]
    })
    .await;
}

#[tokio::test]
async fn a_backup_interrupted_mid_upload_is_aborted_and_tried_again() {
    let (mut h, s3) = setup("crash").await;
    let tenant = tenant_with_rows(
        &h,
        "bkcrash",
        json!({"storageRef": "s3", "schedule": "@yearly"}),
        100,
    )
    .await;
    let uid = tenant.uid().expect("uid");
    h.wait_condition("bkcrash", "Ready", "True").await;
    // What a crash mid-upload leaves: a TenantBackup recorded Running by an operator
    // that is gone, and its incomplete multipart upload.
    h.stop_operator().await;
    create_backup(&h.client, "bkcrash-1", "bkcrash").await;
    let key = format!("bkcrash/{uid}/backups/bkcrash-1.dump.zst.age");
    let status = json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "TenantBackup",
        "status": {"phase": "Running", "attempts": 1, "tenantUid": uid, "storageRef": "s3",
                   "objectKey": key, "startTime": "2026-01-01T00:00:00Z"}
    });
    backups(&h.client)
        .patch_status(
            "bkcrash-1",
            &PatchParams::apply("landlord").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("status written");
    let finalizers = json!({"metadata": {"finalizers": ["landlord.dev/backup-objects"]}});
    backups(&h.client)
        .patch(
            "bkcrash-1",
            &PatchParams::default(),
            &Patch::Merge(&finalizers),
        )
        .await
        .expect("finalizer");
    s3.client()
        .create_multipart_upload()
        .bucket("crash")
        .key(&key)
        .send()
        .await
        .expect("an upload left behind");
    assert_eq!(
        incomplete_uploads(&s3, "crash").await,
        std::slice::from_ref(&key)
    );

    h.start_operator().await;
    let done = wait_phase(&h.client, "bkcrash-1", BackupPhase::Completed).await;
    assert_eq!(
        done.status.as_ref().and_then(|s| s.attempts),
        Some(2),
        "the interrupted attempt counts"
    );
    assert!(
        incomplete_uploads(&s3, "crash").await.is_empty(),
        "no orphaned multipart upload"
    );
    eventually("a Completed event", || async {
        events_about(&h.client, "bkcrash-1")
            .await
            .iter()
            .any(|(_, reason)| reason == "Completed")
    })
    .await;
}

async fn events_about(client: &Client, name: &str) -> Vec<(String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::all(client.clone());
    api.list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn unusable_storage_and_a_replaced_tenant_are_reported_and_nothing_is_written() {
    let h = Harness::start_with(true).await;
    create_database_server(&h.client, "pg", shared()).await;
    // Storage that cannot be reached: the backup waits, saying why.
    let s3 = S3Server::start().await;
    let closed = format!("http://127.0.0.1:{}", support::s3::closed_port());
    support::landlord::create_s3_storage_at(&h.client, "down", &closed, "nowhere", "a", "b").await;
    let tenant = tenant_with_rows(
        &h,
        "bkdown",
        json!({"storageRef": "down", "schedule": "@yearly"}),
        10,
    )
    .await;
    let (_, reason, message) = h.wait_condition("bkdown", "BackupScheduled", "False").await;
    assert_eq!(reason, "StorageUnavailable", "{message}");
    create_backup(&h.client, "bkdown-1", "bkdown").await;
    let waiting = wait_for("the backup waits for its storage", || async {
        let b = backups(&h.client).get("bkdown-1").await.ok()?;
        let (status, reason, message) = completed_condition(&b)?;
        (reason == "StorageUnavailable").then_some((status, message, b))
    })
    .await;
    assert_eq!(waiting.0, "Unknown");
    assert_eq!(
        waiting.2.status.and_then(|s| s.phase),
        Some(BackupPhase::Pending)
    );
    assert!(waiting.1.contains("down"), "{}", waiting.1);

    // A backup recorded for another Tenant of the same name is never run for this one.
    let forged: TenantBackup = serde_json::from_value(json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "TenantBackup",
        "metadata": {"name": "bkdown-old", "annotations": {"landlord.dev/tenant-uid": "an-earlier-tenant"}},
        "spec": {"tenantRef": "bkdown", "storageRef": "down"}
    }))
    .expect("TenantBackup");
    backups(&h.client)
        .create(&PostParams::default(), &forged)
        .await
        .expect("created");
    let failed = wait_phase(&h.client, "bkdown-old", BackupPhase::Failed).await;
    let (_, reason, message) = completed_reason(&failed);
    assert_eq!(reason, "TenantReplaced", "{message}");
    assert!(message.contains(&tenant.uid().expect("uid")), "{message}");

    // A Tenant without a database has nothing to back up.
    h.create_tenant("bknodb", json!({})).await;
    h.wait_condition("bknodb", "Ready", "True").await;
    create_backup(&h.client, "bknodb-1", "bknodb").await;
    let failed = wait_phase(&h.client, "bknodb-1", BackupPhase::Failed).await;
    assert_eq!(completed_reason(&failed).1, "NoDatabase");
    drop(s3);
}

/// A Ready Tenant `tenant` with a database on a PostgreSQL of its own (for tests that stop
/// it) and backups to `bucket`; returns the server, the harness, S3 and the tenant's
/// database password.
async fn tenant_on_a_server_of_its_own(
    tenant: &str,
    bucket: &str,
) -> (support::postgres::PostgresServer, Harness, S3Server, String) {
    let pg = support::postgres::PostgresServer::start().expect("a PostgreSQL of its own");
    let h = Harness::start_with(true).await;
    create_database_server(&h.client, "pgown", &pg).await;
    let s3 = S3Server::start().await;
    create_s3_storage(&h.client, "s3", &s3, bucket).await;
    h.create_tenant(
        tenant,
        json!({"database": {"serverRef": "pgown"}, "backup": {"storageRef": "s3", "schedule": "@yearly"}}),
    )
    .await;
    h.wait_condition(tenant, "Ready", "True").await;
    let password = tenant_password(&h, tenant).await;
    (pg, h, s3, password)
}

#[tokio::test]
async fn a_database_down_at_backup_time_is_reported_and_leaves_nothing_in_the_bucket() {
    let (pg, h, s3, password) = tenant_on_a_server_of_its_own("bkout", "outage").await;

    pg.stop();
    create_backup(&h.client, "bkout-1", "bkout").await;
    let (status, reason, message) = wait_for("the backup says the database is down", || async {
        let b = backups(&h.client).get("bkout-1").await.ok()?;
        let c = completed_condition(&b)?;
        ["DumpFailed", "DatabaseUnavailable"]
            .contains(&c.1.as_str())
            .then_some(c)
    })
    .await;
    assert_eq!(status, "Unknown", "{reason}: {message}");
    assert!(
        !message.contains(&password),
        "the password never appears: {message}"
    );
    let b = backups(&h.client).get("bkout-1").await.expect("backup");
    assert_eq!(
        b.status.and_then(|s| s.phase),
        Some(BackupPhase::Pending),
        "tried again later, not Completed"
    );
    assert!(
        keys_in(&s3, "outage").await.is_empty(),
        "no object, not even a partial one"
    );
    assert!(
        incomplete_uploads(&s3, "outage").await.is_empty(),
        "no incomplete upload"
    );
    let events = events_about(&h.client, "bkout-1").await;
    for (_, reason) in &events {
        assert_ne!(reason, "Completed", "{events:?}");
    }
}

#[tokio::test]
async fn objects_under_object_lock_keep_their_tenant_backup_until_the_lock_expires() {
    let h = Harness::start_with(true).await;
    create_database_server(&h.client, "pg", shared()).await;
    let s3 = S3Server::start().await;
    support::landlord::create_locked_s3_storage(&h.client, "locked", &s3, "locked", "Governance")
        .await;
    tenant_with_rows(
        &h,
        "bklock",
        json!({"storageRef": "locked", "schedule": "@yearly"}),
        10,
    )
    .await;
    create_backup(&h.client, "bklock-1", "bklock").await;
    let done = wait_phase(&h.client, "bklock-1", BackupPhase::Completed).await;
    let status = done.status.expect("status");
    let until = status
        .retain_until
        .expect("status.retainUntil under Object Lock")
        .0;
    let in_a_day = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24))
        .expect("time");
    assert!(
        until <= in_a_day && until > jiff::Timestamp::now(),
        "locked for a day: {until}"
    );
    let object_key = status.object_key.expect("objectKey");
    // (moto answers GetObjectRetention with the object itself; HEAD has the lock.)
    let head = s3
        .client()
        .head_object()
        .bucket("locked")
        .key(&object_key)
        .send()
        .await
        .expect("HEAD");
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("GOVERNANCE")
    );
    assert!(head.object_lock_retain_until_date().is_some());

    backups(&h.client)
        .delete("bklock-1", &DeleteParams::default())
        .await
        .expect("delete requested");
    let (status, reason, message) = wait_for("the deletion waits for the lock", || async {
        let b = backups(&h.client).get("bklock-1").await.ok()?;
        let c = find_condition(&b.status?.conditions, "ObjectsDeleted")?.clone();
        Some((format!("{:?}", c.status), c.reason, c.message))
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ObjectLocked"),
        "{message}"
    );
    assert!(message.contains(&object_key), "{message}");
    assert!(
        keys_in(&s3, "locked").await.contains(&object_key),
        "a locked object is not deleted"
    );
    assert!(
        exists(&backups(&h.client), "bklock-1").await,
        "the record stays while its objects do"
    );
}

fn restores(client: &Client) -> Api<landlord::api::TenantRestore> {
    Api::all(client.clone())
}

async fn create_restore(
    client: &Client,
    name: &str,
    spec: serde_json::Value,
) -> Result<(), kube::Error> {
    let restore: landlord::api::TenantRestore = serde_json::from_value(json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "TenantRestore",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("TenantRestore");
    restores(client)
        .create(&PostParams::default(), &restore)
        .await
        .map(|_| ())
}

/// Waits until the restore is Completed or Failed; returns its status.
async fn restore_outcome(client: &Client, name: &str) -> landlord::api::TenantRestoreStatus {
    use landlord::api::RestorePhase;
    wait_for(&format!("TenantRestore {name} finishes"), || async {
        let status = restores(client).get(name).await.ok()?.status?;
        matches!(
            status.phase,
            Some(RestorePhase::Completed | RestorePhase::Failed)
        )
        .then_some(status)
    })
    .await
}

fn restore_reason(status: &landlord::api::TenantRestoreStatus) -> (String, String) {
    let c = find_condition(&status.conditions, "Completed").expect("Completed condition");
    (c.reason.clone(), c.message.clone())
}

async fn tenant_rows(h: &Harness, tenant: &str, database: &str) -> Option<i64> {
    let t = h.tenants().get(tenant).await.expect("tenant");
    let db = t
        .status
        .clone()
        .expect("status")
        .database
        .expect("database");
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &t.primary_namespace());
    let secret = secrets
        .get(&format!("{tenant}-db"))
        .await
        .expect("credentials");
    let password =
        String::from_utf8(secret.data.expect("data")["password"].0.clone()).expect("utf-8");
    let client = shared().connect(&db.role, &password, database).await.ok()?;
    client
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .ok()
        .map(|r| r.get(0))
}

#[tokio::test]
async fn a_tenant_restore_brings_back_the_backups_rows_into_a_new_database_or_in_place() {
    let (h, s3) = setup("restores").await;
    tenant_with_rows(
        &h,
        "bkrs",
        json!({"storageRef": "s3", "schedule": "@yearly"}),
        300,
    )
    .await;
    create_backup(&h.client, "bkrs-1", "bkrs").await;
    let backup = wait_phase(&h.client, "bkrs-1", BackupPhase::Completed).await;
    let live = "tenant_bkrs";
    let client = {
        let t = h.tenants().get("bkrs").await.expect("tenant");
        let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &t.primary_namespace());
        let secret = secrets.get("bkrs-db").await.expect("credentials");
        let password =
            String::from_utf8(secret.data.expect("data")["password"].0.clone()).expect("utf-8");
        shared()
            .connect("tenant_bkrs", &password, live)
            .await
            .expect("connects")
    };
    client
        .batch_execute(
            "INSERT INTO customers SELECT i, 'later' FROM generate_series(301, 350) AS i",
        )
        .await
        .expect("later rows");
    assert_eq!(tenant_rows(&h, "bkrs", live).await, Some(350));

    // Into a new database: the backup's rows, not the later ones; the live one untouched.
    create_restore(
        &h.client,
        "bkrs-copy",
        json!({"backupRef": "bkrs-1", "targetDatabase": "bkrs_copy"}),
    )
    .await
    .expect("created");
    let status = restore_outcome(&h.client, "bkrs-copy").await;
    assert_eq!(
        restore_reason(&status).0,
        "Restored",
        "{:?}",
        restore_reason(&status)
    );
    assert_eq!(
        status.sha256,
        backup.status.as_ref().and_then(|s| s.sha256.clone())
    );
    assert_eq!(
        tenant_rows(&h, "bkrs", "bkrs_copy").await,
        Some(300),
        "reachable with the tenant's credentials"
    );
    assert_eq!(tenant_rows(&h, "bkrs", live).await, Some(350));
    let owner: String = shared()
        .superuser("postgres")
        .await
        .query_one(
            "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = 'bkrs_copy'",
            &[],
        )
        .await
        .expect("owner")
        .get(0);
    assert_eq!(owner, "tenant_bkrs");

    // A restore over the tenant's own database must be confirmed: the schema says so.
    let refused = create_restore(&h.client, "bkrs-unconfirmed", json!({"tenantRef": "bkrs"}))
        .await
        .expect_err("refused");
    assert!(
        refused.to_string().contains("replaceTenantDatabase"),
        "{refused}"
    );

    // Confirmed, of the tenant's newest backup: the later rows are gone.
    create_restore(
        &h.client,
        "bkrs-inplace",
        json!({"tenantRef": "bkrs", "replaceTenantDatabase": true}),
    )
    .await
    .expect("created");
    let status = restore_outcome(&h.client, "bkrs-inplace").await;
    assert_eq!(
        restore_reason(&status).0,
        "Restored",
        "{:?}",
        restore_reason(&status)
    );
    assert_eq!(
        status.backup.as_deref(),
        Some("bkrs-1"),
        "the newest Completed backup, recorded"
    );
    assert_eq!(tenant_rows(&h, "bkrs", live).await, Some(300));
    let events = events_about(&h.client, "bkrs-inplace").await;
    assert!(
        events.iter().any(|(_, r)| r == "ReplacingTenantDatabase"),
        "{events:?}"
    );

    // `landlord backup download` gets the object, checked, for the stock tools.
    let key = backup
        .status
        .as_ref()
        .and_then(|s| s.object_key.clone())
        .expect("objectKey");
    let dir = scratch("download");
    let args = |output: &str| landlord::backup::cli::DownloadArgs {
        backup: "bkrs-1".to_owned(),
        output: Some(dir.join(output)),
        operator_namespace: OPERATOR_NAMESPACE.to_owned(),
    };
    let said = landlord::backup::cli::download(&h.client, &args("good.age"))
        .await
        .expect("downloaded");
    assert!(said.contains("as recorded by the backup"), "{said}");
    let downloaded = std::fs::read(dir.join("good.age")).expect("file");
    assert_eq!(downloaded, download(&s3, "restores", &key).await);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.join("good.age"))
            .expect("file")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // One byte changed in the bucket: refused before anything is written, and the new
    // database it made is dropped again.
    let mut bytes = download(&s3, "restores", &key).await;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x80;
    s3.client()
        .put_object()
        .bucket("restores")
        .key(&key)
        .body(bytes.into())
        .send()
        .await
        .expect("tampered");
    let refused = landlord::backup::cli::download(&h.client, &args("bad.age"))
        .await
        .expect_err("a tampered object is not downloaded");
    assert!(refused.contains("ChecksumMismatch"), "{refused}");
    assert!(!dir.join("bad.age").exists(), "nothing written");
    create_restore(
        &h.client,
        "bkrs-tampered",
        json!({"backupRef": "bkrs-1", "targetDatabase": "bkrs_tampered"}),
    )
    .await
    .expect("created");
    let status = restore_outcome(&h.client, "bkrs-tampered").await;
    let (reason, message) = restore_reason(&status);
    assert_eq!(reason, "ChecksumMismatch", "{message}");
    assert!(message.contains("dropped"), "{message}");
    let left: i64 = shared()
        .superuser("postgres")
        .await
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = 'bkrs_tampered'",
            &[],
        )
        .await
        .expect("counted")
        .get(0);
    assert_eq!(left, 0, "no half-restored database left behind");
    eventually("a Warning event says ChecksumMismatch", || async {
        events_about(&h.client, "bkrs-tampered")
            .await
            .iter()
            .any(|(t, r)| t == "Warning" && r == "ChecksumMismatch")
    })
    .await;

    // The key destroyed: the restore says so, not a decryption error.
    let tenant = h.tenants().get("bkrs").await.expect("tenant");
    let key_secret =
        secret_name(&TenantRef::new("bkrs", tenant.uid().as_deref().expect("uid")).expect("ref"));
    Api::<Secret>::namespaced(h.client.clone(), OPERATOR_NAMESPACE)
        .delete(&key_secret, &DeleteParams::default())
        .await
        .expect("key destroyed");
    create_restore(
        &h.client,
        "bkrs-shredded",
        json!({"backupRef": "bkrs-1", "targetDatabase": "bkrs_shredded"}),
    )
    .await
    .expect("created");
    let status = restore_outcome(&h.client, "bkrs-shredded").await;
    let (reason, message) = restore_reason(&status);
    assert_eq!(reason, "KeyDestroyed", "{message}");
}

#[tokio::test]
async fn restore_drills_pass_on_a_good_backup_and_warn_on_a_corrupted_one() {
    let (h, s3) = setup("drills").await;
    tenant_with_rows(
        &h,
        "bkdrill",
        json!({"storageRef": "s3", "schedule": "@yearly", "verify": {"afterEveryBackups": 1}}),
        120,
    )
    .await;
    create_backup(&h.client, "bkdrill-1", "bkdrill").await;
    let verified = wait_for("the drill of bkdrill-1 passes", || async {
        let b = backups(&h.client).get("bkdrill-1").await.ok()?;
        let v = b.status.as_ref()?.verification.clone()?;
        v.passed.then_some(b)
    })
    .await;
    let status = verified.status.expect("status");
    let v = status.verification.expect("verification");
    assert_eq!(
        (v.tables, v.rows),
        (1, 120),
        "the dump's table and its rows were found"
    );
    let c = find_condition(&status.conditions, "Verified").expect("Verified");
    assert_eq!(
        (format!("{:?}", c.status), c.reason.as_str()),
        ("True".to_owned(), "Restored"),
        "{}",
        c.message
    );
    let last = wait_for("Tenant status.lastVerifiedBackup", || async {
        h.tenants()
            .get("bkdrill")
            .await
            .ok()?
            .status?
            .last_verified_backup
    })
    .await;
    assert_eq!((last.name.as_str(), last.passed), ("bkdrill-1", true));
    let drilled = backups(&h.client).get("bkdrill-1").await.expect("backup");
    let scratch: i64 = shared()
        .superuser("postgres")
        .await
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&scratch_of(&drilled.uid().expect("uid"))],
        )
        .await
        .expect("counted")
        .get(0);
    assert_eq!(scratch, 0, "the scratch database is dropped");
    assert_eq!(
        tenant_rows(&h, "bkdrill", "tenant_bkdrill").await,
        Some(120),
        "the live database untouched"
    );

    // Corrupt the object, then ask for a drill again.
    let key = status.object_key.expect("objectKey");
    let mut bytes = download(&s3, "drills", &key).await;
    let at = bytes.len() - 10;
    bytes[at] ^= 0x01;
    s3.client()
        .put_object()
        .bucket("drills")
        .key(&key)
        .body(bytes.into())
        .send()
        .await
        .expect("corrupted");
    let again = json!({"metadata": {"annotations": {"landlord.dev/verify-requested": "again"}}});
    backups(&h.client)
        .patch("bkdrill-1", &PatchParams::default(), &Patch::Merge(&again))
        .await
        .expect("requested");
    let failed = wait_for("the drill fails", || async {
        let b = backups(&h.client).get("bkdrill-1").await.ok()?;
        let v = b.status.as_ref()?.verification.clone()?;
        (v.requested == "again").then_some(b)
    })
    .await;
    let status = failed.status.expect("status");
    assert!(!status.verification.expect("verification").passed);
    let c = find_condition(&status.conditions, "Verified").expect("Verified");
    assert_eq!(format!("{:?}", c.status), "False");
    assert_eq!(c.reason, "ChecksumMismatch", "{}", c.message);
    eventually("a Warning event says ChecksumMismatch", || async {
        events_about(&h.client, "bkdrill-1")
            .await
            .iter()
            .any(|(t, r)| t == "Warning" && r == "ChecksumMismatch")
    })
    .await;
    let last = wait_for("lastVerifiedBackup says it failed", || async {
        let l = h
            .tenants()
            .get("bkdrill")
            .await
            .ok()?
            .status?
            .last_verified_backup?;
        (!l.passed).then_some(l)
    })
    .await;
    assert_eq!(last.name, "bkdrill-1");
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("landlord_restore_drills_total{result=\"failed\"}"),
        "{metrics}"
    );
}

/// The tenant's database password, from its credentials Secret.
async fn tenant_password(h: &Harness, tenant: &str) -> String {
    let t = h.tenants().get(tenant).await.expect("tenant");
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &t.primary_namespace());
    let secret = secrets
        .get(&format!("{tenant}-db"))
        .await
        .expect("credentials");
    String::from_utf8(secret.data.expect("data")["password"].0.clone()).expect("utf-8")
}

/// `rows` rows of about 140 bytes of random text each in `customers`, written as the
/// tenant's role.
async fn write_rows(client: &tokio_postgres::Client, rows: usize) {
    client
        .batch_execute(&format!(
            "CREATE TABLE customers (id int PRIMARY KEY, secret text NOT NULL);
             INSERT INTO customers SELECT i, '{ROW_MARKER}' || i || '-' ||
               md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text)
             FROM generate_series(1, {rows}) AS i;"
        ))
        .await
        .expect("rows written");
}

/// What a database's `customers` holds: its row count and a digest of every row.
async fn fingerprint(client: &tokio_postgres::Client) -> (i64, String) {
    let row = client
        .query_one(
            "SELECT count(*), md5(string_agg(id || ':' || secret, ',' ORDER BY id)) FROM customers",
            &[],
        )
        .await
        .expect("fingerprint");
    (row.get(0), row.get(1))
}

async fn database_exists(pg: &support::postgres::PostgresServer, name: &str) -> bool {
    let n: i64 = pg
        .superuser("postgres")
        .await
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .expect("counted")
        .get(0);
    n > 0
}

#[tokio::test]
async fn a_database_down_mid_restore_fails_it_clearly_and_no_half_restored_database_stays() {
    let (pg, h, _s3, password) = tenant_on_a_server_of_its_own("bkmid", "midrestore").await;
    let live = pg
        .connect("tenant_bkmid", &password, "tenant_bkmid")
        .await
        .expect("tenant connects");
    // About 60 MiB: pg_restore takes seconds, long enough to be cut off.
    write_rows(&live, 400_000).await;
    let before = fingerprint(&live).await;
    drop(live);
    create_backup(&h.client, "bkmid-1", "bkmid").await;
    wait_phase(&h.client, "bkmid-1", BackupPhase::Completed).await;

    create_restore(
        &h.client,
        "bkmid-copy",
        json!({"backupRef": "bkmid-1", "targetDatabase": "bkmid_copy"}),
    )
    .await
    .expect("created");
    // pg_restore is writing into the new database: now the server goes down.
    eventually("pg_restore writes into bkmid_copy", || async {
        let Ok(client) = pg.connect("postgres", &pg.superuser_password, "postgres").await else {
            return false;
        };
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'bkmid_copy' AND application_name = 'landlord-restore' AND state = 'active'",
                &[],
            )
            .await
            .is_ok_and(|r| r.get::<_, i64>(0) > 0)
    })
    .await;
    pg.stop();

    let status = restore_outcome(&h.client, "bkmid-copy").await;
    let (reason, message) = restore_reason(&status);
    assert_eq!(
        status.phase,
        Some(landlord::api::RestorePhase::Failed),
        "{reason}: {message}"
    );
    assert_eq!(reason, "DatabaseUnavailable", "{message}");
    assert!(
        message.contains("went away during the restore") && message.contains("bkmid_copy"),
        "{message}"
    );
    assert!(!message.contains(&password), "the password never appears");
    let pending = find_condition(&status.conditions, "TargetDropped").expect("TargetDropped");
    assert_eq!(
        (format!("{:?}", pending.status), pending.reason.as_str()),
        ("False".to_owned(), "DatabaseUnavailable"),
        "{}",
        pending.message
    );
    eventually("a Warning event says DatabaseUnavailable", || async {
        events_about(&h.client, "bkmid-copy")
            .await
            .iter()
            .any(|(t, r)| t == "Warning" && r == "DatabaseUnavailable")
    })
    .await;

    // The server is back: the empty database the rolled-back restore left is dropped.
    pg.start_again();
    let dropped = wait_for("the failed restore's database is dropped", || async {
        let status = restores(&h.client).get("bkmid-copy").await.ok()?.status?;
        find_condition(&status.conditions, "TargetDropped")
            .filter(|c| c.is_true())
            .cloned()
    })
    .await;
    assert_eq!(dropped.reason, "Dropped", "{}", dropped.message);
    assert!(
        !database_exists(&pg, "bkmid_copy").await,
        "no half-restored database left behind"
    );
    let status = restores(&h.client)
        .get("bkmid-copy")
        .await
        .expect("restore")
        .status
        .expect("status");
    assert_eq!(
        (status.phase, restore_reason(&status).0.as_str()),
        (
            Some(landlord::api::RestorePhase::Failed),
            "DatabaseUnavailable"
        ),
        "the restore stays Failed: it is not tried again behind the user's back"
    );
    eventually("a Normal event says Dropped", || async {
        events_about(&h.client, "bkmid-copy")
            .await
            .iter()
            .any(|(t, r)| t == "Normal" && r == "Dropped")
    })
    .await;
    let live = pg
        .connect("tenant_bkmid", &password, "tenant_bkmid")
        .await
        .expect("tenant connects again");
    assert_eq!(
        fingerprint(&live).await,
        before,
        "nothing of the tenant's live database changed"
    );
}

/// The scratch database of a drill of the backup with `uid` (as `src/controller/drill.rs`
/// names it): tests share one server, so each counts only its own backups' drills.
fn scratch_of(uid: &str) -> String {
    let short: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    format!("landlord_drill_{short}")
}

/// Polls `pg_database` for the scratch databases named in `mine` until `done`; returns the
/// most seen at once and every name seen.
async fn watch_scratch_databases<F, Fut>(
    mine: &[String],
    mut done: F,
) -> (usize, std::collections::BTreeSet<String>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let admin = shared().superuser("postgres").await;
    let (mut most, mut seen) = (0, std::collections::BTreeSet::new());
    let until = tokio::time::Instant::now() + support::wait::deadline() * 3;
    loop {
        let names: Vec<String> = admin
            .query(
                "SELECT datname::text FROM pg_database WHERE datname LIKE 'landlord\\_drill\\_%'",
                &[],
            )
            .await
            .expect("listed")
            .iter()
            .map(|r| r.get::<_, String>(0))
            .filter(|n| mine.contains(n))
            .collect();
        most = most.max(names.len());
        seen.extend(names);
        if done().await {
            return (most, seen);
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the drills did not finish; seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asks for a drill of every backup at once (as a due policy does, with the annotation);
/// watches the scratch databases until each drill answered `token`; returns the most seen
/// at once, after checking that every drill passed.
async fn drills_at_once(h: &Harness, backups_: &[&str], token: &str) -> (usize, usize) {
    let ask = json!({"metadata": {"annotations": {"landlord.dev/verify-requested": token}}});
    futures::future::join_all(backups_.iter().map(|b| {
        let api = backups(&h.client);
        let ask = ask.clone();
        async move {
            api.patch(b, &PatchParams::default(), &Patch::Merge(&ask))
                .await
                .expect("drill requested")
        }
    }))
    .await;
    let mut mine = Vec::new();
    for b in backups_ {
        let uid = backups(&h.client)
            .get(b)
            .await
            .expect("backup")
            .uid()
            .expect("uid");
        mine.push(scratch_of(&uid));
    }
    let (most, seen) = watch_scratch_databases(&mine, || async {
        let mut all = true;
        for b in backups_ {
            let answered = backups(&h.client)
                .get(b)
                .await
                .ok()
                .and_then(|b| b.status?.verification)
                .is_some_and(|v| v.requested == token);
            all &= answered;
        }
        all
    })
    .await;
    for b in backups_ {
        let status = backups(&h.client)
            .get(b)
            .await
            .expect("backup")
            .status
            .expect("status");
        let v = status.verification.expect("verification");
        let c = find_condition(&status.conditions, "Verified").expect("Verified");
        assert!(v.passed && c.is_true(), "{b}: {} {}", c.reason, c.message);
        assert_eq!(v.rows, 60_000, "{b}");
    }
    (most, seen.len())
}

#[tokio::test]
async fn drills_on_one_server_never_run_two_at_once() {
    let (mut h, _s3) = setup("drillqueue").await;
    let tenants = ["bkq-a", "bkq-b", "bkq-c"];
    let mut names = Vec::new();
    for t in tenants {
        h.create_tenant(
            t,
            json!({"database": {"serverRef": "pg"}, "backup": {"storageRef": "s3", "schedule": "@yearly"}}),
        )
        .await;
    }
    for t in tenants {
        h.wait_condition(t, "DatabaseReady", "True").await;
        let role = format!("tenant_{}", t.replace('-', "_"));
        let client = shared()
            .connect(&role, &tenant_password(&h, t).await, &role)
            .await
            .expect("tenant connects");
        // About 9 MiB each: a drill takes a moment, long enough to be seen.
        write_rows(&client, 60_000).await;
        let name = format!("{t}-1");
        create_backup(&h.client, &name, t).await;
        names.push(name);
    }
    for name in &names {
        wait_phase(&h.client, name, BackupPhase::Completed).await;
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();

    // --drill-concurrency 1 (the default): one scratch database at a time, every drill
    // seen and passed.
    assert_eq!(h.backup.drill_concurrency, 1);
    let (most, seen) = drills_at_once(&h, &names, "queued").await;
    assert_eq!(seen, 3, "each drill's scratch database was seen");
    assert_eq!(most, 1, "never two drills at once on one server");

    // The same with --drill-concurrency 2: two at once are seen, so the watch above
    // would have caught them.
    h.stop_operator().await;
    h.backup.drill_concurrency = 2;
    h.start_operator().await;
    let (most, _) = drills_at_once(&h, &names, "paired").await;
    assert_eq!(
        most, 2,
        "with --drill-concurrency 2, two drills ran at once"
    );
}
