//! Object storage for backups and receipts: the [`ObjectStore`] trait, its S3
//! implementation ([`s3::S3Store`]) and a directory for local use
//! ([`filesystem::FilesystemStore`]).
//!
//! Keys are relative to the store's own prefix (`spec.s3.prefix`, or the directory): the
//! store adds it on the way out and strips it from what it lists. Everything written is
//! complete or absent: a streamed upload that fails is aborted, and the filesystem store
//! renames a finished temporary file into place.

pub mod filesystem;
pub mod s3;

use std::io;
use std::ops::Range;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use jiff::Timestamp;

use crate::api::{ObjectLock, ObjectLockMode};

/// A stream of bytes, as a backup is produced or read back.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// The most [`ObjectStore::get_range`] returns: enough for an age header, never a backup.
pub const MAX_RANGE: u64 = 64 * 1024;

/// The longest key a store accepts (S3's own limit).
pub const MAX_KEY_LEN: usize = 1024;

/// How long an object stays locked, and how strictly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub mode: ObjectLockMode,
    pub retain_until: Timestamp,
}

impl Retention {
    /// The retention of an object written at `now` under `lock`.
    pub fn starting(lock: &ObjectLock, now: Timestamp) -> Result<Retention, StorageError> {
        let days = i64::from(lock.retention_days);
        let retain_until = now
            .checked_add(jiff::SignedDuration::from_hours(days.saturating_mul(24)))
            .map_err(|_| {
                StorageError::Invalid(format!("a retention of {days} days is out of range"))
            })?;
        Ok(Retention {
            mode: lock.mode,
            retain_until,
        })
    }
}

/// How a streamed upload is cut into parts. Memory held by one upload is at most
/// `part_size × (parts_in_flight + 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Multipart {
    /// Bytes per part (all but the last); S3 needs at least 5 MiB.
    pub part_size: usize,
    /// Parts uploaded at the same time.
    pub parts_in_flight: usize,
}

/// S3's smallest part (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// S3's largest part number.
pub const MAX_PARTS: usize = 10_000;

impl Default for Multipart {
    /// 8 MiB parts, two in flight: what `landlord backup run --s3-parts-in-flight` defaults
    /// to, and what the operator's BackupStorages use. With four in flight the operator's
    /// first backup of 1 GiB peaked 78 MiB above its idle RSS (BENCHMARKS.md, Backups).
    fn default() -> Self {
        Multipart {
            part_size: 8 * 1024 * 1024,
            parts_in_flight: 2,
        }
    }
}

/// An object found by [`ObjectStore::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The key, relative to the store's prefix.
    pub key: String,
    pub size: u64,
    /// The store's entity tag of the object's current content (S3's ETag, which changes
    /// whenever the object is written again), when the store has one.
    pub etag: Option<String>,
}

/// What a write left in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub size: u64,
    /// The entity tag the store gave the object (see [`ObjectInfo::etag`]).
    pub etag: Option<String>,
}

/// The first bytes of an object, as [`ObjectStore::get_range`] read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeRead {
    pub bytes: Bytes,
    /// The Object Lock that keeps the object now, as the store answered the read (none
    /// for an object that is not locked, or a store without locks).
    pub lock: Option<Lock>,
}

/// An Object Lock in force: a retain-until date still ahead, or a legal hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lock {
    /// The retain-until date; none for a legal hold without one.
    pub until: Option<Timestamp>,
}

impl Lock {
    /// The lock that a retain-until date and a legal hold status amount to now.
    pub fn of(until: Option<Timestamp>, legal_hold: bool) -> Option<Lock> {
        let retained = until.is_some_and(|t| t > Timestamp::now());
        (retained || legal_hold).then_some(Lock { until })
    }
}

/// An upload that was started and neither completed nor aborted (a crash, a lost leader).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    /// The key it was writing, relative to the store's prefix.
    pub key: String,
    /// The store's handle of the upload.
    pub upload_id: String,
    pub initiated: Option<Timestamp>,
}

/// What [`ObjectStore::delete`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// The object (every version of it) is gone.
    Deleted,
    /// There was no such object.
    Absent,
    /// Object Lock refused: the object stays until `until` (when the store said).
    Locked { until: Option<Timestamp> },
    /// Only from [`ObjectStore::delete_all`]: the store refused to delete the object (S3's
    /// `AccessDenied`, which Object Lock answers, and a missing permission too). A
    /// [`ObjectStore::delete`] of the key tells which, or a read reports the lock.
    Refused,
}

/// Where objects are kept.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Where this store writes, for messages: `s3://bucket/prefix`, a path.
    fn location(&self) -> String;

    /// Whether the store can be used: the bucket exists and answers these credentials,
    /// and has Object Lock enabled when `object_lock` is required.
    async fn check(&self, object_lock: bool) -> Result<(), StorageError>;

    /// Writes `body` under `key` as a multipart upload, and returns its size and entity
    /// tag. On any failure (of the stream or of the store) the upload is aborted: no
    /// object and no incomplete upload is left.
    async fn put_stream(
        &self,
        key: &str,
        body: ByteStream,
        retention: Option<Retention>,
    ) -> Result<Written, StorageError>;

    /// Writes a small object (a manifest, a receipt) in one request.
    async fn put(
        &self,
        key: &str,
        body: Bytes,
        retention: Option<Retention>,
    ) -> Result<Written, StorageError>;

    /// Reads `range` of the object at `key` (at most [`MAX_RANGE`] bytes; shorter when the
    /// object ends first), with the lock the store reports for it.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<RangeRead, StorageError>;

    /// Reads the whole object at `key`.
    async fn get(&self, key: &str) -> Result<ByteStream, StorageError>;

    /// Every object whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError>;

    /// Deletes the object at `key` (every version of it), unless Object Lock refuses.
    async fn delete(&self, key: &str) -> Result<Deletion, StorageError>;

    /// The Object Lock in force on the object at `key` (its current version), if any: one
    /// request (S3: a HEAD). A store without locks has none.
    async fn lock(&self, key: &str) -> Result<Option<Lock>, StorageError> {
        validate_key(key)?;
        Ok(None)
    }

    /// Deletes every object of `keys`, all of which lie under `prefix`, as
    /// [`ObjectStore::delete`] does one: what it did with each, in the order of `keys`. A
    /// store may do it in fewer requests (S3: one listing of the prefix's versions, then
    /// batches of up to 1,000 deletions, answering [`Deletion::Refused`] for what it was
    /// not allowed to delete, without a request per key to learn why); by default, one
    /// key at a time.
    async fn delete_all(
        &self,
        prefix: &str,
        keys: &[String],
    ) -> Result<Vec<Deletion>, StorageError> {
        validate_prefix(prefix)?;
        let mut done = Vec::with_capacity(keys.len());
        for key in keys {
            done.push(self.delete(key).await?);
        }
        Ok(done)
    }

    /// Uploads under `prefix` that were started and never completed or aborted.
    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, StorageError>;

    /// Aborts an upload that [`ObjectStore::pending_uploads`] found; its parts are freed.
    async fn abort_upload(&self, upload: &PendingUpload) -> Result<(), StorageError>;
}

/// Why storage cannot be used, or an operation failed. Messages name objects, buckets and
/// Secrets, never a secret value.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A Secret outside the operator's namespace is named; it was not read.
    #[error("{0}")]
    SecretForbidden(String),
    /// A Secret, or a key in it, does not exist.
    #[error("{0}")]
    SecretMissing(String),
    /// A Secret's value cannot be used (empty, not UTF-8).
    #[error("{0}")]
    SecretInvalid(String),
    /// No credentials are configured anywhere.
    #[error("{0}")]
    CredentialsMissing(String),
    /// The CA bundle holds no usable certificate.
    #[error("{0}")]
    CaInvalid(String),
    /// The store does not know the credentials, or the signature does not match.
    #[error("{0}")]
    AuthFailed(String),
    /// The credentials are valid but not allowed to do this.
    #[error("{0}")]
    Denied(String),
    /// The bucket (or directory) does not exist.
    #[error("{0}")]
    BucketMissing(String),
    /// The bucket is in another region than `spec.s3.region`.
    #[error("{0}")]
    WrongRegion(String),
    /// The endpoint cannot be reached (refused, timed out, not S3).
    #[error("{0}")]
    Unreachable(String),
    /// The TLS handshake failed (an unknown CA, a wrong host name).
    #[error("{0}")]
    TlsFailed(String),
    /// Object Lock is required but the bucket has none (or the store cannot lock).
    #[error("{0}")]
    ObjectLockNotEnabled(String),
    /// No object under that key.
    #[error("no object {0}")]
    NotFound(String),
    /// The stream being uploaded failed.
    #[error("reading what was to be uploaded to {key}: {source}")]
    Source {
        key: String,
        #[source]
        source: io::Error,
    },
    /// Reading or writing the filesystem store failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A key or a setting that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// Any other refusal of the store.
    #[error("{0}")]
    Service(String),
}

impl StorageError {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            StorageError::SecretForbidden(_) => "SecretForbidden",
            StorageError::SecretMissing(_) => "SecretMissing",
            StorageError::SecretInvalid(_) => "SecretInvalid",
            StorageError::CredentialsMissing(_) => "CredentialsMissing",
            StorageError::CaInvalid(_) => "CAInvalid",
            StorageError::AuthFailed(_) => "AuthFailed",
            StorageError::Denied(_) => "Denied",
            StorageError::BucketMissing(_) => "BucketMissing",
            StorageError::WrongRegion(_) => "WrongRegion",
            StorageError::Unreachable(_) => "Unreachable",
            StorageError::TlsFailed(_) => "TLSFailed",
            StorageError::ObjectLockNotEnabled(_) => "ObjectLockNotEnabled",
            StorageError::NotFound(_) => "NotFound",
            StorageError::Source { .. } => "SourceFailed",
            StorageError::Io { .. } => "IOError",
            StorageError::Invalid(_) => "Invalid",
            StorageError::Service(_) => "StorageError",
        }
    }

    /// snake_case category for metric labels and back-off decisions.
    pub fn category(&self) -> &'static str {
        match self {
            StorageError::SecretForbidden(_) => "storage_secret_forbidden",
            StorageError::SecretMissing(_) => "storage_secret_missing",
            StorageError::SecretInvalid(_) => "storage_secret_invalid",
            StorageError::CredentialsMissing(_) => "storage_credentials_missing",
            StorageError::CaInvalid(_) => "storage_ca_invalid",
            StorageError::AuthFailed(_) => "storage_auth_failed",
            StorageError::Denied(_) => "storage_denied",
            StorageError::BucketMissing(_) => "storage_bucket_missing",
            StorageError::WrongRegion(_) => "storage_wrong_region",
            StorageError::Unreachable(_) => "storage_unreachable",
            StorageError::TlsFailed(_) => "storage_tls_failed",
            StorageError::ObjectLockNotEnabled(_) => "storage_object_lock_not_enabled",
            StorageError::NotFound(_) => "storage_not_found",
            StorageError::Source { .. } => "storage_source_failed",
            StorageError::Io { .. } => "storage_io",
            StorageError::Invalid(_) => "storage_invalid",
            StorageError::Service(_) => "storage_error",
        }
    }
}

/// Refuses keys that could escape the prefix or the directory, or that S3 would refuse:
/// empty, too long, absolute, with empty, `.` or `..` segments, backslashes or control
/// characters.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let invalid = |why: &str| Err(StorageError::Invalid(format!("object key {key:?} {why}")));
    if key.is_empty() {
        return invalid("is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return invalid("is longer than 1024 bytes");
    }
    if key.chars().any(|c| c.is_control() || c == '\\') {
        return invalid("has a control character or a backslash");
    }
    if key
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return invalid("has an empty, '.' or '..' segment");
    }
    Ok(())
}

/// Refuses a list prefix that could escape: empty is fine (everything), otherwise it must
/// be a key, or a key followed by `/`.
pub fn validate_prefix(prefix: &str) -> Result<(), StorageError> {
    match prefix.strip_suffix('/') {
        None if prefix.is_empty() => Ok(()),
        Some(key) => validate_key(key),
        None => validate_key(prefix),
    }
}

/// The byte range to ask for: `range` cut to [`MAX_RANGE`]; `None` when empty.
fn bounded(range: &Range<u64>) -> Option<Range<u64>> {
    let end = range.end.min(range.start.saturating_add(MAX_RANGE));
    (range.start < end).then_some(range.start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        for good in ["a", "acme/1234/backup.age", "a.b/c-d_e", "x/.hidden"] {
            assert!(validate_key(good).is_ok(), "{good}");
        }
        for bad in [
            "", "/abs", "a//b", "a/", "../up", "a/../b", "./a", "a\\b", "a\nb", "a\0b",
        ] {
            let e = validate_key(bad).expect_err(bad);
            assert_eq!(e.reason(), "Invalid", "{bad}");
        }
        assert!(validate_key(&"k".repeat(1024)).is_ok());
        assert!(validate_key(&"k".repeat(1025)).is_err());
    }

    #[test]
    fn prefixes_cannot_escape() {
        for good in ["", "acme/", "acme/uid/", "acme/uid/2026"] {
            assert!(validate_prefix(good).is_ok(), "{good}");
        }
        for bad in ["/", "../", "a//", "/a/"] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_are_bounded() {
        assert_eq!(bounded(&(0..10)), Some(0..10));
        assert_eq!(bounded(&(5..5)), None);
        assert_eq!(bounded(&Range { start: 10, end: 5 }), None);
        assert_eq!(bounded(&(0..u64::MAX)), Some(0..MAX_RANGE));
        assert_eq!(
            bounded(&(u64::MAX - 1..u64::MAX)),
            Some(u64::MAX - 1..u64::MAX)
        );
    }

    #[test]
    fn retention_counts_days_from_the_write() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let lock = ObjectLock {
            mode: ObjectLockMode::Compliance,
            retention_days: 30,
        };
        let retention = Retention::starting(&lock, now).expect("in range");
        assert_eq!(retention.mode, ObjectLockMode::Compliance);
        assert_eq!(retention.retain_until.to_string(), "2026-01-31T00:00:00Z");
    }

    #[test]
    fn reasons_and_categories_are_stable() {
        let cases = [
            (StorageError::SecretMissing(String::new()), "SecretMissing"),
            (StorageError::AuthFailed(String::new()), "AuthFailed"),
            (StorageError::BucketMissing(String::new()), "BucketMissing"),
            (StorageError::Unreachable(String::new()), "Unreachable"),
            (StorageError::TlsFailed(String::new()), "TLSFailed"),
            (
                StorageError::ObjectLockNotEnabled(String::new()),
                "ObjectLockNotEnabled",
            ),
            (StorageError::Denied(String::new()), "Denied"),
        ];
        for (error, reason) in cases {
            assert_eq!(error.reason(), reason);
            assert!(error.category().starts_with("storage_"));
        }
        assert_eq!(
            StorageError::TlsFailed(String::new()).category(),
            "storage_tls_failed"
        );
    }
}
