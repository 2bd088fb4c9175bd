use crate::marker::FormatMarker;

/// Why a backup run failed as a whole. A destination's own failure is not
/// here: it is recorded in that destination's [`crate::DestinationResult`]
/// and never fails the others.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("the dump does not start with {}: it printed {shown:?}", marker.describe())]
    BadMarker {
        marker: FormatMarker,
        shown: String,
        /// The dump's output had ended (it was shorter than the marker check needs).
        complete: bool,
    },
    #[error("the dump exited with code {0}")]
    DumpExit(i64),
    #[error("the dump's exit status could not be read: {0}")]
    DumpStatus(String),
    #[error("reading the dump failed: {0}")]
    DumpRead(std::io::Error),
    #[error("compressing or encrypting failed: {0}")]
    Encode(std::io::Error),
    #[error("every destination failed")]
    AllDestinationsFailed,
    #[error("the backup was cancelled")]
    Cancelled,
    #[error("the backup took longer than its time-out of {0:?}")]
    TimedOut(std::time::Duration),
    #[error("no destination was given")]
    NoDestination,
    #[error("the pipeline's worker stopped: {0}")]
    Worker(String),
}

/// One destination's failure, recorded in its result.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("local file {path}: {source}")]
    Local {
        path: String,
        source: std::io::Error,
    },
    #[error("S3: {0}")]
    S3(#[from] object_store::Error),
    /// Reading an opened artifact back failed (from either kind of destination).
    #[error("reading the stored artifact failed: {0}")]
    Read(std::io::Error),
    #[error("S3 configuration: {0}")]
    S3Config(String),
    #[error("aborted: {0}")]
    Aborted(String),
    #[error("the stored bytes hash to {stored}, the pipeline's to {expected}")]
    ChecksumMismatch { stored: String, expected: String },
    #[error("the test object read back differs from what was written")]
    TestReadBack,
    #[error(
        "invalid artifact key {0:?}: use letters, digits, '.', '_', '-' and '/' between non-empty segments"
    )]
    InvalidKey(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("reading the artifact failed: {0}")]
    Source(#[source] DestinationError),
    #[error("the backup is encrypted: a passphrase or identity is needed")]
    NeedsKey,
    #[error("wrong passphrase or key: the backup cannot be decrypted with it")]
    WrongKey,
    #[error("the backup is not an age file or is damaged: {0}")]
    Decrypt(String),
    #[error("the backup is not zstd data (it starts with {0:?})")]
    NotZstd(String),
    #[error("decompressing failed (damaged or truncated backup): {0}")]
    Decompress(std::io::Error),
    #[error("writing the restored stream failed: {0}")]
    Write(std::io::Error),
    #[error("checksum mismatch: the stored bytes hash to {actual}, the record says {expected}")]
    ChecksumMismatch { expected: String, actual: String },
    #[error("the restore worker stopped: {0}")]
    Worker(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("invalid cron expression {expr:?}: {reason}")]
    Cron { expr: String, reason: String },
    #[error("unknown time zone {0:?}: use an IANA name such as Europe/Berlin")]
    TimeZone(String),
    #[error("no run of {0:?} can be found")]
    NoOccurrence(String),
}
