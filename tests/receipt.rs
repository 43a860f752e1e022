//! Erasure receipts from the outside: a receipt signed with the library verifies with the
//! `landlord receipt verify` binary (JSON and YAML, the stored copy and the resource,
//! pinned or not) and with an independent Python check (`cryptography` + `rfc8785`,
//! `tests/python/verify_receipt.py`); it fails both after a one-byte change (every byte
//! position, in process) or with the wrong pinned key; `landlord receipt show` prints the
//! certificate. Against the emulator, under the chart's RBAC: the operator creates its
//! signing key and publishes it on first start, reuses it after a restart, and after the
//! Secret is deleted adds a second key while keeping the first.

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, PostParams};
use landlord::api::{
    ErasedDatabase, ErasedStorage, ErasedTenant, ErasureReceipt, ErasureReceiptSpec, ErasureStep,
    Evidence, EvidenceCheck, ObjectDisposition, ObjectHeader, ReceiptObject, ReceiptStep,
    Signature, SignatureAlgorithm, StoredCopy, Tenant, TenantSpec,
};
use landlord::erasure::document::{
    parse_and_verify, receipt_resource, stored_copy_json, stored_copy_key,
};
use landlord::erasure::signing::{ReceiptSigner, parse_public_key, signed_bytes};
use landlord::erasure::signing_key::{
    self, CURRENT_KEY, PUBLIC_KEYS_NAME, SECRET_NAME, SEED_KEY, SigningKeyError,
};
use sha2::{Digest, Sha256};
use support::cluster::Harness;
use support::wait::wait_for;

fn at(seconds: i64) -> Time {
    Time(jiff::Timestamp::from_second(1_760_000_000 + seconds).expect("time"))
}

const KEY_ID: &str = "sha256:3f2a9c01d4e5b6a7";

/// A complete, consistent receipt (unsigned). Its texts hold what JCS implementations
/// must agree on: non-ASCII (two- to four-byte UTF-8), quotes, backslashes, and control
/// characters with and without a short escape.
fn receipt_spec() -> ErasureReceiptSpec {
    let storage = ErasedStorage {
        name: "s3".to_owned(),
        location: "s3://backups/landlord/".to_owned(),
        prefix: "landlord/acme/0b7e6c1a-9c51-4d0e-a0e4-5f1b6b8f2c11/".to_owned(),
    };
    let prefix = storage.prefix.clone();
    let evidence = [
        (
            EvidenceCheck::NamespacesNotFound,
            "GET namespaces/tenant-acme: 404 NotFound",
        ),
        (
            EvidenceCheck::DatabaseAbsent,
            "SELECT datname FROM pg_database WHERE datname = 'tenant_acme': 0 rows",
        ),
        (
            EvidenceCheck::RoleAbsent,
            "SELECT rolname FROM pg_roles WHERE rolname = 'tenant_acme': 0 rows",
        ),
        (
            EvidenceCheck::KeyNotFound,
            "GET secrets/landlord-key-acme-0b7e6c1a: 404 \"NotFound\" \\ done",
        ),
        (
            EvidenceCheck::RemainingObjectsSealedToDestroyedKey,
            "1 age file, 1 X25519 stanza to sha256:3f2a9c01d4e5b6a7\tnaïve € 😀 \u{1}\u{7}\n",
        ),
        (
            EvidenceCheck::CanaryUndecryptable,
            "0 of 4 identities open the canary",
        ),
    ]
    .into_iter()
    .map(|(check, observation)| Evidence {
        check,
        passed: true,
        observation: observation.to_owned(),
    })
    .collect();
    ErasureReceiptSpec {
        tenant: ErasedTenant {
            name: "acme".to_owned(),
            uid: "0b7e6c1a-9c51-4d0e-a0e4-5f1b6b8f2c11".to_owned(),
        },
        namespaces: vec!["tenant-acme".to_owned()],
        database: Some(ErasedDatabase {
            server: "main".to_owned(),
            database: "tenant_acme".to_owned(),
            role: "tenant_acme".to_owned(),
        }),
        key_id: KEY_ID.to_owned(),
        key_provider: "kubernetes".to_owned(),
        steps: ErasureStep::RECEIPTED
            .iter()
            .enumerate()
            .map(|(i, &name)| ReceiptStep {
                name,
                started_at: at(10 * i as i64),
                completed_at: at(10 * i as i64 + 7),
                outcome: format!("{name}: done"),
            })
            .collect(),
        evidence,
        objects: vec![
            ReceiptObject {
                key: format!("{prefix}20250101T000000Z.dump.zst.age"),
                sha256: "0123456789abcdef".repeat(4),
                size_bytes: 1_048_576,
                disposition: ObjectDisposition::Deleted,
                locked_until: None,
                header: None,
            },
            ReceiptObject {
                key: format!("{prefix}20250102T000000Z.dump.zst.age"),
                sha256: "fedcba9876543210".repeat(4),
                size_bytes: 9_007_199_254_740_991,
                disposition: ObjectDisposition::Locked,
                locked_until: Some(at(86_400)),
                header: Some(ObjectHeader {
                    x25519_stanzas: 1,
                    other_stanzas: 0,
                    key_id: KEY_ID.to_owned(),
                    bytes_read: 254,
                }),
            },
        ],
        stored_copy: Some(StoredCopy {
            storage_ref: "s3".to_owned(),
            key: stored_copy_key(&storage),
            locked: true,
        }),
        storage: Some(storage),
        operator_version: "0.1.0".to_owned(),
        issued_at: at(61),
        signature: Signature {
            algorithm: SignatureAlgorithm::Ed25519,
            public_key: String::new(),
            value: String::new(),
        },
    }
}

fn signer() -> ReceiptSigner {
    ReceiptSigner::from_seed(&[0x5a; 32])
}

fn signed_receipt() -> ErasureReceipt {
    let mut spec = receipt_spec();
    signer().sign(&mut spec).expect("signed");
    receipt_resource(spec)
}

/// A fresh directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("landlord-receipt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("directory");
    dir
}

fn landlord(args: &[&str], stdin: Option<&[u8]>) -> Output {
    landlord_with(args, stdin, &[])
}

fn landlord_with(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &Path)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_landlord"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("landlord runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("stdin written");
    }
    drop(input);
    child.wait_with_output().expect("landlord ends")
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn the_binary_verifies_a_signed_receipt_as_json_and_yaml_and_refuses_the_wrong_key() {
    let dir = scratch("verify");
    let receipt = signed_receipt();
    let copy = dir.join("copy.json");
    std::fs::write(&copy, stored_copy_json(&receipt)).expect("written");
    let mut resource = receipt.clone();
    resource.metadata.uid = Some("b9d1c7e2-0000-4000-8000-000000000001".to_owned());
    resource.metadata.resource_version = Some("1234".to_owned());
    resource.metadata.creation_timestamp = Some(at(62));
    let yaml = dir.join("resource.yaml");
    std::fs::write(&yaml, serde_saphyr::to_string(&resource).expect("YAML")).expect("written");
    let json = dir.join("resource.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&resource).expect("JSON")).expect("written");
    let public = signer().public_key();

    for file in [&copy, &yaml, &json] {
        let out = landlord(&["receipt", "verify", path_str(file)], None);
        assert!(out.status.success(), "{}: {}", file.display(), text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("NOT PINNED"), "{stdout}");
        assert!(stdout.contains("verified:"), "{stdout}");
        assert!(stdout.contains("ok   signature: Ed25519"), "{stdout}");

        let out = landlord(
            &["receipt", "verify", path_str(file), "--public-key", &public],
            None,
        );
        assert!(out.status.success(), "{}", text(&out));
        assert!(!String::from_utf8_lossy(&out.stdout).contains("NOT PINNED"));
    }
    let stdout =
        String::from_utf8_lossy(&landlord(&["receipt", "verify", path_str(&yaml)], None).stdout)
            .into_owned();
    assert!(stdout.contains("(the resource)"), "{stdout}");

    // Standard input.
    let out = landlord(
        &["receipt", "verify", "-", "--public-key", &public],
        Some(&stored_copy_json(&receipt)),
    );
    assert!(out.status.success(), "{}", text(&out));

    // Pinned with another key: refused, and the output says why.
    let other = ReceiptSigner::from_seed(&[0x11; 32]);
    for file in [&copy, &yaml] {
        let out = landlord(
            &[
                "receipt",
                "verify",
                path_str(file),
                "--public-key",
                &other.public_key(),
            ],
            None,
        );
        assert!(!out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("not the pinned key"), "{stdout}");
        assert!(stdout.contains("NOT VERIFIED"), "{stdout}");
    }
    // A receipt re-signed by a forger with their own key verifies only unpinned.
    let mut forged = receipt.spec.clone();
    forged.tenant.uid = "11111111-2222-4333-8444-555555555555".to_owned();
    other.sign(&mut forged).expect("signed");
    let forged_file = dir.join("forged.json");
    std::fs::write(&forged_file, stored_copy_json(&receipt_resource(forged))).expect("written");
    let out = landlord(
        &[
            "receipt",
            "verify",
            path_str(&forged_file),
            "--public-key",
            &public,
        ],
        None,
    );
    assert!(!out.status.success(), "{}", text(&out));
    // A malformed --public-key is refused, not ignored.
    let out = landlord(
        &["receipt", "verify", path_str(&copy), "--public-key", "AAAA"],
        None,
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("--public-key"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every one-byte change of the stored copy fails: it no longer parses as a receipt, or
/// no longer verifies (in process, every position, four kinds of change); a handful
/// through the binary.
#[test]
fn every_one_byte_change_fails_verification() {
    let bytes = stored_copy_json(&signed_receipt());
    let key = signer().verifying_key();
    parse_and_verify(&bytes, Some(&key)).expect("the original verifies");
    let mut passed = Vec::new();
    let mut changes = 0;
    for position in 0..bytes.len() {
        let original = bytes[position];
        for changed in [original ^ 0x01, original ^ 0x20, original ^ 0x80, b' '] {
            if changed == original {
                continue;
            }
            let mut mutated = bytes.clone();
            mutated[position] = changed;
            changes += 1;
            if parse_and_verify(&mutated, None).is_ok() {
                passed.push((position, original as char, changed as char));
            }
        }
    }
    assert!(changes > 3 * bytes.len(), "{changes} changes");
    assert!(
        passed.is_empty(),
        "one-byte changes that still verify (position, from, to): {passed:?}"
    );

    let dir = scratch("mutations");
    let text_of = String::from_utf8(bytes.clone()).expect("UTF-8");
    // In the name, the tenant's UID, an evidence result, a size, the signature value.
    let positions = [
        text_of.find("acme-0b7e").expect("name") + 2,
        text_of.find("\"uid\":\"0b7e").expect("uid") + 8,
        text_of.find("\"passed\":true").expect("passed") + 10,
        text_of.find("1048576").expect("size") + 3,
        text_of.find("\"value\":\"").expect("signature") + 20,
    ];
    for position in positions {
        let mut mutated = bytes.clone();
        mutated[position] ^= 0x01;
        let file = dir.join(format!("mutated-{position}.json"));
        std::fs::write(&file, &mutated).expect("written");
        let out = landlord(&["receipt", "verify", path_str(&file)], None);
        assert!(
            !out.status.success(),
            "byte {position} changed and the binary still verifies: {}",
            text(&out)
        );
        let out = landlord(&["receipt", "show", path_str(&file)], None);
        assert!(
            !out.status.success(),
            "show of a changed receipt: {}",
            text(&out)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn show_prints_a_certificate_of_sanitization() {
    let dir = scratch("show");
    let file = dir.join("copy.json");
    std::fs::write(&file, stored_copy_json(&signed_receipt())).expect("written");
    let out = landlord(
        &[
            "receipt",
            "show",
            path_str(&file),
            "--public-key",
            &signer().public_key(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "CERTIFICATE OF SANITIZATION",
        "NIST SP 800-88",
        "Tenant acme (UID 0b7e6c1a-9c51-4d0e-a0e4-5f1b6b8f2c11)",
        "PostgreSQL database tenant_acme",
        "Kubernetes namespaces tenant-acme",
        "Method type:                Purge",
        "Method used:                Cryptographic Erase",
        "Tool used:                  Landlord 0.1.0",
        "[PASSED] NamespacesNotFound",
        "[PASSED] DatabaseAbsent",
        "[PASSED] RoleAbsent",
        "[PASSED] KeyNotFound",
        "[PASSED] RemainingObjectsSealedToDestroyedKey",
        "[PASSED] CanaryUndecryptable",
        "observed: 0 of 4 identities open the canary",
        "1 deleted, 1 kept by Object Lock",
        "VERIFIED with the pinned key ed25519-",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test once (it installs cryptography and rfc8785 into .venv)",
        python.display()
    );
    python
}

fn python_verifies(file: &Path, pinned: Option<&str>) -> Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/verify_receipt.py");
    let mut command = Command::new(python());
    command.arg(script).arg(file);
    if let Some(key) = pinned {
        command.arg(key);
    }
    command.output().expect("python runs")
}

/// Python's `cryptography` and `rfc8785`, knowing nothing of Landlord, verify the receipt,
/// compute the same signed bytes, and refuse a changed one or another key.
#[test]
fn an_independent_python_check_agrees() {
    let dir = scratch("python");
    let receipt = signed_receipt();
    let copy = dir.join("copy.json");
    std::fs::write(&copy, stored_copy_json(&receipt)).expect("written");
    let resource = dir.join("resource.json");
    std::fs::write(
        &resource,
        serde_json::to_vec_pretty(&receipt).expect("JSON"),
    )
    .expect("written");
    let ours = Sha256::digest(signed_bytes(&receipt.spec).expect("canonical"));
    let ours: String = ours.iter().map(|b| format!("{b:02x}")).collect();
    for file in [&copy, &resource] {
        let out = python_verifies(file, Some(&signer().public_key()));
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("ok {ours}")
        );
    }

    // One byte of an observation changed: Python refuses it too.
    let bytes = stored_copy_json(&receipt);
    let at = String::from_utf8(bytes.clone())
        .expect("UTF-8")
        .find("identities open")
        .expect("observation");
    let mut mutated = bytes;
    mutated[at] ^= 0x01;
    let changed = dir.join("changed.json");
    std::fs::write(&changed, &mutated).expect("written");
    let out = python_verifies(&changed, None);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("does not verify"),
        "{}",
        text(&out)
    );
    // Another pinned key.
    let other = ReceiptSigner::from_seed(&[0x11; 32]).public_key();
    let out = python_verifies(&copy, Some(&other));
    assert!(!out.status.success(), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

fn seed_of(secret: &Secret) -> Vec<u8> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(SEED_KEY))
        .map(|b| b.0.clone())
        .expect("the seed")
}

async fn public_keys(maps: &Api<ConfigMap>) -> Option<std::collections::BTreeMap<String, String>> {
    maps.get_opt(PUBLIC_KEYS_NAME)
        .await
        .expect("readable")?
        .data
}

/// Proof that the running operator's controllers started (they start only once the
/// signing key is loaded): a new Tenant gets its namespace.
async fn controllers_run(h: &Harness, tenant: &str) {
    let spec: TenantSpec = serde_json::from_value(serde_json::json!({})).expect("spec");
    Api::<Tenant>::all(h.client.clone())
        .create(&PostParams::default(), &Tenant::new(tenant, spec))
        .await
        .expect("Tenant created");
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    wait_for(&format!("tenant-{tenant} is provisioned"), || async {
        namespaces
            .get_opt(&format!("tenant-{tenant}"))
            .await
            .ok()
            .flatten()
    })
    .await;
}

#[tokio::test]
async fn the_operator_creates_its_signing_key_once_and_rotation_keeps_earlier_keys() {
    // The operator runs with exactly the chart's RBAC.
    let mut h = Harness::start_with(true).await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), "landlord");
    let maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), "landlord");

    // First start: the Secret and the ConfigMap.
    let first_keys = wait_for("the public key is published", || async {
        public_keys(&maps)
            .await
            .filter(|d| d.contains_key(CURRENT_KEY))
    })
    .await;
    let secret = secrets
        .get(SECRET_NAME)
        .await
        .expect("the signing key Secret");
    assert_eq!(
        secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/managed-by"))
            .map(String::as_str),
        Some("landlord")
    );
    let seed: [u8; 32] = seed_of(&secret).try_into().expect("32 bytes");
    let first = ReceiptSigner::from_seed(&seed);
    assert_eq!(
        first_keys,
        [
            (first.key_id(), first.public_key()),
            (CURRENT_KEY.to_owned(), first.key_id())
        ]
        .into()
    );
    let map = maps.get(PUBLIC_KEYS_NAME).await.expect("ConfigMap");
    assert_eq!(
        map.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/managed-by"))
            .map(String::as_str),
        Some("landlord")
    );
    controllers_run(&h, "first").await;

    // A restart reuses the key: neither object is written again.
    h.stop_operator().await;
    h.start_operator().await;
    controllers_run(&h, "second").await;
    let after = secrets.get(SECRET_NAME).await.expect("Secret");
    assert_eq!(after.metadata.uid, secret.metadata.uid);
    assert_eq!(seed_of(&after), seed.to_vec());
    let map_after = maps.get(PUBLIC_KEYS_NAME).await.expect("ConfigMap");
    assert_eq!(
        map_after.metadata.resource_version,
        map.metadata.resource_version
    );

    // Rotation: delete the Secret, restart. A second key, current; the first kept.
    secrets
        .delete(SECRET_NAME, &DeleteParams::default())
        .await
        .expect("deleted");
    h.stop_operator().await;
    h.start_operator().await;
    let rotated = wait_for("a second key is published", || async {
        public_keys(&maps).await.filter(|d| d.len() == 3)
    })
    .await;
    let secret = secrets.get(SECRET_NAME).await.expect("a new Secret");
    let second = ReceiptSigner::from_seed(&seed_of(&secret).try_into().expect("32 bytes"));
    assert_ne!(second.public_key(), first.public_key());
    assert_eq!(rotated.get(CURRENT_KEY), Some(&second.key_id()));
    assert_eq!(rotated.get(&second.key_id()), Some(&second.public_key()));
    assert_eq!(rotated.get(&first.key_id()), Some(&first.public_key()));
    controllers_run(&h, "third").await;

    // A receipt signed before the rotation verifies with the ConfigMap's earlier entry.
    let mut spec = receipt_spec();
    first.sign(&mut spec).expect("signed");
    let earlier = parse_public_key(&rotated[&first.key_id()]).expect("a key");
    let copy = stored_copy_json(&receipt_resource(spec));
    parse_and_verify(&copy, Some(&earlier)).expect("the earlier receipt verifies");
    let current = parse_public_key(&rotated[&second.key_id()]).expect("a key");
    assert!(parse_and_verify(&copy, Some(&current)).is_err());
    h.stop_operator().await;
}

// Multi-threaded: the `landlord` binary this test waits for (blocking) talks to the
// emulator, which must go on serving meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replicas_end_with_one_key_and_a_malformed_secret_is_never_replaced() {
    let emulator = kube_emulator::Emulator::start()
        .await
        .expect("emulator starts");
    let client = emulator.client().expect("client");

    // Eight at once, made to race: every first GET is held until all eight are in
    // flight, so all see no Secret and all create; one wins, the others get a 409 and
    // read the winner's. On a loaded machine the held GETs may not all be released
    // together, and then fewer race: the round is tried again in a fresh namespace, and
    // the test fails if no round ever raced.
    let mut raced = None;
    for round in 0..5 {
        let namespace = if round == 0 {
            "default".to_owned()
        } else {
            let name = format!("race-{round}");
            let ns = k8s_openapi::api::core::v1::Namespace {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.clone()),
                    ..Default::default()
                },
                ..Default::default()
            };
            Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
                .create(&PostParams::default(), &ns)
                .await
                .expect("namespace created");
            name
        };
        let held =
            emulator.inject_fault(kube_emulator::FaultRule::hang(Some("get"), Some("secrets")));
        let creates = emulator.inject_fault(kube_emulator::FaultRule::observe(
            Some("create"),
            Some("secrets"),
        ));
        let replicas: Vec<_> = (0..8)
            .map(|_| {
                let client = client.clone();
                let namespace = namespace.clone();
                tokio::spawn(async move { signing_key::ensure(&client, &namespace).await })
            })
            .collect();
        wait_for("eight GETs of the Secret are in flight", || async {
            (emulator.fault_hits(held).len() >= 8).then_some(())
        })
        .await;
        emulator.remove_fault(held);
        let mut attempts = Vec::new();
        for replica in replicas {
            attempts.push(replica.await.expect("the task ends"));
        }
        let keys: std::collections::BTreeSet<String> = attempts
            .into_iter()
            .map(|r| r.expect("a key").public_key())
            .collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        // The race did happen: more than one replica tried to create the one Secret.
        let raced_here = emulator.fault_hits(creates).len() > 1;
        emulator.remove_fault(creates);
        if raced_here {
            raced = Some((namespace, keys));
            break;
        }
    }
    let Some((namespace, keys)) = raced else {
        panic!("no race in five rounds: the test proves nothing");
    };
    let namespace = namespace.as_str();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let published = public_keys(&maps).await.expect("published");
    assert_eq!(published.len(), 2, "{published:?}");

    // `landlord receipt public-key` prints it, through a kubeconfig.
    let dir = scratch("public-key");
    let kubeconfig = dir.join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let env = [
        ("KUBECONFIG", kubeconfig.as_path()),
        ("HOME", dir.as_path()),
    ];
    let key = keys.iter().next().expect("the key").clone();
    let out = landlord_with(&["receipt", "public-key", "-n", namespace], None, &env);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{key}\n"));
    let out = landlord_with(
        &["receipt", "public-key", "--all", "--namespace", namespace],
        None,
        &env,
    );
    assert!(out.status.success(), "{}", text(&out));
    let id = landlord::erasure::signing::key_id(&parse_public_key(&key).expect("key"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{id} {key} current\n")
    );
    let out = landlord_with(&["receipt", "public-key", "-n", "elsewhere"], None, &env);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("there is no ConfigMap elsewhere/landlord-receipt-public-keys"),
        "{}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);

    // A Secret of the wrong length: an error that says so, without the bytes; the Secret
    // stays as it was.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    secrets
        .delete(SECRET_NAME, &DeleteParams::default())
        .await
        .expect("deleted");
    let short = vec![0x42u8; 31];
    let planted = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(SECRET_NAME.to_owned()),
            ..Default::default()
        },
        data: Some([(SEED_KEY.to_owned(), k8s_openapi::ByteString(short.clone()))].into()),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &planted)
        .await
        .expect("planted");
    let error = signing_key::ensure(&client, namespace)
        .await
        .expect_err("malformed");
    assert!(
        matches!(error, SigningKeyError::Malformed { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("holds 31 bytes"), "{message}");
    let encoded = base64::engine::general_purpose::STANDARD.encode(&short);
    assert!(
        !message.contains(&encoded[..8]) && !format!("{error:?}").contains("66, 66"),
        "{message}"
    );
    assert_eq!(
        seed_of(&secrets.get(SECRET_NAME).await.expect("kept")),
        short
    );
    assert_eq!(public_keys(&maps).await.expect("published"), published);
}
