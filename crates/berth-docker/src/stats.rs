//! What monitoring asks the engine: a cheap list of every container, the
//! runtime facts of one (pid, limits, restarts, OOM), one-shot stats as the
//! fallback when cgroup files cannot be read, and the processes inside.
//!
//! Never a stats stream: `one_shot_stats` asks with `stream=false` and
//! `one-shot=true`, one sample, so the engine does not wait for a second one
//! (about 2 s per container, moby#40437).

use std::collections::BTreeMap;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, StatsOptionsBuilder, TopOptionsBuilder,
};
use futures_util::StreamExt;

use crate::containers::{ContainerState, container_ref};
use crate::{DockerClient, DockerError};

/// One line of `docker ps -a`: enough to know what exists, without an
/// inspect per container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    /// Full container ID.
    pub id: String,
    /// Name, without Docker's leading slash.
    pub name: String,
    /// The image as given at create.
    pub image: String,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
    /// Current state.
    pub state: ContainerState,
    /// `healthy`, `unhealthy` or `starting`, read from the status line;
    /// `None` without a health check.
    pub health: Option<String>,
}

/// The facts of a container that only an inspect tells.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRuntime {
    /// The main process on the host, `None` while not running.
    pub pid: Option<u32>,
    /// RFC 3339 time of the last start.
    pub started_at: Option<String>,
    /// How often Docker restarted it by its restart policy.
    pub restart_count: i64,
    /// Whether the last exit was an OOM kill.
    pub oom_killed: bool,
    /// Memory limit in bytes, `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// CPU limit in cores (from `NanoCpus` or quota/period), `None` when unlimited.
    pub cpu_limit: Option<f64>,
}

/// One sample of `GET /containers/{id}/stats?stream=false&one-shot=true`,
/// as cumulative counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OneShotStats {
    /// CPU time used since start, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory as `docker stats` shows it: usage minus inactive file cache.
    pub memory_bytes: u64,
    /// Memory limit the engine reports (the host's memory when unlimited).
    pub memory_limit: Option<u64>,
    /// Bytes received on all interfaces.
    pub net_rx_bytes: u64,
    /// Bytes sent on all interfaces.
    pub net_tx_bytes: u64,
    /// Bytes read from block devices.
    pub blk_read_bytes: u64,
    /// Bytes written to block devices.
    pub blk_write_bytes: u64,
    /// Processes and threads.
    pub pids: Option<u64>,
}

/// One process inside a container, as `docker top` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process ID on the host.
    pub pid: String,
    /// User running it.
    pub user: String,
    /// The command line.
    pub command: String,
}

impl ProcessInfo {
    /// The program's name: the last path segment of the command's first word
    /// (`/usr/bin/python3 app.py` → `python3`).
    pub fn name(&self) -> &str {
        let first = self.command.split_whitespace().next().unwrap_or_default();
        // Postgres retitles its workers `postgres: writer`.
        let name = first.rsplit('/').next().unwrap_or(first);
        name.strip_suffix(':').unwrap_or(name)
    }
}

impl DockerClient {
    /// Every container, running or not, in one request (no inspect).
    pub async fn container_summaries(&self) -> Result<Vec<ContainerSummary>, DockerError> {
        let docker = self.docker().await?;
        let options = ListContainersOptionsBuilder::new().all(true).build();
        let list = docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.err(e))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let status = c.status.unwrap_or_default();
                Some(ContainerSummary {
                    id: c.id?,
                    name: c
                        .names
                        .unwrap_or_default()
                        .first()
                        .map(|n| n.trim_start_matches('/').to_owned())
                        .unwrap_or_default(),
                    image: c.image.unwrap_or_default(),
                    labels: c.labels.unwrap_or_default().into_iter().collect(),
                    state: c
                        .state
                        .map(|s| ContainerState::parse(s.as_ref()))
                        .unwrap_or_else(|| ContainerState::Unknown(String::new())),
                    health: health_from_status(&status),
                })
            })
            .collect())
    }

    /// Pid, limits, restarts and OOM of one container; `None` when it is gone.
    pub async fn container_runtime(
        &self,
        id: &str,
    ) -> Result<Option<ContainerRuntime>, DockerError> {
        if container_ref(id).is_err() {
            return Ok(None);
        }
        let docker = self.docker().await?;
        let c = match docker.inspect_container(id, None).await {
            Ok(c) => c,
            Err(e) => {
                return match self.err(e) {
                    DockerError::NotFound(_) => Ok(None),
                    e => Err(e),
                };
            }
        };
        let state = c.state.unwrap_or_default();
        let host = c.host_config.unwrap_or_default();
        let cpu_limit = match (host.nano_cpus, host.cpu_quota, host.cpu_period) {
            (Some(n), _, _) if n > 0 => Some(n as f64 / 1e9),
            (_, Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
            (_, Some(q), _) if q > 0 => Some(q as f64 / 100_000.0),
            _ => None,
        };
        Ok(Some(ContainerRuntime {
            pid: state
                .pid
                .filter(|p| *p > 0)
                .and_then(|p| u32::try_from(p).ok()),
            started_at: state
                .started_at
                .filter(|t| !t.is_empty() && !t.starts_with("0001-")),
            restart_count: c.restart_count.unwrap_or(0),
            oom_killed: state.oom_killed.unwrap_or(false),
            memory_limit: host
                .memory
                .filter(|m| *m > 0)
                .and_then(|m| u64::try_from(m).ok()),
            cpu_limit,
        }))
    }

    /// One sample of the engine's stats for a container, without waiting for
    /// a second one; `None` when it is gone.
    pub async fn one_shot_stats(&self, id: &str) -> Result<Option<OneShotStats>, DockerError> {
        if container_ref(id).is_err() {
            return Ok(None);
        }
        let docker = self.docker().await?;
        let options = StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stream = docker.stats(id, Some(options));
        let stats = match stream.next().await {
            None => return Ok(None),
            Some(Err(e)) => {
                return match self.err(e) {
                    DockerError::NotFound(_) => Ok(None),
                    e => Err(e),
                };
            }
            Some(Ok(s)) => s,
        };
        let memory = stats.memory_stats.unwrap_or_default();
        let mem_stats = memory.stats.unwrap_or_default();
        // cgroup v1 reports total_inactive_file, v2 inactive_file: the
        // docker CLI subtracts whichever is there.
        let inactive = mem_stats
            .get("total_inactive_file")
            .or_else(|| mem_stats.get("inactive_file"))
            .copied()
            .unwrap_or(0);
        let (mut rx, mut tx) = (0, 0);
        for net in stats.networks.unwrap_or_default().into_values() {
            rx += net.rx_bytes.unwrap_or(0);
            tx += net.tx_bytes.unwrap_or(0);
        }
        let (mut read, mut write) = (0, 0);
        let blkio = stats.blkio_stats.unwrap_or_default();
        for entry in blkio.io_service_bytes_recursive.unwrap_or_default() {
            match entry.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => read += entry.value.unwrap_or(0),
                Some("write") => write += entry.value.unwrap_or(0),
                _ => {}
            }
        }
        Ok(Some(OneShotStats {
            cpu_ns: stats
                .cpu_stats
                .and_then(|c| c.cpu_usage)
                .and_then(|u| u.total_usage)
                .unwrap_or(0),
            memory_bytes: memory.usage.unwrap_or(0).saturating_sub(inactive),
            memory_limit: memory.limit,
            net_rx_bytes: rx,
            net_tx_bytes: tx,
            blk_read_bytes: read,
            blk_write_bytes: write,
            pids: stats.pids_stats.and_then(|p| p.current),
        }))
    }

    /// The processes inside a running container (`docker top`).
    pub async fn container_processes(&self, id: &str) -> Result<Vec<ProcessInfo>, DockerError> {
        container_ref(id)?;
        let docker = self.docker().await?;
        let options = TopOptionsBuilder::new().ps_args("-ef").build();
        let top = docker
            .top_processes(id, Some(options))
            .await
            .map_err(|e| self.err(e))?;
        let titles = top.titles.unwrap_or_default();
        let column = |name: &str| titles.iter().position(|t| t == name);
        let (pid, user, cmd) = (column("PID"), column("UID"), column("CMD"));
        Ok(top
            .processes
            .unwrap_or_default()
            .into_iter()
            .map(|row| {
                let get =
                    |i: Option<usize>| i.and_then(|i| row.get(i)).cloned().unwrap_or_default();
                ProcessInfo {
                    pid: get(pid),
                    user: get(user),
                    command: get(cmd.or(titles.len().checked_sub(1))),
                }
            })
            .collect())
    }
}

/// `Up 3 minutes (healthy)` → `healthy`; `(health: starting)` → `starting`.
fn health_from_status(status: &str) -> Option<String> {
    let inside = status.rsplit_once('(')?.1.strip_suffix(')')?;
    let health = inside.strip_prefix("health: ").unwrap_or(inside);
    matches!(health, "healthy" | "unhealthy" | "starting").then(|| health.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_read_from_the_status_line() {
        assert_eq!(
            health_from_status("Up 3 minutes (healthy)").as_deref(),
            Some("healthy")
        );
        assert_eq!(
            health_from_status("Up 1 second (health: starting)").as_deref(),
            Some("starting")
        );
        assert_eq!(
            health_from_status("Up 2 hours (unhealthy)").as_deref(),
            Some("unhealthy")
        );
        assert_eq!(health_from_status("Up 2 hours"), None);
        assert_eq!(health_from_status("Exited (3) 4 seconds ago"), None);
    }

    #[test]
    fn process_names_are_the_programs_file_name() {
        let p = |c: &str| ProcessInfo {
            pid: "1".into(),
            user: "root".into(),
            command: c.into(),
        };
        assert_eq!(p("/usr/bin/python3 app.py").name(), "python3");
        assert_eq!(p("postgres: writer").name(), "postgres");
        assert_eq!(p("node").name(), "node");
    }
}
