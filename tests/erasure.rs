//! Erasure end to end, against the emulator (with the chart's RBAC), a real PostgreSQL 15
//! and a real S3 server (moto) on loopback: a Tenant with rows, backups (one under Object
//! Lock) and a restored copy of its database is deleted, and what its receipt claims is
//! then checked independently of the operator's code: with the server's catalog, the
//! Kubernetes API, another S3 client, the stock `age` CLI and `landlord receipt verify`.
//! Then the faults (PostgreSQL down, S3 unreachable, the API refusing) and crashes at
//! every step boundary and inside steps: the erasure waits with a condition, resumes, and
//! leaves exactly one receipt, complete and true.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use landlord::api::{
    BackupPhase, ErasureReceipt, EvidenceCheck, ObjectDisposition, RestorePhase, Tenant,
    TenantBackup, TenantRestore, find_condition,
};
use landlord::erasure::crash::CRASH_AT;
use serde_json::json;
use sha2::{Digest, Sha256};
use support::cluster::{Harness, exists};
use support::landlord::{OPERATOR_NAMESPACE, create_database_server, create_s3_storage};
use support::postgres::{PostgresServer, shared};
use support::s3::S3Server;
use support::wait::{eventually, poll, wait_for};

/// Text in every tenant row: it must never appear in a bucket.
const ROW_MARKER: &str = "erased-client-record-";

fn backups(client: &Client) -> Api<TenantBackup> {
    Api::all(client.clone())
}

fn receipts(client: &Client) -> Api<ErasureReceipt> {
    Api::all(client.clone())
}

async fn create<K>(api: &Api<K>, value: serde_json::Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("a valid object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("created")
}

async fn backup_completed(client: &Client, name: &str, tenant: &str) -> TenantBackup {
    create(
        &backups(client),
        json!({"apiVersion": "landlord.dev/v1alpha1", "kind": "TenantBackup",
               "metadata": {"name": name}, "spec": {"tenantRef": tenant}}),
    )
    .await;
    let done = poll(|| async {
        let b = backups(client).get_opt(name).await.ok()??;
        (b.status.as_ref()?.phase == Some(BackupPhase::Completed)).then_some(b)
    })
    .await;
    done.unwrap_or_else(|| panic!("{name} never completed"))
}

/// A Tenant with a database on `server` (named `pg`), backups to `storage`, and rows.
async fn tenant_with_rows(h: &Harness, pg: &PostgresServer, name: &str, storage: &str) -> Tenant {
    h.create_tenant(
        name,
        json!({"database": {"serverRef": "pg"},
               "backup": {"storageRef": storage, "schedule": "@yearly"}}),
    )
    .await;
    h.wait_condition(name, "Ready", "True").await;
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
    pg.connect(&db.role, &password, &db.name)
        .await
        .expect("tenant connects")
        .batch_execute(&format!(
            "CREATE TABLE customers (id int PRIMARY KEY, secret text NOT NULL);
             INSERT INTO customers SELECT i, '{ROW_MARKER}' || i FROM generate_series(1, 200) AS i;"
        ))
        .await
        .expect("rows written");
    tenant
}

/// Every key in `bucket` under `prefix`, with another S3 client than Landlord's.
async fn keys_in(s3: &S3Server, bucket: &str, prefix: &str) -> Vec<String> {
    let listed = s3
        .client()
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("listed");
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    keys.sort();
    keys
}

async fn download(s3: &S3Server, bucket: &str, key: &str) -> Vec<u8> {
    s3.client()
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("GET")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// The recipient stanzas of an age file, read as text by the test itself: the lines
/// starting with `-> ` before the `---` line, each as its type.
fn stanza_types(file: &[u8]) -> Vec<String> {
    let mut types = Vec::new();
    for line in file.split(|b| *b == b'\n').skip(1) {
        if line.starts_with(b"---") {
            return types;
        }
        if let Some(rest) = line.strip_prefix(b"-> ") {
            let text = String::from_utf8_lossy(rest);
            types.push(text.split(' ').next().unwrap_or_default().to_owned());
        }
    }
    panic!("no end of header")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("landlord-erasure-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Whether the stock `age` CLI opens `file` with any age identity in any Secret of the
/// cluster; returns how many identities it tried.
async fn opens_with_any_secret(client: &Client, file: &[u8], dir: &Path) -> (bool, usize) {
    let all: Api<Secret> = Api::all(client.clone());
    let sealed = dir.join("sealed.age");
    std::fs::write(&sealed, file).expect("written");
    let mut tried = 0;
    for secret in all
        .list(&ListParams::default())
        .await
        .expect("secrets")
        .items
    {
        for value in secret.data.iter().flat_map(|d| d.values()) {
            let text = String::from_utf8_lossy(&value.0);
            for line in text
                .lines()
                .filter(|l| l.trim().starts_with("AGE-SECRET-KEY-1"))
            {
                tried += 1;
                let key = dir.join("identity.txt");
                std::fs::write(&key, line.trim()).expect("identity");
                let out = Command::new("age")
                    .arg("-d")
                    .arg("-i")
                    .arg(&key)
                    .arg(&sealed)
                    .output()
                    .expect("age runs");
                if out.status.success() {
                    return (true, tried);
                }
            }
        }
    }
    (false, tried)
}

/// `landlord receipt verify FILE` (the CLI a third party runs); its exit status and output.
fn receipt_verify(file: &Path, public_key: Option<&str>) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_landlord"));
    command.arg("receipt").arg("verify").arg(file);
    if let Some(key) = public_key {
        command.arg("--public-key").arg(key);
    }
    let out = command.output().expect("landlord runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The receipt of the Tenant `name` with `uid`, once it is gone.
async fn receipt_of(h: &Harness, name: &str, uid: &str) -> ErasureReceipt {
    wait_for("the Tenant is erased", || async {
        (!exists(&h.tenants(), name).await).then_some(())
    })
    .await;
    let all = receipts(&h.client)
        .list(&ListParams::default())
        .await
        .expect("receipts");
    let mine: Vec<ErasureReceipt> = all
        .items
        .into_iter()
        .filter(|r| r.spec.tenant.uid == uid)
        .collect();
    assert_eq!(mine.len(), 1, "exactly one receipt for the erased Tenant");
    mine.into_iter().next().expect("one")
}

async fn catalog_has(pg: &PostgresServer, query: &str, name: &str) -> bool {
    let admin = pg.superuser("postgres").await;
    let rows = admin.query(query, &[&name]).await.expect("catalog query");
    !rows.is_empty()
}

/// A BackupStorage `s3` on a new `bucket` that has Object Lock enabled, without a lock of
/// its own (objects are locked only when they ask for it).
async fn storage_on_locked_bucket(h: &Harness, s3: &S3Server, bucket: &str) {
    s3.create_bucket(bucket, true).await;
    support::landlord::create_s3_storage_at(
        &h.client,
        "s3",
        &s3.endpoint,
        bucket,
        &s3.admin.access_key_id,
        &s3.admin.secret_access_key,
    )
    .await;
}

/// The whole erasure against moto and against MinIO, which answers a locked deletion, an
/// upload listing and a part without its checksum otherwise than moto does.
mod a_deleted_tenant_leaves_a_signed_receipt_whose_every_claim_is_true {
    use super::*;

    #[tokio::test]
    async fn moto() {
        super::a_deleted_tenant_leaves_a_signed_receipt_whose_every_claim_is_true(
            S3Server::start().await,
            shared(),
        )
        .await;
    }

    #[tokio::test]
    async fn minio() {
        // A PostgreSQL of its own: the Tenant's names are those of the moto run.
        let pg = PostgresServer::start().expect("a server of its own");
        super::a_deleted_tenant_leaves_a_signed_receipt_whose_every_claim_is_true(
            S3Server::start_minio().await,
            &pg,
        )
        .await;
    }
}

async fn a_deleted_tenant_leaves_a_signed_receipt_whose_every_claim_is_true(
    s3: S3Server,
    pg: &PostgresServer,
) {
    let h = Harness::start_with(true).await;
    create_database_server(&h.client, "pg", pg).await;
    // One bucket with Object Lock; its BackupStorage locks nothing at first, then every
    // backup for a day: the tenant ends with one deletable backup and one locked.
    storage_on_locked_bucket(&h, &s3, "erasure").await;
    let storages: Api<landlord::api::BackupStorage> = Api::all(h.client.clone());
    let tenant = tenant_with_rows(&h, pg, "gone", "s3").await;
    let uid = tenant.uid().expect("uid");
    let status = tenant.status.clone().expect("status");
    let key_id = status.key_id.clone().expect("keyId");
    let canary = base64_decode(status.canary.as_deref().expect("canary"));
    let db = status.database.clone().expect("database");
    let first = backup_completed(&h.client, "gone-plain", "gone").await;
    storages
        .patch(
            "s3",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"spec": {"objectLock": {"mode": "Governance", "retentionDays": 1}}}),
            ),
        )
        .await
        .expect("object lock on");
    h.wait_condition("gone", "BackupScheduled", "True").await;
    let locked = eventually_locked_backup(&h.client).await;
    // A restore into a new database: the tenant's data, too.
    create(
        &Api::<TenantRestore>::all(h.client.clone()),
        json!({"apiVersion": "landlord.dev/v1alpha1", "kind": "TenantRestore",
               "metadata": {"name": "gone-copy"},
               "spec": {"backupRef": "gone-plain", "targetDatabase": "gone_copy"}}),
    )
    .await;
    wait_for("the restore completes", || async {
        let r = Api::<TenantRestore>::all(h.client.clone())
            .get("gone-copy")
            .await
            .ok()?;
        (r.status?.phase == Some(RestorePhase::Completed)).then_some(())
    })
    .await;
    assert!(
        catalog_has(
            pg,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            "gone_copy"
        )
        .await
    );
    let prefix = format!("gone/{uid}/");
    let before = keys_in(&s3, "erasure", &prefix).await;
    assert_eq!(
        before.len(),
        4,
        "two backups and their manifests: {before:?}"
    );

    h.tenants()
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete");
    let receipt = receipt_of(&h, "gone", &uid).await;

    // What the receipt claims, checked against the world by the test itself.
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    for name in &receipt.spec.namespaces {
        assert!(
            namespaces.get_opt(name).await.expect("GET").is_none(),
            "{name} is gone"
        );
    }
    assert_eq!(receipt.spec.namespaces, vec!["tenant-gone".to_owned()]);
    for (query, name) in [
        (
            "SELECT 1 FROM pg_database WHERE datname = $1",
            db.name.as_str(),
        ),
        ("SELECT 1 FROM pg_database WHERE datname = $1", "gone_copy"),
        (
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            db.role.as_str(),
        ),
    ] {
        assert!(
            !catalog_has(pg, query, name).await,
            "{name} is gone from the catalog"
        );
    }
    let all_secrets: Api<Secret> = Api::all(h.client.clone());
    for secret in all_secrets
        .list(&ListParams::default())
        .await
        .expect("secrets")
        .items
    {
        assert!(
            !secret.name_any().contains(&uid[..8])
                || !secret.name_any().starts_with("landlord-key-"),
            "no key Secret of the tenant is left: {}",
            secret.name_any()
        );
    }
    let dir = scratch("lifecycle");
    let (opens, tried) = opens_with_any_secret(&h.client, &canary, &dir).await;
    assert!(
        !opens,
        "the canary opens with no Secret of the cluster ({tried} identities tried)"
    );
    let after = keys_in(&s3, "erasure", &prefix).await;
    let locked_keys = [
        locked
            .status
            .as_ref()
            .and_then(|s| s.object_key.clone())
            .expect("objectKey"),
        locked
            .status
            .as_ref()
            .and_then(|s| s.manifest_key.clone())
            .expect("manifestKey"),
    ];
    let receipt_copy = format!("{prefix}erasure-receipt.json");
    let mut expected: Vec<String> = locked_keys.to_vec();
    expected.push(receipt_copy.clone());
    expected.sort();
    assert_eq!(
        after, expected,
        "only the locked backup and the receipt's copy remain"
    );
    let object = download(&s3, "erasure", &locked_keys[0]).await;
    let types = stanza_types(&object);
    assert_eq!(
        types.iter().filter(|t| *t == "X25519").count(),
        1,
        "one X25519 recipient: {types:?}"
    );
    assert!(
        types
            .iter()
            .all(|t| t == "X25519" || t.ends_with("-grease")),
        "{types:?}"
    );
    let (opens, _) = opens_with_any_secret(&h.client, &object, &dir).await;
    assert!(
        !opens,
        "the remaining backup opens with no Secret of the cluster"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&download(&s3, "erasure", &locked_keys[1]).await).expect("JSON");
    assert_eq!(manifest["encryption"]["keyId"], json!(key_id));
    for key in &after {
        let bytes = download(&s3, "erasure", key).await;
        assert!(
            !String::from_utf8_lossy(&bytes).contains(ROW_MARKER),
            "no row value in {key}"
        );
    }

    // The receipt's own record of the objects: each with the hash the bucket had.
    assert_eq!(receipt.spec.key_id, key_id);
    assert_eq!(receipt.spec.objects.len(), 4, "{:?}", receipt.spec.objects);
    for object in &receipt.spec.objects {
        let disposition = if locked_keys.contains(&object.key) {
            ObjectDisposition::Locked
        } else {
            ObjectDisposition::Deleted
        };
        assert_eq!(object.disposition, disposition, "{}", object.key);
    }
    let first_key = first
        .status
        .as_ref()
        .and_then(|s| s.object_key.clone())
        .expect("key");
    let first_sha = first
        .status
        .as_ref()
        .and_then(|s| s.sha256.clone())
        .expect("sha256");
    let recorded = receipt
        .spec
        .objects
        .iter()
        .find(|o| o.key == first_key)
        .expect("listed");
    assert_eq!(
        recorded.sha256, first_sha,
        "the deleted backup's hash, as it was"
    );
    let kept = receipt
        .spec
        .objects
        .iter()
        .find(|o| o.key == locked_keys[0])
        .expect("listed");
    assert_eq!(kept.sha256, hex(&Sha256::digest(&object)));
    // The lock the receipt names is the one the bucket has.
    let head = s3
        .client()
        .head_object()
        .bucket("erasure")
        .key(&locked_keys[0])
        .send()
        .await
        .expect("HEAD");
    let bucket_until = head
        .object_lock_retain_until_date()
        .expect("a retain-until date")
        .secs();
    let receipt_until = kept
        .locked_until
        .as_ref()
        .expect("lockedUntil")
        .0
        .as_second();
    assert!(
        (bucket_until - receipt_until).abs() <= 1,
        "{receipt_until} vs {bucket_until}"
    );
    let header = kept.header.as_ref().expect("the header read");
    assert_eq!((header.x25519_stanzas, header.other_stanzas), (1, 0));
    assert!(
        header.bytes_read <= 1024 + 512,
        "a ranged read: {}",
        header.bytes_read
    );
    let checks: Vec<EvidenceCheck> = receipt.spec.evidence.iter().map(|e| e.check).collect();
    assert_eq!(
        checks,
        vec![
            EvidenceCheck::NamespacesNotFound,
            EvidenceCheck::DatabaseAbsent,
            EvidenceCheck::RoleAbsent,
            EvidenceCheck::KeyNotFound,
            EvidenceCheck::RemainingObjectsSealedToDestroyedKey,
            EvidenceCheck::CanaryUndecryptable,
        ]
    );
    assert!(receipt.spec.evidence.iter().all(|e| e.passed));

    // The receipt verifies offline, as the resource and as the stored copy, and not after
    // a change of one byte.
    let resource = dir.join("receipt.json");
    std::fs::write(
        &resource,
        serde_json::to_vec_pretty(&receipt).expect("JSON"),
    )
    .expect("written");
    let (ok, out) = receipt_verify(&resource, Some(&receipt.spec.signature.public_key));
    assert!(ok, "{out}");
    let copy = dir.join("copy.json");
    std::fs::write(&copy, download(&s3, "erasure", &receipt_copy).await).expect("written");
    let (ok, out) = receipt_verify(&copy, None);
    assert!(ok, "{out}");
    // And with an Ed25519 check that shares nothing with Landlord (Python's
    // `cryptography` and `rfc8785`, from scripts/requirements-test.txt).
    for file in [&resource, &copy] {
        let checked = independent_check(file);
        assert!(checked.0, "{}", checked.1);
    }
    let text = std::fs::read_to_string(&resource).expect("readable");
    let tampered = text.replacen("\"Locked\"", "\"Deleted\"", 1);
    assert_ne!(tampered, text);
    std::fs::write(&resource, tampered).expect("written");
    let (ok, out) = receipt_verify(&resource, None);
    assert!(!ok, "a changed receipt fails: {out}");
    let (ok, out) = independent_check(&resource);
    assert!(
        !ok,
        "a changed receipt fails the independent check too: {out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tests/python/verify_receipt.py FILE`: its verdict and output.
fn independent_check(file: &Path) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test once (it installs cryptography and rfc8785 into .venv)",
        python.display()
    );
    let out = Command::new(python)
        .arg(root.join("tests/python/verify_receipt.py"))
        .arg(file)
        .output()
        .expect("python runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The first backup the schedule's storage locks: a manual one, after the lock is on.
async fn eventually_locked_backup(client: &Client) -> TenantBackup {
    for attempt in 0..20 {
        let name = format!("gone-locked-{attempt}");
        let backup = backup_completed(client, &name, "gone").await;
        if backup
            .status
            .as_ref()
            .and_then(|s| s.retain_until.as_ref())
            .is_some()
        {
            return backup;
        }
        // Written before the storage's new spec was seen: not locked; delete it.
        backups(client)
            .delete(&name, &DeleteParams::default())
            .await
            .expect("deleted");
        eventually("the unlocked extra backup is gone", || async {
            !exists(&backups(client), &name).await
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("no backup was ever locked");
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Tenant's `Erasing` condition: (status, reason, message).
async fn erasing(h: &Harness, name: &str) -> Option<(String, String, String)> {
    let t = h.tenants().get_opt(name).await.ok()??;
    let c = find_condition(&t.status?.conditions, "Erasing")?.clone();
    Some((format!("{:?}", c.status), c.reason, c.message))
}

/// [`wait_blocked_in`], whatever the message.
async fn wait_blocked(h: &Harness, name: &str, reason: &str) -> String {
    wait_blocked_in(h, name, reason, "").await
}

/// Landlord records an object's SHA-256 from its TenantBackup only when the bucket still
/// holds the very object it wrote (the same ETag): a backup replaced in the bucket behind
/// Landlord's back, with bytes of the same size, is recorded as it is.
#[tokio::test]
async fn a_backup_replaced_in_the_bucket_is_recorded_as_it_is_not_as_it_was_written() {
    let h = Harness::start().await;
    let pg = shared();
    create_database_server(&h.client, "pg", pg).await;
    let s3 = S3Server::start().await;
    create_s3_storage(&h.client, "s3", &s3, "replaced").await;
    let tenant = tenant_with_rows(&h, pg, "swapped", "s3").await;
    let uid = tenant.uid().expect("uid");
    let backup = backup_completed(&h.client, "swapped-1", "swapped").await;
    let status = backup.status.clone().expect("status");
    let object_key = status.object_key.clone().expect("objectKey");
    let manifest_key = status.manifest_key.clone().expect("manifestKey");
    assert!(
        status.etag.is_some() && status.manifest_etag.is_some(),
        "{status:?}"
    );
    let original = download(&s3, "replaced", &object_key).await;
    assert_eq!(
        status.sha256.as_deref(),
        Some(hex(&Sha256::digest(&original)).as_str())
    );
    assert_eq!(
        status.manifest_sha256.as_deref(),
        Some(
            hex(&Sha256::digest(
                download(&s3, "replaced", &manifest_key).await
            ))
            .as_str()
        )
    );
    let forged: Vec<u8> = original.iter().map(|b| b ^ 0x5a).collect();
    s3.client()
        .put_object()
        .bucket("replaced")
        .key(&object_key)
        .body(forged.clone().into())
        .send()
        .await
        .expect("replaced behind Landlord's back");

    h.tenants()
        .delete("swapped", &DeleteParams::default())
        .await
        .expect("delete");
    let receipt = receipt_of(&h, "swapped", &uid).await;
    let sha_of = |key: &str| {
        receipt
            .spec
            .objects
            .iter()
            .find(|o| o.key == key)
            .map(|o| o.sha256.clone())
            .unwrap_or_else(|| panic!("{key} is in the receipt"))
    };
    assert_eq!(
        sha_of(&object_key),
        hex(&Sha256::digest(&forged)),
        "the object the bucket held, read again"
    );
    assert_ne!(Some(sha_of(&object_key)), status.sha256);
    assert_eq!(
        Some(sha_of(&manifest_key)),
        status.manifest_sha256,
        "the untouched manifest, as recorded"
    );
    assert!(
        keys_in(&s3, "replaced", &format!("swapped/{uid}/"))
            .await
            .iter()
            .all(|k| k.ends_with("erasure-receipt.json"))
    );
}

/// A storage identity that may write but not delete: S3 refuses each deletion of the
/// batch, no Object Lock explains the refusal, and the erasure says so and waits, rather
/// than recording the objects as kept by a lock. With a permission that lets it delete,
/// it goes on to a receipt with the objects deleted.
#[tokio::test]
async fn a_deletion_the_storage_refuses_without_a_lock_holds_the_erasure_until_allowed() {
    let h = Harness::start().await;
    let pg = shared();
    create_database_server(&h.client, "pg", pg).await;
    let s3 = S3Server::start_with_auth().await;
    s3.create_bucket("nodelete", false).await;
    let keeper = s3.keeper.clone().expect("a user that cannot delete");
    support::landlord::create_s3_storage_at(
        &h.client,
        "s3",
        &s3.endpoint,
        "nodelete",
        &keeper.access_key_id,
        &keeper.secret_access_key,
    )
    .await;
    let tenant = tenant_with_rows(&h, pg, "kept", "s3").await;
    let uid = tenant.uid().expect("uid");
    backup_completed(&h.client, "kept-1", "kept").await;
    h.tenants()
        .delete("kept", &DeleteParams::default())
        .await
        .expect("delete");
    let message = wait_blocked(&h, "kept", "StorageUnavailable").await;
    assert!(
        message.contains("DeleteBackups") && message.contains("no Object Lock keeps it"),
        "{message}"
    );
    assert_eq!(
        keys_in(&s3, "nodelete", &format!("kept/{uid}/"))
            .await
            .len(),
        2,
        "nothing deleted"
    );
    // Credentials that may delete, in a Secret of their own: the storage is looked at
    // again for its new spec, and the erasure goes on.
    support::landlord::put_secret(
        &h.client,
        "s3-admin",
        &[
            ("accessKeyId", &s3.admin.access_key_id),
            ("secretAccessKey", &s3.admin.secret_access_key),
        ],
    )
    .await;
    Api::<landlord::api::BackupStorage>::all(h.client.clone())
        .patch(
            "s3",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"spec": {"s3": {"credentials": {"secret": {"name": "s3-admin"}}}}}),
            ),
        )
        .await
        .expect("credentials changed");
    let receipt = receipt_of(&h, "kept", &uid).await;
    assert_eq!(receipt.spec.objects.len(), 2);
    assert!(
        receipt
            .spec
            .objects
            .iter()
            .all(|o| o.disposition == ObjectDisposition::Deleted),
        "{:?}",
        receipt.spec.objects
    );
}

/// Waits for `Erasing=False` with `reason` and a message naming `step` (any message when
/// `step` is empty), and checks that the finalizer still holds the Tenant.
async fn wait_blocked_in(h: &Harness, name: &str, reason: &str, step: &str) -> String {
    let (_, _, message) = wait_for(&format!("Erasing=False {reason} in {step}"), || async {
        erasing(h, name)
            .await
            .filter(|(s, r, m)| s == "False" && r == reason && m.contains(step))
    })
    .await;
    assert!(
        exists(&h.tenants(), name).await,
        "the finalizer holds the Tenant while {reason}"
    );
    message
}

#[tokio::test]
async fn faults_hold_the_erasure_with_a_condition_until_they_clear() {
    let h = Harness::start_with(true).await;
    let pg = PostgresServer::start().expect("a server of its own");
    create_database_server(&h.client, "pg", &pg).await;
    let s3 = S3Server::start().await;
    create_s3_storage(&h.client, "s3", &s3, "faults").await;
    let tenant = tenant_with_rows(&h, &pg, "faulty", "s3").await;
    let uid = tenant.uid().expect("uid");
    backup_completed(&h.client, "faulty-1", "faulty").await;

    // PostgreSQL down: DropDatabase waits.
    pg.stop();
    h.tenants()
        .delete("faulty", &DeleteParams::default())
        .await
        .expect("delete");
    let message = wait_blocked(&h, "faulty", "DatabaseUnavailable").await;
    assert!(message.contains("DropDatabase"), "{message}");
    // The storage unreachable too: once the database is back, DeleteBackups waits.
    let storages: Api<landlord::api::BackupStorage> = Api::all(h.client.clone());
    let endpoint = s3.endpoint.clone();
    let closed = format!("http://127.0.0.1:{}", support::s3::closed_port());
    storages
        .patch(
            "s3",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"s3": {"endpoint": closed}}})),
        )
        .await
        .expect("storage moved away");
    pg.start_again();
    let message = wait_blocked(&h, "faulty", "StorageUnavailable").await;
    assert!(message.contains("DeleteBackups"), "{message}");
    // The storage back, and the API answering 409 Conflict to every write of a
    // TenantBackup (as to a writer whose every read is stale): DeleteBackups waits.
    let emulator = h.emulator.emulator().expect("the emulator injects faults");
    let conflict = emulator.inject_fault(kube_emulator::FaultRule::fail(
        Some("patch"),
        Some("tenantbackups"),
        409,
    ));
    storages
        .patch(
            "s3",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"s3": {"endpoint": endpoint}}})),
        )
        .await
        .expect("storage back");
    let message = wait_blocked_in(&h, "faulty", "ApiError", "DeleteBackups").await;
    assert!(message.contains("faulty-1"), "{message}");
    // The API refusing to create the receipt: IssueReceipt waits.
    let refusal = emulator.inject_fault(kube_emulator::FaultRule::fail(
        Some("create"),
        Some("erasurereceipts"),
        500,
    ));
    emulator.remove_fault(conflict);
    let message = wait_blocked_in(&h, "faulty", "ApiError", "IssueReceipt").await;
    assert!(message.contains("IssueReceipt"), "{message}");
    assert!(
        receipts(&h.client)
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty(),
        "no receipt while it cannot be written"
    );
    emulator.remove_fault(refusal);
    let receipt = receipt_of(&h, "faulty", &uid).await;
    assert!(receipt.spec.evidence.iter().all(|e| e.passed));
    assert_eq!(receipt.spec.objects.len(), 2, "the backup and its manifest");
}

/// `landlord run` as a process of its own, against the harness's emulator, crashing
/// where [`CRASH_AT`] says (debug builds).
fn spawn_operator(kubeconfig: &Path, crash_at: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_landlord"));
    command
        .args([
            "run",
            "--listen-addr",
            "127.0.0.1:0",
            "--log-format",
            "text",
            "--log-level",
            "landlord=warn",
            "--lease-namespace",
            OPERATOR_NAMESPACE,
            "--identity",
            "crash-test",
            "--lease-duration-seconds",
            "3",
            "--renew-deadline-seconds",
            "2",
            "--retry-period-seconds",
            "1",
            "--pg-dump",
        ])
        .arg(Path::new(support::postgres::DEFAULT_BIN).join("pg_dump"))
        .env("KUBECONFIG", kubeconfig)
        .env_remove(CRASH_AT)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(point) = crash_at {
        command.env(CRASH_AT, point);
    }
    command.spawn().expect("landlord run starts")
}

#[tokio::test]
async fn a_crash_at_any_point_of_the_erasure_resumes_to_exactly_one_true_receipt() {
    let mut h = Harness::start().await;
    let pg = shared();
    create_database_server(&h.client, "pg", pg).await;
    let s3 = S3Server::start().await;
    create_s3_storage(&h.client, "s3", &s3, "crashes").await;
    let tenant = tenant_with_rows(&h, pg, "crashy", "s3").await;
    let uid = tenant.uid().expect("uid");
    backup_completed(&h.client, "crashy-1", "crashy").await;
    backup_completed(&h.client, "crashy-2", "crashy").await;
    let db = tenant
        .status
        .clone()
        .expect("status")
        .database
        .expect("database");
    // From here on the operator is a process that the hook kills.
    h.stop_operator().await;
    let dir = scratch("crashes");
    let kubeconfig = dir.join("kubeconfig");
    h.emulator
        .write_kubeconfig(&kubeconfig)
        .expect("kubeconfig");
    h.tenants()
        .delete("crashy", &DeleteParams::default())
        .await
        .expect("delete");

    let mut points = Vec::new();
    for step in landlord::api::ErasureStep::ERASE {
        for at in ["started", "inside", "finished"] {
            let inside = matches!(
                step,
                landlord::api::ErasureStep::DeleteBackups
                    | landlord::api::ErasureStep::IssueReceipt
            );
            if at == "inside" && !inside {
                continue;
            }
            // RemoveFinalizer is recorded before it runs: after it there is nothing left.
            if step == landlord::api::ErasureStep::RemoveFinalizer && at != "started" {
                continue;
            }
            points.push(format!("{step}:{at}"));
        }
    }
    for point in &points {
        let mut child = spawn_operator(&kubeconfig, Some(point));
        let exited = tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                if let Some(status) = child.try_wait().expect("waitable") {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        let Ok(status) = exited else {
            let _ = child.kill();
            panic!("the operator never reached {point}");
        };
        assert!(!status.success(), "the hook at {point} aborts the operator");
        assert!(
            receipts(&h.client)
                .list(&ListParams::default())
                .await
                .expect("list")
                .items
                .len()
                <= 1,
            "never two receipts (after {point})"
        );
    }
    let mut child = spawn_operator(&kubeconfig, None);
    let receipt = receipt_of(&h, "crashy", &uid).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(receipt.spec.evidence.iter().all(|e| e.passed));
    assert_eq!(
        receipt.spec.objects.len(),
        4,
        "two backups and their manifests"
    );
    assert!(
        receipt
            .spec
            .objects
            .iter()
            .all(|o| o.disposition == ObjectDisposition::Deleted),
        "{:?}",
        receipt.spec.objects
    );
    assert!(
        keys_in(&s3, "crashes", &format!("crashy/{uid}/backups/"))
            .await
            .is_empty()
    );
    assert!(!catalog_has(pg, "SELECT 1 FROM pg_roles WHERE rolname = $1", &db.role).await);
    let resource = dir.join("receipt.json");
    std::fs::write(
        &resource,
        serde_json::to_vec_pretty(&receipt).expect("JSON"),
    )
    .expect("written");
    let (ok, out) = receipt_verify(&resource, None);
    assert!(ok, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Installs the chart's deletion protection (policy and binding, as rendered).
async fn install_deletion_protection(admin: &Client) {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/chart-deletion-protection.json"))
            .expect("fixture");
    for (key, plural) in [
        ("policy", "validatingadmissionpolicies"),
        ("binding", "validatingadmissionpolicybindings"),
    ] {
        let object = &fixture[key];
        let gvk = kube::core::GroupVersionKind::gvk(
            "admissionregistration.k8s.io",
            "v1",
            object["kind"].as_str().expect("kind"),
        );
        let resource = kube::core::ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<kube::core::DynamicObject> = Api::all_with(admin.clone(), &resource);
        let object: kube::core::DynamicObject =
            serde_json::from_value(object.clone()).expect("object");
        api.create(&PostParams::default(), &object)
            .await
            .expect("policy object created");
    }
}

#[tokio::test]
async fn a_protected_tenant_cannot_be_deleted_until_its_annotation_is_removed() {
    let h = Harness::start_with(true).await;
    install_deletion_protection(&h.client).await;
    let tenant = h.create_tenant("guarded", json!({})).await;
    let uid = tenant.uid().expect("uid");
    let annotation = |value: serde_json::Value| {
        let mut annotations = serde_json::Map::new();
        annotations.insert(landlord::api::PROTECTED_ANNOTATION.to_owned(), value);
        json!({"metadata": {"annotations": annotations}})
    };
    let protect = annotation(json!("true"));
    h.tenants()
        .patch("guarded", &PatchParams::default(), &Patch::Merge(&protect))
        .await
        .expect("annotated");
    h.wait_condition("guarded", "Ready", "True").await;
    // A policy takes effect once the API server has loaded it: probe with dry runs.
    let dry_run = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    let refusal = wait_for("the policy refuses a dry-run deletion", || async {
        match h.tenants().delete("guarded", &dry_run).await {
            Err(kube::Error::Api(status)) => Some(status),
            _ => None,
        }
    })
    .await;
    assert_eq!(refusal.code, 403, "{refusal:?}");
    assert!(refusal.message.contains("protected"), "{}", refusal.message);
    let Err(kube::Error::Api(status)) = h
        .tenants()
        .delete("guarded", &DeleteParams::default())
        .await
    else {
        panic!("a protected Tenant is not deleted");
    };
    assert_eq!(status.code, 403);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let still = h.tenants().get("guarded").await.expect("still there");
    assert!(
        still.metadata.deletion_timestamp.is_none(),
        "no erasure began"
    );
    assert!(
        receipts(&h.client)
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    // Removing the annotation (a change of its own, audited as such) lifts the protection.
    let unprotect = annotation(serde_json::Value::Null);
    h.tenants()
        .patch(
            "guarded",
            &PatchParams::default(),
            &Patch::Merge(&unprotect),
        )
        .await
        .expect("annotation removed");
    h.tenants()
        .delete("guarded", &DeleteParams::default())
        .await
        .expect("an unprotected Tenant is deleted");
    let receipt = receipt_of(&h, "guarded", &uid).await;
    assert_eq!(receipt.spec.tenant.name, "guarded");
}

/// Writes `count` backups of the Tenant straight into the bucket, as Landlord writes
/// them (an age file to the tenant's recipient and its manifest), every second one under
/// Object Lock for a day.
async fn write_backups(
    s3: &S3Server,
    bucket: &str,
    tenant: &Tenant,
    recipient: &str,
    count: usize,
) -> Vec<WrittenBackup> {
    use futures::StreamExt;
    use landlord::backup::manifest;
    let uid = tenant.uid().expect("uid");
    let name = tenant.name_any();
    let recipient: landlord::keys::Recipient = recipient.parse().expect("a recipient");
    let key_id = landlord::keys::KeyId::of(&recipient);
    let until = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24))
        .expect("time");
    futures::stream::iter(0..count)
        .map(|i| {
            let (name, uid, recipient, key_id) = (&name, &uid, &recipient, &key_id);
            async move {
                let backup = format!("{name}-bulk-{i:04}");
                let keys = manifest::object_keys(
                    name,
                    uid,
                    &backup,
                    landlord::backup::pg_dump::Compression::Zstd,
                );
                let body = landlord::keys::crypto::encrypt_to(recipient, &[b'x'; 16 * 1024])
                    .expect("sealed");
                let sha256 = hex(&Sha256::digest(&body));
                let record = manifest::Manifest {
                    format: manifest::FORMAT.to_owned(),
                    tenant: manifest::TenantIdentity {
                        name: name.clone(),
                        uid: uid.clone(),
                    },
                    backup: backup.clone(),
                    object_key: keys.object.clone(),
                    encryption: manifest::Encryption {
                        format: "age-encryption.org/v1".to_owned(),
                        recipient: recipient.to_string(),
                        key_id: key_id.as_str().to_owned(),
                    },
                    compression: "zstd".to_owned(),
                    dump_format: "pg_dump --format=custom".to_owned(),
                    restore: manifest::restore_pipeline(
                        landlord::backup::pg_dump::Compression::Zstd,
                    )
                    .to_owned(),
                    sha256: sha256.clone(),
                    size_bytes: body.len() as u64,
                    dump_size_bytes: 16 * 1024,
                    database: manifest::DatabaseIdentity {
                        server: "pg".to_owned(),
                        server_version: None,
                        name: format!("tenant_{name}"),
                        role: format!("tenant_{name}"),
                    },
                    pg_dump_version: "15".to_owned(),
                    start_time: jiff::Timestamp::now().to_string(),
                    completion_time: jiff::Timestamp::now().to_string(),
                    object_lock: None,
                    written_by: "the erasure benchmark".to_owned(),
                };
                let manifest_json = record.to_json();
                let locked = (i % 2 == 1).then_some(until);
                // Written as the operator writes them: each with its lock, if any.
                let put = |key: String, bytes: Vec<u8>| async move {
                    let mut put = s3
                        .client()
                        .put_object()
                        .bucket(bucket)
                        .key(key)
                        .body(bytes.into());
                    if let Some(until) = locked {
                        put = put
                            .object_lock_mode(aws_sdk_s3::types::ObjectLockMode::Governance)
                            .object_lock_retain_until_date(
                                aws_sdk_s3::primitives::DateTime::from_secs(until.as_second()),
                            );
                    }
                    put.send()
                        .await
                        .expect("written")
                        .e_tag()
                        .expect("an ETag")
                        .to_owned()
                };
                WrittenBackup {
                    name: backup,
                    size: body.len(),
                    sha256,
                    manifest_sha256: hex(&Sha256::digest(&manifest_json)),
                    etag: put(keys.object.clone(), body).await,
                    manifest_etag: put(keys.manifest.clone(), manifest_json).await,
                    object_key: keys.object,
                    manifest_key: keys.manifest,
                    key_id: key_id.as_str().to_owned(),
                    locked,
                }
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<WrittenBackup>>()
        .await
}

/// A backup [`write_backups`] wrote, as its TenantBackup's status records it.
struct WrittenBackup {
    name: String,
    object_key: String,
    manifest_key: String,
    size: usize,
    sha256: String,
    etag: String,
    manifest_sha256: String,
    manifest_etag: String,
    key_id: String,
    locked: Option<jiff::Timestamp>,
}

/// The Completed TenantBackups of `written`, as the operator leaves them after a backup
/// (its finalizer, and the status with the objects' SHA-256 and entity tags). Made while
/// no operator runs, so that none of them is taken for a backup to run.
async fn record_backups(client: &Client, tenant: &Tenant, written: &[WrittenBackup]) {
    use futures::StreamExt;
    let uid = tenant.uid().expect("uid");
    let name = tenant.name_any();
    futures::stream::iter(written)
        .map(|w| {
            let (uid, name) = (&uid, &name);
            async move {
                let api = backups(client);
                create(
                    &api,
                    json!({"apiVersion": "landlord.dev/v1alpha1", "kind": "TenantBackup",
                           "metadata": {"name": w.name,
                                        "finalizers": [landlord::controller::tenant_backup::FINALIZER]},
                           "spec": {"tenantRef": name}}),
                )
                .await;
                let now = jiff::Timestamp::now().to_string();
                api.patch_status(
                    &w.name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": {
                        "phase": "Completed",
                        "storageRef": "s3",
                        "objectKey": w.object_key,
                        "manifestKey": w.manifest_key,
                        "sizeBytes": w.size,
                        "sha256": w.sha256,
                        "etag": w.etag,
                        "manifestSha256": w.manifest_sha256,
                        "manifestEtag": w.manifest_etag,
                        "keyId": w.key_id,
                        "tenantUid": uid,
                        "attempts": 1,
                        "compression": "zstd",
                        "retainUntil": w.locked.map(|t| t.to_string()),
                        "startTime": now,
                        "completionTime": now,
                    }})),
                )
                .await
                .expect("status recorded");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

/// The erasure benchmark (BENCHMARKS.md, "Erasure"): a Tenant with 1,000 backups (2,000
/// objects, half of them under Object Lock), deleted; prints the time from the delete to
/// the Tenant being gone, and the bytes read per remaining object beyond its age header.
/// Not a timed test: it asserts only what must be true, and is run by hand in release:
/// `cargo test --release --test erasure -- --ignored --nocapture erasure_benchmark`.
#[tokio::test]
#[ignore = "a benchmark: run by hand, see BENCHMARKS.md"]
async fn erasure_benchmark_of_a_tenant_with_1000_backups() {
    let count: usize = std::env::var("ERASURE_BENCH_BACKUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut h = Harness::start().await;
    let pg = shared();
    create_database_server(&h.client, "pg", pg).await;
    let s3 = S3Server::start().await;
    storage_on_locked_bucket(&h, &s3, "bench").await;
    let tenant = tenant_with_rows(&h, pg, "bulk", "s3").await;
    let uid = tenant.uid().expect("uid");
    let key = Api::<Secret>::namespaced(h.client.clone(), OPERATOR_NAMESPACE)
        .get(&landlord::keys::kubernetes::secret_name(
            &landlord::keys::TenantRef::new("bulk", &uid).expect("ref"),
        ))
        .await
        .expect("key Secret");
    let recipient = key.annotations()[landlord::keys::kubernetes::RECIPIENT_ANNOTATION].clone();
    // Every backup is kept by retention; the operator is stopped while the backups are
    // written and recorded, then started again, as after a restart.
    h.tenants()
        .patch(
            "bulk",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"backup": {"retention": {"keepLast": 10000}}}})),
        )
        .await
        .expect("retention");
    h.stop_operator().await;
    let writing = std::time::Instant::now();
    let written = write_backups(&s3, "bench", &tenant, &recipient, count).await;
    // ERASURE_BENCH_UNRECORDED=1: objects only, no TenantBackups (every object is read).
    let recorded = std::env::var_os("ERASURE_BENCH_UNRECORDED").is_none();
    if recorded {
        record_backups(&h.client, &tenant, &written).await;
    }
    println!(
        "wrote {count} backups ({} objects{}) in {:.1} s",
        2 * count,
        if recorded {
            " and their TenantBackups"
        } else {
            ""
        },
        writing.elapsed().as_secs_f64()
    );
    h.start_operator().await;

    let started = std::time::Instant::now();
    let deleted_at = jiff::Timestamp::now();
    h.tenants()
        .delete("bulk", &DeleteParams::default())
        .await
        .expect("delete");
    let receipt = wait_for_long_receipt(&h, "bulk", &uid).await;
    let elapsed = started.elapsed();
    let steps: Vec<String> = receipt
        .spec
        .steps
        .iter()
        .map(|s| {
            let ms = s.completed_at.0.duration_since(s.started_at.0).as_millis();
            let at = s.started_at.0.duration_since(deleted_at).as_secs_f64();
            format!("{} {ms} ms (from {at:.0} s)", s.name)
        })
        .collect();
    let remaining: Vec<_> = receipt
        .spec
        .objects
        .iter()
        .filter(|o| o.header.is_some())
        .collect();
    let sample = download(&s3, "bench", &remaining[0].key).await;
    let header_len = landlord::keys::header::parse_header(&sample)
        .expect("a header")
        .len as i64;
    let beyond: Vec<i64> = remaining
        .iter()
        .map(|o| o.header.as_ref().expect("header").bytes_read - header_len)
        .collect();
    println!(
        "erased {} objects ({} deleted, {} locked) in {:.2} s: {}",
        receipt.spec.objects.len(),
        receipt
            .spec
            .objects
            .iter()
            .filter(|o| o.disposition == ObjectDisposition::Deleted)
            .count(),
        remaining.len(),
        elapsed.as_secs_f64(),
        steps.join(", ")
    );
    println!(
        "header {header_len} bytes; read per remaining backup: {} bytes, {} beyond the header (max)",
        remaining
            .iter()
            .map(|o| o.header.as_ref().expect("h").bytes_read)
            .max()
            .unwrap_or(0),
        beyond.iter().max().unwrap_or(&0)
    );
    assert_eq!(receipt.spec.objects.len(), 2 * count);
    assert!(receipt.spec.evidence.iter().all(|e| e.passed));
}

/// [`receipt_of`], with the time a large erasure may take on a shared machine.
async fn wait_for_long_receipt(h: &Harness, name: &str, uid: &str) -> ErasureReceipt {
    for _ in 0..6000 {
        if !exists(&h.tenants(), name).await {
            return receipt_of(h, name, uid).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the erasure of {name} did not finish in ten minutes");
}
