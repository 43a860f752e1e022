//! `landlord receipt ...`: erasure receipts from the command line.
//!
//! - `verify FILE|-` checks a receipt offline (the `ErasureReceipt` resource as `kubectl
//!   get -o yaml|json` prints it, or its stored copy), YAML or JSON: the signature over
//!   the RFC 8785 canonical JSON of its spec, and its internal consistency. It prints what
//!   it checked and exits 0, or prints every problem and exits non-zero. `--public-key`
//!   pins the operator's key; without it the receipt's own public key is used, which
//!   proves only that the receipt is unchanged since whoever holds that key signed it,
//!   and the output says so.
//! - `show FILE|-` prints the receipt as a certificate of sanitization, with the fields
//!   of NIST SP 800-88's sample certificate that apply, and whether it verifies (it exits
//!   non-zero when it does not).
//! - `public-key [--all]` prints the operator's current receipt public key (or every one
//!   it ever used) from the ConfigMap in its namespace, through the kubeconfig.
//!
//! No command reads or prints the signing key itself.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use ed25519_dalek::VerifyingKey;

use super::document::{self, Document};
use super::receipt::Problem;
use super::signing::{key_id, parse_public_key};
use super::signing_key::{self, PUBLIC_KEYS_NAME, PublishedKeys};
use crate::api::{EvidenceCheck, ObjectDisposition};

/// `landlord receipt ...`.
#[derive(Args, Debug)]
pub struct ReceiptArgs {
    #[command(subcommand)]
    pub command: ReceiptCommand,
}

/// The receipt subcommands.
#[derive(Subcommand, Debug)]
pub enum ReceiptCommand {
    /// Verify a receipt offline: its Ed25519 signature over the RFC 8785 canonical JSON
    /// of its spec, and its internal consistency. Exits non-zero on any problem.
    Verify(FileArgs),
    /// Print a receipt as a certificate of sanitization (NIST SP 800-88), with whether it
    /// verifies. Exits non-zero when it does not.
    Show(FileArgs),
    /// Print the operator's current receipt public key (base64), from the ConfigMap
    /// landlord-receipt-public-keys in its namespace.
    PublicKey(PublicKeyArgs),
}

/// A receipt file and the key to check it with.
#[derive(Args, Debug)]
pub struct FileArgs {
    /// The receipt: the ErasureReceipt resource (`kubectl get erasurereceipt NAME -o
    /// yaml`) or its stored copy, YAML or JSON; `-` for standard input.
    #[arg(value_name = "FILE|-")]
    pub file: PathBuf,
    /// The operator's public key, base64 (`landlord receipt public-key`): the receipt
    /// must be signed by it. Without it, the key the receipt names is used.
    #[arg(long, value_name = "BASE64")]
    pub public_key: Option<String>,
}

/// `landlord receipt public-key`.
#[derive(Args, Debug)]
pub struct PublicKeyArgs {
    /// Print every key the operator has used (key id, base64 public key), current one
    /// marked, instead of the current key only.
    #[arg(long)]
    pub all: bool,
    /// The operator's namespace.
    #[arg(
        long,
        short = 'n',
        env = "LANDLORD_NAMESPACE",
        default_value = "landlord"
    )]
    pub namespace: String,
}

/// Runs a receipt subcommand; what it prints goes to standard output, an `Err` is the
/// reason for a non-zero exit.
pub async fn run(args: ReceiptArgs) -> Result<(), String> {
    match args.command {
        ReceiptCommand::Verify(file) => {
            let (report, ok) = verify_file(&file)?;
            print!("{report}");
            if ok {
                Ok(())
            } else {
                Err("the receipt does not verify".to_owned())
            }
        }
        ReceiptCommand::Show(file) => {
            let (pinned, document) = load(&file)?;
            let problems = document::verify(&document, pinned.as_ref());
            print!("{}", certificate(&document, pinned.as_ref(), &problems));
            if problems.is_empty() {
                Ok(())
            } else {
                Err("the receipt does not verify: do not rely on this certificate".to_owned())
            }
        }
        ReceiptCommand::PublicKey(args) => {
            let client = kube::Client::try_default().await.map_err(|e| {
                format!("no Kubernetes configuration ($KUBECONFIG, ~/.kube/config): {e}")
            })?;
            let keys = signing_key::published_keys(&client, &args.namespace)
                .await
                .map_err(|e| {
                    format!(
                        "cannot read the ConfigMap {}/{PUBLIC_KEYS_NAME}: {e}",
                        args.namespace
                    )
                })?
                .ok_or_else(|| {
                    format!(
                        "there is no ConfigMap {}/{PUBLIC_KEYS_NAME}: the operator creates it at its first start in its namespace (--namespace)",
                        args.namespace
                    )
                })?;
            print!("{}", public_keys(&keys, args.all, &args.namespace)?);
            Ok(())
        }
    }
}

/// What `public-key` prints: the current key's base64, or with `all` one line per key
/// (`<key id> <base64>`, ` current` after the current one). An entry whose key does not
/// match its id is refused.
pub fn public_keys(keys: &PublishedKeys, all: bool, namespace: &str) -> Result<String, String> {
    for (id, key) in &keys.keys {
        if let Some(problem) = PublishedKeys::entry_problem(id, key) {
            return Err(format!(
                "the ConfigMap {namespace}/{PUBLIC_KEYS_NAME} entry {id} is wrong: {problem}"
            ));
        }
    }
    if all {
        let mut out = String::new();
        for (id, key) in &keys.keys {
            let current = if keys.current.as_deref() == Some(id) {
                " current"
            } else {
                ""
            };
            let _ = writeln!(out, "{id} {key}{current}");
        }
        return Ok(out);
    }
    let (_, key) = keys.current_key().ok_or_else(|| {
        format!("the ConfigMap {namespace}/{PUBLIC_KEYS_NAME} names no current key")
    })?;
    Ok(format!("{key}\n"))
}

fn read_input(file: &PathBuf) -> Result<Vec<u8>, String> {
    if file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(bytes)
    } else {
        std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
    }
}

fn load(args: &FileArgs) -> Result<(Option<VerifyingKey>, Document), String> {
    let pinned = args
        .public_key
        .as_deref()
        .map(|k| parse_public_key(k).map_err(|e| format!("--public-key: {e}")))
        .transpose()?;
    let bytes = read_input(&args.file)?;
    let document = document::parse(&bytes).map_err(|p| p.to_string())?;
    Ok((pinned, document))
}

/// `verify`'s report and whether the receipt verifies. A document that does not even
/// parse is an `Err`.
pub fn verify_file(args: &FileArgs) -> Result<(String, bool), String> {
    let (pinned, document) = load(args)?;
    let problems = document::verify(&document, pinned.as_ref());
    Ok((
        report(&document, pinned.as_ref(), &problems),
        problems.is_empty(),
    ))
}

/// The groups of checks `verify` reports, each with the problems that belong to it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Form,
    Signature,
    Identity,
    Steps,
    Evidence,
    Objects,
    StoredCopy,
}

const GROUPS: [(Group, &str); 7] = [
    (
        Group::Form,
        "form: an ErasureReceipt, named <tenant>-<uid>, its spec exactly as Landlord writes one",
    ),
    (
        Group::Signature,
        "signature: Ed25519 over the RFC 8785 canonical JSON of the spec without `signature`",
    ),
    (
        Group::Identity,
        "identity: tenant name and UID, key id, key provider, operator version, namespaces",
    ),
    (
        Group::Steps,
        "steps: StopBackups, DropDatabase, DeleteNamespaces, DeleteBackups, DestroyKey, Verify, in order and in time, issued after the last",
    ),
    (
        Group::Evidence,
        "evidence: every check once and passed, exactly those that what existed calls for",
    ),
    (
        Group::Objects,
        "objects: unique keys under the storage prefix, SHA-256 and sizes well formed, deleted ones gone, remaining age files sealed to the destroyed key only",
    ),
    (
        Group::StoredCopy,
        "stored copy: in the tenant's storage, under its prefix",
    ),
];

fn group(problem: &Problem) -> Group {
    use Problem::*;
    match problem {
        NotAReceipt { .. } | Name { .. } | UnknownContent { .. } | NotCanonical { .. } => {
            Group::Form
        }
        BadPublicKey { .. }
        | BadSignatureEncoding { .. }
        | NotPinnedKey { .. }
        | SignatureInvalid { .. } => Group::Signature,
        Empty { .. } | DuplicateNamespace { .. } => Group::Identity,
        Steps { .. }
        | StepEndsBeforeStart { .. }
        | StepStartsBeforePrevious { .. }
        | IssuedBeforeLastStep { .. } => Group::Steps,
        DuplicateEvidence { .. }
        | EvidenceFailed { .. }
        | MissingEvidence { .. }
        | UnexpectedEvidence { .. } => Group::Evidence,
        ObjectsWithoutStorage
        | DuplicateObject { .. }
        | ObjectOutsidePrefix { .. }
        | BadSha256 { .. }
        | NegativeSize { .. }
        | DeletedButLocked { .. }
        | DeletedWithHeader { .. }
        | LockedWithoutHeader { .. }
        | HeaderStanzas { .. }
        | HeaderKeyId { .. } => Group::Objects,
        StoredCopyWithoutStorage | StoredCopyOutsidePrefix { .. } | StoredCopyStorage { .. } => {
            Group::StoredCopy
        }
    }
}

fn key_line(document: &Document, pinned: Option<&VerifyingKey>) -> String {
    let named = parse_public_key(&document.spec.signature.public_key)
        .map(|k| key_id(&k))
        .unwrap_or_else(|_| "(an invalid key)".to_owned());
    match pinned {
        Some(pinned) => format!(
            "key: {} (pinned with --public-key; the receipt names {named})",
            key_id(pinned)
        ),
        None => format!(
            "key: {named}, NOT PINNED: checked with the public key the receipt itself names, which proves only that it is unchanged since whoever holds that key signed it; pass the operator's key with --public-key (`landlord receipt public-key`)"
        ),
    }
}

/// What `verify` prints.
pub fn report(document: &Document, pinned: Option<&VerifyingKey>, problems: &[Problem]) -> String {
    let spec = &document.spec;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "receipt {} ({}), tenant {} (UID {}), issued {}",
        document.name,
        if document.is_resource {
            "the resource"
        } else {
            "the stored copy"
        },
        spec.tenant.name,
        spec.tenant.uid,
        spec.issued_at.0
    );
    let _ = writeln!(out, "{}", key_line(document, pinned));
    let _ = writeln!(out, "checked:");
    for (g, what) in GROUPS {
        let mine: Vec<&Problem> = problems.iter().filter(|p| group(p) == g).collect();
        let _ = writeln!(
            out,
            "  {} {what}",
            if mine.is_empty() { "ok  " } else { "FAIL" }
        );
        for problem in mine {
            let _ = writeln!(out, "       - {problem}");
        }
    }
    if problems.is_empty() {
        let _ = writeln!(
            out,
            "verified: the spec is signed and consistent (metadata other than the name, and the status, are not signed)"
        );
    } else {
        let _ = writeln!(out, "NOT VERIFIED: {} problem(s)", problems.len());
    }
    out
}

fn check_title(check: EvidenceCheck) -> &'static str {
    match check {
        EvidenceCheck::NamespacesNotFound => "every namespace answers 404 NotFound to a GET",
        EvidenceCheck::DatabaseAbsent => "the database is absent from the server's pg_database",
        EvidenceCheck::RoleAbsent => "the role is absent from the server's pg_roles",
        EvidenceCheck::KeyNotFound => "the key provider has no key for the tenant",
        EvidenceCheck::RemainingObjectsSealedToDestroyedKey => {
            "every remaining backup is sealed to the destroyed key only (age header read)"
        }
        EvidenceCheck::CanaryUndecryptable => {
            "the canary sealed to the key opens with no identity the operator can read"
        }
    }
}

/// What `show` prints: the certificate of sanitization.
pub fn certificate(
    document: &Document,
    pinned: Option<&VerifyingKey>,
    problems: &[Problem],
) -> String {
    let spec = &document.spec;
    let mut out = String::new();
    let line = |out: &mut String, label: &str, value: &str| {
        let _ = writeln!(out, "  {label:<28}{value}");
    };
    let _ = writeln!(out, "CERTIFICATE OF SANITIZATION");
    let _ = writeln!(
        out,
        "(after NIST SP 800-88 Rev. 1, Guidelines for Media Sanitization, Appendix G)"
    );
    if !problems.is_empty() {
        let _ = writeln!(
            out,
            "\n*** THIS RECEIPT DOES NOT VERIFY: DO NOT RELY ON THIS CERTIFICATE ***"
        );
    }
    let _ = writeln!(out, "\nPerson performing sanitization");
    line(
        &mut out,
        "Performed by:",
        &format!(
            "Landlord operator {} (automated, on deletion of the Tenant)",
            spec.operator_version
        ),
    );
    line(
        &mut out,
        "Receipt:",
        &format!("ErasureReceipt {}", document.name),
    );
    let _ = writeln!(out, "\nMedia information");
    line(
        &mut out,
        "Source (data owner):",
        &format!("Tenant {} (UID {})", spec.tenant.name, spec.tenant.uid),
    );
    if let Some(db) = &spec.database {
        line(
            &mut out,
            "Media type:",
            &format!(
                "PostgreSQL database {} and role {} on DatabaseServer {}",
                db.database, db.role, db.server
            ),
        );
    }
    if !spec.namespaces.is_empty() {
        line(
            &mut out,
            "Media type:",
            &format!("Kubernetes namespaces {}", spec.namespaces.join(", ")),
        );
    }
    if let Some(storage) = &spec.storage {
        line(
            &mut out,
            "Media type:",
            &format!(
                "backup objects in BackupStorage {} ({}), prefix {}",
                storage.name, storage.location, storage.prefix
            ),
        );
    }
    line(
        &mut out,
        "Encryption key:",
        &format!("{} (provider {})", spec.key_id, spec.key_provider),
    );
    let _ = writeln!(out, "\nSanitization details");
    line(&mut out, "Method type:", "Purge");
    line(&mut out, "Method used:", "Cryptographic Erase");
    line(
        &mut out,
        "Method details:",
        "live data dropped and deleted; backup objects deleted where Object Lock allows;",
    );
    line(
        &mut out,
        "",
        "the tenant's encryption key destroyed, leaving every remaining encrypted copy",
    );
    line(&mut out, "", "unreadable");
    line(
        &mut out,
        "Tool used:",
        &format!("Landlord {} (landlord.dev/v1alpha1)", spec.operator_version),
    );
    line(
        &mut out,
        "Verification method:",
        "Full: every fact re-derived from the live systems after the key was destroyed",
    );
    let _ = writeln!(out, "\nVerification results");
    for evidence in &spec.evidence {
        let _ = writeln!(
            out,
            "  [{}] {}: {}",
            if evidence.passed { "PASSED" } else { "FAILED" },
            evidence.check,
            check_title(evidence.check)
        );
        let _ = writeln!(out, "           observed: {}", evidence.observation);
    }
    let _ = writeln!(out, "\nSteps");
    for step in &spec.steps {
        let _ = writeln!(
            out,
            "  {:<18}{} .. {}  {}",
            step.name.as_str(),
            step.started_at.0,
            step.completed_at.0,
            step.outcome
        );
    }
    let _ = writeln!(out, "\nBackup objects");
    let deleted = spec
        .objects
        .iter()
        .filter(|o| o.disposition == ObjectDisposition::Deleted)
        .count();
    let locked: Vec<_> = spec
        .objects
        .iter()
        .filter(|o| o.disposition == ObjectDisposition::Locked)
        .collect();
    let bytes: i64 = spec.objects.iter().map(|o| o.size_bytes.max(0)).sum();
    line(
        &mut out,
        "Objects:",
        &format!(
            "{} ({bytes} bytes): {deleted} deleted, {} kept by Object Lock",
            spec.objects.len(),
            locked.len()
        ),
    );
    if let Some(until) = locked
        .iter()
        .filter_map(|o| o.locked_until.as_ref())
        .map(|t| t.0)
        .max()
    {
        line(
            &mut out,
            "Media destination:",
            &format!(
                "remaining objects stay locked until at most {until}, sealed to the destroyed key only"
            ),
        );
    }
    for object in locked.iter().take(20) {
        let _ = writeln!(
            out,
            "    {} sha256:{} {} bytes{}",
            object.key,
            object.sha256,
            object.size_bytes,
            object
                .locked_until
                .as_ref()
                .map(|t| format!(", locked until {}", t.0))
                .unwrap_or_default()
        );
    }
    if locked.len() > 20 {
        let _ = writeln!(out, "    ... and {} more", locked.len() - 20);
    }
    if let Some(copy) = &spec.stored_copy {
        line(
            &mut out,
            "Copy of this receipt:",
            &format!(
                "{} in BackupStorage {}{}",
                copy.key,
                copy.storage_ref,
                if copy.locked {
                    ", under Object Lock"
                } else {
                    ""
                }
            ),
        );
    }
    let _ = writeln!(out, "\nDate");
    line(&mut out, "Issued:", &spec.issued_at.0.to_string());
    let _ = writeln!(out, "\nSignature");
    line(
        &mut out,
        "Algorithm:",
        "Ed25519 over the RFC 8785 canonical JSON of the spec",
    );
    line(&mut out, "Public key:", &spec.signature.public_key);
    line(&mut out, "Signature:", &spec.signature.value);
    let status = if problems.is_empty() {
        match pinned {
            Some(key) => format!("VERIFIED with the pinned key {}", key_id(key)),
            None => "VERIFIED with the key the receipt names (not pinned: compare it with `landlord receipt public-key`)".to_owned(),
        }
    } else {
        format!("NOT VERIFIED: {} problem(s)", problems.len())
    };
    line(&mut out, "Verification:", &status);
    for problem in problems {
        let _ = writeln!(out, "    - {problem}");
    }
    if spec.key_provider == "kubernetes" {
        let _ = writeln!(out, "\nNotes");
        let _ = writeln!(
            out,
            "  The key was a Kubernetes Secret: etcd revisions (until compaction) and etcd backups"
        );
        let _ = writeln!(
            out,
            "  taken while it existed may still hold it; a KMS key provider does not have this limit."
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erasure::document::{parse, receipt_resource, stored_copy_json};
    use crate::erasure::receipt::tests::good;
    use crate::erasure::signing::ReceiptSigner;

    fn document() -> (ReceiptSigner, Document) {
        let signer = ReceiptSigner::from_seed(&[4; 32]);
        let mut spec = good();
        signer.sign(&mut spec).expect("signed");
        let copy = stored_copy_json(&receipt_resource(spec));
        (signer, parse(&copy).expect("parses"))
    }

    #[test]
    fn the_report_says_what_was_checked_and_whether_the_key_was_pinned() {
        let (signer, document) = document();
        let text = report(&document, None, &[]);
        assert!(text.contains("NOT PINNED"), "{text}");
        assert_eq!(text.matches("\n  ok   ").count(), GROUPS.len(), "{text}");
        assert!(text.contains("verified:"), "{text}");
        let key = signer.verifying_key();
        let text = report(&document, Some(&key), &[]);
        assert!(text.contains("pinned with --public-key"), "{text}");
        assert!(!text.contains("NOT PINNED"), "{text}");
        let problems = [Problem::EvidenceFailed {
            check: EvidenceCheck::KeyNotFound,
        }];
        let text = report(&document, Some(&key), &problems);
        assert!(text.contains("FAIL evidence"), "{text}");
        assert!(
            text.contains("the check KeyNotFound did not pass"),
            "{text}"
        );
        assert!(text.contains("NOT VERIFIED: 1 problem"), "{text}");
    }

    #[test]
    fn the_certificate_has_the_sp_800_88_fields() {
        let (signer, document) = document();
        let text = certificate(&document, Some(&signer.verifying_key()), &[]);
        for expected in [
            "CERTIFICATE OF SANITIZATION",
            "Landlord operator 0.1.0",
            "Tenant acme (UID 0b7e6c1a-9c51-4d0e-a0e4-5f1b6b8f2c11)",
            "PostgreSQL database tenant_acme and role tenant_acme on DatabaseServer main",
            "Kubernetes namespaces tenant-acme, acme-staging",
            "backup objects in BackupStorage s3",
            "Method type:                Purge",
            "Method used:                Cryptographic Erase",
            "Tool used:                  Landlord 0.1.0",
            "Verification method:",
            "[PASSED] CanaryUndecryptable",
            "observed: 0 of 3 identities open the canary",
            "3 (3372 bytes): 1 deleted, 2 kept by Object Lock",
            "Issued:",
            "VERIFIED with the pinned key ed25519-",
            "etcd backups",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
        }
        let problems = [Problem::SignatureInvalid {
            key_id: "ed25519-x".to_owned(),
        }];
        let text = certificate(&document, None, &problems);
        assert!(text.contains("DO NOT RELY ON THIS CERTIFICATE"), "{text}");
        assert!(text.contains("NOT VERIFIED: 1 problem"), "{text}");
    }

    #[test]
    fn public_keys_prints_the_current_one_or_all_and_refuses_a_wrong_entry() {
        let (a, b) = (
            ReceiptSigner::from_seed(&[1; 32]),
            ReceiptSigner::from_seed(&[2; 32]),
        );
        let data = std::collections::BTreeMap::from([
            (a.key_id(), a.public_key()),
            (b.key_id(), b.public_key()),
            ("current".to_owned(), b.key_id()),
        ]);
        let keys = PublishedKeys::from_data(&data);
        assert_eq!(
            public_keys(&keys, false, "ns").expect("ok"),
            format!("{}\n", b.public_key())
        );
        let all = public_keys(&keys, true, "ns").expect("ok");
        assert_eq!(all.lines().count(), 2);
        assert!(
            all.contains(&format!("{} {} current\n", b.key_id(), b.public_key())),
            "{all}"
        );
        assert!(
            all.contains(&format!("{} {}\n", a.key_id(), a.public_key())),
            "{all}"
        );
        let mut wrong = data.clone();
        wrong.insert(a.key_id(), b.public_key());
        assert!(public_keys(&PublishedKeys::from_data(&wrong), true, "ns").is_err());
    }
}
