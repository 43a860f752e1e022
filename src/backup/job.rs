//! One backup, start to finish: dump → compress → encrypt → upload → manifest.
//!
//! [`run`] is the whole of a backup outside Kubernetes: it takes where the database is,
//! the recipient, the store and the keys, and returns what it wrote. The TenantBackup
//! controller calls it with what it resolved from the cluster, and `landlord backup run`
//! calls it from the command line (what a Kubernetes Job can run when backups must spread
//! over many nodes). It never sees the tenant's identity: only the public recipient.
//!
//! The object is complete or absent: the upload is a multipart upload that is aborted on
//! any failure, of the dump (pg_dump's exit status is the stream's last item) or of the
//! store. The manifest is written only after the object, so a manifest always describes
//! a whole object; an object without a manifest is an interrupted backup.

use std::sync::Arc;

use bytes::Bytes;
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::manifest::{self, Manifest, ObjectKeys};
use super::pg_dump::{Compression, DumpSource, PgDump};
use super::pipeline::{self, PipelineError, Summary};
use crate::keys::KeyId;
use crate::storage::{ObjectStore, Retention, StorageError};

/// Everything one backup needs.
pub struct Job {
    /// The pg_dump to run.
    pub pg_dump: PgDump,
    /// The server's major version, when known: pg_dump must be at least as new.
    pub server_major: Option<u32>,
    /// The server's version for the manifest, e.g. `15.10`.
    pub server_version: Option<String>,
    /// The DatabaseServer's name for the manifest.
    pub server: String,
    /// Where the tenant's database is, and the tenant role's credentials.
    pub source: DumpSource,
    /// The tenant key's public half: the one recipient.
    pub recipient: age::x25519::Recipient,
    /// How the dump is compressed.
    pub compression: Compression,
    /// Where to write.
    pub store: Arc<dyn ObjectStore>,
    /// The Tenant's name and UID, and the backup's name: the object keys.
    pub tenant: String,
    pub tenant_uid: String,
    pub backup: String,
    /// The Object Lock to write under, if the storage asks for one.
    pub object_lock: Option<crate::api::ObjectLock>,
    /// Bytes per streamed chunk (one multipart part).
    pub chunk: usize,
}

/// What a backup wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    pub keys: ObjectKeys,
    pub summary: Summary,
    pub key_id: KeyId,
    pub started: Timestamp,
    pub finished: Timestamp,
    /// When the objects' lock expires, when written under one.
    pub retain_until: Option<Timestamp>,
    pub manifest: Manifest,
    /// The store's entity tag of the object, and the manifest's SHA-256 and tag.
    pub etag: Option<String>,
    pub manifest_sha256: String,
    pub manifest_etag: Option<String>,
}

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// pg_dump could not run, or the stream failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The store refused or could not be reached.
    #[error("writing {key} to {location}: {source}")]
    Storage {
        key: String,
        location: String,
        #[source]
        source: StorageError,
    },
}

impl BackupError {
    /// The condition reason: what a platform engineer looks for.
    pub fn reason(&self) -> &'static str {
        match self {
            BackupError::Pipeline(e) => match e.category() {
                "pg_dump_missing" => "PgDumpMissing",
                "pg_dump_too_old" => "PgDumpTooOld",
                "pg_dump_failed" => "DumpFailed",
                _ => "StreamFailed",
            },
            BackupError::Storage { source, .. } => source.reason(),
        }
    }

    /// snake_case category, for metrics and back-off.
    pub fn category(&self) -> &'static str {
        match self {
            BackupError::Pipeline(e) => e.category(),
            BackupError::Storage { source, .. } => source.category(),
        }
    }

    /// Whether trying again may succeed without anyone changing anything (a server down,
    /// a network failure), as opposed to a pg_dump that is too old or a denied bucket.
    pub fn is_transient(&self) -> bool {
        match self {
            BackupError::Pipeline(e) => !matches!(
                e.category(),
                "pg_dump_missing" | "pg_dump_too_old" | "pg_dump_setup_failed"
            ),
            BackupError::Storage { source, .. } => matches!(
                source,
                StorageError::Unreachable(_)
                    | StorageError::Service(_)
                    | StorageError::Io { .. }
                    | StorageError::Source { .. }
            ),
        }
    }
}

/// Runs the backup `job`.
pub async fn run(job: Job) -> Result<Completed, BackupError> {
    if let Some(major) = job.server_major {
        job.pg_dump
            .check_server(major)
            .map_err(PipelineError::from)?;
    }
    let keys = manifest::object_keys(&job.tenant, &job.tenant_uid, &job.backup, job.compression);
    let key_id = KeyId::of(&job.recipient);
    let started = Timestamp::now();
    let retention = job
        .object_lock
        .as_ref()
        .map(|lock| Retention::starting(lock, started))
        .transpose()
        .map_err(|source| BackupError::Storage {
            key: keys.object.clone(),
            location: job.store.location(),
            source,
        })?;
    let storage_error = |key: &str, source| BackupError::Storage {
        key: key.to_owned(),
        location: job.store.location(),
        source,
    };

    let encrypted = pipeline::encrypt_dump(
        job.pg_dump.clone(),
        job.source.clone(),
        job.recipient.clone(),
        job.compression,
        job.chunk,
    );
    let (body, producer) = encrypted.into_parts();
    let uploaded = job.store.put_stream(&keys.object, body, retention).await;
    // The producer's own error is the cause when the stream failed; the store's when the
    // store failed (the producer then only saw the upload stop reading).
    let produced = producer.finish().await;
    let (summary, etag) = match (uploaded, produced) {
        (Ok(written), Ok(summary)) if written.size == summary.size => (summary, written.etag),
        (Ok(written), Ok(summary)) => {
            return Err(storage_error(
                &keys.object,
                StorageError::Service(format!(
                    "the store took {} bytes of a {}-byte stream",
                    written.size, summary.size
                )),
            ));
        }
        (_, Err(e)) if !matches!(e, PipelineError::Cancelled) => return Err(e.into()),
        (Err(e), _) => return Err(storage_error(&keys.object, e)),
        (Ok(_), Err(e)) => return Err(e.into()),
    };
    let finished = Timestamp::now();
    let manifest = Manifest {
        format: manifest::FORMAT.to_owned(),
        tenant: manifest::TenantIdentity {
            name: job.tenant.clone(),
            uid: job.tenant_uid.clone(),
        },
        backup: job.backup.clone(),
        object_key: keys.object.clone(),
        encryption: manifest::Encryption {
            format: "age-encryption.org/v1".to_owned(),
            recipient: job.recipient.to_string(),
            key_id: key_id.as_str().to_owned(),
        },
        compression: job.compression.as_str().to_owned(),
        dump_format: "pg_dump --format=custom".to_owned(),
        restore: manifest::restore_pipeline(job.compression).to_owned(),
        sha256: summary.sha256.clone(),
        size_bytes: summary.size,
        dump_size_bytes: summary.dump_size,
        database: manifest::DatabaseIdentity {
            server: job.server.clone(),
            server_version: job.server_version.clone(),
            name: job.source.database.clone(),
            role: job.source.user.clone(),
        },
        pg_dump_version: summary.pg_dump_version.clone(),
        start_time: started.to_string(),
        completion_time: finished.to_string(),
        object_lock: retention.map(|r| manifest::ObjectLockRecord {
            mode: format!("{:?}", r.mode),
            retain_until: r.retain_until.to_string(),
        }),
        written_by: format!("landlord {}", env!("CARGO_PKG_VERSION")),
    };
    let manifest_bytes = Bytes::from(manifest.to_json());
    let manifest_sha256 = pipeline::hex(&Sha256::digest(&manifest_bytes));
    let manifest_written = job
        .store
        .put(&keys.manifest, manifest_bytes, retention)
        .await
        .map_err(|e| storage_error(&keys.manifest, e))?;
    Ok(Completed {
        etag,
        manifest_sha256,
        manifest_etag: manifest_written.etag,
        keys,
        summary,
        key_id,
        started,
        finished,
        retain_until: retention.map(|r| r.retain_until),
        manifest,
    })
}
