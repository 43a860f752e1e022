//! `TenantRestore`: restore one TenantBackup into a database.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;
use super::schema::{self, DNS1123_SUBDOMAIN};

/// Restores one TenantBackup: downloads it, decrypts it with the tenant's key and restores
/// it into the tenant's own database, or into a new database on the same server. The spec
/// cannot change after creation.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landlord.dev",
    version = "v1alpha1",
    kind = "TenantRestore",
    plural = "tenantrestores",
    singular = "tenantrestore",
    shortname = "trs",
    category = "landlord",
    status = "TenantRestoreStatus",
    doc = "Restore of one tenant backup into a database.",
    printcolumn(name = "Backup", type_ = "string", json_path = ".status.backup"),
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".status.targetDatabase"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
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
#[x_kube(validation = Rule::new("self == oldSelf").message("a TenantRestore's spec is immutable: create a new TenantRestore instead"))]
#[x_kube(validation = Rule::new("has(self.backupRef) || has(self.tenantRef)").message("name the TenantBackup to restore (backupRef), or the Tenant whose newest completed backup to restore (tenantRef)"))]
#[x_kube(validation = Rule::new("has(self.targetDatabase) || self.replaceTenantDatabase == true").message("restoring into the tenant's own database replaces its contents and terminates its sessions: set replaceTenantDatabase: true to confirm, or name a new targetDatabase"))]
#[serde(rename_all = "camelCase")]
pub struct TenantRestoreSpec {
    /// Name of the TenantBackup to restore. When unset, the newest Completed backup of
    /// `tenantRef` (status.backup records which).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub backup_ref: Option<String>,
    /// The Tenant whose newest Completed backup to restore, when `backupRef` is unset;
    /// when both are set, the backup must be this Tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 56),
        regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub tenant_ref: Option<String>,
    /// Restore into this new database on the tenant's server, owned by the tenant's role
    /// and reachable with its credentials only, instead of the tenant's own. It must not
    /// exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = "^[a-z_][a-z0-9_]*$"))]
    pub target_database: Option<String>,
    /// Confirms a restore into the tenant's own database (no `targetDatabase`): its
    /// sessions are terminated and its contents replaced by the backup's, in one
    /// transaction.
    #[serde(default)]
    pub replace_tenant_database: bool,
}

/// Observed state of a TenantRestore.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantRestoreStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Running, Completed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    /// `Completed` with a reason and message; on failure, what went wrong.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The TenantBackup restored (the one named, or the newest Completed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// The UID of the Tenant restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_uid: Option<String>,
    /// The database restored into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_database: Option<String>,
    /// SHA-256 of the backup object, checked against the backup's before the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Bytes of dump restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_bytes: Option<i64>,
    /// When the restore started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::timestamp")]
    pub start_time: Option<Time>,
    /// When the restore completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::timestamp")]
    pub completion_time: Option<Time>,
}

/// Phase of a restore.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RestorePhase {
    Pending,
    Running,
    Completed,
    Failed,
}
