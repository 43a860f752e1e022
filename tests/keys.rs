//! The Kubernetes key provider against the emulator: one identity per Tenant UID however
//! many callers race, never overwritten, never taken from another UID, no owner reference,
//! destroyed idempotently; what is encrypted to the recipient opens with the identity,
//! with Landlord's code and with the stock `age` CLI; no error or Debug output shows an
//! identity.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use landlord::keys::crypto::{EncryptingWriter, canary_opens, decrypting_reader, seal_canary};
use landlord::keys::header::parse_header;
use landlord::keys::kubernetes::{
    IDENTITY_KEY, KEY_ID_ANNOTATION, RECIPIENT_ANNOTATION, secret_name,
};
use landlord::keys::{Destroyed, KeyError, KeyId, KeyProvider, KubernetesKeyProvider, TenantRef};
use serde_json::json;
use support::cluster::Harness;
use support::wait::eventually;

mod support;

/// The operator's namespace in the harness.
const NAMESPACE: &str = "landlord";
/// What every age identity starts with: must appear in no message.
const SECRET_MARK: &str = "AGE-SECRET-KEY-";

fn tenant(name: &str, uid: &str) -> TenantRef {
    TenantRef::new(name, uid).expect("valid tenant")
}

fn provider(client: &Client) -> KubernetesKeyProvider {
    KubernetesKeyProvider::new(client.clone(), NAMESPACE)
}

fn secrets(client: &Client) -> Api<Secret> {
    Api::namespaced(client.clone(), NAMESPACE)
}

/// Every Secret in the cluster labelled for `tenant`, in any namespace.
async fn tenant_secrets(client: &Client, tenant: &str) -> Vec<Secret> {
    Api::<Secret>::all(client.clone())
        .list(&ListParams::default().labels(&format!("landlord.dev/tenant={tenant}")))
        .await
        .expect("list")
        .items
}

/// The identity file in a key Secret, as the stock tools would take it.
fn identity_text(secret: &Secret) -> String {
    let bytes = &secret.data.as_ref().expect("data")[IDENTITY_KEY].0;
    String::from_utf8(bytes.clone()).expect("utf-8")
}

fn assert_no_secret_shown(what: &str, text: &str) {
    assert!(
        !text.to_uppercase().contains(SECRET_MARK),
        "{what} shows an identity: {text}"
    );
}

fn assert_error_clean(err: &KeyError) {
    assert_no_secret_shown("an error", &format!("{err} | {err:?}"));
}

#[tokio::test]
async fn ensure_creates_one_key_once_with_its_metadata_and_no_owner() {
    let h = Harness::start().await;
    let keys = provider(&h.client);
    let acme = tenant("keys-once", "1a2b3c4d-0000-4000-8000-00000000aaaa");

    assert_eq!(keys.recipient(&acme).await.expect("readable"), None);
    assert!(!keys.exists(&acme).await.expect("readable"));
    let first = keys.ensure(&acme).await.expect("created");
    assert!(first.created);
    assert_eq!(first.key_id, KeyId::of(&first.recipient));
    assert_eq!(
        first.location,
        "Secret landlord/landlord-key-keys-once-1a2b3c4d"
    );
    let second = keys.ensure(&acme).await.expect("found");
    assert!(!second.created, "the second ensure must not create");
    assert_eq!(second.recipient, first.recipient);
    assert_eq!(second.key_id, first.key_id);
    let public = keys
        .recipient(&acme)
        .await
        .expect("readable")
        .expect("exists");
    assert_eq!(public.recipient, first.recipient);
    assert!(keys.exists(&acme).await.expect("readable"));
    assert_no_secret_shown("a TenantKey", &format!("{first:?} {public:?}"));

    let all = tenant_secrets(&h.client, "keys-once").await;
    assert_eq!(all.len(), 1, "exactly one key Secret in the whole cluster");
    let secret = &all[0];
    assert_eq!(secret.namespace().as_deref(), Some(NAMESPACE));
    assert_eq!(secret.name_any(), "landlord-key-keys-once-1a2b3c4d");
    assert_eq!(
        secret.owner_references(),
        &[] as &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
        "no owner reference: the garbage collector must never take a key"
    );
    assert_eq!(secret.labels()["app.kubernetes.io/managed-by"], "landlord");
    assert_eq!(secret.labels()["landlord.dev/tenant"], "keys-once");
    let annotations = secret.annotations();
    assert_eq!(annotations["landlord.dev/tenant-uid"], acme.uid());
    assert_eq!(
        annotations[RECIPIENT_ANNOTATION],
        first.recipient.to_string()
    );
    assert_eq!(annotations[KEY_ID_ANNOTATION], first.key_id.as_str());
    assert_eq!(secret.immutable, Some(true));
    // The stored identity is the recipient's.
    let stored: age::x25519::Identity = identity_text(secret)
        .lines()
        .find(|l| l.starts_with(SECRET_MARK))
        .expect("an identity line")
        .parse()
        .expect("an age identity");
    assert_eq!(stored.to_public(), first.recipient);
    assert_no_secret_shown(
        "the metadata",
        &serde_json::to_string(&secret.metadata).expect("json"),
    );

    // A later Tenant of the same name has another UID, hence another key.
    let later = tenant("keys-once", "9f8e7d6c-0000-4000-8000-00000000bbbb");
    let other = keys.ensure(&later).await.expect("created");
    assert!(other.created);
    assert_ne!(other.key_id, first.key_id);
    assert_eq!(tenant_secrets(&h.client, "keys-once").await.len(), 2);
    assert_eq!(
        keys.destroy(&later).await.expect("destroyed"),
        Destroyed::Deleted
    );
    assert!(
        keys.exists(&acme).await.expect("readable"),
        "the earlier key stays"
    );
}

#[tokio::test]
async fn concurrent_ensures_leave_exactly_one_identity() {
    let h = Harness::start().await;
    for round in 0..4 {
        let name = format!("keys-race-{round}");
        let t = tenant(
            &name,
            &format!("5e6f7a8b-0000-4000-8000-00000000000{round}"),
        );
        let callers: Vec<_> = (0..8)
            .map(|_| {
                // Each caller its own provider, as two replicas would be.
                let keys = provider(&h.client);
                let t = t.clone();
                tokio::spawn(async move { keys.ensure(&t).await })
            })
            .collect();
        let mut results = Vec::new();
        for caller in futures::future::join_all(callers).await {
            results.push(caller.expect("joined").expect("every caller gets the key"));
        }
        let created = results.iter().filter(|k| k.created).count();
        assert_eq!(created, 1, "round {round}: exactly one caller creates it");
        assert!(
            results.iter().all(|k| k.recipient == results[0].recipient),
            "round {round}: every caller got the same key"
        );
        let all = tenant_secrets(&h.client, &name).await;
        assert_eq!(all.len(), 1, "round {round}: one Secret");
        assert_eq!(
            all[0].annotations()[KEY_ID_ANNOTATION],
            results[0].key_id.as_str()
        );
        // And the identity that exists is the one every caller was told about.
        let identity = provider(&h.client).identity(&t).await.expect("readable");
        assert_eq!(identity.recipient(), results[0].recipient);
    }
}

#[tokio::test]
async fn a_secret_recording_another_uid_is_refused_and_left_alone() {
    let h = Harness::start().await;
    let keys = provider(&h.client);
    // Same name and same first 8 UID characters, another UID: the Secret name collides.
    let ours = tenant("keys-taken", "77aa88bb-0000-4000-8000-000000000001");
    let earlier_uid = "77aa88bb-ffff-4fff-8fff-fffffffffff9";
    let planted_identity = age::x25519::Identity::generate();
    let planted_recipient = planted_identity.to_public();
    let planted = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(&ours)),
            annotations: Some(BTreeMap::from([
                ("landlord.dev/tenant-uid".to_owned(), earlier_uid.to_owned()),
                (
                    RECIPIENT_ANNOTATION.to_owned(),
                    planted_recipient.to_string(),
                ),
                (
                    KEY_ID_ANNOTATION.to_owned(),
                    KeyId::of(&planted_recipient).to_string(),
                ),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            IDENTITY_KEY.to_owned(),
            ByteString(b"someone else's".to_vec()),
        )])),
        ..Default::default()
    };
    let before = secrets(&h.client)
        .create(&PostParams::default(), &planted)
        .await
        .expect("planted");

    let err = keys.ensure(&ours).await.expect_err("another UID's Secret");
    assert_eq!(err.category(), "key_conflict", "{err}");
    assert!(err.to_string().contains(earlier_uid), "{err}");
    assert_error_clean(&err);
    for err in [
        keys.recipient(&ours).await.expect_err("refused"),
        keys.identity(&ours).await.expect_err("refused"),
        keys.destroy(&ours).await.expect_err("refused"),
        keys.exists(&ours).await.expect_err("refused"),
    ] {
        assert_eq!(err.category(), "key_conflict", "{err}");
        assert_error_clean(&err);
    }
    let after = secrets(&h.client)
        .get(&secret_name(&ours))
        .await
        .expect("still there");
    assert_eq!(
        after.resource_version(),
        before.resource_version(),
        "never written"
    );
    assert_eq!(after.data, before.data);
    assert_eq!(after.annotations(), before.annotations());

    // Nor does a Secret of that name recording no UID at all count as the key.
    let bare = tenant("keys-bare", "12341234-0000-4000-8000-000000000001");
    secrets(&h.client)
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some(secret_name(&bare)),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("planted");
    let err = keys.ensure(&bare).await.expect_err("no UID recorded");
    assert_eq!(err.category(), "key_conflict", "{err}");
    assert!(err.to_string().contains("records no Tenant UID"), "{err}");
    assert_eq!(tenant_secrets(&h.client, "keys-bare").await.len(), 0);
}

#[tokio::test]
async fn destroy_is_idempotent_and_the_key_is_gone() {
    let h = Harness::start().await;
    let keys = provider(&h.client);
    let t = tenant("keys-gone", "abcdef01-0000-4000-8000-000000000001");
    let key = keys.ensure(&t).await.expect("created");
    let canary = seal_canary(&key.recipient).expect("sealed");

    assert_eq!(
        keys.destroy(&t).await.expect("destroyed"),
        Destroyed::Deleted
    );
    assert!(!keys.exists(&t).await.expect("readable"));
    assert!(
        secrets(&h.client)
            .get_opt(&secret_name(&t))
            .await
            .expect("readable")
            .is_none(),
        "the Secret is NotFound"
    );
    assert_eq!(tenant_secrets(&h.client, "keys-gone").await.len(), 0);
    assert_eq!(
        keys.destroy(&t).await.expect("destroyed again"),
        Destroyed::AlreadyAbsent
    );
    assert_eq!(keys.recipient(&t).await.expect("readable"), None);
    let err = keys.identity(&t).await.expect_err("no identity");
    assert_eq!(err.category(), "key_missing", "{err}");
    assert_error_clean(&err);

    // The canary no longer opens with any identity left in the cluster.
    let mut left = Vec::new();
    for secret in Api::<Secret>::all(h.client.clone())
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
    {
        for value in secret.data.unwrap_or_default().values() {
            let text = String::from_utf8_lossy(&value.0);
            left.extend(
                text.lines()
                    .filter_map(|l| l.trim().parse::<age::x25519::Identity>().ok()),
            );
        }
    }
    assert!(!canary_opens(&canary, &left).expect("a valid canary"));
    // A new key for the same Tenant is a new key: nothing comes back.
    let again = keys.ensure(&t).await.expect("created");
    assert_ne!(again.key_id, key.key_id);
    let identity = keys.identity(&t).await.expect("readable");
    assert!(!canary_opens(&canary, [identity.as_age()]).expect("a valid canary"));
}

#[tokio::test]
async fn a_key_held_by_a_finalizer_is_not_counted_as_destroyed() {
    let h = Harness::start().await;
    let keys = provider(&h.client);
    let t = tenant("keys-held", "abcdef02-0000-4000-8000-000000000002");
    keys.ensure(&t).await.expect("created");
    let name = secret_name(&t);
    secrets(&h.client)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})),
        )
        .await
        .expect("finalizer added");

    let pending = keys.destroy(&t).await.expect("requested");
    assert_eq!(
        pending,
        Destroyed::Pending {
            finalizers: vec!["example.com/hold".to_owned()]
        }
    );
    assert!(!pending.is_gone());
    assert!(keys.exists(&t).await.expect("readable"), "still there");
    let err = keys.recipient(&t).await.expect_err("being deleted");
    assert_eq!(err.category(), "key_being_deleted", "{err}");
    let err = keys.ensure(&t).await.expect_err("being deleted");
    assert_eq!(err.category(), "key_being_deleted", "{err}");

    secrets(&h.client)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("finalizer removed");
    eventually("the key Secret is gone", || async {
        !keys.exists(&t).await.expect("readable")
    })
    .await;
    assert_eq!(
        keys.destroy(&t).await.expect("gone"),
        Destroyed::AlreadyAbsent
    );
}

#[tokio::test]
async fn what_is_encrypted_to_the_recipient_opens_with_the_identity() {
    let h = Harness::start().await;
    let keys = provider(&h.client);
    let t = tenant("keys-crypt", "0badc0de-0000-4000-8000-000000000001");
    keys.ensure(&t).await.expect("created");
    // The backup path: the public recipient only.
    let key = keys.recipient(&t).await.expect("readable").expect("exists");
    let plaintext: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let mut writer = EncryptingWriter::new(&key.recipient, Vec::new()).expect("writer");
    for chunk in plaintext.chunks(10_000) {
        writer.write_all(chunk).expect("write");
    }
    let file = writer.finish().expect("finished");
    let header = parse_header(&file).expect("an age file");
    assert!(header.single_x25519().is_some(), "{header:?}");
    assert_eq!(header.x25519_count(), 1);

    // Restore: the identity.
    let identity = keys.identity(&t).await.expect("readable");
    assert_eq!(identity.key_id(), &key.key_id);
    assert_no_secret_shown(
        "a TenantIdentity",
        &format!("{identity:?} {identity} {identity:#?}"),
    );
    let mut decrypted = Vec::new();
    decrypting_reader(file.as_slice(), identity.as_age())
        .expect("opens")
        .read_to_end(&mut decrypted)
        .expect("reads");
    assert_eq!(decrypted, plaintext);

    // Another tenant's identity does not open it.
    let other = tenant("keys-crypt-other", "0badc0de-0000-4000-8000-000000000002");
    keys.ensure(&other).await.expect("created");
    let other_identity = keys.identity(&other).await.expect("readable");
    assert!(decrypting_reader(file.as_slice(), other_identity.as_age()).is_err());
    let canary = seal_canary(&key.recipient).expect("sealed");
    assert!(canary_opens(&canary, [identity.as_age()]).expect("valid"));
    assert!(!canary_opens(&canary, [other_identity.as_age()]).expect("valid"));
}

#[tokio::test]
async fn tampered_metadata_or_identity_is_invalid() {
    let h = Harness::start().await;
    let keys = provider(&h.client);
    let t = tenant("keys-tamper", "feedf00d-0000-4000-8000-000000000001");
    keys.ensure(&t).await.expect("created");
    let name = secret_name(&t);

    // The recipient annotation replaced by another key's (key id updated to match): the
    // identity no longer belongs to it.
    let intruder = age::x25519::Identity::generate().to_public();
    secrets(&h.client)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                RECIPIENT_ANNOTATION: intruder.to_string(),
                KEY_ID_ANNOTATION: KeyId::of(&intruder).to_string(),
            }}})),
        )
        .await
        .expect("tampered");
    for err in [
        keys.ensure(&t).await.expect_err("mismatch"),
        keys.identity(&t).await.expect_err("mismatch"),
    ] {
        assert_eq!(err.category(), "key_invalid", "{err}");
        assert!(err.to_string().contains("does not belong"), "{err}");
        assert_error_clean(&err);
    }

    // A key id that is not the recipient's.
    secrets(&h.client)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                KEY_ID_ANNOTATION: "sha256:0000000000000000",
            }}})),
        )
        .await
        .expect("tampered");
    let err = keys.recipient(&t).await.expect_err("wrong key id");
    assert_eq!(err.category(), "key_invalid", "{err}");
    assert_error_clean(&err);
}

#[tokio::test]
async fn a_caller_without_permission_gets_key_forbidden_and_no_secret() {
    let h = Harness::start_with(true).await;
    let nobody = h
        .emulator
        .client_as("system:serviceaccount:elsewhere:nobody", &[])
        .expect("client");
    let t = tenant("keys-denied", "d0d0d0d0-0000-4000-8000-000000000001");
    let keys = provider(&nobody);
    for err in [
        keys.ensure(&t).await.expect_err("forbidden"),
        keys.identity(&t).await.expect_err("forbidden"),
        keys.destroy(&t).await.expect_err("forbidden"),
        keys.exists(&t).await.expect_err("forbidden"),
    ] {
        assert_eq!(err.category(), "key_forbidden", "{err}");
        assert_eq!(err.reason(), "KeyForbidden");
        assert!(
            err.to_string()
                .contains("landlord-key-keys-denied-d0d0d0d0"),
            "{err}"
        );
        assert_error_clean(&err);
    }
    assert_eq!(tenant_secrets(&h.client, "keys-denied").await.len(), 0);
}

/// The stock `age` CLI (Debian package `age`) must be installed: backups are promised to
/// be readable with it.
fn age_cli() -> Command {
    let probe = Command::new("age").arg("--version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "the stock age CLI is needed (apt-get install -y age)"
    );
    Command::new("age")
}

fn run(mut command: Command, input: &[u8]) -> Vec<u8> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("age runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("age finishes");
    feeder.join().expect("joined").expect("input written");
    assert!(
        output.status.success(),
        "age failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn the_stock_age_cli_reads_landlord_files_and_landlord_reads_its_files() {
    let h = Harness::start().await;
    let keys = provider(&h.client);
    let t = tenant("keys-cli", "c1c1c1c1-0000-4000-8000-000000000001");
    let key = keys.ensure(&t).await.expect("created");
    let plaintext: Vec<u8> = b"pg_dump output, more or less\n".repeat(5_000);

    // The identity file exactly as it is in the Secret.
    let dir = std::env::temp_dir().join(format!("landlord-keys-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key_file = dir.join("key.txt");
    let secret = secrets(&h.client)
        .get(&secret_name(&t))
        .await
        .expect("readable");
    std::fs::write(&key_file, identity_text(&secret)).expect("key file written");

    // Landlord encrypts, `age -d -i key.txt` decrypts.
    let mut writer = EncryptingWriter::new(&key.recipient, Vec::new()).expect("writer");
    writer.write_all(&plaintext).expect("write");
    let file = writer.finish().expect("finished");
    let mut decrypt = age_cli();
    decrypt.arg("-d").arg("-i").arg(&key_file);
    assert_eq!(run(decrypt, &file), plaintext);

    // `age -r <recipient>` encrypts, Landlord parses the header and decrypts.
    let mut encrypt = age_cli();
    encrypt.arg("-r").arg(key.recipient.to_string());
    let cli_file = run(encrypt, &plaintext);
    let header = parse_header(&cli_file).expect("an age file");
    assert_eq!(header.stanzas.len(), 1, "{header:?}");
    assert!(header.single_x25519().is_some(), "{header:?}");
    let identity = keys.identity(&t).await.expect("readable");
    let mut decrypted = Vec::new();
    decrypting_reader(cli_file.as_slice(), identity.as_age())
        .expect("opens")
        .read_to_end(&mut decrypted)
        .expect("reads");
    assert_eq!(decrypted, plaintext);

    // A file to two recipients is told apart by the header.
    let mut two = age_cli();
    two.arg("-r")
        .arg(key.recipient.to_string())
        .arg("-r")
        .arg(age::x25519::Identity::generate().to_public().to_string());
    let header = parse_header(&run(two, b"x")).expect("an age file");
    assert_eq!(header.x25519_count(), 2);
    assert_eq!(header.single_x25519(), None);
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}
