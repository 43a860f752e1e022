//! `TenantBackup`: one encrypted backup of one tenant's database.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;
use super::schema::{self, DNS1123_SUBDOMAIN};

/// One backup of one tenant: `pg_dump` output, age-encrypted to the tenant's key and
/// streamed to its BackupStorage. Created by the tenant's schedule or by hand; the spec
/// cannot change after creation.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landlord.dev",
    version = "v1alpha1",
    kind = "TenantBackup",
    plural = "tenantbackups",
    singular = "tenantbackup",
    shortname = "tbk",
    category = "landlord",
    status = "TenantBackupStatus",
    doc = "One encrypted backup of one tenant's database.",
    printcolumn(name = "Tenant", type_ = "string", json_path = ".spec.tenantRef"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Size",
        type_ = "integer",
        description = "Bytes of ciphertext",
        json_path = ".status.sizeBytes"
    ),
    printcolumn(
        name = "Key",
        type_ = "string",
        json_path = ".status.keyId",
        priority = 1
    ),
    printcolumn(
        name = "Object",
        type_ = "string",
        json_path = ".status.objectKey",
        priority = 1
    ),
    printcolumn(
        name = "Completed",
        type_ = "date",
        json_path = ".status.completionTime"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("a TenantBackup's spec is immutable: create a new TenantBackup instead"))]
#[serde(rename_all = "camelCase")]
pub struct TenantBackupSpec {
    /// Name of the Tenant to back up.
    #[schemars(
        length(min = 1, max = 56),
        regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub tenant_ref: String,
    /// BackupStorage to write to; the tenant's `spec.backup.storageRef` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub storage_ref: Option<String>,
}

/// Observed state of a TenantBackup.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantBackupStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Running, Completed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPhase>,
    /// `Completed` with a reason and message; on failure, what went wrong.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The BackupStorage written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_ref: Option<String>,
    /// Key of the encrypted backup object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_key: Option<String>,
    /// Key of the JSON manifest written beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_key: Option<String>,
    /// Size of the encrypted object in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// SHA-256 of the encrypted object, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The storage's entity tag (S3 ETag) of the object as written: a listing that shows
    /// the same tag shows the same object, so the erasure records its SHA-256 from here
    /// instead of reading it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// SHA-256 of the manifest, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
    /// The storage's entity tag of the manifest as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_etag: Option<String>,
    /// Fingerprint of the age recipient the backup is encrypted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The UID of the Tenant backed up, recorded at the first look: a Tenant deleted and
    /// created again under the same name is another tenant, and this backup is not its.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_uid: Option<String>,
    /// Attempts started so far (a backup interrupted or failing for a passing reason is
    /// tried again, up to three times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// How the dump is compressed: `zstd`, `pgdump` or `none` (the manifest says so too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Until when the objects are under S3 Object Lock: retention and deletion keep them
    /// until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::timestamp")]
    pub retain_until: Option<Time>,
    /// The latest restore drill of this backup (`spec.backup.verify` of its Tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// When the dump started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::timestamp")]
    pub start_time: Option<Time>,
    /// When the upload completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::timestamp")]
    pub completion_time: Option<Time>,
}

/// A restore drill of a backup: restored into a scratch database, checked, dropped.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// The request it answers (the `landlord.dev/verify-requested` annotation's value).
    pub requested: String,
    /// When it finished.
    #[schemars(schema_with = "schema::timestamp")]
    pub time: Time,
    /// Whether the backup restored and every table of its dump was there.
    pub passed: bool,
    /// Tables of the dump found in the restored database.
    #[serde(default)]
    pub tables: i32,
    /// Rows counted in them.
    #[serde(default)]
    pub rows: i64,
}

/// Phase of a backup.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackupPhase {
    Pending,
    Running,
    Completed,
    Failed,
}
