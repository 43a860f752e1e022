//! Restoring a backup: download → size and SHA-256 checked against what the backup
//! recorded → age decryption with the tenant's identity → zstd (when Landlord compressed)
//! → `pg_restore` in one transaction.
//!
//! # Nothing is written before the backup is proven to be the one recorded
//!
//! The recipient of a tenant's backups is public, so anyone who may write to the bucket
//! can put there a valid age file, encrypted to the tenant's key, of a dump of their
//! choosing: decryption succeeding proves nothing about where a file came from. What
//! does is the SHA-256 and size recorded in the TenantBackup's status (and manifest) when
//! Landlord wrote it. [`download_verified`] therefore downloads the whole object first, into
//! a private file (mode 0600 in a directory of mode 0700: ciphertext only, so nothing
//! plaintext touches disk), hashing on the way, and refuses it (`ChecksumMismatch`,
//! `SizeMismatch`) before anything reaches a database. Restoring from that very file
//! also closes the window in which the object could be swapped between a check and a
//! second download.
//!
//! # Nothing is left half-restored
//!
//! `pg_restore --single-transaction --exit-on-error`: a restore that fails (a corrupt
//! stream, a dropped connection, a constraint) rolls back whole. In place, `--clean
//! --if-exists` drops and recreates the tenant's objects inside that same transaction.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::pg_dump::{Compression, DumpSource, PrivateDir, conninfo_as, passfile_line};
use super::pipeline::hex;
use crate::storage::{ObjectStore, StorageError};

/// How much of pg_restore's stderr is kept for the error message.
const STDERR_TAIL: usize = 2048;

/// What the backup recorded of its object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Lowercase hex SHA-256 of the ciphertext.
    pub sha256: String,
    /// Bytes of ciphertext.
    pub size: u64,
}

/// Where the restore goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A new, empty database.
    NewDatabase,
    /// The tenant's own database: its objects are dropped and restored, in one transaction.
    InPlace,
}

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The object could not be read.
    #[error("reading {key}: {source}")]
    Storage {
        key: String,
        #[source]
        source: StorageError,
    },
    /// The object is not the size the backup recorded.
    #[error(
        "{key} is {actual} bytes, but the backup recorded {expected}: it is not the object Landlord wrote (truncated or replaced); nothing was restored"
    )]
    SizeMismatch {
        key: String,
        expected: u64,
        actual: u64,
    },
    /// The object's SHA-256 is not the one the backup recorded.
    #[error(
        "{key} has SHA-256 {actual}, but the backup recorded {expected}: it is not the object Landlord wrote (altered or replaced); nothing was restored"
    )]
    ChecksumMismatch {
        key: String,
        expected: String,
        actual: String,
    },
    /// The private download file could not be written.
    #[error("downloading to a private file: {0}")]
    Download(#[source] std::io::Error),
    /// The identity does not open the object.
    #[error("the tenant's key does not open the backup: {0}")]
    Decrypt(String),
    /// `pg_restore` could not be run.
    #[error("cannot run {binary}: {source}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    /// `pg_restore` failed; its transaction was rolled back.
    #[error("pg_restore failed ({status}), nothing of it was kept: {stderr}")]
    Failed { status: String, stderr: String },
    /// Feeding pg_restore failed (decompression, a broken pipe).
    #[error("{stage}: {source}")]
    Stream {
        stage: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl RestoreError {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            RestoreError::Storage { source, .. } => match source {
                StorageError::NotFound(_) => "BackupObjectMissing",
                other => other.reason(),
            },
            RestoreError::SizeMismatch { .. } => "SizeMismatch",
            RestoreError::ChecksumMismatch { .. } => "ChecksumMismatch",
            RestoreError::Download(_) => "DownloadFailed",
            RestoreError::Decrypt(_) => "DecryptFailed",
            RestoreError::Spawn { .. } => "PgRestoreMissing",
            RestoreError::Failed { .. } | RestoreError::Stream { .. } => "RestoreFailed",
        }
    }
}

/// The object, downloaded and checked, in a private file removed on drop.
pub struct Downloaded {
    path: PathBuf,
    _dir: PrivateDir,
    /// Its size in bytes.
    pub size: u64,
}

impl Downloaded {
    /// Where the ciphertext is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Downloads `key` into a private file, hashing on the way, and refuses it unless its
/// size and SHA-256 are `expected`.
pub async fn download_verified(
    store: &dyn ObjectStore,
    key: &str,
    expected: &Expected,
) -> Result<Downloaded, RestoreError> {
    let dir = PrivateDir::new().map_err(RestoreError::Download)?;
    let path = dir
        .write_file("backup.age", b"")
        .map_err(RestoreError::Download)?;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .await
        .map_err(RestoreError::Download)?;
    let mut body = store
        .get(key)
        .await
        .map_err(|source| RestoreError::Storage {
            key: key.to_owned(),
            source,
        })?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| RestoreError::Storage {
            key: key.to_owned(),
            source: StorageError::Unreachable(format!("the download broke off: {e}")),
        })?;
        size += chunk.len() as u64;
        // Stop at once when the object is longer than recorded: it is not the one.
        if size > expected.size {
            break;
        }
        hasher.update(&chunk);
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
            .await
            .map_err(RestoreError::Download)?;
    }
    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .map_err(RestoreError::Download)?;
    if size != expected.size {
        return Err(RestoreError::SizeMismatch {
            key: key.to_owned(),
            expected: expected.size,
            actual: size,
        });
    }
    let actual = hex(&hasher.finalize());
    if actual != expected.sha256 {
        return Err(RestoreError::ChecksumMismatch {
            key: key.to_owned(),
            expected: expected.sha256.clone(),
            actual,
        });
    }
    Ok(Downloaded {
        path,
        _dir: dir,
        size,
    })
}

/// The dump in `downloaded`: decrypted with `identity` (its header read now, so a wrong
/// key fails here), then decompressed when Landlord compressed it. Streaming.
fn plaintext(
    downloaded: &Downloaded,
    identity: &age::x25519::Identity,
    compression: Compression,
) -> Result<Box<dyn Read>, RestoreError> {
    let file = std::fs::File::open(downloaded.path()).map_err(RestoreError::Download)?;
    let decryptor = age::Decryptor::new_buffered(std::io::BufReader::new(file))
        .map_err(|e| RestoreError::Decrypt(e.to_string()))?;
    let plaintext = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|e| RestoreError::Decrypt(e.to_string()))?;
    Ok(match compression {
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(plaintext).map_err(
            |source| RestoreError::Stream {
                stage: "decompressing",
                source,
            },
        )?),
        Compression::PgDump | Compression::None => Box::new(plaintext),
    })
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// Bytes of dump fed to pg_restore.
    pub dump_size: u64,
}

/// Restores `downloaded` (ciphertext) into `target`, decrypting with `identity`: blocking,
/// run it on a blocking thread. `pg_restore` runs as `target.user`, with the password in
/// a private passfile, never on its command line or in its environment.
pub fn restore_file(
    downloaded: &Downloaded,
    identity: &age::x25519::Identity,
    compression: Compression,
    pg_restore: &Path,
    target: &DumpSource,
    mode: Mode,
) -> Result<Restored, RestoreError> {
    // Decrypting the header first: a wrong key is reported as such, before pg_restore.
    let mut input = plaintext(downloaded, identity, compression)?;

    let dir = PrivateDir::new().map_err(RestoreError::Download)?;
    let passfile = dir
        .write_file("pgpass", passfile_line(target).as_bytes())
        .map_err(RestoreError::Download)?;
    let mut command = Command::new(pg_restore);
    command
        .arg("--no-owner")
        .arg("--no-privileges")
        .arg("--no-password")
        .arg("--exit-on-error")
        .arg("--single-transaction")
        .arg(format!(
            "--dbname={}",
            conninfo_as(target, "landlord-restore")
        ));
    if mode == Mode::InPlace {
        command.arg("--clean").arg("--if-exists");
    }
    let mut child = command
        .env_clear()
        .env("PGPASSFILE", passfile)
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RestoreError::Spawn {
            binary: pg_restore.display().to_string(),
            source,
        })?;
    let stderr = child.stderr.take().map(stderr_tail);
    let fed = child
        .stdin
        .take()
        .ok_or_else(|| RestoreError::Stream {
            stage: "starting pg_restore",
            source: std::io::Error::other("no stdin"),
        })
        .and_then(|mut stdin| {
            let copied = copy(&mut input, &mut stdin);
            drop(stdin);
            copied
        });
    let status = child.wait().map_err(|source| RestoreError::Stream {
        stage: "waiting for pg_restore",
        source,
    })?;
    drop(dir);
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    let failed = RestoreError::Failed {
        status: status.to_string(),
        stderr,
    };
    match fed {
        // pg_restore stopped reading because it failed: its own words are the reason.
        Err(RestoreError::Stream {
            stage: "feeding pg_restore",
            ..
        }) if !status.success() => Err(failed),
        // A stream that failed before its end (a corrupt chunk) is the cause of whatever
        // pg_restore made of the cut-off input, and never passes for a whole one.
        Err(e) => Err(e),
        Ok(_) if !status.success() => Err(failed),
        Ok(dump_size) => Ok(Restored { dump_size }),
    }
}

/// The tables in the dump's table of contents (`pg_restore --list`), as (schema, name):
/// what a restore drill expects to find in the restored database. Blocking.
pub fn list_tables(
    downloaded: &Downloaded,
    identity: &age::x25519::Identity,
    compression: Compression,
    pg_restore: &Path,
) -> Result<Vec<(String, String)>, RestoreError> {
    let mut input = plaintext(downloaded, identity, compression)?;
    let mut child = Command::new(pg_restore)
        .arg("--list")
        .env_clear()
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RestoreError::Spawn {
            binary: pg_restore.display().to_string(),
            source,
        })?;
    let mut stdout = child.stdout.take().ok_or_else(|| RestoreError::Stream {
        stage: "starting pg_restore --list",
        source: std::io::Error::other("no stdout"),
    })?;
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stdout.read_to_string(&mut all);
        all
    });
    let stderr = child.stderr.take().map(stderr_tail);
    let fed = child
        .stdin
        .take()
        .ok_or_else(|| RestoreError::Stream {
            stage: "starting pg_restore --list",
            source: std::io::Error::other("no stdin"),
        })
        .and_then(|mut stdin| copy(&mut input, &mut stdin));
    let status = child.wait().map_err(|source| RestoreError::Stream {
        stage: "waiting for pg_restore --list",
        source,
    })?;
    let listing = reader.join().unwrap_or_default();
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if !status.success() {
        return Err(RestoreError::Failed {
            status: status.to_string(),
            stderr,
        });
    }
    match fed {
        // `--list` reads the table of contents at the head of the archive and exits: the
        // rest of a dump larger than the pipe's buffer is never read, and writing it fails.
        // The whole stream was read (and its hash checked) by the download and the restore.
        Err(RestoreError::Stream {
            stage: "feeding pg_restore",
            source,
        }) if source.kind() == std::io::ErrorKind::BrokenPipe => {}
        fed => {
            fed?;
        }
    }
    Ok(parse_table_list(&listing))
}

/// The `TABLE` entries of a `pg_restore --list` listing: `id; oid oid TABLE schema name owner`.
pub fn parse_table_list(listing: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .filter(|l| !l.trim_start().starts_with(';'))
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "TABLE")?;
            // "TABLE DATA" entries are the rows of a table listed already.
            if words.get(at + 1) == Some(&"DATA") {
                return None;
            }
            Some((
                words.get(at + 1)?.to_string(),
                words.get(at + 2)?.to_string(),
            ))
        })
        .collect()
}

/// Reads a child's stderr on a thread; its end is kept for the error message.
fn stderr_tail(mut err: std::process::ChildStderr) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = err.read_to_end(&mut all);
        let start = all.len().saturating_sub(STDERR_TAIL);
        String::from_utf8_lossy(&all[start..]).trim().to_owned()
    })
}

fn copy(input: &mut dyn Read, output: &mut dyn Write) -> Result<u64, RestoreError> {
    let mut buffer = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(RestoreError::Stream {
                    stage: "decrypting and decompressing",
                    source,
                });
            }
        };
        output
            .write_all(&buffer[..n])
            .map_err(|source| RestoreError::Stream {
                stage: "feeding pg_restore",
                source,
            })?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_read_from_the_listing() {
        let listing = ";\n; Archive created at 2026-12-01 18:00:00 UTC\n;\n\
            215; 1259 16386 TABLE public customers tenant_acme\n\
            216; 1259 16390 TABLE billing invoices tenant_acme\n\
            3310; 0 16386 TABLE DATA public customers tenant_acme\n\
            3162; 2606 16393 CONSTRAINT public customers customers_pkey tenant_acme\n";
        assert_eq!(
            parse_table_list(listing),
            [
                ("public".to_owned(), "customers".to_owned()),
                ("billing".to_owned(), "invoices".to_owned())
            ]
        );
    }
}
