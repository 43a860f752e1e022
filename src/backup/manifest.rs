//! Where a backup's objects go, and the JSON manifest written beside each one.
//!
//! Keys are relative to the BackupStorage's prefix and always carry the Tenant's UID:
//!
//! ```text
//! <tenant>/<tenant-uid>/backups/<backup>.dump.zst.age     (compression zstd)
//! <tenant>/<tenant-uid>/backups/<backup>.dump.age         (pgdump, none)
//! <tenant>/<tenant-uid>/backups/<backup>.manifest.json
//! ```
//!
//! so a later Tenant of the same name (another UID) never lists, reads or overwrites an
//! earlier one's backups, and everything of one Tenant is under one prefix for erasure.
//!
//! The manifest is what someone holding only the bucket and the key needs to restore: what
//! the object is (format, compression, the restore pipeline), whose it is, which key it
//! is encrypted to, and its SHA-256 and size to check the download against. It holds no
//! secret: no password, no identity, no row.

use serde::{Deserialize, Serialize};

use super::pg_dump::Compression;

/// The manifest format written by this version.
pub const FORMAT: &str = "landlord.dev/backup-manifest/v1";

/// The object keys of one backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectKeys {
    /// The encrypted dump.
    pub object: String,
    /// The JSON manifest.
    pub manifest: String,
}

/// The prefix under which every object of the Tenant `name` with `uid` lives.
pub fn tenant_prefix(name: &str, uid: &str) -> String {
    format!("{name}/{uid}/")
}

/// The keys of backup `backup` of the Tenant `name` with `uid`.
pub fn object_keys(name: &str, uid: &str, backup: &str, compression: Compression) -> ObjectKeys {
    let base = format!("{}backups/{backup}", tenant_prefix(name, uid));
    let extension = match compression {
        Compression::Zstd => "dump.zst.age",
        Compression::PgDump | Compression::None => "dump.age",
    };
    ObjectKeys {
        object: format!("{base}.{extension}"),
        manifest: format!("{base}.manifest.json"),
    }
}

/// The shell pipeline that restores a backup with stock tools only, for the manifest and
/// the docs: `age`, `zstd` when Landlord compressed, `pg_restore`.
pub fn restore_pipeline(compression: Compression) -> &'static str {
    match compression {
        Compression::Zstd => "age -d -i key.txt FILE | zstd -d | pg_restore --dbname=...",
        Compression::PgDump | Compression::None => {
            "age -d -i key.txt FILE | pg_restore --dbname=..."
        }
    }
}

/// The JSON manifest of one backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    pub tenant: TenantIdentity,
    /// The TenantBackup's name.
    pub backup: String,
    /// Key of the encrypted object, relative to the storage's prefix.
    pub object_key: String,
    /// What the object is, from the outside in.
    pub encryption: Encryption,
    /// `zstd`, `pgdump` or `none`.
    pub compression: String,
    /// `pg_dump --format=custom`.
    pub dump_format: String,
    /// How to restore it with stock tools.
    pub restore: String,
    /// Lowercase hex SHA-256 of the encrypted object.
    pub sha256: String,
    /// Bytes of the encrypted object.
    pub size_bytes: u64,
    /// Bytes pg_dump wrote, before Landlord's compression.
    pub dump_size_bytes: u64,
    pub database: DatabaseIdentity,
    /// The pg_dump that made it.
    pub pg_dump_version: String,
    /// RFC 3339.
    pub start_time: String,
    /// RFC 3339.
    pub completion_time: String,
    /// The Object Lock the object was written under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLockRecord>,
    /// The Landlord version that wrote it.
    pub written_by: String,
}

/// Whose backup it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantIdentity {
    pub name: String,
    pub uid: String,
}

/// The age encryption of the object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    /// `age-encryption.org/v1`.
    pub format: String,
    /// The one recipient (`age1...`): the tenant key's public half.
    pub recipient: String,
    /// Its fingerprint (`status.keyId` of the Tenant).
    pub key_id: String,
}

/// The database the dump was taken of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseIdentity {
    /// The DatabaseServer's name (empty when run outside the operator).
    pub server: String,
    /// The server's version, e.g. `15.10`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    pub name: String,
    pub role: String,
}

/// The Object Lock of the object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectLockRecord {
    /// `Governance` or `Compliance`.
    pub mode: String,
    /// RFC 3339.
    pub retain_until: String,
}

impl Manifest {
    /// The manifest as written: pretty JSON with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        bytes.push(b'\n');
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_tenant_uid_and_say_what_the_object_is() {
        let keys = object_keys("acme", "1234-abcd", "acme-202612010300", Compression::Zstd);
        assert_eq!(
            keys.object,
            "acme/1234-abcd/backups/acme-202612010300.dump.zst.age"
        );
        assert_eq!(
            keys.manifest,
            "acme/1234-abcd/backups/acme-202612010300.manifest.json"
        );
        let plain = object_keys("acme", "u", "b", Compression::PgDump);
        assert_eq!(plain.object, "acme/u/backups/b.dump.age");
        assert!(keys.object.starts_with(&tenant_prefix("acme", "1234-abcd")));
        for keys in [keys, plain] {
            crate::storage::validate_key(&keys.object).unwrap();
            crate::storage::validate_key(&keys.manifest).unwrap();
        }
    }

    #[test]
    fn the_restore_pipeline_follows_the_compression() {
        assert!(restore_pipeline(Compression::Zstd).contains("zstd -d"));
        assert!(!restore_pipeline(Compression::PgDump).contains("zstd"));
        assert!(!restore_pipeline(Compression::None).contains("zstd"));
    }
}
