//! Destinations: where an artifact is written, read back and deleted.
//!
//! A destination task receives the artifact as [`Piece`]s over a bounded
//! channel. Nothing becomes visible until [`Piece::Commit`]: a channel that
//! closes without it (a failed dump, a dropped pipeline) aborts the write, so
//! a failure leaves no file and no object behind.

mod local;
mod s3;

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use local::LocalDir;
pub use s3::{DEFAULT_PART_SIZE, S3Config, S3Destination};

use crate::checksum::Checksum;
use crate::error::DestinationError;

/// Where under a destination an artifact lives: `a/b/c.dump.zst.age`.
/// Relative, `/`-separated, no `.`/`..` segments: the same key works as a
/// path under a directory and as an S3 object name under a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArtifactKey(String);

impl ArtifactKey {
    pub fn parse(s: &str) -> Result<Self, DestinationError> {
        let ok = !s.is_empty()
            && s.len() <= 512
            && s.split('/').all(|seg| {
                // No leading '.': no `.`/`..` segment, no hidden file.
                !seg.is_empty()
                    && !seg.starts_with('.')
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(DestinationError::InvalidKey(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArtifactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One place backups go.
#[derive(Debug, Clone)]
pub enum Destination {
    Local(LocalDir),
    S3(S3Destination),
}

/// What happened at one destination: each records its own outcome, so an
/// S3 failure never marks the local copy failed (coolify#6783).
#[derive(Debug)]
pub struct DestinationResult {
    /// The destination's label, as given in its config.
    pub label: String,
    /// A path for a local directory, `s3://bucket/key` for S3.
    pub location: String,
    /// Bytes this destination stored (or had received when it failed).
    pub size: u64,
    pub duration: Duration,
    /// The SHA-256 of the bytes this destination itself wrote.
    pub sha256: Option<Checksum>,
    pub error: Option<DestinationError>,
}

impl DestinationResult {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The next piece, or `None` when the pipeline hung up or the run was cancelled.
pub(crate) async fn next_piece(
    rx: &mut mpsc::Receiver<Piece>,
    cancel: &CancellationToken,
) -> Option<Piece> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => None,
        piece = rx.recv() => piece,
    }
}

/// Why a destination got no commit.
pub(crate) fn stopped(cancel: &CancellationToken) -> DestinationError {
    DestinationError::Aborted(if cancel.is_cancelled() {
        "the backup was cancelled or timed out".into()
    } else {
        "the backup stopped before it was complete".into()
    })
}

pub(crate) enum Piece {
    Data(Bytes),
    /// All data sent and the dump succeeded: make it visible if what was
    /// stored hashes to this.
    Commit(Checksum),
}

/// Counts and hashes what a destination writes, for its own result.
pub(crate) struct Tally {
    started: Instant,
    hasher: Sha256,
    size: u64,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            hasher: Sha256::new(),
            size: 0,
        }
    }

    pub(crate) fn add(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// The checksum, or the mismatch error if it differs from `expected`.
    pub(crate) fn check(&self, expected: &Checksum) -> Result<Checksum, DestinationError> {
        let stored = Checksum::from_hasher(self.hasher.clone());
        if &stored == expected {
            Ok(stored)
        } else {
            Err(DestinationError::ChecksumMismatch {
                stored: stored.to_hex(),
                expected: expected.to_hex(),
            })
        }
    }

    pub(crate) fn result(
        self,
        label: &str,
        location: String,
        outcome: Result<Checksum, DestinationError>,
    ) -> DestinationResult {
        let (sha256, error) = match outcome {
            Ok(sum) => (Some(sum), None),
            Err(e) => (None, Some(e)),
        };
        DestinationResult {
            label: label.to_owned(),
            location,
            size: self.size,
            duration: self.started.elapsed(),
            sha256,
            error,
        }
    }
}

impl Destination {
    pub fn label(&self) -> &str {
        match self {
            Self::Local(d) => d.label(),
            Self::S3(d) => d.label(),
        }
    }

    pub fn location(&self, key: &ArtifactKey) -> String {
        match self {
            Self::Local(d) => d.path_of(key).display().to_string(),
            Self::S3(d) => d.location(key),
        }
    }

    pub(crate) async fn write(
        &self,
        key: &ArtifactKey,
        rx: mpsc::Receiver<Piece>,
        cancel: CancellationToken,
    ) -> DestinationResult {
        match self {
            Self::Local(d) => d.write(key, rx, cancel).await,
            Self::S3(d) => d.write(key, rx, cancel).await,
        }
    }

    /// The stored artifact as a stream, for restores and verification.
    pub async fn open(
        &self,
        key: &ArtifactKey,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>, DestinationError> {
        match self {
            Self::Local(d) => d.open(key).await,
            Self::S3(d) => d.open(key).await,
        }
    }

    /// Deletes an artifact (retention). Deleting one that is already gone succeeds.
    pub async fn delete(&self, key: &ArtifactKey) -> Result<(), DestinationError> {
        match self {
            Self::Local(d) => d.delete(key).await,
            Self::S3(d) => d.delete(key).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ArtifactKey;

    #[test]
    fn artifact_keys_cannot_escape_their_destination() {
        for bad in [
            "",
            "/abs",
            "a//b",
            "../x",
            "a/../b",
            "a/./b",
            "a/.hidden",
            "a b",
            "a\\b",
            "a/b/",
        ] {
            assert!(ArtifactKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ArtifactKey::parse("db/main/2027-01-01T03-00-00Z-42.dump.zst.age").is_ok());
    }
}
