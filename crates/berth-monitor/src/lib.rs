#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

/// A container's figures from its cgroup files (v1 and v2) and network namespace.
pub mod cgroup;
/// SVG geometry for history charts.
pub mod chart;
/// The collector task and the monitor handle.
mod collector;
/// Human figures: bytes, rates, cores, durations.
pub mod format;
/// The server's figures from `/proc` and `statvfs`.
pub mod host;
/// The Prometheus text exposition of the latest snapshot.
pub mod prometheus;
/// What one tick saw.
mod snapshot;

pub use berth_store::metrics::Scope;
pub use collector::{DEFAULT_INTERVAL, MAX_INTERVAL, MIN_INTERVAL, Monitor, MonitorConfig};
pub use snapshot::{ContainerStats, ServerStats, Snapshot, Source};

/// The one error enum of monitoring.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The history could not be read or written.
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    /// The engine did not answer.
    #[error(transparent)]
    Docker(#[from] berth_docker::DockerError),
}

/// The spans a chart covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// The last hour (raw points).
    Hour,
    /// The last 24 hours (raw points, bucketed).
    Day,
    /// The last 7 days (1-minute rollups, bucketed).
    Week,
    /// The last 30 days (1-hour rollups, bucketed).
    Month,
}

impl Range {
    /// Every range, shortest first.
    pub const ALL: [Range; 4] = [Range::Hour, Range::Day, Range::Week, Range::Month];

    /// `1h`, `24h`, `7d`, `30d`: the name in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
        }
    }

    /// The range named in a URL; `None` for anything else.
    pub fn parse(s: &str) -> Option<Range> {
        Range::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Its length in seconds.
    pub fn secs(self) -> i64 {
        match self {
            Range::Hour => 3600,
            Range::Day => 24 * 3600,
            Range::Week => 7 * 24 * 3600,
            Range::Month => 30 * 24 * 3600,
        }
    }

    /// The bucket width that keeps a chart at most [`chart::MAX_POINTS`]
    /// buckets wide (one more bucket than fits can appear at the edges,
    /// hence the one spare).
    pub fn bucket_secs(self) -> i64 {
        let max = chart::MAX_POINTS as i64 - 1;
        (self.secs() + max - 1) / max
    }
}

/// One metric's history over a range.
#[derive(Debug, Clone)]
pub struct Series {
    /// Start of the range (seconds since the epoch).
    pub from: i64,
    /// End of the range.
    pub to: i64,
    /// The bucket width asked for (the tier may round it up).
    pub bucket_secs: i64,
    /// The buckets that hold data, oldest first.
    pub buckets: Vec<berth_store::metrics::Bucket>,
}
