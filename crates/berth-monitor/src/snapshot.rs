//! What one collection tick saw: the server and every container, with
//! cumulative counters (for `/metrics`) and rates over the last interval
//! (for the page and the history).

use std::collections::BTreeMap;

use crate::cgroup::{CgroupVersion, NetDev};
use crate::host::{CpuTimes, DiskSpace, MemInfo};

/// One tick's figures. Shared read-only as `Arc<Snapshot>`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When it was taken (seconds since the epoch).
    pub at: i64,
    /// How the container figures were read on this host.
    pub cgroup: CgroupVersion,
    /// The server.
    pub server: ServerStats,
    /// Every container, running or not.
    pub containers: Vec<ContainerStats>,
    /// What went wrong while collecting (the engine unreachable, …); the
    /// figures that could be read are still there.
    pub problems: Vec<String>,
}

/// The server's figures.
#[derive(Debug, Clone, Default)]
pub struct ServerStats {
    /// Busy share 0–1 of all cores over the last interval.
    pub cpu_busy: Option<f64>,
    /// Busy share 0–1 of each core over the last interval.
    pub core_busy: Vec<Option<f64>>,
    /// Cumulative ticks per mode, all cores.
    pub cpu_times: CpuTimes,
    /// Cumulative ticks per mode, per core.
    pub core_times: Vec<CpuTimes>,
    /// Clock ticks per second (`USER_HZ`), to turn ticks into seconds.
    pub ticks_per_second: u64,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    /// Memory and swap.
    pub memory: MemInfo,
    /// Received and sent bytes per interface (cumulative).
    pub net: Vec<NetDev>,
    /// Bytes per second received, all interfaces.
    pub net_rx_rate: Option<f64>,
    /// Bytes per second sent, all interfaces.
    pub net_tx_rate: Option<f64>,
    /// Space on each real mount.
    pub disks: Vec<DiskSpace>,
    /// Seconds since boot.
    pub uptime_secs: u64,
}

impl ServerStats {
    /// Cores the machine has.
    pub fn cores(&self) -> usize {
        self.core_times.len().max(1)
    }
}

/// Where a container's figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Its cgroup files and `/proc/<pid>/net/dev`.
    Cgroup,
    /// Docker's one-shot stats (the cgroup files could not be read).
    DockerStats,
    /// Nothing: not running, or neither way answered.
    None,
}

/// One container's figures.
#[derive(Debug, Clone)]
pub struct ContainerStats {
    /// Full ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Image as given.
    pub image: String,
    /// `running`, `exited`, …
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or `None` without a health check.
    pub health: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// RFC 3339 time of the last start.
    pub started_at: Option<String>,
    /// Restarts by its restart policy.
    pub restarts: i64,
    /// Whether the last exit was an OOM kill.
    pub oom_killed: bool,
    /// OOM kills counted by the kernel in its cgroup.
    pub oom_kills: Option<u64>,
    /// Where the figures came from.
    pub source: Source,
    /// CPU seconds used since its cgroup was made (a counter).
    pub cpu_seconds: f64,
    /// Cores busy over the last interval.
    pub cpu_cores: Option<f64>,
    /// Its CPU limit in cores.
    pub cpu_limit: Option<f64>,
    /// Memory as `docker stats` shows it.
    pub memory_bytes: u64,
    /// Its memory limit.
    pub memory_limit: Option<u64>,
    /// Cumulative bytes received.
    pub net_rx_bytes: u64,
    /// Cumulative bytes sent.
    pub net_tx_bytes: u64,
    /// Cumulative bytes read from block devices.
    pub blk_read_bytes: u64,
    /// Cumulative bytes written to block devices.
    pub blk_write_bytes: u64,
    /// Bytes per second received over the last interval.
    pub net_rx_rate: Option<f64>,
    /// Bytes per second sent.
    pub net_tx_rate: Option<f64>,
    /// Bytes per second read.
    pub blk_read_rate: Option<f64>,
    /// Bytes per second written.
    pub blk_write_rate: Option<f64>,
    /// Processes and threads.
    pub pids: Option<u64>,
}

impl ContainerStats {
    /// Whether berth made it (`berth.managed=true`).
    pub fn managed(&self) -> bool {
        self.labels.get("berth.managed").map(String::as_str) == Some("true")
    }

    /// A label's value, empty when missing.
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }

    /// CPU as a share 0–1 of its limit (or of the whole machine without one).
    pub fn cpu_of_limit(&self, machine_cores: usize) -> Option<f64> {
        let cores = self.cpu_cores?;
        let limit = self.cpu_limit.unwrap_or(machine_cores as f64);
        (limit > 0.0).then(|| cores / limit)
    }

    /// Memory as a share 0–1 of its limit, `None` without one.
    pub fn memory_of_limit(&self) -> Option<f64> {
        let limit = self.memory_limit.filter(|l| *l > 0)?;
        Some(self.memory_bytes as f64 / limit as f64)
    }
}
