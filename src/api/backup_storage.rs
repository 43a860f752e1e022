//! `BackupStorage`: where encrypted backups (and erasure receipts) are written.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema::SECRET_KEY;
use super::{Condition, SecretKeyRef, SecretRef};

/// An S3 bucket and prefix (or, for local use, a directory) that encrypted backups are
/// streamed to. Backups are age-encrypted before they leave Landlord, so the store never
/// sees plaintext.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landlord.dev",
    version = "v1alpha1",
    kind = "BackupStorage",
    plural = "backupstorages",
    singular = "backupstorage",
    shortname = "bs",
    category = "landlord",
    status = "BackupStorageStatus",
    doc = "Object storage that encrypted tenant backups and erasure receipts are written to.",
    printcolumn(name = "Bucket", type_ = "string", json_path = ".spec.s3.bucket"),
    printcolumn(name = "Prefix", type_ = "string", json_path = ".spec.s3.prefix"),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".spec.s3.endpoint",
        priority = 1
    ),
    printcolumn(
        name = "Lock",
        type_ = "string",
        description = "Object lock mode",
        json_path = ".spec.objectLock.mode"
    ),
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Available\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.s3) != has(self.filesystem)").message("exactly one of s3 or filesystem must be set"))]
#[serde(rename_all = "camelCase")]
pub struct BackupStorageSpec {
    /// An S3-compatible bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
    /// A directory on the operator's filesystem, for local use and demos only: it lives and
    /// dies with the operator pod's volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemStorage>,
    /// S3 Object Lock for backup objects and receipts: locked objects cannot be deleted or
    /// overwritten until their retention ends, not even by Landlord. Crypto-shredding still
    /// makes them unreadable when a tenant is erased. The bucket must have Object Lock
    /// enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
}

/// An S3-compatible bucket.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    /// Bucket name.
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = "^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    pub bucket: String,
    /// Key prefix under which Landlord writes, e.g. `landlord/prod/`. Tenants get
    /// `<prefix><tenant>/`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 512), regex(pattern = "^([^/].*/)?$"))]
    pub prefix: String,
    /// Region of the bucket.
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// Endpoint URL for S3-compatible services (MinIO, Ceph, ...); AWS when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isURL(self) && (self.startsWith('https://') || self.startsWith('http://'))").message("must be an http:// or https:// URL"))]
    #[schemars(length(min = 1, max = 2048))]
    pub endpoint: Option<String>,
    /// Address the bucket as `<endpoint>/<bucket>` instead of `<bucket>.<endpoint>`; most
    /// S3-compatible services need this.
    #[serde(default)]
    pub force_path_style: bool,
    /// Credentials. Without them, the operator's own `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) environment variables are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<S3Credentials>,
    /// CA certificates (PEM) that verify an `https://` endpoint, instead of the system
    /// roots: for a private MinIO or Ceph. The Secret must be in Landlord's own namespace
    /// (another namespace is refused with `SecretForbidden`, never read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKeyRef>,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

/// Where the S3 access key is.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Credentials {
    /// The Secret holding the access key. It must be in Landlord's own namespace: Landlord
    /// reads the Secrets that configure it from nowhere else (another namespace is refused
    /// with `SecretForbidden`, never read).
    pub secret: SecretRef,
    /// Key of the access key id in the Secret.
    #[serde(default = "default_access_key_id_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub access_key_id_key: String,
    /// Key of the secret access key in the Secret.
    #[serde(default = "default_secret_access_key_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub secret_access_key_key: String,
}

fn default_access_key_id_key() -> String {
    "accessKeyId".to_owned()
}

fn default_secret_access_key_key() -> String {
    "secretAccessKey".to_owned()
}

/// A directory for backups.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilesystemStorage {
    /// Absolute path of the directory.
    #[schemars(length(min = 2, max = 4096), regex(pattern = "^/"))]
    pub path: String,
}

/// Object Lock settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectLock {
    /// `Governance`: privileged users may lift the lock. `Compliance`: nobody can.
    pub mode: ObjectLockMode,
    /// How long each object stays locked after it is written.
    #[schemars(range(min = 1, max = 36500))]
    pub retention_days: i32,
}

/// An S3 Object Lock retention mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ObjectLockMode {
    Governance,
    Compliance,
}

/// Observed state of a BackupStorage.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupStorageStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Available`: whether the bucket (or directory) exists and answers Landlord's
    /// credentials, and has Object Lock enabled when `spec.objectLock` is set; when not, the
    /// reason says what to fix: `SecretForbidden`, `SecretMissing`, `SecretInvalid`,
    /// `CredentialsMissing`, `CAInvalid`, `AuthFailed`, `Denied`, `BucketMissing`,
    /// `WrongRegion`, `Unreachable`, `TLSFailed`, `ObjectLockNotEnabled`, `StorageError`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
