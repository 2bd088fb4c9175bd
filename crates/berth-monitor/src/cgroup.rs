//! A container's figures straight from its cgroup files and its network
//! namespace: no request to the engine, a few small file reads.
//!
//! cgroup v1 (one hierarchy per controller, as with Docker's cgroupfs driver
//! on older hosts) and v2 (one unified hierarchy) name their files
//! differently; both are parsed here into [`CgroupSample`].

use std::io;
use std::path::{Path, PathBuf};

/// Which cgroup hierarchy the host mounts at the cgroup root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// One directory per controller (`cpuacct/`, `memory/`, `blkio/`, `pids/`).
    V1,
    /// One unified tree (`cgroup.controllers` at the root).
    V2,
}

impl CgroupVersion {
    /// v2 when the root holds `cgroup.controllers`, else v1.
    pub fn detect(cgroup_root: &Path) -> CgroupVersion {
        if cgroup_root.join("cgroup.controllers").exists() {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        }
    }
}

/// Where a process's cgroup files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupPaths {
    /// One directory per controller.
    V1 {
        /// `cpuacct.usage`.
        cpuacct: PathBuf,
        /// `memory.usage_in_bytes`, `memory.stat`, …
        memory: PathBuf,
        /// `blkio.throttle.io_service_bytes_recursive`.
        blkio: Option<PathBuf>,
        /// `pids.current`.
        pids: Option<PathBuf>,
    },
    /// The one directory of the unified tree.
    V2(PathBuf),
}

/// Cumulative counters and gauges of one container at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CgroupSample {
    /// CPU time used, in nanoseconds (a counter; resets when the cgroup is
    /// recreated).
    pub cpu_ns: u64,
    /// Memory as `docker stats` shows it: usage minus inactive file cache.
    pub memory_bytes: u64,
    /// The cgroup's memory limit, `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// OOM kills inside the cgroup (`None` where the kernel does not count them).
    pub oom_kills: Option<u64>,
    /// Bytes read from block devices.
    pub blk_read_bytes: u64,
    /// Bytes written to block devices.
    pub blk_write_bytes: u64,
    /// Processes and threads.
    pub pids: Option<u64>,
}

/// Limits above this mean "unlimited" in v1 (the kernel reports
/// `PAGE_COUNTER_MAX` pages rounded, about 2^63).
const V1_UNLIMITED: u64 = 1 << 62;

/// Finds the cgroup directories of `pid` from `/proc/<pid>/cgroup`.
pub fn paths_of(
    proc_root: &Path,
    cgroup_root: &Path,
    version: CgroupVersion,
    pid: u32,
) -> io::Result<CgroupPaths> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup"))?;
    parse_paths(&text, cgroup_root, version).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no usable cgroup in /proc/{pid}/cgroup"),
        )
    })
}

/// `/proc/<pid>/cgroup` lines are `id:controllers:path`; v2 has only `0::path`.
pub fn parse_paths(text: &str, cgroup_root: &Path, version: CgroupVersion) -> Option<CgroupPaths> {
    let join = |base: &str, path: &str| cgroup_root.join(base).join(path.trim_start_matches('/'));
    match version {
        CgroupVersion::V2 => text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(|path| CgroupPaths::V2(cgroup_root.join(path.trim_start_matches('/')))),
        CgroupVersion::V1 => {
            let mut cpuacct = None;
            let mut memory = None;
            let mut blkio = None;
            let mut pids = None;
            for line in text.lines() {
                let mut parts = line.splitn(3, ':');
                let (Some(_), Some(controllers), Some(path)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                // A hierarchy may join controllers (`cpu,cpuacct`); its
                // directory is then named after the joined list.
                for controller in controllers.split(',') {
                    let dir = Some(join(controllers, path));
                    match controller {
                        "cpuacct" => cpuacct = dir,
                        "memory" => memory = dir,
                        "blkio" => blkio = dir,
                        "pids" => pids = dir,
                        _ => {}
                    }
                }
            }
            Some(CgroupPaths::V1 {
                cpuacct: cpuacct?,
                memory: memory?,
                blkio,
                pids,
            })
        }
    }
}

impl CgroupPaths {
    /// Reads the files. CPU and memory must be readable; block I/O, pids and
    /// OOM kills are best effort (a kernel without them leaves zero/`None`).
    pub fn read(&self) -> io::Result<CgroupSample> {
        match self {
            CgroupPaths::V1 {
                cpuacct,
                memory,
                blkio,
                pids,
            } => {
                let cpu_ns = read_u64(&cpuacct.join("cpuacct.usage"))?;
                let usage = read_u64(&memory.join("memory.usage_in_bytes"))?;
                let stat = std::fs::read_to_string(memory.join("memory.stat"))?;
                let inactive = flat_key(&stat, "total_inactive_file").unwrap_or(0);
                let limit = read_u64(&memory.join("memory.limit_in_bytes"))
                    .ok()
                    .filter(|l| *l < V1_UNLIMITED);
                let oom_kills = std::fs::read_to_string(memory.join("memory.oom_control"))
                    .ok()
                    .and_then(|t| flat_key(&t, "oom_kill"));
                let (blk_read_bytes, blk_write_bytes) = blkio
                    .as_ref()
                    .and_then(|dir| {
                        std::fs::read_to_string(
                            dir.join("blkio.throttle.io_service_bytes_recursive"),
                        )
                        .ok()
                    })
                    .map(|t| parse_blkio_v1(&t))
                    .unwrap_or((0, 0));
                Ok(CgroupSample {
                    cpu_ns,
                    memory_bytes: usage.saturating_sub(inactive),
                    memory_limit: limit,
                    oom_kills,
                    blk_read_bytes,
                    blk_write_bytes,
                    pids: pids
                        .as_ref()
                        .and_then(|d| read_u64(&d.join("pids.current")).ok()),
                })
            }
            CgroupPaths::V2(dir) => {
                let cpu_stat = std::fs::read_to_string(dir.join("cpu.stat"))?;
                let usage = read_u64(&dir.join("memory.current"))?;
                let stat = std::fs::read_to_string(dir.join("memory.stat"))?;
                let (blk_read_bytes, blk_write_bytes) =
                    std::fs::read_to_string(dir.join("io.stat"))
                        .map(|t| parse_io_stat_v2(&t))
                        .unwrap_or((0, 0));
                Ok(CgroupSample {
                    cpu_ns: flat_key(&cpu_stat, "usage_usec").unwrap_or(0) * 1000,
                    memory_bytes: usage
                        .saturating_sub(flat_key(&stat, "inactive_file").unwrap_or(0)),
                    memory_limit: std::fs::read_to_string(dir.join("memory.max"))
                        .ok()
                        .and_then(|t| parse_v2_max(&t)),
                    oom_kills: std::fs::read_to_string(dir.join("memory.events"))
                        .ok()
                        .and_then(|t| flat_key(&t, "oom_kill")),
                    blk_read_bytes,
                    blk_write_bytes,
                    pids: read_u64(&dir.join("pids.current")).ok(),
                })
            }
        }
    }
}

fn read_u64(path: &Path) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a number", path.display()),
        )
    })
}

/// The value of `key` in a `key value` per line file (`memory.stat`,
/// `cpu.stat`, `memory.events`, `memory.oom_control`).
pub fn flat_key(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// `memory.max`: a number, or `max` for unlimited.
pub fn parse_v2_max(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// v1 `blkio.throttle.io_service_bytes_recursive`: `maj:min Read 123` lines
/// and a `Total` line; sums reads and writes over devices.
pub fn parse_blkio_v1(text: &str) -> (u64, u64) {
    let (mut read, mut write) = (0, 0);
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(_dev), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let value: u64 = value.parse().unwrap_or(0);
        match op {
            "Read" => read += value,
            "Write" => write += value,
            _ => {}
        }
    }
    (read, write)
}

/// v2 `io.stat`: `maj:min rbytes=1 wbytes=2 rios=3 …` per device.
pub fn parse_io_stat_v2(text: &str) -> (u64, u64) {
    let (mut read, mut write) = (0, 0);
    for field in text.split_whitespace() {
        if let Some(v) = field.strip_prefix("rbytes=") {
            read += v.parse().unwrap_or(0);
        } else if let Some(v) = field.strip_prefix("wbytes=") {
            write += v.parse().unwrap_or(0);
        }
    }
    (read, write)
}

/// Received and sent bytes over every interface but loopback, from a
/// `/proc/<pid>/net/dev` (the container's network namespace).
pub fn read_net(proc_root: &Path, pid: u32) -> io::Result<(u64, u64)> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("net/dev"))?;
    Ok(sum_net_dev(&parse_net_dev(&text), |name| name != "lo"))
}

/// One interface of `/proc/net/dev`: name, received bytes, sent bytes.
pub type NetDev = (String, u64, u64);

/// `/proc/net/dev`: two header lines, then `iface: rx_bytes … (8 fields) tx_bytes …`.
pub fn parse_net_dev(text: &str) -> Vec<NetDev> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let fields: Vec<u64> = rest
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            Some((name.trim().to_owned(), *fields.first()?, *fields.get(8)?))
        })
        .collect()
}

/// Sums received and sent bytes over the interfaces `keep` accepts.
pub fn sum_net_dev(devs: &[NetDev], keep: impl Fn(&str) -> bool) -> (u64, u64) {
    devs.iter()
        .filter(|(name, _, _)| keep(name))
        .fold((0, 0), |(rx, tx), (_, r, t)| (rx + r, tx + t))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real files, copied from a Debian 12 host with Docker 20.10 (v1,
    // cgroupfs) and from a Debian 13 host with Docker 28 (v2, systemd).
    const PROC_CGROUP_V1: &str = "\
12:hugetlb:/docker/dce16695401f
9:name=systemd:/docker/dce16695401f
8:pids:/docker/dce16695401f
7:blkio:/docker/dce16695401f
4:memory:/docker/dce16695401f
2:cpu,cpuacct:/docker/dce16695401f
0::/docker/dce16695401f
";
    const PROC_CGROUP_V2: &str = "0::/system.slice/docker-4f1c2a.scope\n";
    const CPU_STAT_V2: &str = "\
usage_usec 2513467
user_usec 1904212
system_usec 609255
core_sched.force_idle_usec 0
nr_periods 0
nr_throttled 0
throttled_usec 0
nr_bursts 0
burst_usec 0
";
    const MEMORY_STAT_V2: &str = "\
anon 4096000
file 20480000
kernel 991232
kernel_stack 32768
pagetables 65536
sock 0
shmem 0
file_mapped 1294336
file_dirty 0
file_writeback 0
inactive_anon 4050944
active_anon 45056
inactive_file 16384000
active_file 4096000
unevictable 0
";
    const MEMORY_EVENTS_V2: &str = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
    const IO_STAT_V2: &str = "\
8:0 rbytes=1048576 wbytes=4096 rios=12 wios=1 dbytes=0 dios=0
259:0 rbytes=512 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0
";
    const BLKIO_V1: &str = "\
8:0 Read 2097152
8:0 Write 65536
8:0 Sync 2162688
8:0 Async 0
8:0 Discard 0
8:0 Total 2162688
Total 2162688
";
    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:     290       3    0    0    0     0          0         0       42       1    0    0    0     0       0          0
";

    #[test]
    fn v1_paths_come_from_each_controllers_line_including_joined_ones() {
        let root = Path::new("/sys/fs/cgroup");
        let paths = parse_paths(PROC_CGROUP_V1, root, CgroupVersion::V1).unwrap();
        assert_eq!(
            paths,
            CgroupPaths::V1 {
                cpuacct: "/sys/fs/cgroup/cpu,cpuacct/docker/dce16695401f".into(),
                memory: "/sys/fs/cgroup/memory/docker/dce16695401f".into(),
                blkio: Some("/sys/fs/cgroup/blkio/docker/dce16695401f".into()),
                pids: Some("/sys/fs/cgroup/pids/docker/dce16695401f".into()),
            }
        );
        // Without a memory hierarchy there is nothing to read.
        assert_eq!(parse_paths("2:cpuacct:/x\n", root, CgroupVersion::V1), None);
    }

    #[test]
    fn v2_path_is_the_unified_line() {
        let paths = parse_paths(
            PROC_CGROUP_V2,
            Path::new("/sys/fs/cgroup"),
            CgroupVersion::V2,
        );
        assert_eq!(
            paths,
            Some(CgroupPaths::V2(
                "/sys/fs/cgroup/system.slice/docker-4f1c2a.scope".into()
            ))
        );
    }

    #[test]
    fn v2_files_parse_into_a_sample_like_docker_stats() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("cpu.stat", CPU_STAT_V2);
        write("memory.current", "25567232\n");
        write("memory.stat", MEMORY_STAT_V2);
        write("memory.max", "max\n");
        write("memory.events", MEMORY_EVENTS_V2);
        write("io.stat", IO_STAT_V2);
        write("pids.current", "3\n");
        let sample = CgroupPaths::V2(dir.path().to_owned()).read().unwrap();
        assert_eq!(
            sample,
            CgroupSample {
                cpu_ns: 2_513_467_000,
                memory_bytes: 25_567_232 - 16_384_000,
                memory_limit: None,
                oom_kills: Some(1),
                blk_read_bytes: 1_049_088,
                blk_write_bytes: 12_288,
                pids: Some(3),
            }
        );
        write("memory.max", "67108864\n");
        let sample = CgroupPaths::V2(dir.path().to_owned()).read().unwrap();
        assert_eq!(sample.memory_limit, Some(64 << 20));
    }

    #[test]
    fn v1_files_parse_into_a_sample_and_a_huge_limit_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let sub = |name: &str| {
            let d = dir.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        let (cpu, mem, blk) = (sub("cpuacct"), sub("memory"), sub("blkio"));
        std::fs::write(cpu.join("cpuacct.usage"), "82040113\n").unwrap();
        std::fs::write(mem.join("memory.usage_in_bytes"), "2232320\n").unwrap();
        std::fs::write(
            mem.join("memory.stat"),
            "cache 1605632\nrss 57344\ninactive_file 1605632\ntotal_cache 1605632\ntotal_inactive_file 1605632\n",
        )
        .unwrap();
        std::fs::write(mem.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        std::fs::write(
            mem.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        std::fs::write(
            blk.join("blkio.throttle.io_service_bytes_recursive"),
            BLKIO_V1,
        )
        .unwrap();
        let paths = CgroupPaths::V1 {
            cpuacct: cpu,
            memory: mem,
            blkio: Some(blk),
            pids: None,
        };
        let sample = paths.read().unwrap();
        assert_eq!(
            sample,
            CgroupSample {
                cpu_ns: 82_040_113,
                memory_bytes: 2_232_320 - 1_605_632,
                memory_limit: None,
                oom_kills: Some(2),
                blk_read_bytes: 2_097_152,
                blk_write_bytes: 65_536,
                pids: None,
            }
        );
    }

    #[test]
    fn net_dev_sums_every_interface_but_loopback() {
        let devs = parse_net_dev(NET_DEV);
        assert_eq!(devs.len(), 2);
        assert_eq!(sum_net_dev(&devs, |n| n != "lo"), (290, 42));
    }

    #[test]
    fn a_missing_cgroup_file_is_an_error_not_a_zero() {
        let paths = CgroupPaths::V2("/nonexistent/berth-cgroup".into());
        assert!(paths.read().is_err());
    }
}
