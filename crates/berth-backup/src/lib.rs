#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

/// The SHA-256 of what a destination stores: the artifact's identity.
mod checksum;
/// Where artifacts go: a local directory and S3-compatible stores.
pub mod destination;
/// Dump and restore commands per engine, as argument arrays with secrets in the environment.
pub mod engine;
/// The errors of this crate, one enum per stage so a report can say which stage failed.
mod error;
/// Format markers: a dump is a dump only if it starts like one.
mod marker;
/// dump → zstd → age → SHA-256 → every destination at once.
pub mod pipeline;
/// An artifact back to an `AsyncWrite`: decrypt, decompress, verify the checksum.
pub mod restore;
/// Which backups to delete, decided from berth's records, never from file names.
pub mod retention;
/// Cron schedules in an IANA time zone.
pub mod schedule;

pub use age::secrecy::{ExposeSecret, SecretString};
pub use checksum::Checksum;
pub use destination::{ArtifactKey, Destination, DestinationResult, LocalDir, S3Config};
pub use engine::{Connection, DbIdent, Engine, ExecCommand, FileIntoVolume, RestoreMethod};
pub use error::{DestinationError, PipelineError, RestoreError, ScheduleError};
pub use marker::FormatMarker;
pub use pipeline::{
    BackupReport, DumpSource, Encryption, PipelineOptions, Target, run_backup,
    run_backup_cancellable,
};
pub use restore::{DecryptionKey, RestoreReport, restore, verify_checksum};
pub use retention::{BackupRecord, RetentionPolicy, plan_deletions};
pub use schedule::{Schedule, TimeZoneName};
