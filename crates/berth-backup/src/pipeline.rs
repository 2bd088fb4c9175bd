//! The backup pipeline: dump → format-marker check → zstd → age → SHA-256 →
//! every destination at once.
//!
//! The CPU work (compression, encryption, hashing) runs on one blocking
//! thread that reads the dump through a sync bridge and hands fixed-size
//! chunks to one bounded channel per destination. Memory is therefore flat:
//! about `chunk_size × (queue_depth + 1)` per destination plus what each
//! destination buffers (an S3 part per upload in flight), whatever the dump's
//! size. The slowest destination sets the pace; a destination that fails
//! drops out and the others go on.

use std::future::Future;
use std::io::{self, Read, Write};
use std::iter;
use std::time::{Duration, Instant};

use age::secrecy::SecretString;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio_util::io::SyncIoBridge;
use tokio_util::sync::CancellationToken;

use crate::checksum::Checksum;
use crate::destination::{ArtifactKey, Destination, DestinationResult, Piece};
use crate::error::{DestinationError, PipelineError};
use crate::marker::FormatMarker;

/// How the artifact is encrypted with age.
#[derive(Clone)]
pub enum Encryption {
    /// age's scrypt recipient. `work_factor` is log2 of scrypt's N (memory
    /// 2^N KiB, once per backup): None is age's default, tuned to about a
    /// second on this machine; tests lower it.
    Passphrase {
        passphrase: SecretString,
        work_factor: Option<u8>,
    },
    /// Post-quantum hybrid public keys (`age1pq1…`), which age 0.13 recommends over X25519; any matching identity decrypts.
    Recipients(Vec<age::pq::Recipient>),
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Passphrase { work_factor, .. } => {
                write!(f, "Passphrase([REDACTED], work_factor: {work_factor:?})")
            }
            Self::Recipients(r) => write!(f, "Recipients({} keys)", r.len()),
        }
    }
}

impl Encryption {
    fn encryptor(&self) -> io::Result<age::Encryptor> {
        match self {
            Self::Passphrase {
                passphrase,
                work_factor,
            } => {
                let mut recipient = age::scrypt::Recipient::new(passphrase.clone());
                if let Some(wf) = work_factor {
                    recipient.set_work_factor(*wf);
                }
                age::Encryptor::with_recipients(iter::once(&recipient as &dyn age::Recipient))
                    .map_err(io::Error::other)
            }
            Self::Recipients(list) => {
                age::Encryptor::with_recipients(list.iter().map(|r| r as &dyn age::Recipient))
                    .map_err(io::Error::other)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// zstd level; 3 is zstd's default, fast enough to keep up with a dump.
    pub zstd_level: i32,
    pub encryption: Option<Encryption>,
    /// Bytes per chunk handed to the destinations.
    pub chunk_size: usize,
    /// Chunks queued per destination before the pipeline waits for it.
    pub queue_depth: usize,
    /// The whole run, dump included; past it the backup fails and every
    /// destination aborts (coolify#3325: runs "in progress" forever).
    pub timeout: Option<Duration>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            zstd_level: 3,
            encryption: None,
            chunk_size: 1024 * 1024,
            queue_depth: 4,
            timeout: Some(Duration::from_secs(6 * 3600)),
        }
    }
}

/// One copy of the artifact: a destination and the key to store it under.
#[derive(Debug, Clone)]
pub struct Target {
    pub destination: Destination,
    pub key: ArtifactKey,
}

/// The dump: its stdout, the future of its exit code, and the marker its
/// output must start with.
pub struct DumpSource<R, F> {
    pub reader: R,
    /// Resolves once the dump has exited; awaited only after its output
    /// ended. On a failure before that the caller must stop the dump itself
    /// (remove its sidecar container): nothing reads its output any more.
    pub exit: F,
    pub marker: FormatMarker,
}

/// The outcome of one backup run.
#[derive(Debug)]
pub struct BackupReport {
    /// Why the run failed as a whole; then no destination holds anything.
    pub error: Option<PipelineError>,
    /// Bytes the dump printed.
    pub dump_bytes: u64,
    /// Bytes of the artifact (compressed, encrypted).
    pub stored_bytes: u64,
    /// SHA-256 of the artifact, as the pipeline produced it.
    pub sha256: Option<Checksum>,
    pub encrypted: bool,
    pub duration: Duration,
    /// One per target, in the order given.
    pub destinations: Vec<DestinationResult>,
}

impl BackupReport {
    /// The dump succeeded and at least one destination holds a good copy.
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.destinations.iter().any(DestinationResult::ok)
    }

    /// …and every destination does.
    pub fn fully_succeeded(&self) -> bool {
        self.error.is_none() && self.destinations.iter().all(DestinationResult::ok)
    }
}

struct Encoded {
    dump_bytes: u64,
    stored_bytes: u64,
    sha256: Checksum,
}

/// Runs one backup: streams `source` to every target, then commits each
/// copy only if the dump's output started with its marker and it exited 0.
pub async fn run_backup<R, F>(
    source: DumpSource<R, F>,
    options: &PipelineOptions,
    targets: &[Target],
) -> BackupReport
where
    R: AsyncRead + Unpin + Send + 'static,
    F: Future<Output = io::Result<i64>>,
{
    run_backup_cancellable(source, options, targets, CancellationToken::new()).await
}

/// [`run_backup`] that stops when `cancel` is cancelled or
/// [`PipelineOptions::timeout`] passes: every destination aborts at once and
/// the report says why. The dump itself is the caller's to stop (Docker
/// cannot kill an exec: run it in a sidecar container and remove that).
pub async fn run_backup_cancellable<R, F>(
    source: DumpSource<R, F>,
    options: &PipelineOptions,
    targets: &[Target],
    cancel: CancellationToken,
) -> BackupReport
where
    R: AsyncRead + Unpin + Send + 'static,
    F: Future<Output = io::Result<i64>>,
{
    let started = Instant::now();
    let encrypted = options.encryption.is_some();
    if targets.is_empty() {
        return BackupReport {
            error: Some(PipelineError::NoDestination),
            dump_bytes: 0,
            stored_bytes: 0,
            sha256: None,
            encrypted,
            duration: started.elapsed(),
            destinations: Vec::new(),
        };
    }
    let mut senders = Vec::with_capacity(targets.len());
    let mut tasks = Vec::with_capacity(targets.len());
    for target in targets {
        let (tx, rx) = mpsc::channel(options.queue_depth.max(1));
        let t = target.clone();
        let c = cancel.clone();
        tasks.push(tokio::spawn(async move {
            t.destination.write(&t.key, rx, c).await
        }));
        senders.push(Some(tx));
    }

    let opts = options.clone();
    let DumpSource {
        reader,
        exit,
        marker,
    } = source;
    let worker_cancel = cancel.clone();
    let worker =
        tokio::task::spawn_blocking(move || encode(reader, marker, &opts, senders, &worker_cancel));

    // Phase 1, interruptible: stream everything and learn the dump's verdict.
    let decide = async {
        let encoded = worker
            .await
            .unwrap_or_else(|e| Err(PipelineError::Worker(e.to_string())));
        match encoded {
            Ok((stats, senders)) => match exit.await {
                Ok(0) => Ok((stats, senders)),
                // Dropping the senders without a commit aborts every copy.
                Ok(code) => Err((PipelineError::DumpExit(code), Some(stats))),
                Err(e) => Err((PipelineError::DumpStatus(e.to_string()), Some(stats))),
            },
            // A dump whose whole output lacked the marker has ended: its exit
            // code (pg_dump's 1 on a refused password) says more than the marker.
            Err(e @ PipelineError::BadMarker { complete: true, .. }) => match exit.await {
                Ok(code) if code != 0 => Err((PipelineError::DumpExit(code), None)),
                _ => Err((e, None)),
            },
            Err(e) => Err((e, None)),
        }
    };
    let stop = async {
        match options.timeout {
            Some(limit) => tokio::select! {
                () = cancel.cancelled() => PipelineError::Cancelled,
                () = tokio::time::sleep(limit) => PipelineError::TimedOut(limit),
            },
            None => {
                cancel.cancelled().await;
                PipelineError::Cancelled
            }
        }
    };
    let decided = tokio::select! {
        d = decide => d,
        e = stop => {
            // Destinations abort on the token; the worker stops at its next read.
            cancel.cancel();
            Err((e, None))
        }
    };

    // Phase 2, not interruptible: a commit once decided goes to every destination.
    let (error, stats) = match decided {
        Ok((stats, senders)) => {
            for tx in senders.into_iter().flatten() {
                // A destination that already failed has hung up; its result says why.
                let _ = tx.send(Piece::Commit(stats.sha256)).await;
            }
            (None, Some(stats))
        }
        Err((e, stats)) => (Some(e), stats),
    };
    let (dump_bytes, stored_bytes, sha256) = stats.map_or((0, 0, None), |s| {
        (s.dump_bytes, s.stored_bytes, Some(s.sha256))
    });

    let mut destinations = Vec::with_capacity(tasks.len());
    for (task, target) in tasks.into_iter().zip(targets) {
        destinations.push(task.await.unwrap_or_else(|e| DestinationResult {
            label: target.destination.label().to_owned(),
            location: target.destination.location(&target.key),
            size: 0,
            duration: started.elapsed(),
            sha256: None,
            error: Some(DestinationError::Aborted(format!(
                "the destination's task failed: {e}"
            ))),
        }));
    }
    if let Some(e) = &error {
        tracing::warn!(backup.error = %e, "backup failed; nothing was kept at any destination");
    }
    BackupReport {
        error,
        dump_bytes,
        stored_bytes,
        sha256,
        encrypted,
        duration: started.elapsed(),
        destinations,
    }
}

/// Marker on the fan-out's error when no destination is left.
#[derive(Debug)]
struct AllDestinationsGone;

impl std::fmt::Display for AllDestinationsGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("every destination failed")
    }
}

impl std::error::Error for AllDestinationsGone {}

fn encode_error(e: io::Error) -> PipelineError {
    if e.get_ref()
        .is_some_and(|inner| inner.is::<AllDestinationsGone>())
    {
        PipelineError::AllDestinationsFailed
    } else {
        PipelineError::Encode(e)
    }
}

type Senders = Vec<Option<mpsc::Sender<Piece>>>;

fn encode<R: AsyncRead + Unpin>(
    reader: R,
    marker: FormatMarker,
    options: &PipelineOptions,
    senders: Senders,
    cancel: &CancellationToken,
) -> Result<(Encoded, Senders), PipelineError> {
    let bridge = SyncIoBridge::new(reader);
    let mut input: Box<dyn Read> = if marker == FormatMarker::Rdb {
        Box::new(RdbEofMarkStrip::new(bridge))
    } else {
        Box::new(bridge)
    };
    let fan = FanOut::new(senders, options.chunk_size.max(4096));
    let sink = match &options.encryption {
        None => Sink::Plain(fan),
        Some(enc) => Sink::Age(
            enc.encryptor()
                .and_then(|e| e.wrap_output(fan))
                .map_err(PipelineError::Encode)?,
        ),
    };
    let mut zstd = zstd::stream::write::Encoder::new(sink, options.zstd_level)
        .map_err(PipelineError::Encode)?;
    // The frame checksum lets a decompressor notice damage even without age.
    zstd.include_checksum(true).map_err(PipelineError::Encode)?;

    let mut buf = vec![0u8; 256 * 1024];
    let mut head: Vec<u8> = Vec::with_capacity(marker.needed());
    let mut checked = false;
    let mut dump_bytes = 0u64;
    loop {
        if cancel.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let n = match input.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PipelineError::DumpRead(e)),
        };
        if n == 0 {
            break;
        }
        dump_bytes += n as u64;
        if checked {
            zstd.write_all(&buf[..n]).map_err(encode_error)?;
            continue;
        }
        // Nothing reaches a destination before the marker is checked.
        head.extend_from_slice(&buf[..n]);
        if head.len() >= marker.needed() {
            check_marker(marker, &head, false)?;
            checked = true;
            zstd.write_all(&head).map_err(encode_error)?;
            head = Vec::new();
        }
    }
    if !checked {
        check_marker(marker, &head, true)?;
        zstd.write_all(&head).map_err(encode_error)?;
    }
    let sink = zstd.finish().map_err(encode_error)?;
    let fan = sink.finish().map_err(encode_error)?;
    let (stored_bytes, sha256, senders) = fan.finish().map_err(encode_error)?;
    Ok((
        Encoded {
            dump_bytes,
            stored_bytes,
            sha256,
        },
        senders,
    ))
}

/// `complete`: `head` is the dump's whole output.
fn check_marker(marker: FormatMarker, head: &[u8], complete: bool) -> Result<(), PipelineError> {
    if marker.matches(head) {
        return Ok(());
    }
    let shown: String = String::from_utf8_lossy(&head[..head.len().min(64)])
        .chars()
        .take(64)
        .collect();
    Err(PipelineError::BadMarker {
        marker,
        shown,
        complete,
    })
}

enum Sink {
    Plain(FanOut),
    Age(age::stream::StreamWriter<FanOut>),
}

impl Sink {
    fn finish(self) -> io::Result<FanOut> {
        match self {
            Self::Plain(f) => Ok(f),
            // Without finish() the age file is truncated and will not decrypt.
            Self::Age(w) => w.finish(),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(f) => f.write(data),
            Self::Age(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(f) => f.flush(),
            Self::Age(w) => w.flush(),
        }
    }
}

/// Hashes the artifact and sends it in chunks to every live destination.
struct FanOut {
    senders: Senders,
    buf: Vec<u8>,
    chunk: usize,
    hasher: Sha256,
    stored: u64,
}

impl FanOut {
    fn new(senders: Senders, chunk: usize) -> Self {
        Self {
            senders,
            buf: Vec::with_capacity(chunk),
            chunk,
            hasher: Sha256::new(),
            stored: 0,
        }
    }

    fn send_chunk(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let bytes = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(self.chunk),
        ));
        self.hasher.update(&bytes);
        self.stored += bytes.len() as u64;
        for slot in &mut self.senders {
            if let Some(tx) = slot
                && tx.blocking_send(Piece::Data(bytes.clone())).is_err()
            {
                // That destination failed and hung up; its own result says why.
                *slot = None;
            }
        }
        if self.senders.iter().all(Option::is_none) {
            return Err(io::Error::other(AllDestinationsGone));
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<(u64, Checksum, Senders)> {
        self.send_chunk()?;
        Ok((
            self.stored,
            Checksum::from_hasher(self.hasher),
            self.senders,
        ))
    }
}

impl Write for FanOut {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.chunk {
            self.send_chunk()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks go out when full or at finish; a flush from zstd or age
        // must not send small pieces (S3 parts have a minimum size anyway).
        Ok(())
    }
}

/// Length of the EOF mark of a diskless Redis/Valkey replication transfer.
const RDB_EOF_MARK: usize = 40;
/// An RDB ends with the EOF opcode 0xFF and an 8-byte checksum.
const RDB_END: usize = 9;

/// `redis-cli --rdb -` of Redis 7.0 (Debian bookworm's) leaves the 40-byte
/// EOF mark of a diskless transfer, the server's default, at the end of its
/// stdout: it cuts the mark off with `ftruncate` only when it writes a file.
/// The RDB is then 40 bytes of hex digits too long. An RDB ends with 0xFF
/// and its 8-byte checksum, so 40 hex digits right after those can only be
/// that mark: this holds back the last 49 bytes of the dump and drops the
/// last 40 at the end when they are. Output that ends otherwise (a disk-based
/// transfer, a redis-cli that strips the mark) passes unchanged.
struct RdbEofMarkStrip<R> {
    inner: R,
    /// Read, not yet passed on; everything but the last `RDB_END + RDB_EOF_MARK` goes on.
    held: Vec<u8>,
    ended: bool,
}

impl<R: Read> RdbEofMarkStrip<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            held: Vec::new(),
            ended: false,
        }
    }
}

fn ends_with_rdb_eof_mark(tail: &[u8]) -> bool {
    let Some(end) = tail.len().checked_sub(RDB_END + RDB_EOF_MARK) else {
        return false;
    };
    tail[end] == 0xFF
        && tail[tail.len() - RDB_EOF_MARK..]
            .iter()
            .all(u8::is_ascii_hexdigit)
}

impl<R: Read> Read for RdbEofMarkStrip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let keep = if self.ended {
                0
            } else {
                RDB_END + RDB_EOF_MARK
            };
            if self.held.len() > keep {
                let n = (self.held.len() - keep).min(buf.len());
                buf[..n].copy_from_slice(&self.held[..n]);
                self.held.drain(..n);
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            let before = self.held.len();
            self.held.resize(before + buf.len().max(4096), 0);
            match self.inner.read(&mut self.held[before..]) {
                Ok(0) => {
                    self.held.truncate(before);
                    self.ended = true;
                    if ends_with_rdb_eof_mark(&self.held) {
                        self.held.truncate(before - RDB_EOF_MARK);
                    }
                }
                Ok(n) => self.held.truncate(before + n),
                Err(e) => {
                    self.held.truncate(before);
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(input: &[u8]) -> Vec<u8> {
        // Small reads, so the held-back tail crosses read boundaries.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(7);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        RdbEofMarkStrip::new(Trickle(input))
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// As Redis 7.0's `redis-cli --rdb -` printed it for a two-key database.
    fn rdb() -> Vec<u8> {
        let mut rdb = b"REDIS0010\xfa\x09redis-ver\x067.0.15".to_vec();
        rdb.extend_from_slice(b"\xfe\x00\xfb\x02\x00\x00\x01b\xc0\x02\x00\x01a\xc0\x01");
        rdb.extend_from_slice(b"\xff\xbe\xd9\x1c\x20\x8e\x9b\xb6\x7c");
        rdb
    }

    #[test]
    fn the_eof_mark_redis_cli_leaves_after_an_rdb_is_dropped() {
        let mut with_mark = rdb();
        with_mark.extend_from_slice(b"d8d9243ba4768e3e06cbc824a135bf7dc4c7d0eb");
        assert_eq!(strip(&with_mark), rdb());
    }

    #[test]
    fn an_rdb_without_the_mark_and_anything_else_pass_unchanged() {
        assert_eq!(strip(&rdb()), rdb());
        let text = b"NOAUTH Authentication required. 0123456789abcdef0123456789abcdef01234567";
        assert_eq!(strip(text), text);
        assert_eq!(strip(b""), b"");
        assert_eq!(strip(b"REDIS"), b"REDIS");
    }
}
