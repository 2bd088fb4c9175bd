//! Containers: create from a [`ContainerSpec`], start, stop, restart, remove,
//! inspect, list by label, read the tail of the logs.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, DeviceMapping, EndpointSettings, HealthConfig,
    HostConfig, HostConfigLogConfig, Mount as BollardMount, MountPoint, MountType,
    NetworkingConfig, PortBinding, PortMap, ResourcesUlimits,
    RestartPolicy as BollardRestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder, RestartContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt, stream};

pub use berth_core::RestartPolicy;

use crate::client::label_filters;
use crate::{DockerClient, DockerError};

/// Published ports are bound on this address only: the edge proxy is the
/// only public door.
const PUBLISH_HOST_IP: &str = "127.0.0.1";

/// Docker's "never" timestamp.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// What to run. [`DockerClient::create_container`] turns it into a container.
/// Its `Debug` shows environment keys only: values may be secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Container name; empty lets Docker pick one.
    pub name: String,
    /// Image reference, which must already be present (see [`DockerClient::pull_image`]).
    pub image: String,
    /// Overrides the image's `CMD` when `Some` (an argument array, never a shell string).
    pub cmd: Option<Vec<String>>,
    /// Environment variables. Values may be secrets: never logged.
    pub env: Vec<(String, String)>,
    /// Labels (`berth.managed`, `berth.app`, …).
    pub labels: BTreeMap<String, String>,
    /// Network to attach to; empty means Docker's default bridge.
    pub network: String,
    /// DNS names for the container on `network`.
    pub network_aliases: Vec<String>,
    /// TCP port the app listens on, published on `127.0.0.1` at a port Docker
    /// picks. `0` publishes nothing (databases, workers).
    pub container_port: u16,
    /// What Docker does when the container exits.
    pub restart: RestartPolicy,
    /// Memory limit in bytes (`None`: unlimited).
    pub memory_bytes: Option<i64>,
    /// CPU limit in billionths of a CPU (`None`: unlimited).
    pub nano_cpus: Option<i64>,
    /// Volumes and host directories to mount. A named volume that does not
    /// exist yet is created by Docker without labels: create it first with
    /// [`DockerClient::ensure_volume`].
    pub mounts: Vec<Mount>,
    /// Everything else a compose service can set (stacks); apps leave it default.
    pub options: ContainerOptions,
}

/// The rest of what a compose service can ask of Docker, for stacks. The
/// default is Docker's own default for each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerOptions {
    /// Overrides the image's `ENTRYPOINT` when `Some`.
    pub entrypoint: Option<Vec<String>>,
    /// User (and group) to run as.
    pub user: Option<String>,
    /// Working directory inside the container.
    pub working_dir: Option<String>,
    /// The container's host name.
    pub hostname: Option<String>,
    /// More networks to join, each with its aliases (the first network is `network`).
    pub extra_networks: Vec<(String, Vec<String>)>,
    /// Ports published on the host (besides `container_port`).
    pub publish: Vec<PublishedPort>,
    /// Overrides the image's HEALTHCHECK.
    pub healthcheck: Option<Healthcheck>,
    /// Capabilities to add.
    pub cap_add: Vec<String>,
    /// Capabilities to drop.
    pub cap_drop: Vec<String>,
    /// Full access to the host (only with an admin's confirmation).
    pub privileged: bool,
    /// Mount the root filesystem read-only.
    pub read_only: bool,
    /// Run an init process as PID 1.
    pub init: bool,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open.
    pub open_stdin: bool,
    /// `host` (only with an admin's confirmation; berth's network is then not joined).
    pub network_mode: Option<String>,
    /// `host` shares the host's process namespace (confirmed by an admin).
    pub pid_mode: Option<String>,
    /// Security options (`no-new-privileges:true`).
    pub security_opt: Vec<String>,
    /// `host:container[:permissions]`.
    pub devices: Vec<String>,
    /// Name, soft and hard limit.
    pub ulimits: Vec<(String, i64, i64)>,
    /// Size of /dev/shm in bytes.
    pub shm_size: Option<i64>,
    /// Path → mount options (`size=64m`).
    pub tmpfs: BTreeMap<String, String>,
    /// Kernel parameters of the container's namespaces.
    pub sysctls: BTreeMap<String, String>,
    /// The signal that stops it (`SIGTERM` by default).
    pub stop_signal: Option<String>,
    /// How long a stop waits before killing.
    pub stop_timeout_secs: Option<i64>,
    /// Log driver and its options.
    pub logging: Option<(String, BTreeMap<String, String>)>,
    /// Maximum number of processes.
    pub pids_limit: Option<i64>,
}

/// A container port published on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    /// `127.0.0.1`, or `0.0.0.0` for every interface.
    pub host_ip: String,
    /// `None`: a port Docker picks.
    pub host_port: Option<u16>,
    /// The port inside the container.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// A health check in Docker's terms (durations in nanoseconds, 0: Docker's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Time between checks.
    pub interval_ns: i64,
    /// How long one check may take.
    pub timeout_ns: i64,
    /// Failures in a row before unhealthy.
    pub retries: i64,
    /// Failures during this time after start do not count.
    pub start_period_ns: i64,
    /// Time between checks during the start period.
    pub start_interval_ns: i64,
}

impl fmt::Debug for ContainerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_keys: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ContainerSpec")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("cmd", &self.cmd)
            .field("env_keys", &env_keys)
            .field("labels", &self.labels)
            .field("network", &self.network)
            .field("network_aliases", &self.network_aliases)
            .field("container_port", &self.container_port)
            .field("restart", &self.restart)
            .field("memory_bytes", &self.memory_bytes)
            .field("nano_cpus", &self.nano_cpus)
            .field("mounts", &self.mounts)
            .field("options", &self.options)
            .finish()
    }
}

/// Something mounted into a container, for [`ContainerSpec::mounts`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mount {
    /// A named Docker volume: where berth keeps data that outlives containers.
    Volume {
        /// The volume's name (see [`DockerClient::ensure_volume`]).
        name: String,
        /// Absolute path inside the container.
        target: String,
        /// Mount it read-only.
        read_only: bool,
    },
    /// A host directory. It must exist: Docker's default for mounts is to
    /// refuse a missing source rather than create it as root, and the caller
    /// knows which owner and mode it needs.
    Bind {
        /// Absolute path on the host.
        source: String,
        /// Absolute path inside the container.
        target: String,
        /// Mount it read-only.
        read_only: bool,
    },
}

impl Mount {
    fn to_bollard(&self) -> BollardMount {
        let (typ, source, target, read_only) = match self {
            Mount::Volume {
                name,
                target,
                read_only,
            } => (MountType::VOLUME, name, target, read_only),
            Mount::Bind {
                source,
                target,
                read_only,
            } => (MountType::BIND, source, target, read_only),
        };
        BollardMount {
            typ: Some(typ),
            source: Some(source.clone()),
            target: Some(target.clone()),
            read_only: Some(*read_only),
            ..Default::default()
        }
    }
}

/// A mount of an existing container, as inspect reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MountInfo {
    /// What is mounted.
    pub kind: MountKind,
    /// The volume's name, for volumes. Anonymous volumes (from an image's
    /// `VOLUME`, or a container created before berth named its volumes)
    /// have a 64-hex-digit name and no labels: this is how berth finds their
    /// data.
    pub name: Option<String>,
    /// The host path: the volume's directory under Docker's data root, or
    /// the bound host directory.
    pub source: String,
    /// Absolute path inside the container.
    pub destination: String,
    /// Whether it is mounted read-only.
    pub read_only: bool,
}

/// The kinds of [`MountInfo`] berth tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MountKind {
    /// A Docker volume, named or anonymous.
    Volume,
    /// A host directory.
    Bind,
    /// Anything else (tmpfs, named pipe, image, cluster volume).
    Other,
}

/// Docker's restart policy, in bollard's terms.
fn restart_to_bollard(policy: RestartPolicy) -> BollardRestartPolicy {
    let name = match policy {
        RestartPolicy::No => RestartPolicyNameEnum::NO,
        RestartPolicy::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
        RestartPolicy::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
        RestartPolicy::Always => RestartPolicyNameEnum::ALWAYS,
    };
    BollardRestartPolicy {
        name: Some(name),
        maximum_retry_count: None,
    }
}

/// A container as berth sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Full container ID.
    pub id: String,
    /// Name, without Docker's leading slash.
    pub name: String,
    /// The image reference the container was created from (as given, not the ID).
    pub image: String,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
    /// Current state.
    pub state: ContainerState,
    /// Exit code of the last run, for exited, dead and restarting containers.
    pub exit_code: Option<i64>,
    /// Host port (on 127.0.0.1) published for the lowest-numbered exposed TCP
    /// port that has one.
    pub host_port: Option<u16>,
    /// RFC 3339 time of the last start; `None` if never started.
    pub started_at: Option<String>,
    /// RFC 3339 time of the last exit; `None` if it never exited.
    pub finished_at: Option<String>,
    /// How often Docker restarted it by its restart policy.
    pub restart_count: Option<i64>,
    /// The image's HEALTHCHECK verdict (`starting`, `healthy`, `unhealthy`),
    /// `None` when the image has no health check.
    pub health: Option<String>,
    /// Volumes and host directories mounted, sorted by destination.
    pub mounts: Vec<MountInfo>,
    /// The container's IPv4 address on each network it joined, by network name.
    pub addresses: BTreeMap<String, String>,
    /// Every port published on the host, as `127.0.0.1:5432->5432/tcp`, sorted.
    pub published: Vec<String>,
}

/// Docker's container states.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Being restarted by its restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Exited.
    Exited,
    /// Dead (failed to stop or remove).
    Dead,
    /// A state this version of berth does not know.
    Unknown(String),
}

impl ContainerState {
    /// Docker's lower-case name for the state.
    pub fn as_str(&self) -> &str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Removing => "removing",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
            ContainerState::Unknown(s) => s,
        }
    }

    /// Parses Docker's name for a state; anything else is `Unknown`.
    pub fn parse(s: &str) -> Self {
        match s {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "removing" => ContainerState::Removing,
            "exited" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            other => ContainerState::Unknown(other.to_owned()),
        }
    }

    /// True for `Running` (a paused or restarting container is not serving).
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running)
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DockerClient {
    /// Creates (does not start) a container; returns its ID.
    ///
    /// Publishes `container_port/tcp` on 127.0.0.1 only, at a host port Docker
    /// picks; attaches to `network` with the aliases; sets the restart policy.
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let docker = self.docker().await?;
        let mut options = CreateContainerOptionsBuilder::new();
        if !spec.name.is_empty() {
            options = options.name(&spec.name);
        }
        let response = docker
            .create_container(Some(options.build()), create_body(spec))
            .await
            .map_err(|e| self.err(e))?;
        for warning in response.warnings.iter().filter(|w| !w.is_empty()) {
            tracing::warn!(container.name = %spec.name, "Docker: {warning}");
        }
        if spec.options.network_mode.is_none() {
            for (network, aliases) in &spec.options.extra_networks {
                if let Err(e) = self.connect_network(network, &response.id, aliases).await {
                    let _ = self.remove_container(&response.id).await;
                    return Err(e);
                }
            }
        }
        tracing::info!(
            container.name = %spec.name,
            container.id = %response.id,
            container.image = %spec.image,
            "created container"
        );
        Ok(response.id)
    }

    /// Starts a created or stopped container; Ok if it is already running.
    pub async fn start_container(&self, id: &str) -> Result<(), DockerError> {
        container_ref(id)?;
        let docker = self.docker().await?;
        docker
            .start_container(id, None)
            .await
            .map_err(|e| self.err(e))
    }

    /// Stops a container: SIGTERM (or the image's stop signal), then SIGKILL
    /// after `timeout_secs`. Ok if it is already stopped.
    pub async fn stop_container(&self, id: &str, timeout_secs: i32) -> Result<(), DockerError> {
        container_ref(id)?;
        let docker = self.docker().await?;
        let options = StopContainerOptionsBuilder::new().t(timeout_secs).build();
        docker
            .clone()
            .with_timeout(waiting_for(timeout_secs))
            .stop_container(id, Some(options))
            .await
            .map_err(|e| self.err(e))
    }

    /// Restarts a container, giving it `timeout_secs` to stop.
    pub async fn restart_container(&self, id: &str, timeout_secs: i32) -> Result<(), DockerError> {
        container_ref(id)?;
        let docker = self.docker().await?;
        let options = RestartContainerOptionsBuilder::new()
            .t(timeout_secs)
            .build();
        docker
            .clone()
            .with_timeout(waiting_for(timeout_secs))
            .restart_container(id, Some(options))
            .await
            .map_err(|e| self.err(e))
    }

    /// Removes a container, killing it if it runs. Ok if it is already gone
    /// (or being removed).
    ///
    /// Removing a container keeps its volumes, anonymous ones included: only
    /// an explicit, confirmed delete removes a volume (DESIGN.md), through
    /// [`DockerClient::remove_volume`].
    pub async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        if container_ref(id).is_err() {
            return Ok(());
        }
        let docker = self.docker().await?;
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(false)
            .build();
        match docker
            .remove_container(id, Some(options))
            .await
            .map_err(|e| self.err(e))
        {
            Ok(()) => {
                tracing::info!(container.id = id, "removed container");
                Ok(())
            }
            Err(DockerError::NotFound(_)) => Ok(()),
            Err(DockerError::Conflict(m)) if m.contains("already in progress") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Gives a container a new name (a rolling update's new container takes
    /// the service's name once the old one is gone).
    pub async fn rename_container(&self, id: &str, name: &str) -> Result<(), DockerError> {
        container_ref(id)?;
        container_ref(name)?;
        let docker = self.docker().await?;
        docker
            .rename_container(id, RenameContainerOptionsBuilder::new().name(name).build())
            .await
            .map_err(|e| self.err(e))
    }

    /// The container with this ID or name, or `None` when there is none.
    pub async fn inspect_container(
        &self,
        id_or_name: &str,
    ) -> Result<Option<ContainerInfo>, DockerError> {
        if container_ref(id_or_name).is_err() {
            return Ok(None);
        }
        let docker = self.docker().await?;
        match docker.inspect_container(id_or_name, None).await {
            Ok(response) => Ok(Some(container_info(response))),
            Err(e) => match self.err(e) {
                DockerError::NotFound(_) => Ok(None),
                e => Err(e),
            },
        }
    }

    /// All containers (running or not) carrying all the given labels (an
    /// empty value matches any value of that key), newest first.
    pub async fn list_containers(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<ContainerInfo>, DockerError> {
        self.query_containers(label_filters(labels)).await
    }

    /// All containers (running or not) matching Docker's list `filters`,
    /// inspected, newest first.
    pub(crate) async fn query_containers(
        &self,
        filters: HashMap<String, Vec<String>>,
    ) -> Result<Vec<ContainerInfo>, DockerError> {
        let docker = self.docker().await?;
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.err(e))?;
        // The list lacks exit codes and times: inspect each (a container may
        // vanish in between; it is then left out).
        let infos: Vec<Option<ContainerInfo>> = stream::iter(summaries)
            .filter_map(|s| async move { s.id })
            .map(|id| async move { self.inspect_container(&id).await })
            .buffered(8)
            .try_collect()
            .await?;
        Ok(infos.into_iter().flatten().collect())
    }

    /// The last `lines` lines of stdout and stderr, oldest first, without
    /// timestamps.
    pub async fn logs_tail(&self, id: &str, lines: usize) -> Result<Vec<String>, DockerError> {
        container_ref(id)?;
        if lines == 0 {
            return Ok(Vec::new());
        }
        let docker = self.docker().await?;
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .timestamps(false)
            .tail(&lines.to_string())
            .build();
        let mut frames = docker.logs(id, Some(options));
        let mut splitter = LineSplitter::default();
        while let Some(frame) = frames.next().await {
            splitter.push(frame.map_err(|e| self.err(e))?);
        }
        let mut out = splitter.finish();
        if out.len() > lines {
            out.drain(..out.len() - lines);
        }
        Ok(out)
    }
}

/// Container IDs and names are `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; anything else
/// cannot exist, and must not reach a URL path.
pub(crate) fn container_ref(id: &str) -> Result<(), DockerError> {
    if is_docker_name(id) {
        Ok(())
    } else {
        Err(DockerError::NotFound(format!("No such container: {id}")))
    }
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`: the names Docker gives containers and
/// local volumes (and their IDs), and nothing that could change a URL path.
pub(crate) fn is_docker_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// How long to wait for a stop or restart that may take `timeout_secs`.
fn waiting_for(timeout_secs: i32) -> Duration {
    let secs = u64::try_from(timeout_secs.max(0)).unwrap_or(0);
    Duration::from_secs(secs + 30)
}

fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let mut host_config = HostConfig {
        restart_policy: Some(restart_to_bollard(spec.restart)),
        memory: spec.memory_bytes,
        nano_cpus: spec.nano_cpus,
        mounts: (!spec.mounts.is_empty())
            .then(|| spec.mounts.iter().map(Mount::to_bollard).collect()),
        ..Default::default()
    };
    let mut exposed_ports = None;
    if spec.container_port != 0 {
        let key = format!("{}/tcp", spec.container_port);
        let binding = PortBinding {
            host_ip: Some(PUBLISH_HOST_IP.to_owned()),
            host_port: Some(String::new()),
        };
        host_config.port_bindings = Some(PortMap::from([(key.clone(), Some(vec![binding]))]));
        exposed_ports = Some(vec![key]);
    }
    let o = &spec.options;
    for p in &o.publish {
        let key = format!("{}/{}", p.container_port, p.protocol);
        let binding = PortBinding {
            host_ip: Some(p.host_ip.clone()),
            host_port: Some(p.host_port.map(|p| p.to_string()).unwrap_or_default()),
        };
        host_config
            .port_bindings
            .get_or_insert_with(PortMap::new)
            .entry(key.clone())
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(binding);
        let exposed = exposed_ports.get_or_insert_with(Vec::new);
        if !exposed.contains(&key) {
            exposed.push(key);
        }
    }
    let mut networking_config = None;
    if let Some(mode) = &o.network_mode {
        host_config.network_mode = Some(mode.clone());
    } else if !spec.network.is_empty() {
        host_config.network_mode = Some(spec.network.clone());
        let endpoint = EndpointSettings {
            aliases: (!spec.network_aliases.is_empty()).then(|| spec.network_aliases.clone()),
            ..Default::default()
        };
        // Further networks are joined after create (see `create_container`):
        // engines before API 1.44 refuse more than one here.
        networking_config = Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(spec.network.clone(), endpoint)])),
        });
    }
    let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let map = |m: &BTreeMap<String, String>| {
        (!m.is_empty()).then(|| m.clone().into_iter().collect::<HashMap<_, _>>())
    };
    host_config.cap_add = list(&o.cap_add);
    host_config.cap_drop = list(&o.cap_drop);
    host_config.privileged = o.privileged.then_some(true);
    host_config.readonly_rootfs = o.read_only.then_some(true);
    host_config.init = o.init.then_some(true);
    host_config.pid_mode = o.pid_mode.clone();
    host_config.security_opt = list(&o.security_opt);
    host_config.devices =
        (!o.devices.is_empty()).then(|| o.devices.iter().map(|d| device(d)).collect());
    host_config.ulimits = (!o.ulimits.is_empty()).then(|| {
        o.ulimits
            .iter()
            .map(|(name, soft, hard)| ResourcesUlimits {
                name: Some(name.clone()),
                soft: Some(*soft),
                hard: Some(*hard),
            })
            .collect()
    });
    host_config.shm_size = o.shm_size;
    host_config.tmpfs = map(&o.tmpfs);
    host_config.sysctls = map(&o.sysctls);
    host_config.pids_limit = o.pids_limit;
    host_config.log_config = o
        .logging
        .as_ref()
        .map(|(driver, options)| HostConfigLogConfig {
            typ: Some(driver.clone()),
            config: map(options),
        });
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.cmd.clone(),
        entrypoint: o.entrypoint.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        exposed_ports,
        user: o.user.clone(),
        working_dir: o.working_dir.clone(),
        hostname: o.hostname.clone(),
        tty: o.tty.then_some(true),
        open_stdin: o.open_stdin.then_some(true),
        stop_signal: o.stop_signal.clone(),
        stop_timeout: o.stop_timeout_secs,
        healthcheck: o.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: Some(h.interval_ns),
            timeout: Some(h.timeout_ns),
            retries: Some(h.retries),
            start_period: Some(h.start_period_ns),
            start_interval: Some(h.start_interval_ns),
        }),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

/// `/dev/x[:/dev/y[:rwm]]`, compose's short form of a device.
fn device(spec: &str) -> DeviceMapping {
    let mut parts = spec.splitn(3, ':');
    let host = parts.next().unwrap_or_default().to_owned();
    let inside = parts.next().map_or_else(|| host.clone(), str::to_owned);
    DeviceMapping {
        path_on_host: Some(host),
        path_in_container: Some(inside),
        cgroup_permissions: Some(parts.next().unwrap_or("rwm").to_owned()),
    }
}

fn container_info(c: ContainerInspectResponse) -> ContainerInfo {
    let config = c.config.unwrap_or_default();
    let state = c.state.unwrap_or_default();
    let status = state
        .status
        .map(|s| ContainerState::parse(s.as_ref()))
        .unwrap_or_else(|| ContainerState::Unknown(String::new()));
    let exit_code = match status {
        ContainerState::Exited | ContainerState::Dead | ContainerState::Restarting => {
            state.exit_code
        }
        _ => None,
    };
    let network_settings = c.network_settings.unwrap_or_default();
    let host_port = network_settings.ports.as_ref().and_then(published_port);
    let mut published: Vec<String> = network_settings
        .ports
        .iter()
        .flatten()
        .flat_map(|(key, bindings)| {
            bindings.iter().flatten().map(move |b| {
                format!(
                    "{}:{}->{key}",
                    b.host_ip.as_deref().unwrap_or(""),
                    b.host_port.as_deref().unwrap_or("")
                )
            })
        })
        .collect();
    published.sort();
    let addresses = network_settings
        .networks
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, e)| Some((name, e.ip_address.filter(|ip| !ip.is_empty())?)))
        .collect();
    let time = |t: Option<String>| t.filter(|t| !t.is_empty() && t != ZERO_TIME);
    let health = state
        .health
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none");
    let mut mounts: Vec<MountInfo> = c
        .mounts
        .unwrap_or_default()
        .into_iter()
        .map(mount_info)
        .collect();
    mounts.sort_by(|a, b| a.destination.cmp(&b.destination));
    ContainerInfo {
        id: c.id.unwrap_or_default(),
        name: c
            .name
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_default(),
        image: config.image.or(c.image).unwrap_or_default(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        state: status,
        exit_code,
        host_port,
        started_at: time(state.started_at),
        finished_at: time(state.finished_at),
        restart_count: c.restart_count,
        health,
        mounts,
        addresses,
        published,
    }
}

fn mount_info(m: MountPoint) -> MountInfo {
    let kind = match m.typ.as_deref() {
        Some("volume") => MountKind::Volume,
        Some("bind") => MountKind::Bind,
        _ => MountKind::Other,
    };
    MountInfo {
        kind,
        name: m.name.filter(|n| !n.is_empty()),
        source: m.source.unwrap_or_default(),
        destination: m.destination.unwrap_or_default(),
        // Docker reports `RW`; a mount it says nothing about is read-write.
        read_only: m.rw == Some(false),
    }
}

/// The host port bound for the lowest exposed TCP port, preferring a binding
/// on 127.0.0.1 over one on all addresses.
fn published_port(ports: &PortMap) -> Option<u16> {
    let mut tcp: Vec<(u16, &Vec<PortBinding>)> = ports
        .iter()
        .filter_map(|(key, bindings)| {
            let port = key.strip_suffix("/tcp")?.parse().ok()?;
            Some((port, bindings.as_ref()?))
        })
        .collect();
    tcp.sort_by_key(|(port, _)| *port);
    tcp.into_iter().find_map(|(_, bindings)| {
        let port_on = |ips: &[&str]| {
            bindings.iter().find_map(|b| {
                let ip = b.host_ip.as_deref().unwrap_or("");
                if ips.contains(&ip) {
                    b.host_port.as_deref()?.parse::<u16>().ok()
                } else {
                    None
                }
            })
        };
        port_on(&[PUBLISH_HOST_IP]).or_else(|| port_on(&["0.0.0.0", "", "::"]))
    })
}

/// Reassembles log lines from Docker's frames, which may split or join lines,
/// keeping stdout and stderr apart so their partial lines do not mix.
#[derive(Default)]
struct LineSplitter {
    partial: [Vec<u8>; 2],
    lines: Vec<String>,
}

impl LineSplitter {
    fn push(&mut self, frame: LogOutput) {
        let (slot, bytes) = match frame {
            LogOutput::StdErr { message } => (1, message),
            LogOutput::StdOut { message }
            | LogOutput::Console { message }
            | LogOutput::StdIn { message } => (0, message),
        };
        let buf = &mut self.partial[slot];
        buf.extend_from_slice(&bytes);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            self.lines.push(clean_line(&line));
        }
    }

    fn finish(mut self) -> Vec<String> {
        for buf in &mut self.partial {
            if !buf.is_empty() {
                self.lines.push(clean_line(buf));
                buf.clear();
            }
        }
        self.lines
    }
}

fn clean_line(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn create_body_publishes_only_on_loopback() {
        let spec = ContainerSpec {
            name: "web-1".into(),
            image: "berth-test/web:latest".into(),
            env: vec![("A".into(), "b=c".into())],
            network: "berth-p".into(),
            network_aliases: vec!["web".into()],
            container_port: 8080,
            restart: RestartPolicy::UnlessStopped,
            ..Default::default()
        };
        let body = serde_json::to_value(create_body(&spec)).unwrap();
        assert_eq!(
            body["HostConfig"]["PortBindings"]["8080/tcp"],
            serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": ""}])
        );
        assert_eq!(body["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
        assert_eq!(body["Env"], serde_json::json!(["A=b=c"]));
        assert_eq!(
            body["HostConfig"]["RestartPolicy"]["Name"],
            "unless-stopped"
        );
        assert_eq!(body["HostConfig"]["NetworkMode"], "berth-p");
        assert_eq!(
            body["NetworkingConfig"]["EndpointsConfig"]["berth-p"]["Aliases"],
            serde_json::json!(["web"])
        );
        assert!(body.get("Cmd").is_none());
    }

    #[test]
    fn port_zero_publishes_nothing() {
        let body = serde_json::to_value(create_body(&ContainerSpec::default())).unwrap();
        assert!(body["HostConfig"].get("PortBindings").is_none());
        assert!(body.get("ExposedPorts").is_none());
        assert!(body.get("NetworkingConfig").is_none());
        assert!(body["HostConfig"].get("Mounts").is_none());
    }

    #[test]
    fn create_body_mounts_volumes_and_host_directories_with_dockers_defaults() {
        let spec = ContainerSpec {
            mounts: vec![
                Mount::Volume {
                    name: "berth-db-data".into(),
                    target: "/var/lib/postgresql/data".into(),
                    read_only: false,
                },
                Mount::Bind {
                    source: "/srv/berth/app/config".into(),
                    target: "/config".into(),
                    read_only: true,
                },
            ],
            ..Default::default()
        };
        let body = serde_json::to_value(create_body(&spec)).unwrap();
        assert_eq!(
            body["HostConfig"]["Mounts"],
            serde_json::json!([
                {
                    "Type": "volume",
                    "Source": "berth-db-data",
                    "Target": "/var/lib/postgresql/data",
                    "ReadOnly": false
                },
                {
                    "Type": "bind",
                    "Source": "/srv/berth/app/config",
                    "Target": "/config",
                    "ReadOnly": true
                }
            ])
        );
        // The old string form is not used alongside.
        assert!(body["HostConfig"].get("Binds").is_none());
    }

    #[test]
    fn spec_debug_shows_mounts_but_no_environment_value() {
        let spec = ContainerSpec {
            env: vec![("PASSWORD".into(), "hunter2".into())],
            mounts: vec![Mount::Volume {
                name: "berth-data".into(),
                target: "/data".into(),
                read_only: false,
            }],
            ..Default::default()
        };
        let debug = format!("{spec:?}");
        assert!(debug.contains("PASSWORD"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("berth-data") && debug.contains("/data"),
            "{debug}"
        );
    }

    #[test]
    fn inspected_mounts_keep_kind_name_and_mode() {
        let point =
            |typ: &str, name: Option<&str>, source: &str, destination: &str, rw| MountPoint {
                typ: Some(typ.into()),
                name: name.map(Into::into),
                source: Some(source.into()),
                destination: Some(destination.into()),
                rw,
                ..Default::default()
            };
        let anonymous = "0123456789abcdef".repeat(4);
        assert_eq!(
            mount_info(point(
                "volume",
                Some(&anonymous),
                "/var/lib/docker/volumes/x/_data",
                "/data",
                Some(true)
            )),
            MountInfo {
                kind: MountKind::Volume,
                name: Some(anonymous.clone()),
                source: "/var/lib/docker/volumes/x/_data".into(),
                destination: "/data".into(),
                read_only: false,
            }
        );
        let bind = mount_info(point("bind", Some(""), "/srv/x", "/x", Some(false)));
        assert_eq!(
            (bind.kind, bind.name, bind.read_only),
            (MountKind::Bind, None, true)
        );
        let tmpfs = mount_info(point("tmpfs", None, "", "/tmp", None));
        assert_eq!((tmpfs.kind, tmpfs.read_only), (MountKind::Other, false));
    }

    #[test]
    fn published_port_prefers_the_lowest_loopback_tcp_port() {
        let b = |ip: &str, port: &str| PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some(port.into()),
        };
        let ports = PortMap::from([
            ("9000/tcp".into(), Some(vec![b("127.0.0.1", "40001")])),
            ("53/udp".into(), Some(vec![b("127.0.0.1", "40002")])),
            (
                "8080/tcp".into(),
                Some(vec![b("0.0.0.0", "40003"), b("127.0.0.1", "40004")]),
            ),
            ("80/tcp".into(), None),
        ]);
        assert_eq!(published_port(&ports), Some(40004));
        assert_eq!(published_port(&PortMap::new()), None);
    }

    #[test]
    fn log_lines_are_reassembled_per_stream() {
        let out = |s: &'static str| LogOutput::StdOut {
            message: Bytes::from(s),
        };
        let err = |s: &'static str| LogOutput::StdErr {
            message: Bytes::from(s),
        };
        let mut splitter = LineSplitter::default();
        for frame in [
            out("a\nb"),
            err("x\r\n"),
            out("c\n"),
            out("d\ne\n"),
            err("tail"),
        ] {
            splitter.push(frame);
        }
        assert_eq!(splitter.finish(), vec!["a", "x", "bc", "d", "e", "tail"]);
    }

    #[test]
    fn container_refs_that_cannot_exist_never_reach_the_engine() {
        assert!(container_ref("berth-web_1.2").is_ok());
        assert!(container_ref("0123abcd").is_ok());
        for bad in ["", "-x", "a/../b", "a?b", "a b", "/name"] {
            assert!(container_ref(bad).unwrap_err().is_not_found(), "{bad:?}");
        }
    }

    #[test]
    fn container_states_round_trip() {
        for s in [
            "created",
            "running",
            "paused",
            "restarting",
            "removing",
            "exited",
            "dead",
        ] {
            assert_eq!(ContainerState::parse(s).as_str(), s);
        }
        assert_eq!(
            ContainerState::parse("stopping"),
            ContainerState::Unknown("stopping".into())
        );
    }
}
