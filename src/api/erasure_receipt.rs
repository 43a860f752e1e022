//! `ErasureReceipt`: the signed, immutable record of a tenant's erasure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;
use super::schema;

/// The record Landlord leaves when it erases a tenant: every step with its time, the
/// evidence that the data is gone, the backup objects that remain (unreadable without the
/// destroyed key) and an Ed25519 signature over all of it. Written once by the operator;
/// it never changes. `landlord receipt verify` checks one offline.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landlord.dev",
    version = "v1alpha1",
    kind = "ErasureReceipt",
    plural = "erasurereceipts",
    singular = "erasurereceipt",
    shortname = "er",
    category = "landlord",
    status = "ErasureReceiptStatus",
    doc = "The signed, immutable record of a tenant's verified erasure.",
    printcolumn(name = "Tenant", type_ = "string", json_path = ".spec.tenant.name"),
    printcolumn(
        name = "Key",
        type_ = "string",
        description = "The destroyed key",
        json_path = ".spec.keyId"
    ),
    printcolumn(name = "Issued", type_ = "date", json_path = ".spec.issuedAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("an ErasureReceipt never changes"))]
#[serde(rename_all = "camelCase")]
pub struct ErasureReceiptSpec {
    /// The erased tenant.
    pub tenant: ErasedTenant,
    /// The namespaces that were deleted (each verified NotFound).
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub namespaces: Vec<String>,
    /// The database and role that were dropped, when the tenant had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<ErasedDatabase>,
    /// The BackupStorage that held the tenant's backups, when it had any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<ErasedStorage>,
    /// Fingerprint of the tenant key that was destroyed, or `none` when the tenant never
    /// had a key recorded (its key name was taken by someone else's Secret): then no
    /// backup was ever encrypted for it (a backup encrypts only to the recorded key) and
    /// no canary was sealed, so `CanaryUndecryptable` is not checked.
    #[schemars(length(min = 1, max = 128))]
    pub key_id: String,
    /// Key provider that held the key.
    #[schemars(length(min = 1, max = 64))]
    pub key_provider: String,
    /// The workflow's steps up to the receipt, in order, each completed.
    #[schemars(length(max = 16))]
    pub steps: Vec<ReceiptStep>,
    /// The verification checks and their results, each re-derived from the world after
    /// the key was destroyed.
    #[schemars(length(max = 64))]
    pub evidence: Vec<Evidence>,
    /// Every backup object of the tenant, deleted or remaining.
    #[serde(default)]
    #[schemars(length(max = 100000))]
    pub objects: Vec<ReceiptObject>,
    /// Version of the Landlord operator that performed the erasure.
    #[schemars(length(min = 1, max = 64))]
    pub operator_version: String,
    /// When the receipt was issued.
    #[schemars(schema_with = "schema::timestamp")]
    pub issued_at: Time,
    /// Where the copy of this receipt is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_copy: Option<StoredCopy>,
    /// Ed25519 signature over the RFC 8785 canonical JSON of every other field of this
    /// spec.
    pub signature: Signature,
}

/// `keyId` of a receipt whose tenant never had a key recorded.
pub const NO_KEY: &str = "none";

/// The erased tenant's identity.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasedTenant {
    /// Name of the Tenant.
    pub name: String,
    /// UID of the Tenant object.
    pub uid: String,
}

/// The tenant's database, as it was before the erasure dropped it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasedDatabase {
    /// The DatabaseServer it lived on.
    pub server: String,
    /// The database's name.
    pub database: String,
    /// The tenant role's name.
    pub role: String,
}

/// Where the tenant's backups were stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasedStorage {
    /// The BackupStorage.
    pub name: String,
    /// Its location (`s3://bucket/prefix`, a path).
    pub location: String,
    /// The key prefix of the tenant's objects (`<prefix><tenant>/<uid>/`).
    pub prefix: String,
}

/// The steps of the deletion workflow: a closed set. `Erase` runs every step but
/// `ReleaseObjects`, in this order; `Retain` runs `ReleaseObjects` and `RemoveFinalizer`.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum ErasureStep {
    /// No new backup, restore or drill starts; the running ones finish or are cancelled.
    StopBackups,
    /// The tenant's database and role are dropped (their sessions terminated first).
    DropDatabase,
    /// The tenant's namespaces are deleted, and gone.
    DeleteNamespaces,
    /// The tenant's backup objects are recorded and deleted where Object Lock allows.
    DeleteBackups,
    /// The tenant key is destroyed in its provider.
    DestroyKey,
    /// Every fact is checked again, from the world.
    Verify,
    /// The signed ErasureReceipt is written, as a resource and in the BackupStorage.
    IssueReceipt,
    /// `Retain` only: Landlord's owner references are taken off what it created.
    ReleaseObjects,
    /// The Tenant's finalizer is removed.
    RemoveFinalizer,
}

impl ErasureStep {
    /// The name as it appears in status and receipts.
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureStep::StopBackups => "StopBackups",
            ErasureStep::DropDatabase => "DropDatabase",
            ErasureStep::DeleteNamespaces => "DeleteNamespaces",
            ErasureStep::DeleteBackups => "DeleteBackups",
            ErasureStep::DestroyKey => "DestroyKey",
            ErasureStep::Verify => "Verify",
            ErasureStep::IssueReceipt => "IssueReceipt",
            ErasureStep::ReleaseObjects => "ReleaseObjects",
            ErasureStep::RemoveFinalizer => "RemoveFinalizer",
        }
    }

    /// The steps of an erasure, in order.
    pub const ERASE: [ErasureStep; 8] = [
        ErasureStep::StopBackups,
        ErasureStep::DropDatabase,
        ErasureStep::DeleteNamespaces,
        ErasureStep::DeleteBackups,
        ErasureStep::DestroyKey,
        ErasureStep::Verify,
        ErasureStep::IssueReceipt,
        ErasureStep::RemoveFinalizer,
    ];

    /// The steps a receipt records: every erasure step before the receipt itself.
    pub const RECEIPTED: [ErasureStep; 6] = [
        ErasureStep::StopBackups,
        ErasureStep::DropDatabase,
        ErasureStep::DeleteNamespaces,
        ErasureStep::DeleteBackups,
        ErasureStep::DestroyKey,
        ErasureStep::Verify,
    ];

    /// The steps of `deletionPolicy: Retain`, in order.
    pub const RETAIN: [ErasureStep; 2] =
        [ErasureStep::ReleaseObjects, ErasureStep::RemoveFinalizer];
}

impl std::fmt::Display for ErasureStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One completed step of the erasure workflow.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptStep {
    /// The step.
    pub name: ErasureStep,
    /// When it started.
    #[schemars(schema_with = "schema::timestamp")]
    pub started_at: Time,
    /// When it completed.
    #[schemars(schema_with = "schema::timestamp")]
    pub completed_at: Time,
    /// What it did.
    pub outcome: String,
}

/// The verification checks: a closed set. Which ones a receipt must carry follows from
/// what it says existed (a database, namespaces, remaining objects).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum EvidenceCheck {
    /// Every namespace of the tenant answers 404 to a GET.
    NamespacesNotFound,
    /// No database of the tenant's name is in the server's catalog (`pg_database`).
    DatabaseAbsent,
    /// No role of the tenant's name is in the server's catalog (`pg_roles`).
    RoleAbsent,
    /// The key provider has no key for the tenant (for `kubernetes`: the key Secret
    /// answers 404 to a GET).
    KeyNotFound,
    /// Every remaining backup object's age header (read with a ranged GET) has exactly
    /// one X25519 stanza and nothing else but grease, and its manifest names the
    /// destroyed key.
    RemainingObjectsSealedToDestroyedKey,
    /// The canary sealed to the key at onboarding opens with no age identity in any
    /// Secret the operator can read.
    CanaryUndecryptable,
}

impl EvidenceCheck {
    /// The name as it appears in receipts.
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceCheck::NamespacesNotFound => "NamespacesNotFound",
            EvidenceCheck::DatabaseAbsent => "DatabaseAbsent",
            EvidenceCheck::RoleAbsent => "RoleAbsent",
            EvidenceCheck::KeyNotFound => "KeyNotFound",
            EvidenceCheck::RemainingObjectsSealedToDestroyedKey => {
                "RemainingObjectsSealedToDestroyedKey"
            }
            EvidenceCheck::CanaryUndecryptable => "CanaryUndecryptable",
        }
    }
}

impl std::fmt::Display for EvidenceCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One verification check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// What was checked.
    pub check: EvidenceCheck,
    /// Whether the check passed.
    pub passed: bool,
    /// What was observed, e.g. the catalog query and its empty result.
    pub observation: String,
}

/// What became of a backup object.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ObjectDisposition {
    /// Deleted, every version of it.
    Deleted,
    /// Kept by S3 Object Lock until `lockedUntil`; sealed to the destroyed key only.
    Locked,
}

/// A backup object of the erased tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptObject {
    /// Object key.
    pub key: String,
    /// SHA-256 of the object, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Deleted, or kept by Object Lock.
    pub disposition: ObjectDisposition,
    /// Until when Object Lock keeps a remaining object, when the store said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::timestamp")]
    pub locked_until: Option<Time>,
    /// For a remaining encrypted object: its age header, as read after the key was
    /// destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<ObjectHeader>,
}

/// The recipients of a remaining object, read from its age header.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectHeader {
    /// Number of X25519 recipient stanzas (1 for a Landlord backup).
    pub x25519_stanzas: u32,
    /// Number of other stanzas that could wrap the file key (grease aside): 0.
    pub other_stanzas: u32,
    /// The key id its manifest names.
    pub key_id: String,
    /// Bytes read to learn this (the ranged GET).
    pub bytes_read: i64,
}

/// Location of the receipt's stored copy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredCopy {
    /// The BackupStorage it was written to.
    pub storage_ref: String,
    /// Its object key.
    pub key: String,
    /// Whether it was written under Object Lock.
    pub locked: bool,
}

/// A detached signature.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Signature {
    /// Signature algorithm; always `Ed25519`.
    pub algorithm: SignatureAlgorithm,
    /// The operator's public key, base64 (32 bytes).
    #[schemars(length(min = 1, max = 128))]
    pub public_key: String,
    /// The signature, base64 (64 bytes).
    #[schemars(length(min = 1, max = 256))]
    pub value: String,
}

/// A signature algorithm.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SignatureAlgorithm {
    Ed25519,
}

/// Observed state of an ErasureReceipt.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ErasureReceiptStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Stored`: whether the locked copy in BackupStorage was written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
