//! The S3 store: any S3-compatible service (AWS, MinIO, Ceph), through `aws-sdk-s3` with
//! static credentials and rustls.
//!
//! Streams are written as multipart uploads of [`Multipart::part_size`] bytes with at most
//! [`Multipart::parts_in_flight`] parts uploading at once, each with a CRC32 checksum the
//! service verifies (Object Lock buckets require one). Any failure aborts the upload.
//! Deleting removes every version of a key (a bucket with Object Lock is versioned: a plain
//! delete would only hide the object behind a delete marker).

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream as SdkByteStream, DateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectLockEnabled,
    ObjectLockMode as SdkLockMode, ObjectLockRetention, ObjectLockRetentionMode,
};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use jiff::Timestamp;
use tokio::task::JoinSet;
use tracing::warn;

use super::{
    ByteStream, Deletion, Lock, MAX_PARTS, MIN_PART_SIZE, Multipart, ObjectInfo, ObjectStore,
    PendingUpload, RangeRead, Retention, StorageError, Written, bounded, validate_key,
    validate_prefix,
};
use crate::api::ObjectLockMode;

/// An access key. Its `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl StaticCredentials {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` of the
    /// operator's environment, when the first two are set.
    pub fn from_env() -> Option<StaticCredentials> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Some(StaticCredentials {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }
}

/// Everything an [`S3Store`] is built from.
#[derive(Clone, Debug)]
pub struct S3Settings {
    pub bucket: String,
    /// Prepended to every key; empty or ending in `/`.
    pub prefix: String,
    pub region: String,
    /// `http(s)://host:port` of an S3-compatible service; AWS when unset.
    pub endpoint: Option<String>,
    pub force_path_style: bool,
    pub credentials: StaticCredentials,
    /// CA certificates (PEM) that replace the system roots for the endpoint.
    pub ca_pem: Option<Vec<u8>>,
    pub multipart: Multipart,
}

/// A bucket and prefix on an S3-compatible service.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    endpoint: String,
    multipart: Multipart,
}

/// How long connecting to the endpoint may take before an attempt fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl S3Store {
    pub fn new(settings: S3Settings) -> Result<S3Store, StorageError> {
        let multipart = settings.multipart;
        if multipart.part_size < MIN_PART_SIZE || multipart.parts_in_flight == 0 {
            return Err(StorageError::Invalid(format!(
                "parts of {} bytes, {} at a time: S3 needs parts of at least {MIN_PART_SIZE} bytes, and one at a time at least",
                multipart.part_size, multipart.parts_in_flight
            )));
        }
        let mut trust = TrustStore::empty().with_native_roots(settings.ca_pem.is_none());
        if let Some(pem) = &settings.ca_pem {
            trust = trust.with_pem_certificate(pem.clone());
        }
        let tls_context = TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .map_err(|e| StorageError::CaInvalid(format!("the CA certificates: {e}")))?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .tls_context(tls_context)
            .build_https();
        let credentials = &settings.credentials;
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(Credentials::new(
                credentials.access_key_id.clone(),
                credentials.secret_access_key.clone(),
                credentials.session_token.clone(),
                None,
                "landlord",
            ))
            .force_path_style(settings.force_path_style)
            .http_client(http)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            // Checksums are asked for explicitly where they matter (uploads); a ranged
            // read of an age header has none to validate.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint.clone());
        }
        Ok(S3Store {
            client: Client::from_conf(config.build()),
            endpoint: settings
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("AWS S3 in {}", settings.region)),
            bucket: settings.bucket,
            prefix: settings.prefix,
            multipart,
        })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn relative<'a>(&self, full: &'a str) -> Option<&'a str> {
        full.strip_prefix(&self.prefix)
    }

    /// What went wrong, in the words of the condition reasons.
    fn error<E>(&self, doing: &str, error: SdkError<E, HttpResponse>) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        classify(&self.bucket, &self.endpoint, doing, error)
    }

    async fn abort(&self, full: &str, upload_id: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            let e = self.error("aborting an upload", e);
            warn!(bucket = %self.bucket, key = %full, error = %e, "could not abort a failed upload; it is aborted at the next recovery");
        }
    }

    /// Cuts `body` into parts and uploads them, at most `parts_in_flight` at a time.
    /// Returns the parts in order and the size.
    async fn upload_parts(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        mut body: ByteStream,
        in_flight: &mut JoinSet<Result<CompletedPart, StorageError>>,
    ) -> Result<(Vec<CompletedPart>, u64), StorageError> {
        let part_size = self.multipart.part_size;
        let mut done = Vec::new();
        let mut buffer = BytesMut::with_capacity(part_size);
        let mut size: u64 = 0;
        let mut number: i32 = 0;
        let mut ended = false;
        while !ended {
            let chunk = body.next().await;
            let mut parts = Vec::new();
            match chunk {
                Some(Err(source)) => {
                    return Err(StorageError::Source {
                        key: key.to_owned(),
                        source,
                    });
                }
                Some(Ok(bytes)) => {
                    size = size.saturating_add(bytes.len() as u64);
                    buffer.extend_from_slice(&bytes);
                    while buffer.len() >= part_size {
                        parts.push(buffer.split_to(part_size).freeze());
                    }
                }
                None => {
                    ended = true;
                    // An empty stream is one empty part: an empty object.
                    if !buffer.is_empty() || number == 0 {
                        parts.push(buffer.split().freeze());
                    }
                }
            }
            for part in parts {
                while in_flight.len() >= self.multipart.parts_in_flight {
                    done.push(joined(in_flight.join_next().await)?);
                }
                number += 1;
                if usize::try_from(number).unwrap_or(usize::MAX) > MAX_PARTS {
                    return Err(StorageError::Invalid(format!(
                        "{key} is larger than {MAX_PARTS} parts of {part_size} bytes"
                    )));
                }
                in_flight.spawn(upload_part(
                    self.clone(),
                    full.to_owned(),
                    upload_id.to_owned(),
                    number,
                    part,
                ));
            }
            // Reap what finished meanwhile, so that a failed part stops the upload early.
            while let Some(result) = in_flight.try_join_next() {
                done.push(joined(Some(result))?);
            }
        }
        while let Some(result) = in_flight.join_next().await {
            done.push(joined(Some(result))?);
        }
        done.sort_by_key(|p| p.part_number());
        Ok((done, size))
    }

    /// Object Lock retention when a deletion was refused: `Some` when the version is
    /// locked (with its retain-until date when the store gives one).
    /// Every version and delete marker whose full key starts with `full_prefix`, as
    /// (full key, version id), from a paged ListObjectVersions; `doing` names it in errors.
    async fn versions_under(
        &self,
        full_prefix: &str,
        doing: &str,
    ) -> Result<Vec<(String, Option<String>)>, StorageError> {
        let mut found = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(full_prefix)
                .set_key_marker(key_marker)
                .set_version_id_marker(version_marker)
                .send()
                .await
                .map_err(|e| self.error(doing, e))?;
            let listed = page
                .versions()
                .iter()
                .map(|v| (v.key(), v.version_id()))
                .chain(
                    page.delete_markers()
                        .iter()
                        .map(|m| (m.key(), m.version_id())),
                );
            found.extend(
                listed.filter_map(|(key, version)| {
                    Some((key?.to_owned(), version.map(str::to_owned)))
                }),
            );
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(found)
    }

    /// The lock on `full` (a version of it when given), from its HEAD: `None` when nothing
    /// keeps it.
    async fn head_lock(
        &self,
        full: &str,
        version: Option<&str>,
    ) -> Result<Option<Lock>, StorageError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(full)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
            .map_err(|e| self.error(&format!("reading the lock of {full} in"), e))?;
        let until = head.object_lock_retain_until_date().and_then(timestamp);
        let held = head.object_lock_legal_hold_status().map(|s| s.as_str()) == Some("ON");
        Ok(Lock::of(until, held))
    }
}

/// A finished part task, or why it failed (a panic or cancellation counts as a failure).
fn joined(
    result: Option<Result<Result<CompletedPart, StorageError>, tokio::task::JoinError>>,
) -> Result<CompletedPart, StorageError> {
    match result {
        Some(Ok(part)) => part,
        Some(Err(e)) => Err(StorageError::Service(format!("a part upload stopped: {e}"))),
        None => Err(StorageError::Service(
            "no part upload was running".to_owned(),
        )),
    }
}

async fn upload_part(
    store: S3Store,
    full: String,
    upload_id: String,
    number: i32,
    body: Bytes,
) -> Result<CompletedPart, StorageError> {
    let checksum = crc32(&body);
    let uploaded = store
        .client
        .upload_part()
        .bucket(&store.bucket)
        .key(&full)
        .upload_id(&upload_id)
        .part_number(number)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .checksum_crc32(&checksum)
        .body(SdkByteStream::from(body))
        .send()
        .await
        .map_err(|e| store.error(&format!("uploading part {number} of {full} to"), e))?;
    Ok(CompletedPart::builder()
        .part_number(number)
        .set_e_tag(uploaded.e_tag().map(str::to_owned))
        .checksum_crc32(checksum)
        .build())
}

/// The `x-amz-checksum-crc32` value of `body`: its CRC32, big-endian, in base64.
///
/// Computed here rather than left to the SDK: with request checksums `WhenRequired`,
/// aws-sdk-s3 1.122 sends `x-amz-sdk-checksum-algorithm: CRC32` for a request that names
/// the algorithm but no checksum, which S3 refuses for a part of an upload created with
/// that algorithm (MinIO: "checksum missing, want CRC32") and for a write with Object
/// Lock parameters. Requests carry both headers: some servers (moto) look for the
/// algorithm's, every server verifies the checksum's.
fn crc32(body: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(body).to_be_bytes())
}

fn lock_mode(mode: ObjectLockMode) -> SdkLockMode {
    match mode {
        ObjectLockMode::Governance => SdkLockMode::Governance,
        ObjectLockMode::Compliance => SdkLockMode::Compliance,
    }
}

fn retention_mode(mode: ObjectLockMode) -> ObjectLockRetentionMode {
    match mode {
        ObjectLockMode::Governance => ObjectLockRetentionMode::Governance,
        ObjectLockMode::Compliance => ObjectLockRetentionMode::Compliance,
    }
}

fn date_time(t: Timestamp) -> DateTime {
    DateTime::from_secs(t.as_second())
}

fn timestamp(t: &DateTime) -> Option<Timestamp> {
    Timestamp::from_second(t.secs()).ok()
}

/// An error and its causes, `: `-separated.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Whether a connection failed in its TLS handshake.
fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        current = e.source();
    }
    let text = chain(error).to_ascii_lowercase();
    text.contains("certificate") || text.contains("handshake")
}

/// Maps an SDK error to a [`StorageError`] whose message says what to fix. Service error
/// messages (never request headers) are quoted; no credential is part of either.
fn classify<E>(
    bucket: &str,
    endpoint: &str,
    doing: &str,
    error: SdkError<E, HttpResponse>,
) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let at = format!("{doing} bucket {bucket} at {endpoint}");
    match &error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or_default().to_owned();
            let said = match service.err().message() {
                Some(message) if !message.is_empty() => format!("{status} {code}: {message}"),
                _ => format!("{status} {code}"),
            };
            match (code.as_str(), status) {
                ("NoSuchBucket", _) => StorageError::BucketMissing(format!(
                    "{at}: the bucket does not exist ({said}); create it, or correct spec.s3.bucket"
                )),
                (
                    "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "InvalidToken"
                    | "ExpiredToken"
                    | "TokenRefreshRequired"
                    | "InvalidSecurity"
                    | "AuthorizationHeaderMalformed",
                    _,
                ) => StorageError::AuthFailed(format!(
                    "{at}: the credentials were refused ({said}); correct the access key in the credentials Secret"
                )),
                ("AccessDenied" | "AllAccessDisabled" | "AccountProblem", _) => {
                    StorageError::Denied(format!(
                        "{at}: access denied ({said}); grant the access key s3:ListBucket, s3:ListBucketVersions, s3:ListBucketMultipartUploads, s3:GetObject, s3:PutObject, s3:DeleteObject, s3:DeleteObjectVersion, s3:AbortMultipartUpload (and s3:GetBucketObjectLockConfiguration, s3:PutObjectRetention with Object Lock) on the bucket and prefix"
                    ))
                }
                ("ObjectLockConfigurationNotFoundError", _) => {
                    StorageError::ObjectLockNotEnabled(format!(
                        "{at}: the bucket has no Object Lock configuration ({said}); Object Lock can only be enabled when a bucket is created: use a bucket created with Object Lock, or remove spec.objectLock"
                    ))
                }
                ("PermanentRedirect" | "IllegalLocationConstraintException", _) | ("", 301) => {
                    StorageError::WrongRegion(format!(
                        "{at}: the bucket is in another region than spec.s3.region ({said}); correct spec.s3.region"
                    ))
                }
                ("NoSuchKey" | "NoSuchVersion" | "NotFound", _) | ("", 404) => {
                    StorageError::NotFound(format!("{at}: {said}"))
                }
                ("", 403) => StorageError::Denied(format!(
                    "{at}: 403 Forbidden (the credentials were refused or lack a permission); check the access key and its permissions on the bucket"
                )),
                _ => StorageError::Service(format!("{at}: {said}")),
            }
        }
        SdkError::TimeoutError(_) => StorageError::Unreachable(format!(
            "{at}: no answer in time; check spec.s3.endpoint and that the operator's pod may reach it"
        )),
        SdkError::DispatchFailure(failure) if is_tls(&error) => {
            let detail = failure
                .as_connector_error()
                .map(|e| chain(e))
                .unwrap_or_else(|| chain(&error));
            StorageError::TlsFailed(format!(
                "{at}: the TLS handshake failed ({detail}); give the CA that signed the endpoint's certificate in spec.s3.caSecret, or correct the host name"
            ))
        }
        SdkError::DispatchFailure(_) => StorageError::Unreachable(format!(
            "{at}: cannot connect ({}); check spec.s3.endpoint and that the operator's pod may reach it",
            chain(&error)
        )),
        SdkError::ResponseError(_) => StorageError::Unreachable(format!(
            "{at}: the answer is not S3's ({}); check that spec.s3.endpoint is an S3 API endpoint",
            chain(&error)
        )),
        _ => StorageError::Service(format!("{at}: {}", chain(&error))),
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    async fn check(&self, object_lock: bool) -> Result<(), StorageError> {
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| self.error("listing", e))?;
        if !object_lock {
            return Ok(());
        }
        let lock = self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.error("reading the Object Lock configuration of", e))?;
        let enabled = lock
            .object_lock_configuration()
            .and_then(|c| c.object_lock_enabled())
            == Some(&ObjectLockEnabled::Enabled);
        if !enabled {
            return Err(StorageError::ObjectLockNotEnabled(format!(
                "the bucket {} at {} does not have Object Lock enabled; Object Lock can only be enabled when a bucket is created: use a bucket created with Object Lock, or remove spec.objectLock",
                self.bucket, self.endpoint
            )));
        }
        Ok(())
    }

    async fn put_stream(
        &self,
        key: &str,
        body: ByteStream,
        retention: Option<Retention>,
    ) -> Result<Written, StorageError> {
        validate_key(key)?;
        let full = self.full(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .set_object_lock_mode(retention.map(|r| lock_mode(r.mode)))
            .set_object_lock_retain_until_date(retention.map(|r| date_time(r.retain_until)))
            .send()
            .await
            .map_err(|e| self.error(&format!("starting the upload of {full} to"), e))?;
        let Some(upload_id) = created.upload_id().map(str::to_owned) else {
            return Err(StorageError::Service(format!(
                "starting the upload of {full} to bucket {}: no upload id in the answer",
                self.bucket
            )));
        };
        let mut in_flight = JoinSet::new();
        let uploaded = self
            .upload_parts(key, &full, &upload_id, body, &mut in_flight)
            .await;
        let uploaded = match uploaded {
            Ok(uploaded) => uploaded,
            Err(e) => {
                // No part may still be on its way when the upload is aborted: S3 could
                // keep a part that finished after the abort.
                in_flight.shutdown().await;
                self.abort(&full, &upload_id).await;
                return Err(e);
            }
        };
        let (parts, size) = uploaded;
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        let completed = match completed {
            Ok(completed) => completed,
            Err(e) => {
                let e = self.error(&format!("completing the upload of {full} to"), e);
                self.abort(&full, &upload_id).await;
                return Err(e);
            }
        };
        // The lock asked for at creation is set again on the finished object: not every
        // S3-compatible service applies a multipart upload's lock headers (moto does not),
        // and an unlocked backup must not pass for a locked one.
        if let Some(retention) = retention {
            self.client
                .put_object_retention()
                .bucket(&self.bucket)
                .key(&full)
                .set_version_id(completed.version_id().map(str::to_owned))
                .retention(
                    ObjectLockRetention::builder()
                        .mode(retention_mode(retention.mode))
                        .retain_until_date(date_time(retention.retain_until))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.error(&format!("locking {full} in"), e))?;
        }
        Ok(Written {
            size,
            etag: completed.e_tag().map(str::to_owned),
        })
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        retention: Option<Retention>,
    ) -> Result<Written, StorageError> {
        validate_key(key)?;
        let full = self.full(key);
        let size = body.len() as u64;
        let answer = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .checksum_crc32(crc32(&body))
            .set_object_lock_mode(retention.map(|r| lock_mode(r.mode)))
            .set_object_lock_retain_until_date(retention.map(|r| date_time(r.retain_until)))
            .body(SdkByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error(&format!("writing {full} to"), e))?;
        Ok(Written {
            size,
            etag: answer.e_tag().map(str::to_owned),
        })
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<RangeRead, StorageError> {
        validate_key(key)?;
        let Some(range) = bounded(&range) else {
            return Ok(RangeRead {
                bytes: Bytes::new(),
                lock: None,
            });
        };
        let full = self.full(key);
        let answer = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        let (mut body, lock) = match answer {
            Ok(answer) => {
                let until = answer.object_lock_retain_until_date().and_then(timestamp);
                let held = answer.object_lock_legal_hold_status().map(|s| s.as_str()) == Some("ON");
                let lock = Lock::of(until, held);
                (answer.body, lock)
            }
            Err(SdkError::ServiceError(e)) if e.err().code() == Some("InvalidRange") => {
                return Ok(RangeRead {
                    bytes: Bytes::new(),
                    lock: None,
                });
            }
            Err(e) => return Err(self.error(&format!("reading {full} from"), e)),
        };
        // Read no more than asked for, even from a server that ignores `Range`.
        let want = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
        let mut read = BytesMut::new();
        while read.len() < want {
            match body.next().await {
                Some(Ok(chunk)) => read.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    return Err(StorageError::Unreachable(format!(
                        "reading {full} from bucket {}: {}",
                        self.bucket,
                        chain(&e)
                    )));
                }
                None => break,
            }
        }
        read.truncate(want);
        Ok(RangeRead {
            bytes: read.freeze(),
            lock,
        })
    }

    async fn get(&self, key: &str) -> Result<ByteStream, StorageError> {
        validate_key(key)?;
        let full = self.full(key);
        let answer = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| self.error(&format!("reading {full} from"), e))?;
        Ok(Box::pin(futures::stream::unfold(
            answer.body,
            |mut body| async move {
                let next = body.next().await?;
                Some((next.map_err(std::io::Error::other), body))
            },
        )))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        validate_prefix(prefix)?;
        let mut found = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.full(prefix))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| self.error("listing", e))?;
            for object in page.contents() {
                if let Some(key) = object.key().and_then(|k| self.relative(k)) {
                    found.push(ObjectInfo {
                        key: key.to_owned(),
                        size: u64::try_from(object.size().unwrap_or(0)).unwrap_or(0),
                        etag: object.e_tag().map(str::to_owned),
                    });
                }
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn lock(&self, key: &str) -> Result<Option<Lock>, StorageError> {
        validate_key(key)?;
        self.head_lock(&self.full(key), None).await
    }

    async fn delete(&self, key: &str) -> Result<Deletion, StorageError> {
        validate_key(key)?;
        let full = self.full(key);
        // Every version and delete marker of exactly this key.
        let versions: Vec<Option<String>> = self
            .versions_under(&full, &format!("listing the versions of {full} in"))
            .await?
            .into_iter()
            .filter(|(k, _)| *k == full)
            .map(|(_, version)| version)
            .collect();
        if versions.is_empty() {
            return Ok(Deletion::Absent);
        }
        let mut locked: Option<Option<Timestamp>> = None;
        for version in versions {
            let deleted = self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(&full)
                .set_version_id(version.clone())
                .send()
                .await;
            match deleted {
                Ok(_) => {}
                Err(e) => {
                    let e = self.error(&format!("deleting {full} from"), e);
                    // S3 refuses a locked version with 403 AccessDenied, MinIO with 400
                    // InvalidRequest ("Object is WORM protected"): either way, a lock is
                    // what the object's HEAD must show for the refusal to be one.
                    if matches!(e, StorageError::Denied(_) | StorageError::Service(_))
                        && let Ok(Some(lock)) = self.head_lock(&full, version.as_deref()).await
                    {
                        let until = lock.until;
                        // The latest date of all locked versions is when the key can go.
                        locked = Some(match (locked.flatten(), until) {
                            (Some(a), Some(b)) => Some(a.max(b)),
                            (a, b) => a.or(b),
                        });
                        continue;
                    }
                    if matches!(e, StorageError::NotFound(_)) {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        Ok(match locked {
            Some(until) => Deletion::Locked { until },
            None => Deletion::Deleted,
        })
    }

    async fn delete_all(
        &self,
        prefix: &str,
        keys: &[String],
    ) -> Result<Vec<Deletion>, StorageError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        validate_prefix(prefix)?;
        for key in keys {
            validate_key(key)?;
        }
        // Every version and delete marker under the prefix, in one paged listing.
        let wanted: std::collections::HashSet<String> = keys.iter().map(|k| self.full(k)).collect();
        let mut versions: HashMap<String, Vec<Option<String>>> = HashMap::new();
        let listing = format!("listing the versions under {prefix} in");
        for (key, version) in self.versions_under(&self.full(prefix), &listing).await? {
            if wanted.contains(&key) {
                versions.entry(key).or_default().push(version);
            }
        }
        let targets: Vec<(String, Option<String>)> = versions
            .iter()
            .flat_map(|(key, ids)| ids.iter().map(move |id| (key.clone(), id.clone())))
            .collect();
        // Versions a deletion was refused for, by key (Object Lock).
        let mut refused: HashMap<String, Vec<Option<String>>> = HashMap::new();
        for batch in targets.chunks(1000) {
            let objects = batch
                .iter()
                .map(|(key, id)| {
                    ObjectIdentifier::builder()
                        .key(key)
                        .set_version_id(id.clone())
                        .build()
                        .map_err(|e| StorageError::Invalid(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StorageError::Invalid(e.to_string()))?;
            let answer = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.error(&format!("deleting the objects under {prefix} from"), e))?;
            for error in answer.errors() {
                let (Some(key), code) = (error.key(), error.code().unwrap_or_default()) else {
                    continue;
                };
                match code {
                    "NoSuchKey" | "NoSuchVersion" => {}
                    // S3 refuses a locked version with AccessDenied, MinIO with
                    // InvalidRequest ("Object is WORM protected"); the caller asks which
                    // lock, if any, explains the refusal.
                    "AccessDenied" | "InvalidRequest" => refused
                        .entry(key.to_owned())
                        .or_default()
                        .push(error.version_id().map(str::to_owned)),
                    other => {
                        return Err(StorageError::Service(format!(
                            "deleting {key} from bucket {} at {}: {other}: {}",
                            self.bucket,
                            self.endpoint,
                            error.message().unwrap_or_default()
                        )));
                    }
                }
            }
        }
        // Why each refused key was refused is not asked here (a HEAD per key): the caller
        // knows which objects were written under a lock, and asks for the others.
        Ok(keys
            .iter()
            .map(|key| {
                let full = self.full(key);
                if refused.contains_key(&full) {
                    Deletion::Refused
                } else if versions.contains_key(&full) {
                    Deletion::Deleted
                } else {
                    Deletion::Absent
                }
            })
            .collect())
    }

    /// The bucket's incomplete uploads are listed whole and filtered here: MinIO answers a
    /// listing with a prefix only when the prefix is a whole object key (an empty answer
    /// otherwise), so a tenant's uploads would go unseen. Incomplete uploads are few (every
    /// failure aborts its own), so the listing stays short.
    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, StorageError> {
        validate_prefix(prefix)?;
        let full = self.full(prefix);
        let mut found = Vec::new();
        let (mut key_marker, mut upload_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .set_key_marker(key_marker)
                .set_upload_id_marker(upload_marker)
                .send()
                .await
                .map_err(|e| self.error("listing the incomplete uploads in", e))?;
            for upload in page.uploads() {
                let (Some(key), Some(id)) = (
                    upload
                        .key()
                        .filter(|k| k.starts_with(&full))
                        .and_then(|k| self.relative(k)),
                    upload.upload_id(),
                ) else {
                    continue;
                };
                found.push(PendingUpload {
                    key: key.to_owned(),
                    upload_id: id.to_owned(),
                    initiated: upload.initiated().and_then(timestamp),
                });
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            upload_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(found)
    }

    async fn abort_upload(&self, upload: &PendingUpload) -> Result<(), StorageError> {
        validate_key(&upload.key)?;
        let full = self.full(&upload.key);
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .upload_id(&upload.upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().code() == Some("NoSuchUpload") => Ok(()),
            Err(e) => Err(self.error(&format!("aborting the upload of {full} to"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> S3Settings {
        S3Settings {
            bucket: "backups".into(),
            prefix: "landlord/".into(),
            region: "us-east-1".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            force_path_style: true,
            credentials: StaticCredentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI-very-secret".into(),
                session_token: None,
            },
            ca_pem: None,
            multipart: Multipart::default(),
        }
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let shown = format!("{:?}", settings());
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("very-secret"), "{shown}");
    }

    #[test]
    fn parts_must_be_large_enough_for_s3() {
        let mut small = settings();
        small.multipart.part_size = MIN_PART_SIZE - 1;
        assert_eq!(
            S3Store::new(small).err().map(|e| e.reason()),
            Some("Invalid")
        );
        let mut none_in_flight = settings();
        none_in_flight.multipart.parts_in_flight = 0;
        assert!(S3Store::new(none_in_flight).is_err());
    }

    #[tokio::test]
    async fn keys_are_under_the_prefix() {
        let store = S3Store::new(settings()).expect("store");
        assert_eq!(
            store.full("acme/1/backup.age"),
            "landlord/acme/1/backup.age"
        );
        assert_eq!(store.relative("landlord/acme/x"), Some("acme/x"));
        assert_eq!(store.relative("other/acme/x"), None);
        assert_eq!(store.location(), "s3://backups/landlord/");
        let escape = store.get_range("../etc/passwd", 0..10).await;
        assert!(matches!(escape, Err(StorageError::Invalid(_))));
    }
}
