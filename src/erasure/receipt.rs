//! What makes an ErasureReceipt true to itself: [`check`] its internal consistency (pure,
//! no I/O), [`verify`] that and its signature.
//!
//! A receipt passes only when it records every step of an erasure ([`ErasureStep::RECEIPTED`],
//! in order, in time), carries exactly the evidence that what it says existed calls for
//! (no more: a receipt never claims a check that was not made), every check passed, and its
//! object list is coherent with its storage and its destroyed key.

use std::collections::BTreeSet;
use std::fmt;

use ed25519_dalek::VerifyingKey;

use crate::api::{
    ErasureReceiptSpec, ErasureStep, EvidenceCheck, ObjectDisposition, ReceiptObject,
};

/// One thing wrong with a receipt. Its message names the field (`spec.steps[2].completedAt`)
/// and never carries key material (a public key is not secret, a seed is never here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A field that must say something is empty.
    Empty { field: &'static str },
    /// A namespace is listed twice.
    DuplicateNamespace { namespace: String },
    /// The steps are not exactly [`ErasureStep::RECEIPTED`], in that order.
    Steps { found: Vec<ErasureStep> },
    /// A step completed before it started.
    StepEndsBeforeStart {
        index: usize,
        step: ErasureStep,
        started: String,
        completed: String,
    },
    /// A step started before the step before it completed.
    StepStartsBeforePrevious {
        index: usize,
        step: ErasureStep,
        started: String,
        previous_completed: String,
    },
    /// The receipt was issued before its last step completed.
    IssuedBeforeLastStep { issued: String, completed: String },
    /// One check appears more than once.
    DuplicateEvidence { check: EvidenceCheck },
    /// A check did not pass.
    EvidenceFailed { check: EvidenceCheck },
    /// A check the receipt must carry is missing.
    MissingEvidence {
        check: EvidenceCheck,
        because: &'static str,
    },
    /// A check of something the receipt says did not exist.
    UnexpectedEvidence {
        check: EvidenceCheck,
        because: &'static str,
    },
    /// Backup objects are listed but no storage is.
    ObjectsWithoutStorage,
    /// An object key is listed twice.
    DuplicateObject { key: String },
    /// An object key is not under the tenant's storage prefix.
    ObjectOutsidePrefix {
        index: usize,
        key: String,
        prefix: String,
    },
    /// An object's SHA-256 is not 64 lower-case hex digits.
    BadSha256 { index: usize, key: String },
    /// An object's size is negative.
    NegativeSize { index: usize, key: String },
    /// A deleted object has a lock expiry.
    DeletedButLocked { index: usize, key: String },
    /// A deleted object has a header read after deletion.
    DeletedWithHeader { index: usize, key: String },
    /// A remaining age file has no header.
    LockedWithoutHeader { index: usize, key: String },
    /// A remaining age file's header has other recipients than exactly one X25519 stanza.
    HeaderStanzas {
        index: usize,
        key: String,
        x25519: u32,
        other: u32,
    },
    /// A remaining age file's manifest names another key than the destroyed one.
    HeaderKeyId {
        index: usize,
        key: String,
        found: String,
        expected: String,
    },
    /// The stored copy's location is given but no storage is.
    StoredCopyWithoutStorage,
    /// The stored copy is not under the tenant's storage prefix.
    StoredCopyOutsidePrefix { key: String, prefix: String },
    /// The stored copy names another BackupStorage than the receipt's storage.
    StoredCopyStorage { found: String, expected: String },
    /// The signed fields have no canonical form (a number JCS cannot represent).
    NotCanonical { detail: String },
    /// `spec.signature.publicKey` is not the base64 of a valid Ed25519 public key.
    BadPublicKey { detail: String },
    /// `spec.signature.value` is not the base64 of 64 bytes.
    BadSignatureEncoding { detail: String },
    /// The receipt is signed by another key than the pinned one.
    NotPinnedKey { pinned: String, found: String },
    /// The signature does not verify: the receipt changed after it was signed, or was
    /// never signed by this key.
    SignatureInvalid { key_id: String },
    /// The document is not an ErasureReceipt (apiVersion, kind, structure).
    NotAReceipt { detail: String },
    /// The document's `metadata.name` is not the receipt's deterministic name.
    Name { found: String, expected: String },
    /// The spec holds fields or values this version of Landlord does not know, or writes
    /// a value in another form than Landlord does (it could not have signed it).
    UnknownContent { path: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Problem::*;
        match self {
            Empty { field } => write!(f, "{field} is empty"),
            DuplicateNamespace { namespace } => {
                write!(f, "spec.namespaces lists {namespace:?} more than once")
            }
            Steps { found } => write!(
                f,
                "spec.steps must be exactly {} in that order, each completed; found [{}]",
                names(&ErasureStep::RECEIPTED),
                names(found)
            ),
            StepEndsBeforeStart {
                index,
                step,
                started,
                completed,
            } => write!(
                f,
                "spec.steps[{index}] ({step}): completedAt {completed} is before startedAt {started}"
            ),
            StepStartsBeforePrevious {
                index,
                step,
                started,
                previous_completed,
            } => write!(
                f,
                "spec.steps[{index}] ({step}): startedAt {started} is before the previous step's completedAt {previous_completed}"
            ),
            IssuedBeforeLastStep { issued, completed } => write!(
                f,
                "spec.issuedAt {issued} is before the last step's completedAt {completed}"
            ),
            DuplicateEvidence { check } => {
                write!(f, "spec.evidence holds the check {check} more than once")
            }
            EvidenceFailed { check } => {
                write!(f, "spec.evidence: the check {check} did not pass")
            }
            MissingEvidence { check, because } => {
                write!(
                    f,
                    "spec.evidence lacks the check {check}, required {because}"
                )
            }
            UnexpectedEvidence { check, because } => write!(
                f,
                "spec.evidence holds the check {check}, but {because}: a receipt never claims a check that was not made"
            ),
            ObjectsWithoutStorage => {
                write!(
                    f,
                    "spec.objects lists backup objects but spec.storage is absent"
                )
            }
            DuplicateObject { key } => {
                write!(f, "spec.objects lists the key {key:?} more than once")
            }
            ObjectOutsidePrefix { index, key, prefix } => write!(
                f,
                "spec.objects[{index}].key {key:?} is not under spec.storage.prefix {prefix:?}"
            ),
            BadSha256 { index, key } => write!(
                f,
                "spec.objects[{index}].sha256 (of {key:?}) is not 64 lower-case hex digits"
            ),
            NegativeSize { index, key } => {
                write!(
                    f,
                    "spec.objects[{index}].sizeBytes (of {key:?}) is negative"
                )
            }
            DeletedButLocked { index, key } => write!(
                f,
                "spec.objects[{index}] ({key:?}) is Deleted but has lockedUntil"
            ),
            DeletedWithHeader { index, key } => write!(
                f,
                "spec.objects[{index}] ({key:?}) is Deleted but has a header read from it"
            ),
            LockedWithoutHeader { index, key } => write!(
                f,
                "spec.objects[{index}] ({key:?}) is a remaining age file without its header"
            ),
            HeaderStanzas {
                index,
                key,
                x25519,
                other,
            } => write!(
                f,
                "spec.objects[{index}].header ({key:?}) has {x25519} X25519 and {other} other stanzas; exactly 1 and 0 are required"
            ),
            HeaderKeyId {
                index,
                key,
                found,
                expected,
            } => write!(
                f,
                "spec.objects[{index}].header.keyId ({key:?}) is {found:?}, not the destroyed key spec.keyId {expected:?}"
            ),
            StoredCopyWithoutStorage => {
                write!(f, "spec.storedCopy is set but spec.storage is absent")
            }
            StoredCopyOutsidePrefix { key, prefix } => write!(
                f,
                "spec.storedCopy.key {key:?} is not under spec.storage.prefix {prefix:?}"
            ),
            StoredCopyStorage { found, expected } => write!(
                f,
                "spec.storedCopy.storageRef {found:?} is not spec.storage.name {expected:?}"
            ),
            NotCanonical { detail } => {
                write!(f, "spec has no RFC 8785 canonical form: {detail}")
            }
            BadPublicKey { detail } => write!(f, "spec.signature.publicKey: {detail}"),
            BadSignatureEncoding { detail } => write!(f, "spec.signature.value: {detail}"),
            NotPinnedKey { pinned, found } => write!(
                f,
                "spec.signature.publicKey is the key {found}, not the pinned key {pinned}"
            ),
            SignatureInvalid { key_id } => write!(
                f,
                "spec.signature does not verify with the key {key_id}: the receipt was changed after it was signed, or not signed by that key"
            ),
            NotAReceipt { detail } => write!(f, "not an ErasureReceipt: {detail}"),
            Name { found, expected } => write!(
                f,
                "metadata.name {found:?} is not this receipt's name {expected:?} (tenant name and UID)"
            ),
            UnknownContent { path } => write!(
                f,
                "{path}: not as Landlord writes a receipt (an unknown field, or a value in another form); this landlord cannot check it"
            ),
        }
    }
}

impl std::error::Error for Problem {}

fn names(steps: &[ErasureStep]) -> String {
    steps
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The checks that a receipt must carry, given what it says existed, each with why; and
/// those it must not.
pub fn required_evidence(spec: &ErasureReceiptSpec) -> Vec<(EvidenceCheck, bool, &'static str)> {
    let has_locked = spec
        .objects
        .iter()
        .any(|o| o.disposition == ObjectDisposition::Locked);
    vec![
        (
            EvidenceCheck::NamespacesNotFound,
            !spec.namespaces.is_empty(),
            if spec.namespaces.is_empty() {
                "spec.namespaces is empty"
            } else {
                "because spec.namespaces lists namespaces"
            },
        ),
        (
            EvidenceCheck::DatabaseAbsent,
            spec.database.is_some(),
            if spec.database.is_some() {
                "because spec.database is set"
            } else {
                "spec.database is absent"
            },
        ),
        (
            EvidenceCheck::RoleAbsent,
            spec.database.is_some(),
            if spec.database.is_some() {
                "because spec.database is set"
            } else {
                "spec.database is absent"
            },
        ),
        (EvidenceCheck::KeyNotFound, true, "for every erasure"),
        (
            EvidenceCheck::CanaryUndecryptable,
            spec.key_id != crate::api::NO_KEY,
            if spec.key_id != crate::api::NO_KEY {
                "for every erasure of a tenant that had a key"
            } else {
                "spec.keyId is none: the tenant never had a key, so no canary"
            },
        ),
        (
            EvidenceCheck::RemainingObjectsSealedToDestroyedKey,
            has_locked,
            if has_locked {
                "because spec.objects has Locked objects"
            } else {
                "no object in spec.objects is Locked"
            },
        ),
    ]
}

fn time(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> String {
    t.0.to_string()
}

/// Every internal inconsistency of `spec`, in field order; empty for a good receipt. Pure:
/// the signature is [`super::signing::verify_signature`]'s, the world is not looked at.
///
/// The signature algorithm needs no check here: [`crate::api::SignatureAlgorithm`] has
/// only `Ed25519`, so a receipt naming another one does not parse.
pub fn check(spec: &ErasureReceiptSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (field, value) in [
        ("spec.tenant.name", &spec.tenant.name),
        ("spec.tenant.uid", &spec.tenant.uid),
        ("spec.keyId", &spec.key_id),
        ("spec.keyProvider", &spec.key_provider),
        ("spec.operatorVersion", &spec.operator_version),
    ] {
        if value.trim().is_empty() {
            problems.push(Problem::Empty { field });
        }
    }
    let mut namespaces = BTreeSet::new();
    for namespace in &spec.namespaces {
        if namespace.is_empty() {
            problems.push(Problem::Empty {
                field: "spec.namespaces[]",
            });
        } else if !namespaces.insert(namespace) {
            problems.push(Problem::DuplicateNamespace {
                namespace: namespace.clone(),
            });
        }
    }
    check_steps(spec, &mut problems);
    check_evidence(spec, &mut problems);
    check_objects(spec, &mut problems);
    check_stored_copy(spec, &mut problems);
    problems
}

fn check_steps(spec: &ErasureReceiptSpec, problems: &mut Vec<Problem>) {
    let found: Vec<ErasureStep> = spec.steps.iter().map(|s| s.name).collect();
    if found != ErasureStep::RECEIPTED {
        problems.push(Problem::Steps { found });
    }
    let mut previous: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> = None;
    for (index, step) in spec.steps.iter().enumerate() {
        if step.completed_at.0 < step.started_at.0 {
            problems.push(Problem::StepEndsBeforeStart {
                index,
                step: step.name,
                started: time(&step.started_at),
                completed: time(&step.completed_at),
            });
        }
        if let Some(previous) = previous
            && step.started_at.0 < previous.0
        {
            problems.push(Problem::StepStartsBeforePrevious {
                index,
                step: step.name,
                started: time(&step.started_at),
                previous_completed: time(previous),
            });
        }
        previous = Some(&step.completed_at);
    }
    if let Some(last) = spec.steps.last()
        && spec.issued_at.0 < last.completed_at.0
    {
        problems.push(Problem::IssuedBeforeLastStep {
            issued: time(&spec.issued_at),
            completed: time(&last.completed_at),
        });
    }
}

fn check_evidence(spec: &ErasureReceiptSpec, problems: &mut Vec<Problem>) {
    let mut seen = BTreeSet::new();
    for evidence in &spec.evidence {
        if !seen.insert(evidence.check) {
            problems.push(Problem::DuplicateEvidence {
                check: evidence.check,
            });
        }
        if !evidence.passed {
            problems.push(Problem::EvidenceFailed {
                check: evidence.check,
            });
        }
    }
    for (check, required, because) in required_evidence(spec) {
        match (required, seen.contains(&check)) {
            (true, false) => problems.push(Problem::MissingEvidence { check, because }),
            (false, true) => problems.push(Problem::UnexpectedEvidence { check, because }),
            _ => {}
        }
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_objects(spec: &ErasureReceiptSpec, problems: &mut Vec<Problem>) {
    if !spec.objects.is_empty() && spec.storage.is_none() {
        problems.push(Problem::ObjectsWithoutStorage);
    }
    let prefix = spec.storage.as_ref().map(|s| s.prefix.as_str());
    let mut keys = BTreeSet::new();
    for (index, object) in spec.objects.iter().enumerate() {
        check_object(spec, prefix, index, object, problems);
        if !keys.insert(object.key.as_str()) {
            problems.push(Problem::DuplicateObject {
                key: object.key.clone(),
            });
        }
    }
}

fn check_object(
    spec: &ErasureReceiptSpec,
    prefix: Option<&str>,
    index: usize,
    object: &ReceiptObject,
    problems: &mut Vec<Problem>,
) {
    let key = || object.key.clone();
    if object.key.is_empty() {
        problems.push(Problem::Empty {
            field: "spec.objects[].key",
        });
    }
    if let Some(prefix) = prefix
        && !object.key.starts_with(prefix)
    {
        problems.push(Problem::ObjectOutsidePrefix {
            index,
            key: key(),
            prefix: prefix.to_owned(),
        });
    }
    if !is_sha256_hex(&object.sha256) {
        problems.push(Problem::BadSha256 { index, key: key() });
    }
    if object.size_bytes < 0 {
        problems.push(Problem::NegativeSize { index, key: key() });
    }
    match object.disposition {
        ObjectDisposition::Deleted => {
            if object.locked_until.is_some() {
                problems.push(Problem::DeletedButLocked { index, key: key() });
            }
            if object.header.is_some() {
                problems.push(Problem::DeletedWithHeader { index, key: key() });
            }
        }
        ObjectDisposition::Locked => match &object.header {
            None if object.key.ends_with(".age") => {
                problems.push(Problem::LockedWithoutHeader { index, key: key() });
            }
            None => {}
            Some(header) => {
                if header.x25519_stanzas != 1 || header.other_stanzas != 0 {
                    problems.push(Problem::HeaderStanzas {
                        index,
                        key: key(),
                        x25519: header.x25519_stanzas,
                        other: header.other_stanzas,
                    });
                }
                if header.key_id != spec.key_id {
                    problems.push(Problem::HeaderKeyId {
                        index,
                        key: key(),
                        found: header.key_id.clone(),
                        expected: spec.key_id.clone(),
                    });
                }
            }
        },
    }
}

fn check_stored_copy(spec: &ErasureReceiptSpec, problems: &mut Vec<Problem>) {
    let Some(copy) = &spec.stored_copy else {
        return;
    };
    let Some(storage) = &spec.storage else {
        problems.push(Problem::StoredCopyWithoutStorage);
        return;
    };
    if !copy.key.starts_with(&storage.prefix) {
        problems.push(Problem::StoredCopyOutsidePrefix {
            key: copy.key.clone(),
            prefix: storage.prefix.clone(),
        });
    }
    if copy.storage_ref != storage.name {
        problems.push(Problem::StoredCopyStorage {
            found: copy.storage_ref.clone(),
            expected: storage.name.clone(),
        });
    }
}

/// [`check`] and the signature ([`super::signing::verify_signature`]): `Ok` only for a
/// consistent receipt whose signature verifies, with `pinned` when given.
pub fn verify(
    spec: &ErasureReceiptSpec,
    pinned: Option<&VerifyingKey>,
) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    if let Err(problem) = super::signing::verify_signature(spec, pinned) {
        problems.push(problem);
    }
    problems.extend(check(spec));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{
        ErasedDatabase, ErasedStorage, ErasedTenant, Evidence, ObjectHeader, ReceiptStep,
        Signature, SignatureAlgorithm, StoredCopy,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    pub(crate) fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_760_000_000 + seconds).expect("time"))
    }

    pub(crate) const KEY_ID: &str = "sha256:3f2a9c01d4e5b6a7";
    const PREFIX: &str = "landlord/acme/0b7e6c1a-9c51-4d0e-a0e4-5f1b6b8f2c11/";

    /// A complete receipt of an erasure with a database, namespaces, one deleted and one
    /// locked backup (with its manifest), unsigned.
    pub(crate) fn good() -> ErasureReceiptSpec {
        let steps = ErasureStep::RECEIPTED
            .iter()
            .enumerate()
            .map(|(i, &name)| ReceiptStep {
                name,
                started_at: at(10 * i as i64),
                completed_at: at(10 * i as i64 + 5),
                outcome: format!("{name} done"),
            })
            .collect();
        let evidence = [
            (
                EvidenceCheck::NamespacesNotFound,
                "GET namespaces/tenant-acme: 404",
            ),
            (
                EvidenceCheck::DatabaseAbsent,
                "SELECT 1 FROM pg_database WHERE datname = 'tenant_acme': 0 rows",
            ),
            (
                EvidenceCheck::RoleAbsent,
                "SELECT 1 FROM pg_roles WHERE rolname = 'tenant_acme': 0 rows",
            ),
            (
                EvidenceCheck::KeyNotFound,
                "GET secrets/landlord-key-acme-0b7e6c1a: 404",
            ),
            (
                EvidenceCheck::RemainingObjectsSealedToDestroyedKey,
                "1 age file: 1 X25519 stanza each, to sha256:3f2a9c01d4e5b6a7",
            ),
            (
                EvidenceCheck::CanaryUndecryptable,
                "0 of 3 identities open the canary",
            ),
        ]
        .into_iter()
        .map(|(check, observation)| Evidence {
            check,
            passed: true,
            observation: observation.to_owned(),
        })
        .collect();
        let sha = |c: char| c.to_string().repeat(64);
        ErasureReceiptSpec {
            tenant: ErasedTenant {
                name: "acme".to_owned(),
                uid: "0b7e6c1a-9c51-4d0e-a0e4-5f1b6b8f2c11".to_owned(),
            },
            namespaces: vec!["tenant-acme".to_owned(), "acme-staging".to_owned()],
            database: Some(ErasedDatabase {
                server: "main".to_owned(),
                database: "tenant_acme".to_owned(),
                role: "tenant_acme".to_owned(),
            }),
            storage: Some(ErasedStorage {
                name: "s3".to_owned(),
                location: "s3://backups/landlord/".to_owned(),
                prefix: PREFIX.to_owned(),
            }),
            key_id: KEY_ID.to_owned(),
            key_provider: "kubernetes".to_owned(),
            steps,
            evidence,
            objects: vec![
                ReceiptObject {
                    key: format!("{PREFIX}20250101T000000Z.dump.zst.age"),
                    sha256: sha('a'),
                    size_bytes: 1024,
                    disposition: ObjectDisposition::Deleted,
                    locked_until: None,
                    header: None,
                },
                ReceiptObject {
                    key: format!("{PREFIX}20250102T000000Z.dump.zst.age"),
                    sha256: sha('b'),
                    size_bytes: 2048,
                    disposition: ObjectDisposition::Locked,
                    locked_until: Some(at(86_400)),
                    header: Some(ObjectHeader {
                        x25519_stanzas: 1,
                        other_stanzas: 0,
                        key_id: KEY_ID.to_owned(),
                        bytes_read: 260,
                    }),
                },
                ReceiptObject {
                    key: format!("{PREFIX}20250102T000000Z.manifest.json"),
                    sha256: sha('c'),
                    size_bytes: 300,
                    disposition: ObjectDisposition::Locked,
                    locked_until: Some(at(86_400)),
                    header: None,
                },
            ],
            operator_version: "0.1.0".to_owned(),
            issued_at: at(60),
            stored_copy: Some(StoredCopy {
                storage_ref: "s3".to_owned(),
                key: format!("{PREFIX}erasure-receipt.json"),
                locked: true,
            }),
            signature: Signature {
                algorithm: SignatureAlgorithm::Ed25519,
                public_key: String::new(),
                value: String::new(),
            },
        }
    }

    fn problems_of(change: impl FnOnce(&mut ErasureReceiptSpec)) -> Vec<Problem> {
        let mut spec = good();
        change(&mut spec);
        check(&spec)
    }

    /// `change` gives exactly the problems `expected` says (and no other).
    #[track_caller]
    fn gives(change: impl FnOnce(&mut ErasureReceiptSpec), expected: &[Problem]) {
        assert_eq!(problems_of(change), expected);
    }

    #[test]
    fn a_tenant_that_never_had_a_key_needs_no_canary_check_and_one_that_had_does() {
        let mentions_canary = |spec: &ErasureReceiptSpec| {
            check(spec)
                .iter()
                .any(|p| p.to_string().contains("CanaryUndecryptable"))
        };
        let mut keyed = good();
        keyed
            .evidence
            .retain(|e| e.check != EvidenceCheck::CanaryUndecryptable);
        assert!(mentions_canary(&keyed), "{:?}", check(&keyed));
        let mut keyless = keyed.clone();
        keyless.key_id = crate::api::NO_KEY.to_owned();
        assert!(!mentions_canary(&keyless), "{:?}", check(&keyless));
        // ...and claiming the check for a tenant without a key is a problem too.
        let mut claimed = good();
        claimed.key_id = crate::api::NO_KEY.to_owned();
        assert!(mentions_canary(&claimed), "{:?}", check(&claimed));
    }

    #[test]
    fn verify_is_the_signature_and_the_consistency() {
        let signer = crate::erasure::signing::ReceiptSigner::from_seed(&[3; 32]);
        let mut spec = good();
        assert!(verify(&spec, None).is_err(), "unsigned");
        signer.sign(&mut spec).expect("signed");
        assert_eq!(verify(&spec, None), Ok(()));
        assert_eq!(verify(&spec, Some(&signer.verifying_key())), Ok(()));
        // Signed, but inconsistent: the signature verifies, the check does not.
        let mut inconsistent = good();
        inconsistent.evidence[0].passed = false;
        signer.sign(&mut inconsistent).expect("signed");
        assert_eq!(
            verify(&inconsistent, None),
            Err(vec![Problem::EvidenceFailed {
                check: EvidenceCheck::NamespacesNotFound
            }])
        );
        // Changed after signing: both.
        spec.issued_at = at(0);
        let problems = verify(&spec, None).expect_err("changed");
        assert!(
            matches!(problems[0], Problem::SignatureInvalid { .. }),
            "{problems:?}"
        );
        assert!(
            matches!(problems[1], Problem::IssuedBeforeLastStep { .. }),
            "{problems:?}"
        );
    }

    #[test]
    fn a_good_receipt_has_no_problem() {
        assert_eq!(check(&good()), vec![]);
    }

    #[test]
    fn a_receipt_of_a_tenant_without_database_storage_or_backups_has_no_problem() {
        let mut spec = good();
        spec.database = None;
        spec.storage = None;
        spec.objects.clear();
        spec.stored_copy = None;
        spec.evidence.retain(|e| {
            !matches!(
                e.check,
                EvidenceCheck::DatabaseAbsent
                    | EvidenceCheck::RoleAbsent
                    | EvidenceCheck::RemainingObjectsSealedToDestroyedKey
            )
        });
        assert_eq!(check(&spec), vec![]);
    }

    #[test]
    fn identity_fields_must_not_be_empty() {
        gives(
            |s| s.tenant.name.clear(),
            &[Problem::Empty {
                field: "spec.tenant.name",
            }],
        );
        gives(
            |s| s.tenant.uid = " ".to_owned(),
            &[Problem::Empty {
                field: "spec.tenant.uid",
            }],
        );
        gives(
            |s| s.operator_version.clear(),
            &[Problem::Empty {
                field: "spec.operatorVersion",
            }],
        );
        gives(
            |s| s.key_provider.clear(),
            &[Problem::Empty {
                field: "spec.keyProvider",
            }],
        );
        let message = problems_of(|s| s.tenant.uid.clear())[0].to_string();
        assert_eq!(message, "spec.tenant.uid is empty");
    }

    #[test]
    fn namespaces_are_unique() {
        gives(
            |s| s.namespaces.push("tenant-acme".to_owned()),
            &[Problem::DuplicateNamespace {
                namespace: "tenant-acme".to_owned(),
            }],
        );
    }

    #[test]
    fn steps_are_exactly_the_receipted_ones_in_order() {
        let steps = |s: &ErasureReceiptSpec| s.steps.iter().map(|s| s.name).collect::<Vec<_>>();
        // One missing (the times stay in order).
        let mut spec = good();
        spec.steps.remove(4);
        assert_eq!(
            check(&spec),
            vec![Problem::Steps {
                found: steps(&spec)
            }]
        );
        // Two swapped (names only: the times stay in order).
        let mut spec = good();
        spec.steps[1].name = ErasureStep::DeleteNamespaces;
        spec.steps[2].name = ErasureStep::DropDatabase;
        assert_eq!(
            check(&spec),
            vec![Problem::Steps {
                found: steps(&spec)
            }]
        );
        // One that is not an erasure step before the receipt.
        let mut spec = good();
        spec.steps[5].name = ErasureStep::IssueReceipt;
        assert_eq!(
            check(&spec),
            vec![Problem::Steps {
                found: steps(&spec)
            }]
        );
        let mut spec = good();
        spec.steps[0].name = ErasureStep::ReleaseObjects;
        assert_eq!(
            check(&spec),
            vec![Problem::Steps {
                found: steps(&spec)
            }]
        );
        // One more at the end.
        let mut spec = good();
        let mut extra = spec.steps[5].clone();
        extra.started_at = at(55);
        extra.completed_at = at(56);
        spec.steps.push(extra);
        assert_eq!(
            check(&spec),
            vec![Problem::Steps {
                found: steps(&spec)
            }]
        );
        // None at all.
        let mut spec = good();
        spec.steps.clear();
        assert_eq!(check(&spec), vec![Problem::Steps { found: vec![] }]);
        let message = Problem::Steps { found: vec![] }.to_string();
        assert!(
            message.starts_with("spec.steps must be exactly StopBackups, DropDatabase,"),
            "{message}"
        );
    }

    #[test]
    fn steps_complete_after_they_start_and_follow_each_other() {
        gives(
            |s| s.steps[2].completed_at = at(19),
            &[Problem::StepEndsBeforeStart {
                index: 2,
                step: ErasureStep::DeleteNamespaces,
                started: at(20).0.to_string(),
                completed: at(19).0.to_string(),
            }],
        );
        gives(
            |s| s.steps[3].started_at = at(24),
            &[Problem::StepStartsBeforePrevious {
                index: 3,
                step: ErasureStep::DeleteBackups,
                started: at(24).0.to_string(),
                previous_completed: at(25).0.to_string(),
            }],
        );
        // Equal times are in order.
        gives(
            |s| {
                s.steps[3].started_at = at(25);
                s.steps[3].completed_at = at(25);
                s.issued_at = at(55);
            },
            &[],
        );
        gives(
            |s| s.issued_at = at(54),
            &[Problem::IssuedBeforeLastStep {
                issued: at(54).0.to_string(),
                completed: at(55).0.to_string(),
            }],
        );
    }

    fn remove(check: EvidenceCheck) -> impl FnOnce(&mut ErasureReceiptSpec) {
        move |s| s.evidence.retain(|e| e.check != check)
    }

    #[test]
    fn every_check_appears_once_and_passed() {
        gives(
            |s| {
                let again = s.evidence[3].clone();
                s.evidence.push(again);
            },
            &[Problem::DuplicateEvidence {
                check: EvidenceCheck::KeyNotFound,
            }],
        );
        gives(
            |s| s.evidence[5].passed = false,
            &[Problem::EvidenceFailed {
                check: EvidenceCheck::CanaryUndecryptable,
            }],
        );
    }

    #[test]
    fn the_required_checks_are_there() {
        for check in [
            EvidenceCheck::NamespacesNotFound,
            EvidenceCheck::DatabaseAbsent,
            EvidenceCheck::RoleAbsent,
            EvidenceCheck::KeyNotFound,
            EvidenceCheck::CanaryUndecryptable,
            EvidenceCheck::RemainingObjectsSealedToDestroyedKey,
        ] {
            let problems = problems_of(remove(check));
            assert!(
                matches!(problems.as_slice(), [Problem::MissingEvidence { check: c, .. }] if *c == check),
                "{check}: {problems:?}"
            );
        }
    }

    #[test]
    fn a_check_of_what_did_not_exist_is_a_problem() {
        // No database, but its checks are there.
        let problems = problems_of(|s| s.database = None);
        assert!(
            matches!(
                problems.as_slice(),
                [
                    Problem::UnexpectedEvidence {
                        check: EvidenceCheck::DatabaseAbsent,
                        ..
                    },
                    Problem::UnexpectedEvidence {
                        check: EvidenceCheck::RoleAbsent,
                        ..
                    }
                ]
            ),
            "{problems:?}"
        );
        // No namespaces.
        let problems = problems_of(|s| s.namespaces.clear());
        assert!(
            matches!(
                problems.as_slice(),
                [Problem::UnexpectedEvidence {
                    check: EvidenceCheck::NamespacesNotFound,
                    ..
                }]
            ),
            "{problems:?}"
        );
        // Nothing remains, but the sealed check is claimed.
        let problems = problems_of(|s| {
            for o in &mut s.objects {
                o.disposition = ObjectDisposition::Deleted;
                o.locked_until = None;
                o.header = None;
            }
        });
        assert!(
            matches!(
                problems.as_slice(),
                [Problem::UnexpectedEvidence {
                    check: EvidenceCheck::RemainingObjectsSealedToDestroyedKey,
                    ..
                }]
            ),
            "{problems:?}"
        );
        assert!(
            problems[0]
                .to_string()
                .contains("a receipt never claims a check that was not made")
        );
    }

    #[test]
    fn objects_need_storage_and_stay_under_its_prefix() {
        gives(
            |s| {
                s.storage = None;
                s.stored_copy = None;
            },
            &[Problem::ObjectsWithoutStorage],
        );
        gives(
            |s| s.objects[0].key = "landlord/globex/x.dump.zst.age".to_owned(),
            &[Problem::ObjectOutsidePrefix {
                index: 0,
                key: "landlord/globex/x.dump.zst.age".to_owned(),
                prefix: PREFIX.to_owned(),
            }],
        );
        let dup = format!("{PREFIX}20250101T000000Z.dump.zst.age");
        gives(
            |s| {
                s.objects[1].key = dup.clone();
            },
            &[Problem::DuplicateObject { key: dup.clone() }],
        );
    }

    #[test]
    fn hashes_and_sizes_are_well_formed() {
        let key = format!("{PREFIX}20250101T000000Z.dump.zst.age");
        for sha in [
            "A".repeat(64),
            "a".repeat(63),
            "g".repeat(64),
            String::new(),
        ] {
            gives(
                |s| s.objects[0].sha256 = sha,
                &[Problem::BadSha256 {
                    index: 0,
                    key: key.clone(),
                }],
            );
        }
        gives(
            |s| s.objects[0].size_bytes = -1,
            &[Problem::NegativeSize {
                index: 0,
                key: key.clone(),
            }],
        );
        gives(|s| s.objects[0].size_bytes = 0, &[]);
    }

    #[test]
    fn deleted_objects_have_no_lock_and_no_header() {
        let key = format!("{PREFIX}20250101T000000Z.dump.zst.age");
        gives(
            |s| s.objects[0].locked_until = Some(at(100)),
            &[Problem::DeletedButLocked {
                index: 0,
                key: key.clone(),
            }],
        );
        gives(
            |s| s.objects[0].header = s.objects[1].header.clone(),
            &[Problem::DeletedWithHeader { index: 0, key }],
        );
    }

    #[test]
    fn remaining_age_files_are_sealed_to_the_destroyed_key_only() {
        let key = format!("{PREFIX}20250102T000000Z.dump.zst.age");
        gives(
            |s| s.objects[1].header = None,
            &[Problem::LockedWithoutHeader {
                index: 1,
                key: key.clone(),
            }],
        );
        for (x25519, other) in [(2, 0), (0, 0), (1, 1)] {
            gives(
                |s| {
                    let header = s.objects[1].header.as_mut().expect("header");
                    header.x25519_stanzas = x25519;
                    header.other_stanzas = other;
                },
                &[Problem::HeaderStanzas {
                    index: 1,
                    key: key.clone(),
                    x25519,
                    other,
                }],
            );
        }
        gives(
            |s| s.objects[1].header.as_mut().expect("header").key_id = "sha256:0000".to_owned(),
            &[Problem::HeaderKeyId {
                index: 1,
                key: key.clone(),
                found: "sha256:0000".to_owned(),
                expected: KEY_ID.to_owned(),
            }],
        );
        // The manifest (not an age file) needs no header.
        gives(|s| s.objects[2].header = None, &[]);
    }

    #[test]
    fn the_stored_copy_is_under_the_storage_prefix() {
        gives(
            |s| s.stored_copy.as_mut().expect("copy").key = "elsewhere/receipt.json".to_owned(),
            &[Problem::StoredCopyOutsidePrefix {
                key: "elsewhere/receipt.json".to_owned(),
                prefix: PREFIX.to_owned(),
            }],
        );
        gives(
            |s| s.stored_copy.as_mut().expect("copy").storage_ref = "other".to_owned(),
            &[Problem::StoredCopyStorage {
                found: "other".to_owned(),
                expected: "s3".to_owned(),
            }],
        );
        gives(
            |s| {
                s.storage = None;
                s.objects.clear();
                s.evidence
                    .retain(|e| e.check != EvidenceCheck::RemainingObjectsSealedToDestroyedKey);
            },
            &[Problem::StoredCopyWithoutStorage],
        );
    }
}
