//! The collector: one task, one tick every interval. A tick lists the
//! containers (one request), inspects only the ones that are new, changed
//! state or were last inspected a while ago, reads every running one's
//! cgroup files in one blocking job, asks Docker's one-shot stats (at most
//! four at a time) only for those whose files could not be read, and stores
//! the rates in the history.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use berth_docker::{
    ContainerRuntime, ContainerState, DiskUsage, DockerClient, OneShotStats, ProcessInfo,
};
use berth_store::Store;
use berth_store::metrics::{self as history, Scope};
use futures_util::{StreamExt, stream};

use crate::cgroup::{self, CgroupPaths, CgroupSample, CgroupVersion};
use crate::host;
use crate::snapshot::{ContainerStats, ServerStats, Snapshot, Source};
use crate::{MonitorError, Range, Series};

/// Where the collector reads from and how often.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Time between ticks (5–60 s; 10 s by default).
    pub interval: Duration,
    /// `/proc` (another root in tests).
    pub proc_root: PathBuf,
    /// `/sys/fs/cgroup`.
    pub cgroup_root: PathBuf,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            interval: DEFAULT_INTERVAL,
            proc_root: "/proc".into(),
            cgroup_root: "/sys/fs/cgroup".into(),
        }
    }
}

/// The interval unless `--metrics-interval` says otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// The shortest interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);
/// The longest interval accepted.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// Docker's one-shot stats in flight at once, at most.
const STATS_CONCURRENCY: usize = 4;
/// Inspects in flight at once, at most.
const INSPECT_CONCURRENCY: usize = 4;
/// A container's restarts and OOM flag are refreshed this often even when
/// nothing else says it changed.
const REINSPECT_AFTER: Duration = Duration::from_secs(30);
/// `system df` walks every layer: asked at most this often.
const DOCKER_DF_EVERY: Duration = Duration::from_secs(300);

/// The monitor: collects, keeps the latest snapshot, answers history.
/// Cheap to clone.
#[derive(Clone)]
pub struct Monitor {
    inner: Arc<Inner>,
}

struct Inner {
    docker: DockerClient,
    store: Store,
    config: MonitorConfig,
    version: CgroupVersion,
    ticks_per_second: u64,
    latest: RwLock<Option<Arc<Snapshot>>>,
    state: tokio::sync::Mutex<State>,
    docker_df: Mutex<Option<(Instant, DiskUsage)>>,
}

/// What the collector remembers between ticks.
#[derive(Default)]
struct State {
    tracked: HashMap<String, Tracked>,
    previous_host: Option<HostCounters>,
    series: HashMap<(Scope, String, &'static str), i64>,
    last_minute: Option<i64>,
}

struct Tracked {
    runtime: Option<ContainerRuntime>,
    inspected: Instant,
    /// Its files could not be read with the pid we have: inspect again.
    stale: bool,
    state: ContainerState,
    paths: Option<(u32, CgroupPaths)>,
    previous: Option<Counters>,
}

/// A container's counters at one instant, to compute rates against.
#[derive(Debug, Clone, Copy)]
struct Counters {
    at: Instant,
    cpu_ns: u64,
    net_rx: u64,
    net_tx: u64,
    blk_read: u64,
    blk_write: u64,
}

#[derive(Debug, Clone)]
struct HostCounters {
    at: Instant,
    cpu: host::CpuTimes,
    cores: Vec<host::CpuTimes>,
    net_rx: u64,
    net_tx: u64,
}

/// A container's ID, its pid, and its cgroup paths with what they said.
type ContainerReading = (String, u32, std::io::Result<(CgroupPaths, Reading)>);

/// What a container's files said, and when they were read (rates divide
/// by the time between readings, not between ticks).
struct Reading {
    at: Instant,
    sample: CgroupSample,
    net: (u64, u64),
}

impl Monitor {
    /// Prepares the monitor; reads nothing yet.
    pub fn new(docker: DockerClient, store: Store, config: MonitorConfig) -> Monitor {
        let version = CgroupVersion::detect(&config.cgroup_root);
        Monitor {
            inner: Arc::new(Inner {
                docker,
                store,
                version,
                ticks_per_second: rustix::param::clock_ticks_per_second().max(1),
                config,
                latest: RwLock::new(None),
                state: tokio::sync::Mutex::new(State::default()),
                docker_df: Mutex::new(None),
            }),
        }
    }

    /// The interval between ticks.
    pub fn interval(&self) -> Duration {
        self.inner.config.interval
    }

    /// The store the history lives in.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The last snapshot taken, `None` before the first tick.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.inner
            .latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Ticks every interval until `stop` completes. A tick that takes longer
    /// than the interval makes the next one wait (no burst of catch-up ticks).
    pub async fn run(&self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut ticker = tokio::time::interval(self.interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = ticker.tick() => {}
            }
            if let Err(err) = self.tick().await {
                tracing::warn!(error = %err, "could not store the collected metrics");
            }
        }
    }

    /// One tick: collects, keeps the snapshot, stores the history, rolls up
    /// and prunes once a minute.
    pub async fn tick(&self) -> Result<Arc<Snapshot>, MonitorError> {
        let mut state = self.inner.state.lock().await;
        let snapshot = Arc::new(self.collect_with(&mut state).await);
        *self.inner.latest.write().unwrap_or_else(|e| e.into_inner()) = Some(snapshot.clone());
        self.store_points(&mut state, &snapshot).await?;
        Ok(snapshot)
    }

    /// Collects a snapshot without storing it (benchmarks; the first call
    /// has no rates, having nothing to compare with).
    pub async fn collect(&self) -> Arc<Snapshot> {
        let mut state = self.inner.state.lock().await;
        let snapshot = Arc::new(self.collect_with(&mut state).await);
        *self.inner.latest.write().unwrap_or_else(|e| e.into_inner()) = Some(snapshot.clone());
        snapshot
    }

    async fn collect_with(&self, state: &mut State) -> Snapshot {
        let mut problems = Vec::new();
        let config = &self.inner.config;
        let now = Instant::now();
        let at = berth_store::now();

        let summaries = match self.inner.docker.container_summaries().await {
            Ok(list) => list,
            Err(err) => {
                problems.push(format!("cannot list the containers: {err}"));
                Vec::new()
            }
        };
        let present: std::collections::HashSet<&str> =
            summaries.iter().map(|s| s.id.as_str()).collect();
        state.tracked.retain(|id, _| present.contains(id.as_str()));

        // Inspect what is new, changed state or is due.
        // Owned IDs: a stream of borrowed summaries would make this future
        // not `Send` for axum handlers that collect on demand.
        let due: Vec<String> = summaries
            .iter()
            .filter(|s| match state.tracked.get(&s.id) {
                None => true,
                // A stopped container's restarts and OOM flag cannot change
                // until its state does.
                Some(t) => {
                    t.stale
                        || t.state != s.state
                        || (s.state.is_running()
                            && now.duration_since(t.inspected) > REINSPECT_AFTER)
                }
            })
            .map(|s| s.id.clone())
            .collect();
        let docker = &self.inner.docker;
        let inspected: Vec<(String, Option<ContainerRuntime>)> = stream::iter(due)
            .map(|id| async move {
                let runtime = docker.container_runtime(&id).await.unwrap_or_else(|err| {
                    tracing::debug!(container.id = %id, error = %err, "inspect failed");
                    None
                });
                (id, runtime)
            })
            .buffer_unordered(INSPECT_CONCURRENCY)
            .collect()
            .await;
        for (id, runtime) in inspected {
            let state_now = summaries
                .iter()
                .find(|s| s.id == id)
                .map(|s| s.state.clone())
                .unwrap_or(ContainerState::Unknown(String::new()));
            let entry = state.tracked.entry(id).or_insert_with(|| Tracked {
                runtime: None,
                inspected: now,
                stale: false,
                state: state_now.clone(),
                paths: None,
                previous: None,
            });
            entry.runtime = runtime;
            entry.inspected = now;
            entry.stale = false;
            entry.state = state_now;
        }

        // The cgroup files of every running container, in one blocking job.
        let mut jobs: Vec<(String, u32, Option<CgroupPaths>)> = Vec::new();
        for s in &summaries {
            let Some(t) = state.tracked.get(&s.id) else {
                continue;
            };
            let Some(pid) = t.runtime.as_ref().and_then(|r| r.pid) else {
                continue;
            };
            if !s.state.is_running() {
                continue;
            }
            let paths = t
                .paths
                .as_ref()
                .filter(|(p, _)| *p == pid)
                .map(|(_, paths)| paths.clone());
            jobs.push((s.id.clone(), pid, paths));
        }
        let (proc_root, cgroup_root, version) = (
            config.proc_root.clone(),
            config.cgroup_root.clone(),
            self.inner.version,
        );
        let host_root = proc_root.clone();
        let (readings, host_reading) = tokio::task::spawn_blocking(move || {
            let readings: Vec<ContainerReading> = jobs
                .into_iter()
                .map(|(id, pid, paths)| {
                    let read = || -> std::io::Result<(CgroupPaths, Reading)> {
                        let paths = match paths {
                            Some(p) => p,
                            None => cgroup::paths_of(&proc_root, &cgroup_root, version, pid)?,
                        };
                        let at = Instant::now();
                        let sample = paths.read()?;
                        let net = cgroup::read_net(&proc_root, pid)?;
                        Ok((paths, Reading { at, sample, net }))
                    };
                    (id, pid, read())
                })
                .collect();
            (readings, read_host(&host_root).map(|h| (Instant::now(), h)))
        })
        .await
        .unwrap_or_else(|e| {
            problems.push(format!("the collector's reader failed: {e}"));
            (Vec::new(), Err(std::io::Error::other("reader failed")))
        });

        let mut read_ok: HashMap<String, Reading> = HashMap::new();
        let mut fallback: Vec<String> = Vec::new();
        for (id, pid, result) in readings {
            match result {
                Ok((paths, reading)) => {
                    if let Some(t) = state.tracked.get_mut(&id) {
                        t.paths = Some((pid, paths));
                    }
                    read_ok.insert(id, reading);
                }
                Err(err) => {
                    tracing::debug!(container.id = %id, error = %err, "cgroup files unreadable; asking Docker");
                    if let Some(t) = state.tracked.get_mut(&id) {
                        // The pid may be stale (a restart): inspect again next tick.
                        t.paths = None;
                        t.stale = true;
                    }
                    fallback.push(id);
                }
            }
        }
        let stats: HashMap<String, (Instant, OneShotStats)> = stream::iter(fallback)
            .map(|id| async move {
                let stats = docker.one_shot_stats(&id).await.ok().flatten();
                (id, stats.map(|s| (Instant::now(), s)))
            })
            .buffer_unordered(STATS_CONCURRENCY)
            .filter_map(|(id, s)| async move { s.map(|s| (id, s)) })
            .collect()
            .await;

        let server = match host_reading {
            Ok((read_at, h)) => self.server_stats(state, h, read_at),
            Err(err) => {
                problems.push(format!("cannot read the server's figures: {err}"));
                ServerStats::default()
            }
        };

        let mut containers = Vec::with_capacity(summaries.len());
        for s in summaries {
            let Some(t) = state.tracked.get_mut(&s.id) else {
                continue;
            };
            let runtime = t.runtime.clone();
            let mut c = ContainerStats {
                id: s.id.clone(),
                name: s.name,
                image: s.image,
                state: s.state.as_str().to_owned(),
                health: s.health,
                labels: s.labels,
                started_at: runtime.as_ref().and_then(|r| r.started_at.clone()),
                restarts: runtime.as_ref().map_or(0, |r| r.restart_count),
                oom_killed: runtime.as_ref().is_some_and(|r| r.oom_killed),
                oom_kills: None,
                source: Source::None,
                cpu_seconds: 0.0,
                cpu_cores: None,
                cpu_limit: runtime.as_ref().and_then(|r| r.cpu_limit),
                memory_bytes: 0,
                memory_limit: runtime.as_ref().and_then(|r| r.memory_limit),
                net_rx_bytes: 0,
                net_tx_bytes: 0,
                blk_read_bytes: 0,
                blk_write_bytes: 0,
                net_rx_rate: None,
                net_tx_rate: None,
                blk_read_rate: None,
                blk_write_rate: None,
                pids: None,
            };
            let counters = if let Some(r) = read_ok.remove(&s.id) {
                c.source = Source::Cgroup;
                c.memory_bytes = r.sample.memory_bytes;
                c.memory_limit = r.sample.memory_limit.or(c.memory_limit);
                c.oom_kills = r.sample.oom_kills;
                c.pids = r.sample.pids;
                Some(Counters {
                    at: r.at,
                    cpu_ns: r.sample.cpu_ns,
                    net_rx: r.net.0,
                    net_tx: r.net.1,
                    blk_read: r.sample.blk_read_bytes,
                    blk_write: r.sample.blk_write_bytes,
                })
            } else if let Some((read_at, st)) = stats.get(&s.id) {
                c.source = Source::DockerStats;
                c.memory_bytes = st.memory_bytes;
                c.pids = st.pids;
                Some(Counters {
                    at: *read_at,
                    cpu_ns: st.cpu_ns,
                    net_rx: st.net_rx_bytes,
                    net_tx: st.net_tx_bytes,
                    blk_read: st.blk_read_bytes,
                    blk_write: st.blk_write_bytes,
                })
            } else {
                None
            };
            match counters {
                Some(now_counters) => {
                    c.cpu_seconds = now_counters.cpu_ns as f64 / 1e9;
                    c.net_rx_bytes = now_counters.net_rx;
                    c.net_tx_bytes = now_counters.net_tx;
                    c.blk_read_bytes = now_counters.blk_read;
                    c.blk_write_bytes = now_counters.blk_write;
                    if let Some(before) = t.previous {
                        let secs = now_counters.at.duration_since(before.at).as_secs_f64();
                        c.cpu_cores = rate(before.cpu_ns, now_counters.cpu_ns, secs * 1e9);
                        c.net_rx_rate = rate(before.net_rx, now_counters.net_rx, secs);
                        c.net_tx_rate = rate(before.net_tx, now_counters.net_tx, secs);
                        c.blk_read_rate = rate(before.blk_read, now_counters.blk_read, secs);
                        c.blk_write_rate = rate(before.blk_write, now_counters.blk_write, secs);
                    }
                    t.previous = Some(now_counters);
                }
                None => t.previous = None,
            }
            containers.push(c);
        }

        Snapshot {
            at,
            cgroup: self.inner.version,
            server,
            containers,
            problems,
        }
    }

    fn server_stats(&self, state: &mut State, h: HostReading, now: Instant) -> ServerStats {
        let net_rx: u64 = h.net.iter().map(|d| d.1).sum();
        let net_tx: u64 = h.net.iter().map(|d| d.2).sum();
        let mut s = ServerStats {
            cpu_busy: None,
            core_busy: vec![None; h.cores.len()],
            cpu_times: h.cpu,
            core_times: h.cores.clone(),
            ticks_per_second: self.inner.ticks_per_second,
            load: h.load,
            memory: h.memory,
            net: h.net,
            net_rx_rate: None,
            net_tx_rate: None,
            disks: h.disks,
            uptime_secs: h.uptime,
        };
        if let Some(before) = &state.previous_host {
            let secs = now.duration_since(before.at).as_secs_f64();
            s.cpu_busy = h.cpu.busy_since(&before.cpu);
            s.core_busy = h
                .cores
                .iter()
                .enumerate()
                .map(|(i, c)| before.cores.get(i).and_then(|b| c.busy_since(b)))
                .collect();
            s.net_rx_rate = rate(before.net_rx, net_rx, secs);
            s.net_tx_rate = rate(before.net_tx, net_tx, secs);
        }
        state.previous_host = Some(HostCounters {
            at: now,
            cpu: h.cpu,
            cores: h.cores,
            net_rx,
            net_tx,
        });
        s
    }

    async fn store_points(&self, state: &mut State, snap: &Snapshot) -> Result<(), MonitorError> {
        let store = &self.inner.store;
        let mut wanted: Vec<(Scope, String, &'static str, Option<f64>)> = Vec::new();
        let server = &snap.server;
        wanted.push((Scope::Server, String::new(), "cpu", server.cpu_busy));
        wanted.push((Scope::Server, String::new(), "load1", Some(server.load[0])));
        wanted.push((
            Scope::Server,
            String::new(),
            "memory",
            Some(server.memory.used() as f64),
        ));
        wanted.push((
            Scope::Server,
            String::new(),
            "swap",
            Some(server.memory.swap_used() as f64),
        ));
        wanted.push((Scope::Server, String::new(), "net_rx", server.net_rx_rate));
        wanted.push((Scope::Server, String::new(), "net_tx", server.net_tx_rate));
        for d in &server.disks {
            wanted.push((
                Scope::Server,
                d.mount.clone(),
                "disk_used",
                Some(d.used as f64),
            ));
        }
        for c in &snap.containers {
            if c.source == Source::None {
                continue;
            }
            let name = &c.name;
            wanted.push((Scope::Container, name.clone(), "cpu", c.cpu_cores));
            wanted.push((
                Scope::Container,
                name.clone(),
                "memory",
                Some(c.memory_bytes as f64),
            ));
            wanted.push((Scope::Container, name.clone(), "net_rx", c.net_rx_rate));
            wanted.push((Scope::Container, name.clone(), "net_tx", c.net_tx_rate));
            wanted.push((Scope::Container, name.clone(), "blk_read", c.blk_read_rate));
            wanted.push((
                Scope::Container,
                name.clone(),
                "blk_write",
                c.blk_write_rate,
            ));
        }
        let mut points = Vec::with_capacity(wanted.len());
        for (scope, target, metric, value) in wanted {
            let Some(value) = value else { continue };
            let key = (scope, target, metric);
            let id = match state.series.get(&key) {
                Some(id) => *id,
                None => {
                    let id = history::series_id(store, scope, &key.1, metric).await?;
                    state.series.insert(key, id);
                    id
                }
            };
            points.push((id, value));
        }
        history::record(store, snap.at, &points).await?;
        let minute = snap.at - snap.at.rem_euclid(60);
        if let Some(last) = state.last_minute
            && last != minute
        {
            // The previous minute is complete: fold it into its hour, and
            // drop what is past retention.
            history::roll_up_hour(store, last).await?;
            let pruned = history::prune(store, snap.at).await?;
            if pruned.series > 0 {
                // Some series are gone with their last rows: look ids up again.
                state.series.clear();
            }
        }
        state.last_minute = Some(minute);
        Ok(())
    }

    /// The history of one metric over `range` ending now, at most
    /// [`crate::chart::MAX_POINTS`] buckets; empty when nothing was recorded.
    pub async fn history(
        &self,
        scope: Scope,
        target: &str,
        metric: &str,
        range: Range,
    ) -> Result<Series, MonitorError> {
        let to = berth_store::now() + 1;
        let from = to - range.secs();
        let store = &self.inner.store;
        let Some(id) = history::find_series(store, scope, target, metric).await? else {
            return Ok(Series {
                from,
                to,
                bucket_secs: range.bucket_secs(),
                buckets: Vec::new(),
            });
        };
        let buckets = history::history(store, id, from, to, range.bucket_secs()).await?;
        Ok(Series {
            from,
            to,
            bucket_secs: range.bucket_secs(),
            buckets,
        })
    }

    /// Docker's own disk use (images, containers, volumes, build cache),
    /// asked at most every five minutes.
    pub async fn docker_disk(&self) -> Option<DiskUsage> {
        {
            let cached = self
                .inner
                .docker_df
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some((at, usage)) = *cached
                && at.elapsed() < DOCKER_DF_EVERY
            {
                return Some(usage);
            }
        }
        match self.inner.docker.disk_usage().await {
            Ok(usage) => {
                *self
                    .inner
                    .docker_df
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), usage));
                Some(usage)
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not read Docker's disk usage");
                None
            }
        }
    }

    /// The processes inside containers (`docker top`), four requests at a
    /// time, by container ID; a container that does not answer is left out.
    pub async fn processes(&self, ids: &[String]) -> HashMap<String, Vec<ProcessInfo>> {
        let docker = &self.inner.docker;
        stream::iter(ids.iter().cloned())
            .map(|id| async move {
                let top =
                    tokio::time::timeout(Duration::from_secs(5), docker.container_processes(&id))
                        .await;
                (id, top)
            })
            .buffer_unordered(STATS_CONCURRENCY)
            .filter_map(|(id, top)| async move {
                match top {
                    Ok(Ok(list)) => Some((id, list)),
                    _ => None,
                }
            })
            .collect()
            .await
    }
}

/// Per-second rate of a counter; `None` when it went back (a restart made a
/// new cgroup: that sample is the new baseline) or no time passed.
fn rate(before: u64, now: u64, per: f64) -> Option<f64> {
    let delta = now.checked_sub(before)?;
    (per > 0.0).then(|| delta as f64 / per)
}

struct HostReading {
    cpu: host::CpuTimes,
    cores: Vec<host::CpuTimes>,
    load: [f64; 3],
    memory: host::MemInfo,
    net: Vec<cgroup::NetDev>,
    disks: Vec<host::DiskSpace>,
    uptime: u64,
}

fn read_host(proc_root: &std::path::Path) -> std::io::Result<HostReading> {
    let read = |name: &str| std::fs::read_to_string(proc_root.join(name));
    let (cpu, cores) = host::parse_proc_stat(&read("stat")?);
    Ok(HostReading {
        cpu,
        cores,
        load: host::parse_loadavg(&read("loadavg")?),
        memory: host::parse_meminfo(&read("meminfo")?),
        net: host::read_host_net(proc_root).unwrap_or_default(),
        disks: host::read_disks(proc_root).unwrap_or_default(),
        uptime: host::parse_uptime(&read("uptime")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_that_went_back_gives_no_rate_and_becomes_the_baseline() {
        assert_eq!(rate(100, 300, 2.0), Some(100.0));
        assert_eq!(rate(300, 100, 2.0), None);
        assert_eq!(rate(100, 100, 0.0), None);
    }
}
