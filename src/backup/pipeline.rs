//! The backup stream: `pg_dump` → zstd → age → SHA-256, in bounded memory, without
//! plaintext on disk.
//!
//! [`encrypt_dump`] runs `pg_dump` as the tenant (see [`super::pg_dump`]) and, on a
//! blocking thread (compression and encryption are CPU work), feeds its output through
//! multi-threaded zstd (unless pg_dump compresses itself) into an age encryptor with
//! exactly one recipient, the tenant key. The ciphertext is hashed on the way and handed
//! out in chunks of a fixed size through a channel of capacity one, so the producer waits
//! for the consumer (the multipart upload): memory holds about three chunks and the
//! compressor's window, whatever the database's size.
//!
//! The stream's last item is an error if anything failed (pg_dump's exit status included):
//! a consumer that reaches the end of the stream without an error may trust it, and
//! [`Encrypted::finish`] then gives the size and SHA-256 of exactly what was streamed.

use std::io::{Read, Write};

use bytes::Bytes;
use futures::Stream;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::pg_dump::{Compression, DumpError, DumpSource, PgDump, PrivateDir, command};

/// The default size of a streamed chunk. The S3 store gathers chunks into parts of its
/// own size (S3 wants at least 5 MiB for every part but the last), so a chunk need not be
/// a part: about three chunks are in memory at once, and 1 MiB keeps them small (with
/// 8 MiB chunks the benchmark's peak RSS was 13–20 MiB higher, see BENCHMARKS.md).
pub const DEFAULT_CHUNK: usize = 1 << 20;

/// How many threads zstd compresses with.
const ZSTD_THREADS: u32 = 2;

/// zstd's level: 1 is what makes compression keep up with pg_dump (see BENCHMARKS.md).
const ZSTD_LEVEL: i32 = 1;

/// How much of pg_dump's stderr is kept for the error message.
const STDERR_TAIL: usize = 2048;

/// Why the backup stream failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Running pg_dump failed.
    #[error(transparent)]
    Dump(#[from] DumpError),
    /// Reading pg_dump's output, compressing or encrypting failed.
    #[error("{stage}: {source}")]
    Io {
        stage: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The consumer stopped reading (the upload failed or was cancelled).
    #[error("the upload stopped reading the backup stream")]
    Cancelled,
    /// The blocking thread died.
    #[error("the backup thread panicked")]
    Panicked,
}

impl PipelineError {
    /// Stable short category.
    pub fn category(&self) -> &'static str {
        match self {
            PipelineError::Dump(e) => e.category(),
            PipelineError::Io { .. } => "backup_stream_failed",
            PipelineError::Cancelled => "backup_cancelled",
            PipelineError::Panicked => "backup_panicked",
        }
    }

    fn io(stage: &'static str) -> impl FnOnce(std::io::Error) -> PipelineError {
        move |source| PipelineError::Io { stage, source }
    }
}

/// What was streamed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Bytes of ciphertext.
    pub size: u64,
    /// Lowercase hex SHA-256 of the ciphertext.
    pub sha256: String,
    /// Bytes pg_dump wrote (before Landlord's compression).
    pub dump_size: u64,
    /// The pg_dump that made it, e.g. `15.10`.
    pub pg_dump_version: String,
    /// How it is compressed.
    pub compression: Compression,
}

/// A backup being streamed.
pub struct Encrypted {
    chunks: mpsc::Receiver<Result<Bytes, PipelineError>>,
    done: tokio::task::JoinHandle<Result<Summary, PipelineError>>,
}

impl Encrypted {
    /// The ciphertext, chunk by chunk; an error is always the last item.
    pub fn chunks(&mut self) -> impl Stream<Item = Result<Bytes, PipelineError>> + Send + '_ {
        futures::stream::poll_fn(|cx| self.chunks.poll_recv(cx))
    }

    /// Waits for the producer and returns what it streamed. Call it after the stream has
    /// ended (or been dropped, which cancels the dump).
    pub async fn finish(self) -> Result<Summary, PipelineError> {
        drop(self.chunks);
        self.done.await.map_err(|_| PipelineError::Panicked)?
    }

    /// The ciphertext as an owned stream of I/O results (what an [`ObjectStore`] upload
    /// takes), and the producer to [`Producer::finish`] once the upload has ended. A
    /// failure of the dump is the stream's last item, so the upload aborts on it.
    ///
    /// [`ObjectStore`]: crate::storage::ObjectStore
    pub fn into_parts(self) -> (crate::storage::ByteStream, Producer) {
        let stream = futures::stream::unfold(self.chunks, |mut chunks| async move {
            let item = chunks.recv().await?;
            Some((item.map_err(std::io::Error::other), chunks))
        });
        (Box::pin(stream), Producer { done: self.done })
    }
}

/// The producing side of [`Encrypted::into_parts`].
pub struct Producer {
    done: tokio::task::JoinHandle<Result<Summary, PipelineError>>,
}

impl Producer {
    /// Waits for the producer and returns what it streamed (or why it failed). Call it
    /// after the upload has ended; a dropped stream cancels the dump.
    pub async fn finish(self) -> Result<Summary, PipelineError> {
        self.done.await.map_err(|_| PipelineError::Panicked)?
    }
}

/// Hashes, counts and cuts the ciphertext into chunks for the channel.
struct ChunkSink {
    hasher: Sha256,
    size: u64,
    buffer: Vec<u8>,
    chunk: usize,
    tx: mpsc::Sender<Result<Bytes, PipelineError>>,
}

impl ChunkSink {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.chunk));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = self.chunk - self.buffer.len();
        let taken = &data[..data.len().min(room)];
        self.hasher.update(taken);
        self.size += taken.len() as u64;
        self.buffer.extend_from_slice(taken);
        if self.buffer.len() >= self.chunk {
            self.send()?;
        }
        Ok(taken.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts the dump of `source` with `pg_dump`, encrypted to `recipient` only, in chunks
/// of `chunk` bytes.
pub fn encrypt_dump(
    pg_dump: PgDump,
    source: DumpSource,
    recipient: age::x25519::Recipient,
    compression: Compression,
    chunk: usize,
) -> Encrypted {
    let (tx, chunks) = mpsc::channel(1);
    let errors = tx.clone();
    let done = tokio::task::spawn_blocking(move || {
        let result = run(&pg_dump, &source, &recipient, compression, chunk.max(1), tx);
        if let Err(e) = &result {
            // The consumer learns of the failure in the stream itself, so it never takes
            // a truncated stream for a whole one.
            let _ = errors.blocking_send(Err(PipelineError::Io {
                stage: "backup",
                source: std::io::Error::other(e.to_string()),
            }));
        }
        result
    });
    Encrypted { chunks, done }
}

fn run(
    pg_dump: &PgDump,
    source: &DumpSource,
    recipient: &age::x25519::Recipient,
    compression: Compression,
    chunk: usize,
    tx: mpsc::Sender<Result<Bytes, PipelineError>>,
) -> Result<Summary, PipelineError> {
    let dir = PrivateDir::new().map_err(|e| PipelineError::Dump(DumpError::PassFile(e)))?;
    let mut child = command(pg_dump, source, compression, &dir)?
        .spawn()
        .map_err(|source| DumpError::Spawn {
            binary: pg_dump.binary.display().to_string(),
            source,
        })?;
    let stderr = child.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = err.read_to_end(&mut all);
            let start = all.len().saturating_sub(STDERR_TAIL);
            String::from_utf8_lossy(&all[start..]).trim().to_owned()
        })
    });
    let streamed = child
        .stdout
        .take()
        .ok_or_else(|| PipelineError::Io {
            stage: "reading pg_dump",
            source: std::io::Error::other("no stdout"),
        })
        .and_then(|stdout| stream(stdout, recipient, compression, chunk, tx.clone()));
    if streamed.is_err() {
        // Stop pg_dump: nobody reads its output any more.
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(PipelineError::io("waiting for pg_dump"))?;
    drop(dir);
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    // When the stream failed, pg_dump was killed above: its exit status then says nothing
    // of the dump, and the stream's error (the upload stopped, compression failed) is the
    // cause. A failing pg_dump closes its output, which ends the stream without an error.
    let (sink, dump_size) = streamed?;
    if !status.success() {
        return Err(DumpError::Failed {
            status: status.to_string(),
            stderr,
        }
        .into());
    }
    let size = sink.size;
    let sha256 = hex(&sink.hasher.finalize());
    Ok(Summary {
        size,
        sha256,
        dump_size,
        pg_dump_version: pg_dump.version.clone(),
        compression,
    })
}

/// Copies `input` through compression and encryption into the sink; returns the sink
/// (with its last chunk sent) and how many bytes were read.
fn stream(
    mut input: impl Read,
    recipient: &age::x25519::Recipient,
    compression: Compression,
    chunk: usize,
    tx: mpsc::Sender<Result<Bytes, PipelineError>>,
) -> Result<(ChunkSink, u64), PipelineError> {
    let sink = ChunkSink {
        hasher: Sha256::new(),
        size: 0,
        buffer: Vec::with_capacity(chunk),
        chunk,
        tx,
    };
    let recipients: [&dyn age::Recipient; 1] = [recipient];
    let encryptor =
        age::Encryptor::with_recipients(recipients.into_iter()).map_err(|e| PipelineError::Io {
            stage: "encrypting",
            source: std::io::Error::other(e.to_string()),
        })?;
    let encrypting = encryptor
        .wrap_output(sink)
        .map_err(PipelineError::io("encrypting"))?;
    let (encrypting, read) = match compression {
        Compression::Zstd => {
            let mut zstd = zstd::stream::write::Encoder::new(encrypting, ZSTD_LEVEL)
                .map_err(PipelineError::io("compressing"))?;
            zstd.multithread(ZSTD_THREADS)
                .map_err(PipelineError::io("compressing"))?;
            let read = copy(&mut input, &mut zstd)?;
            (
                zstd.finish().map_err(PipelineError::io("compressing"))?,
                read,
            )
        }
        Compression::PgDump | Compression::None => {
            let mut encrypting = encrypting;
            let read = copy(&mut input, &mut encrypting)?;
            (encrypting, read)
        }
    };
    let mut sink = encrypting
        .finish()
        .map_err(PipelineError::io("encrypting"))?;
    sink.send().map_err(|_| PipelineError::Cancelled)?;
    Ok((sink, read))
}

fn copy(input: &mut impl Read, output: &mut impl Write) -> Result<u64, PipelineError> {
    let mut buffer = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PipelineError::io("reading pg_dump")(e)),
        };
        output.write_all(&buffer[..n]).map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                PipelineError::Cancelled
            } else {
                PipelineError::io("compressing and encrypting")(e)
            }
        })?;
        total += n as u64;
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_cut_at_the_size_and_hashed_whole() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut sink = ChunkSink {
            hasher: Sha256::new(),
            size: 0,
            buffer: Vec::new(),
            chunk: 4,
            tx,
        };
        sink.write_all(b"abcdefghij").unwrap();
        sink.send().unwrap();
        let mut chunks = Vec::new();
        while let Ok(Ok(c)) = rx.try_recv() {
            chunks.push(c);
        }
        assert_eq!(chunks, [&b"abcd"[..], b"efgh", b"ij"]);
        assert_eq!(sink.size, 10);
        assert_eq!(
            hex(&sink.hasher.finalize()),
            hex(&Sha256::digest(b"abcdefghij"))
        );
    }

    #[test]
    fn a_stopped_consumer_stops_the_producer() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut sink = ChunkSink {
            hasher: Sha256::new(),
            size: 0,
            buffer: Vec::new(),
            chunk: 2,
            tx,
        };
        let e = sink.write_all(b"abcd").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn the_stream_decrypts_and_decompresses_to_the_input() {
        let identity = age::x25519::Identity::generate();
        let input: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for compression in [Compression::Zstd, Compression::None] {
            let (tx, mut rx) = mpsc::channel(1024);
            let (sink, read) =
                stream(&input[..], &identity.to_public(), compression, 1 << 16, tx).unwrap();
            assert_eq!(read, input.len() as u64);
            let mut ciphertext = Vec::new();
            while let Ok(Ok(c)) = rx.try_recv() {
                ciphertext.extend_from_slice(&c);
            }
            assert_eq!(ciphertext.len() as u64, sink.size);
            let decryptor = age::Decryptor::new(&ciphertext[..]).unwrap();
            let mut plain = Vec::new();
            decryptor
                .decrypt(std::iter::once(&identity as &dyn age::Identity))
                .unwrap()
                .read_to_end(&mut plain)
                .unwrap();
            let plain = match compression {
                Compression::Zstd => zstd::stream::decode_all(&plain[..]).unwrap(),
                _ => plain,
            };
            assert_eq!(plain, input, "{compression:?}");
        }
    }
}
