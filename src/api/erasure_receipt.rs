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
    /// Fingerprint of the tenant key that was destroyed.
    #[schemars(length(min = 1, max = 128))]
    pub key_id: String,
    /// Key provider that held the key.
    #[schemars(length(min = 1, max = 64))]
    pub key_provider: String,
    /// The workflow's steps, in order.
    #[schemars(length(max = 64))]
    pub steps: Vec<ReceiptStep>,
    /// The verification checks and their results.
    #[schemars(length(max = 256))]
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
    /// Where the locked copy of this receipt is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_copy: Option<StoredCopy>,
    /// Ed25519 signature over the canonical JSON of every other field of this spec.
    pub signature: Signature,
}

/// The erased tenant's identity.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasedTenant {
    /// Name of the Tenant.
    pub name: String,
    /// UID of the Tenant object.
    pub uid: String,
}

/// One step of the erasure workflow.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptStep {
    /// Step name.
    pub name: String,
    /// When it started.
    #[schemars(schema_with = "schema::timestamp")]
    pub started_at: Time,
    /// When it completed.
    #[schemars(schema_with = "schema::timestamp")]
    pub completed_at: Time,
    /// What it did.
    pub outcome: String,
}

/// One verification check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// What was checked, e.g. `NamespaceNotFound`, `DatabaseAbsent`, `KeyDestroyed`,
    /// `CanaryUndecryptable`, `BackupSingleRecipient`.
    pub check: String,
    /// Whether the check passed.
    pub passed: bool,
    /// The observation, e.g. the catalog query and its empty result.
    pub detail: String,
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
    /// Whether the object was deleted; a remaining object is locked and encrypted to the
    /// destroyed key only.
    pub deleted: bool,
}

/// Location of the receipt's locked copy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredCopy {
    /// The BackupStorage it was written to.
    pub storage_ref: String,
    /// Its object key.
    pub key: String,
}

/// A detached signature.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Signature {
    /// Signature algorithm; always `Ed25519`.
    pub algorithm: SignatureAlgorithm,
    /// The operator's public key, base64.
    #[schemars(length(min = 1, max = 128))]
    pub public_key: String,
    /// The signature, base64.
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
