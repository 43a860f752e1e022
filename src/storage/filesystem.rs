//! A directory as an object store, for demos and local use: it lives and dies with the
//! operator pod's volume, and cannot lock objects.
//!
//! An upload is written into its own directory under `.landlord-uploads/` (the data and
//! the key it is for), flushed to disk, and renamed to its final name only when complete:
//! a crash never leaves a partial object under the final name, and the upload directory it
//! leaves is what [`ObjectStore::pending_uploads`] finds.

use std::io::{self, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{
    ByteStream, Deletion, ObjectInfo, ObjectStore, PendingUpload, RangeRead, Retention,
    StorageError, Written, bounded, validate_key, validate_prefix,
};

/// Where uploads in progress are kept, inside the store's directory.
pub const UPLOADS: &str = ".landlord-uploads";

/// How much a read of an object returns at a time.
const READ_CHUNK: usize = 64 * 1024;

/// A directory of objects.
#[derive(Clone, Debug)]
pub struct FilesystemStore {
    root: PathBuf,
}

impl FilesystemStore {
    pub fn new(root: impl Into<PathBuf>) -> FilesystemStore {
        FilesystemStore { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        if key == UPLOADS || key.starts_with(&format!("{UPLOADS}/")) {
            return Err(StorageError::Invalid(format!(
                "object key {key:?} is inside the store's upload area"
            )));
        }
        Ok(self.root.join(key))
    }

    fn uploads(&self) -> PathBuf {
        self.root.join(UPLOADS)
    }

    fn upload_dir(&self, upload_id: &str) -> Result<PathBuf, StorageError> {
        if upload_id.is_empty() || !upload_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StorageError::Invalid(format!(
                "{upload_id:?} is not an upload of this store"
            )));
        }
        Ok(self.uploads().join(upload_id))
    }

    /// Writes `body` into a new upload directory and renames it to `key` when complete.
    async fn write(&self, key: &str, mut body: ByteStream) -> Result<u64, StorageError> {
        let target = self.path(key)?;
        let mut id = [0u8; 16];
        getrandom::fill(&mut id)
            .map_err(|e| StorageError::Invalid(format!("no randomness for an upload name: {e}")))?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let dir = self.upload_dir(&id)?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io_error(&format!("creating {}", dir.display())))?;
        let written = async {
            tokio::fs::write(dir.join("key"), key.as_bytes())
                .await
                .map_err(io_error(&format!("writing {}", dir.display())))?;
            let data = dir.join("data");
            let mut file = tokio::fs::File::create(&data)
                .await
                .map_err(io_error(&format!("creating {}", data.display())))?;
            let mut size: u64 = 0;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|source| StorageError::Source {
                    key: key.to_owned(),
                    source,
                })?;
                file.write_all(&chunk)
                    .await
                    .map_err(io_error(&format!("writing {}", data.display())))?;
                size = size.saturating_add(chunk.len() as u64);
            }
            file.sync_all()
                .await
                .map_err(io_error(&format!("flushing {}", data.display())))?;
            drop(file);
            let parent = target.parent().unwrap_or(&self.root);
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io_error(&format!("creating {}", parent.display())))?;
            tokio::fs::rename(&data, &target)
                .await
                .map_err(io_error(&format!("renaming into {}", target.display())))?;
            // The rename itself must survive a crash.
            if let Ok(directory) = tokio::fs::File::open(parent).await {
                let _ = directory.sync_all().await;
            }
            Ok(size)
        }
        .await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        written
    }
}

fn io_error(what: &str) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        what: what.to_owned(),
        source,
    }
}

fn no_lock() -> StorageError {
    StorageError::ObjectLockNotEnabled(
        "a filesystem store cannot lock objects: remove spec.objectLock, or use S3 with a bucket created with Object Lock".to_owned(),
    )
}

/// The key of `path` under `root`, `/`-separated, when it is one.
fn key_of(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = relative
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect();
    Some(parts?.join("/"))
}

#[async_trait]
impl ObjectStore for FilesystemStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn check(&self, object_lock: bool) -> Result<(), StorageError> {
        if object_lock {
            return Err(no_lock());
        }
        let shown = self.root.display();
        match tokio::fs::metadata(&self.root).await {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(StorageError::BucketMissing(format!(
                    "{shown} is not a directory: correct spec.filesystem.path"
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StorageError::BucketMissing(format!(
                    "the directory {shown} does not exist: create it (a volume mounted into the operator's pod), or correct spec.filesystem.path"
                )));
            }
            Err(e) => {
                return Err(StorageError::Denied(format!(
                    "the directory {shown} cannot be read: {e}"
                )));
            }
        }
        // Landlord must be able to write there: make and remove an empty upload.
        let probe = self.uploads().join("0");
        let made = tokio::fs::create_dir_all(&probe).await;
        let _ = tokio::fs::remove_dir(&probe).await;
        made.map_err(|e| {
            StorageError::Denied(format!(
                "the directory {shown} is not writable by the operator: {e}"
            ))
        })
    }

    async fn put_stream(
        &self,
        key: &str,
        body: ByteStream,
        retention: Option<Retention>,
    ) -> Result<Written, StorageError> {
        if retention.is_some() {
            return Err(no_lock());
        }
        let size = self.write(key, body).await?;
        // Files have no entity tag: whoever needs to know a file's content reads it.
        Ok(Written { size, etag: None })
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        retention: Option<Retention>,
    ) -> Result<Written, StorageError> {
        if retention.is_some() {
            return Err(no_lock());
        }
        let body: ByteStream = Box::pin(futures::stream::iter([Ok(body)]));
        let size = self.write(key, body).await?;
        Ok(Written { size, etag: None })
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<RangeRead, StorageError> {
        let path = self.path(key)?;
        let unlocked = |bytes| RangeRead { bytes, lock: None };
        let Some(range) = bounded(&range) else {
            return Ok(unlocked(Bytes::new()));
        };
        let mut file = open(&path, key).await?;
        file.seek(SeekFrom::Start(range.start))
            .await
            .map_err(io_error(&format!("reading {}", path.display())))?;
        let want = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
        let mut read = BytesMut::with_capacity(want);
        let mut limited = file.take(want as u64);
        limited
            .read_buf(&mut read)
            .await
            .map_err(io_error(&format!("reading {}", path.display())))?;
        // `read_buf` may stop early; read until the range or the file ends.
        while read.len() < want {
            let before = read.len();
            limited
                .read_buf(&mut read)
                .await
                .map_err(io_error(&format!("reading {}", path.display())))?;
            if read.len() == before {
                break;
            }
        }
        Ok(unlocked(read.freeze()))
    }

    async fn get(&self, key: &str) -> Result<ByteStream, StorageError> {
        let path = self.path(key)?;
        let file = open(&path, key).await?;
        Ok(Box::pin(futures::stream::unfold(
            Some(file),
            |file| async move {
                let mut file = file?;
                let mut chunk = BytesMut::with_capacity(READ_CHUNK);
                match file.read_buf(&mut chunk).await {
                    Ok(0) => None,
                    Ok(_) => Some((Ok(chunk.freeze()), Some(file))),
                    Err(e) => Some((Err(e), None)),
                }
            },
        )))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        validate_prefix(prefix)?;
        // Start at the deepest directory the prefix names.
        let start = match prefix.rfind('/') {
            Some(end) => self.root.join(&prefix[..end]),
            None => self.root.clone(),
        };
        let mut found = Vec::new();
        let mut pending = vec![start];
        while let Some(dir) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&format!("listing {}", dir.display()))(e)),
            };
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(io_error(&format!("listing {}", dir.display())))?
            {
                let path = entry.path();
                if path == self.uploads() {
                    continue;
                }
                let kind = entry
                    .file_type()
                    .await
                    .map_err(io_error(&format!("listing {}", dir.display())))?;
                if kind.is_dir() {
                    pending.push(path);
                } else if kind.is_file()
                    && let Some(key) = key_of(&self.root, &path)
                    && key.starts_with(prefix)
                {
                    let size = entry.metadata().await.map(|m| m.len()).unwrap_or(0);
                    found.push(ObjectInfo {
                        key,
                        size,
                        etag: None,
                    });
                }
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn delete(&self, key: &str) -> Result<Deletion, StorageError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(Deletion::Deleted),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Deletion::Absent),
            Err(e) => Err(io_error(&format!("deleting {}", path.display()))(e)),
        }
    }

    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, StorageError> {
        validate_prefix(prefix)?;
        let uploads = self.uploads();
        let mut entries = match tokio::fs::read_dir(&uploads).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&format!("listing {}", uploads.display()))(e)),
        };
        let mut found = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(io_error(&format!("listing {}", uploads.display())))?
        {
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            // An upload that crashed before it wrote its key is found under no prefix but
            // the empty one, with an empty key.
            let key = tokio::fs::read_to_string(entry.path().join("key"))
                .await
                .unwrap_or_default();
            if !key.starts_with(prefix) {
                continue;
            }
            let initiated = entry
                .metadata()
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| Timestamp::try_from(t).ok());
            found.push(PendingUpload {
                key,
                upload_id: id,
                initiated,
            });
        }
        found.sort_by(|a, b| a.key.cmp(&b.key).then(a.upload_id.cmp(&b.upload_id)));
        Ok(found)
    }

    async fn abort_upload(&self, upload: &PendingUpload) -> Result<(), StorageError> {
        let dir = self.upload_dir(&upload.upload_id)?;
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&format!("removing {}", dir.display()))(e)),
        }
    }
}

async fn open(path: &Path, key: &str) -> Result<tokio::fs::File, StorageError> {
    tokio::fs::File::open(path).await.map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            StorageError::NotFound(key.to_owned())
        } else {
            io_error(&format!("opening {}", path.display()))(e)
        }
    })
}
