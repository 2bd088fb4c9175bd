//! The server's own figures from `/proc` and `statvfs`.

use std::io;
use std::path::Path;

use crate::cgroup::{NetDev, parse_net_dev};

/// The modes of a `/proc/stat` CPU line, in its order (node_exporter's names).
pub const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// Cumulative CPU time of one line of `/proc/stat`, in clock ticks per mode
/// ([`CPU_MODES`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes(pub [u64; 8]);

impl CpuTimes {
    /// Ticks spent working: everything but idle and iowait.
    pub fn busy(&self) -> u64 {
        self.total() - self.0[3] - self.0[4]
    }

    /// Every tick.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The busy share (0–1) between `earlier` and `self`; `None` when no time passed
    /// or the counters went back.
    pub fn busy_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total().checked_sub(earlier.total())?;
        let busy = self.busy().checked_sub(earlier.busy())?;
        (total > 0).then(|| (busy as f64 / total as f64).clamp(0.0, 1.0))
    }
}

/// `/proc/stat`'s `cpu` line (all cores) and one `cpuN` line per core.
pub fn parse_proc_stat(text: &str) -> (CpuTimes, Vec<CpuTimes>) {
    let mut total = CpuTimes::default();
    let mut cores = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let (label, fields) = rest.split_once(' ').unwrap_or((rest, ""));
        // Guest time is already inside user; the two guest columns are skipped.
        let mut times = CpuTimes::default();
        for (slot, field) in times.0.iter_mut().zip(fields.split_whitespace()) {
            *slot = field.parse().unwrap_or(0);
        }
        if label.is_empty() {
            total = times;
        } else {
            cores.push(times);
        }
    }
    (total, cores)
}

/// Memory and swap from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total: u64,
    /// `MemAvailable`: what can be had without swapping.
    pub available: u64,
    /// `SwapTotal`.
    pub swap_total: u64,
    /// `SwapFree`.
    pub swap_free: u64,
}

impl MemInfo {
    /// Used memory as `free` counts it for humans: total minus available.
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }

    /// Swap in use.
    pub fn swap_used(&self) -> u64 {
        self.swap_total.saturating_sub(self.swap_free)
    }
}

/// `/proc/meminfo` lines are `Key:   123 kB`.
pub fn parse_meminfo(text: &str) -> MemInfo {
    let mut m = MemInfo::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let kb: u64 = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bytes = kb * 1024;
        match key {
            "MemTotal" => m.total = bytes,
            "MemAvailable" => m.available = bytes,
            "SwapTotal" => m.swap_total = bytes,
            "SwapFree" => m.swap_free = bytes,
            _ => {}
        }
    }
    m
}

/// `/proc/loadavg`: the 1, 5 and 15 minute load averages.
pub fn parse_loadavg(text: &str) -> [f64; 3] {
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// `/proc/uptime`: seconds since boot.
pub fn parse_uptime(text: &str) -> u64 {
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |s| s as u64)
}

/// The server's traffic: every interface but loopback and Docker's own
/// bridges and veth pairs, whose traffic is the containers' and would count
/// twice.
pub fn read_host_net(proc_root: &Path) -> io::Result<Vec<NetDev>> {
    let text = std::fs::read_to_string(proc_root.join("net/dev"))?;
    let mut devs = parse_net_dev(&text);
    devs.retain(|(name, _, _)| is_host_interface(name));
    Ok(devs)
}

fn is_host_interface(name: &str) -> bool {
    !(name == "lo"
        || name.starts_with("veth")
        || name.starts_with("docker")
        || name.starts_with("br-"))
}

/// One mounted filesystem's space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpace {
    /// Where it is mounted.
    pub mount: String,
    /// The device or source (`/dev/sda1`).
    pub device: String,
    /// The filesystem type.
    pub fs_type: String,
    /// Size in bytes.
    pub total: u64,
    /// Used bytes (total minus free).
    pub used: u64,
    /// Bytes an unprivileged user can still write.
    pub available: u64,
}

impl DiskSpace {
    /// Used share 0–1 of what users can have (as `df` computes Use%).
    pub fn used_ratio(&self) -> f64 {
        let usable = self.used + self.available;
        if usable == 0 {
            0.0
        } else {
            self.used as f64 / usable as f64
        }
    }
}

/// Filesystems that hold data on a disk; pseudo and overlay mounts are left out.
const REAL_FS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "vfat", "exfat", "ntfs", "ntfs3", "jfs",
    "reiserfs", "bcachefs",
];

/// Real mounts from `/proc/mounts` (`device mount type options 0 0`), the
/// first mount of each device only (bind mounts repeat it).
pub fn parse_mounts(text: &str) -> Vec<(String, String, String)> {
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (device, mount, fs_type) = (f.next()?, f.next()?, f.next()?);
            (REAL_FS.contains(&fs_type) && seen.insert(device.to_owned())).then(|| {
                (
                    device.to_owned(),
                    // /proc/mounts escapes spaces as \040.
                    mount.replace("\\040", " "),
                    fs_type.to_owned(),
                )
            })
        })
        .collect()
}

/// Space on each real mount; a mount `statvfs` cannot read is left out.
pub fn read_disks(proc_root: &Path) -> io::Result<Vec<DiskSpace>> {
    let text = std::fs::read_to_string(proc_root.join("mounts"))?;
    Ok(parse_mounts(&text)
        .into_iter()
        .filter_map(|(device, mount, fs_type)| {
            let st = rustix::fs::statvfs(mount.as_str()).ok()?;
            let block = st.f_frsize.max(1);
            let total = st.f_blocks * block;
            let free = st.f_bfree * block;
            Some(DiskSpace {
                mount,
                device,
                fs_type,
                total,
                used: total.saturating_sub(free),
                available: st.f_bavail * block,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_gives_total_and_per_core_busy_shares() {
        let before = "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\ncpu1 50 0 50 400 0 0 0 0 0 0\nintr 1\n";
        let after = "cpu  200 0 200 900 0 0 0 0 0 0\ncpu0 150 0 100 400 0 0 0 0 0 0\ncpu1 50 0 50 500 0 0 0 0 0 0\nintr 1\n";
        let (t0, c0) = parse_proc_stat(before);
        let (t1, c1) = parse_proc_stat(after);
        assert_eq!(c0.len(), 2);
        assert_eq!(t1.busy_since(&t0), Some(200.0 / 300.0));
        assert_eq!(c1[0].busy_since(&c0[0]), Some(1.0));
        assert_eq!(c1[1].busy_since(&c0[1]), Some(0.0));
        // Counters that went back (another boot) give no figure.
        assert_eq!(t0.busy_since(&t1), None);
    }

    #[test]
    fn meminfo_load_and_uptime_parse() {
        let m = parse_meminfo(
            "MemTotal:        8000 kB\nMemFree:         1000 kB\nMemAvailable:    6000 kB\nSwapTotal:       2000 kB\nSwapFree:        1500 kB\n",
        );
        assert_eq!(m.used(), 2000 * 1024);
        assert_eq!(m.swap_used(), 500 * 1024);
        assert_eq!(
            parse_loadavg("0.52 0.40 0.33 2/345 6789\n"),
            [0.52, 0.40, 0.33]
        );
        assert_eq!(parse_uptime("12345.67 23456.78\n"), 12345);
    }

    #[test]
    fn only_real_filesystems_count_once_per_device() {
        let mounts = "\
/dev/sda1 / ext4 rw,relatime 0 0
proc /proc proc rw 0 0
overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0
/dev/sda1 /var/lib/docker ext4 rw 0 0
/dev/sdb1 /mnt/my\\040data xfs rw 0 0
tmpfs /run tmpfs rw 0 0
";
        let m = parse_mounts(mounts);
        assert_eq!(
            m,
            vec![
                ("/dev/sda1".into(), "/".into(), "ext4".into()),
                ("/dev/sdb1".into(), "/mnt/my data".into(), "xfs".into()),
            ]
        );
    }

    #[test]
    fn host_traffic_leaves_out_docker_bridges_and_veths() {
        for name in ["lo", "docker0", "br-1a2b", "veth12ab"] {
            assert!(!is_host_interface(name), "{name}");
        }
        assert!(is_host_interface("eth0"));
        assert!(is_host_interface("ens3"));
    }
}
