#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod accounts;
mod apps;
mod backups;
mod databases;
mod deployments;
mod env;
mod error;
mod git;
mod health;
mod naming;
mod projects;
mod routing;
mod services;
mod stacks;
mod volumes;
mod watch;
mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_core::AppId;
use berth_docker::{DockerClient, EngineInfo};
use berth_store::Store;

pub use accounts::{SESSION_IDLE_SECS, SESSION_LIFETIME_SECS};
pub use apps::human_bytes;
pub use backups::{
    BackupNowRequest, BackupProgress, BackupSubject, DestinationRequest, ResolvedSubject,
    RestoreStatus, ScheduleRequest, ScheduleView, engine_name, engine_of,
};
pub use berth_store::backups::{
    BackupRow, CopyRow, DestinationRow, DestinationTarget, ScheduleRow,
};
pub use databases::{
    DEFAULT_URL_VARIABLE, DatabaseConnection, DatabaseRequest, DatabaseUpdate, DatabaseView,
};
pub use env::{EnvErrors, HISTORY_LIMIT, SharedScope, SharedUse};
pub use error::DeployError;
pub use git::HostKey;
pub use naming::{
    container_name, database_container_name, database_volume_name, deployment_container_name,
    network_name,
};
pub use routing::build_routes;
pub use services::{
    Accounts, Apps, Backups, Databases, Deployments, Domains, Env, Projects, Services, Stacks,
    Storage, System, Webhooks,
};
pub use stacks::{
    PlanPreview, Publish, ServiceState, ServiceView, StackRequest, StackRoute, StackUpdate,
    StackView, UpdateOutcome,
};
pub use volumes::{StorageVolume, VolumeChoice, VolumeOwner, VolumeRequest};
pub use webhooks::{WebhookOutcome, hmac_hex};

/// What every service shares: the store, the Docker client, per-resource
/// locks, the edge link, the deployments running in this process and the
/// Docker event watcher. One per process, cheap to clone. Callers outside
/// this crate start and configure it, then use its [`Services`]; the store
/// and Docker stay inside.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

/// What a lock is held on: one action at a time per resource, so a restart
/// cannot interleave with a delete. Stacks and databases get their own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ResourceKey {
    App(AppId),
    Stack(berth_core::StackId),
    Database(berth_core::DatabaseId),
}

struct Inner {
    store: Store,
    docker: DockerClient,
    instance_id: String,
    /// One action at a time per resource (see [`ResourceKey`]).
    locks: Mutex<HashMap<ResourceKey, Arc<tokio::sync::Mutex<()>>>>,
    /// The last Docker status and when it was read: pages ask often, Docker need not answer each time.
    docker_status: Mutex<StatusCache>,
    /// The edge whose routes follow the apps; unset when berth runs without one (tests of the web layer).
    edge: std::sync::OnceLock<routing::EdgeLink>,
    /// Deployments queued or running in this process, with their cancel tokens.
    deploys: deployments::Active,
    /// Set once at start (see [`Runtime::configure`]); defaults otherwise.
    options: std::sync::OnceLock<ResolvedOptions>,
    /// Whether the edge reaches containers at their network address (see
    /// [`Runtime::check_network_reach`]); unset: not checked, published ports.
    reach: std::sync::OnceLock<NetworkReach>,
    /// The job runner and the progress of running backups.
    backups: backups::BackupState,
}

/// How the edge reaches apps' containers, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkReach {
    /// True: straight to the container's address on its project network.
    /// False: through a port published on 127.0.0.1.
    pub direct: bool,
    /// Why, in words for the dashboard.
    pub why: String,
}

/// Settings of the runtime that come from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where bind mounts may come from (default `<data dir>/volumes`).
    pub volumes_root: Option<std::path::PathBuf>,
    /// Where static sites' directories must lie (default `<data dir>/static`).
    pub static_root: Option<std::path::PathBuf>,
    /// Where git repositories on this server may be cloned from (`None`:
    /// only https and ssh remotes).
    pub git_file_root: Option<std::path::PathBuf>,
    /// More catalogue templates (`<id>.yaml` in berth's format).
    pub templates_dir: Option<std::path::PathBuf>,
    /// Publish apps' ports on 127.0.0.1 and route there, instead of going
    /// straight to containers (for hosts that cannot reach Docker's
    /// networks; berth also falls back by itself when it finds that).
    pub publish_app_ports: bool,
    /// Labels put on every Docker object berth creates, besides its own
    /// (tests mark theirs with `berth.test=<run>` so cleanup finds them).
    pub object_labels: std::collections::BTreeMap<String, String>,
}

/// [`Options`] with the defaults filled in.
pub(crate) struct ResolvedOptions {
    pub volumes_root: std::path::PathBuf,
    pub static_root: std::path::PathBuf,
    pub git_file_root: Option<std::path::PathBuf>,
    pub templates_dir: Option<std::path::PathBuf>,
    pub publish_app_ports: bool,
    pub object_labels: std::collections::BTreeMap<String, String>,
}

/// The last engine status and when it was read; `refreshing` while a background read runs.
#[derive(Default)]
struct StatusCache {
    value: Option<(Instant, DockerStatus)>,
    refreshing: bool,
}

/// How long a status read from Docker is shown before it is read again.
const DOCKER_STATUS_TTL: Duration = Duration::from_secs(3);

/// The Docker engine as the dashboard shows it.
#[derive(Debug, Clone)]
pub enum DockerStatus {
    Available(EngineInfo),
    Unavailable {
        /// What berth tried, e.g. `unix:///var/run/docker.sock`.
        target: String,
        error: String,
        hint: Option<String>,
    },
}

impl Runtime {
    pub async fn new(store: Store, docker: DockerClient) -> Result<Runtime, DeployError> {
        let instance_id = berth_store::settings::instance_id(&store).await?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                store,
                docker,
                instance_id,
                locks: Mutex::new(HashMap::new()),
                docker_status: Mutex::new(StatusCache::default()),
                edge: std::sync::OnceLock::new(),
                deploys: deployments::Active::default(),
                options: std::sync::OnceLock::new(),
                reach: std::sync::OnceLock::new(),
                backups: backups::BackupState::default(),
            }),
        })
    }

    /// Applies the command line's settings; call once, before serving.
    /// Refuses a volumes or static root that would open up `/`, a system
    /// directory or the data dir.
    pub fn configure(&self, options: Options) -> Result<(), DeployError> {
        let resolved = ResolvedOptions {
            volumes_root: options
                .volumes_root
                .unwrap_or_else(|| self.data_dir().join("volumes")),
            static_root: options
                .static_root
                .unwrap_or_else(|| self.data_dir().join("static")),
            git_file_root: options.git_file_root,
            templates_dir: options.templates_dir,
            publish_app_ports: options.publish_app_ports,
            object_labels: options.object_labels,
        };
        for (root, root_name) in [
            (&resolved.volumes_root, "--volumes-root"),
            (&resolved.static_root, "--static-root"),
        ] {
            let rules = berth_core::BindRules {
                root: root.clone(),
                root_name,
                data_dir: self.data_dir(),
            };
            rules.check_root().map_err(|refusal| DeployError::Invalid {
                field: root_name,
                message: format!("{root_name} {}: {refusal}", root.display()),
            })?;
        }
        if self.inner.options.set(resolved).is_err() {
            tracing::warn!("the runtime was configured twice; keeping the first");
        }
        self.clear_builds_dir();
        Ok(())
    }

    /// Clones and deploy-key files live in `<data dir>/builds` only while a
    /// build runs; none runs at start, so whatever is there was left by a
    /// crash (and may hold a private key). The dir is kept 0700.
    fn clear_builds_dir(&self) {
        let builds = self.data_dir().join("builds");
        if builds.exists()
            && let Err(err) = std::fs::remove_dir_all(&builds)
        {
            tracing::warn!(path = %builds.display(), error = %err, "could not remove what earlier builds left");
        }
        let made =
            std::fs::create_dir_all(&builds).and_then(|()| berth_store::private(&builds, 0o700));
        if let Err(err) = made {
            tracing::warn!(path = %builds.display(), error = %err, "could not prepare the builds dir");
        }
    }

    pub(crate) fn options(&self) -> &ResolvedOptions {
        self.inner.options.get_or_init(|| ResolvedOptions {
            volumes_root: self.data_dir().join("volumes"),
            static_root: self.data_dir().join("static"),
            git_file_root: None,
            templates_dir: None,
            publish_app_ports: false,
            object_labels: Default::default(),
        })
    }

    /// The extra labels every object berth creates carries (see [`Options`]).
    pub(crate) fn object_labels(&self) -> std::collections::BTreeMap<String, String> {
        self.options().object_labels.clone()
    }

    /// Finds out once, at start, whether this host reaches containers at
    /// their addresses on Docker's networks: it does when the default
    /// bridge's gateway address is one of its own (dockerd runs in this
    /// network namespace). Rootless Docker keeps its networks in a namespace
    /// of its own: then, or when `--publish-app-ports` says so, apps publish
    /// their port on 127.0.0.1 and the edge goes there.
    pub async fn check_network_reach(&self) -> NetworkReach {
        let reach = if self.options().publish_app_ports {
            NetworkReach {
                direct: false,
                why: "--publish-app-ports: apps publish their port on 127.0.0.1 and the edge goes there".to_owned(),
            }
        } else {
            match self.docker().bridge_gateway().await {
                Ok(Some(gateway)) if std::net::UdpSocket::bind((gateway, 0)).is_ok() => NetworkReach {
                    direct: true,
                    why: format!("the edge goes straight to containers (Docker's bridge {gateway} is on this host)"),
                },
                Ok(Some(gateway)) => NetworkReach {
                    direct: false,
                    why: format!("Docker's networks are not reachable from this host (its bridge {gateway} is elsewhere, rootless Docker?): apps publish their port on 127.0.0.1 and the edge goes there"),
                },
                Ok(None) => NetworkReach {
                    direct: false,
                    why: "Docker reports no bridge network: apps publish their port on 127.0.0.1 and the edge goes there".to_owned(),
                },
                Err(e) => NetworkReach {
                    direct: false,
                    why: format!("could not ask Docker about its networks ({e}): apps publish their port on 127.0.0.1"),
                },
            }
        };
        tracing::info!(direct = reach.direct, "{}", reach.why);
        let _ = self.inner.reach.set(reach.clone());
        reach
    }

    /// Whether apps are reached at their container's address.
    pub(crate) fn direct(&self) -> bool {
        self.inner.reach.get().is_some_and(|r| r.direct)
    }

    /// Where the edge reaches `app` in container `c`: its address on the
    /// project network, or the port published on 127.0.0.1.
    pub(crate) fn upstream_of(
        &self,
        app: &berth_core::App,
        c: &berth_docker::ContainerInfo,
    ) -> Option<std::net::SocketAddr> {
        let direct = self
            .direct()
            .then(|| c.addresses.get(&network_name(&app.project)))
            .flatten()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .map(|ip| std::net::SocketAddr::new(ip, app.container_port.get()));
        direct.or_else(|| {
            c.host_port
                .map(|p| std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, p)))
        })
    }

    /// berth's data dir (where the database is).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.store()
            .path()
            .parent()
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn docker(&self) -> &DockerClient {
        &self.inner.docker
    }

    pub(crate) fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    fn lock_for(&self, key: ResourceKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.locks.lock().expect("lock map poisoned");
        locks.entry(key).or_default().clone()
    }

    fn app_lock(&self, app_id: AppId) -> Arc<tokio::sync::Mutex<()>> {
        self.lock_for(ResourceKey::App(app_id))
    }
}

impl System {
    /// How the edge reaches apps (for the dashboard); `None` before the check at start.
    pub fn network_reach(&self) -> Option<NetworkReach> {
        self.inner.reach.get().cloned()
    }

    /// Docker's status as the dashboard shows it, read at most every few seconds.
    pub async fn docker_status(&self) -> DockerStatus {
        {
            let mut cache = self
                .inner
                .docker_status
                .lock()
                .expect("status cache poisoned");
            if let Some((at, status)) = &cache.value {
                let status = status.clone();
                // Stale: show what we have and refresh in the background, so a
                // page never waits on Docker once berth has heard from it.
                if at.elapsed() >= DOCKER_STATUS_TTL && !cache.refreshing {
                    cache.refreshing = true;
                    let system = self.clone();
                    tokio::spawn(async move {
                        let fresh = system.read_docker_status().await;
                        let mut cache = system
                            .inner
                            .docker_status
                            .lock()
                            .expect("status cache poisoned");
                        *cache = StatusCache {
                            value: Some((Instant::now(), fresh)),
                            refreshing: false,
                        };
                    });
                }
                return status;
            }
        }
        let status = self.read_docker_status().await;
        let mut cache = self
            .inner
            .docker_status
            .lock()
            .expect("status cache poisoned");
        cache.value = Some((Instant::now(), status.clone()));
        status
    }

    async fn read_docker_status(&self) -> DockerStatus {
        match self.docker().engine_info().await {
            Ok(info) => DockerStatus::Available(info),
            Err(err) => DockerStatus::Unavailable {
                target: self.docker().target().to_owned(),
                error: err.to_string(),
                hint: err.hint(),
            },
        }
    }

    /// What berth connects to, e.g. `unix:///var/run/docker.sock`.
    pub fn docker_target(&self) -> &str {
        self.docker().target()
    }
}
