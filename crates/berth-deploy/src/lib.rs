#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod apps;
mod deployments;
mod env;
mod error;
mod git;
mod health;
mod naming;
mod projects;
mod routing;
mod volumes;
mod watch;
mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_docker::{DockerClient, EngineInfo};
use berth_store::Store;

pub use apps::human_bytes;
pub use env::{EnvErrors, HISTORY_LIMIT, SharedScope, SharedUse};
pub use error::DeployError;
pub use naming::{container_name, deployment_container_name, network_name};
pub use routing::build_routes;
pub use volumes::{StorageVolume, VolumeChoice, VolumeOwner, VolumeRequest};
pub use webhooks::{WebhookOutcome, hmac_hex};

/// The service layer: one per process, cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    docker: DockerClient,
    instance_id: String,
    /// One action at a time per app, so a restart cannot interleave with a delete.
    app_locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// The last engine status and when it was read: pages ask often, Docker need not answer each time.
    engine_status: Mutex<StatusCache>,
    /// The edge whose routes follow the apps; unset when berth runs without one (tests of the web layer).
    edge: std::sync::OnceLock<routing::EdgeLink>,
    /// Deployments queued or running in this process, with their cancel tokens.
    deploys: deployments::Active,
    /// Set once at start (see [`Engine::configure`]); defaults otherwise.
    options: std::sync::OnceLock<ResolvedOptions>,
}

/// Settings of the engine that come from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where bind mounts may come from (default `<data dir>/volumes`).
    pub volumes_root: Option<std::path::PathBuf>,
    /// Labels put on every Docker object berth creates, besides its own
    /// (tests mark theirs with `berth.test=<run>` so cleanup finds them).
    pub object_labels: std::collections::BTreeMap<String, String>,
}

/// [`Options`] with the defaults filled in.
pub(crate) struct ResolvedOptions {
    pub volumes_root: std::path::PathBuf,
    pub object_labels: std::collections::BTreeMap<String, String>,
}

/// The last engine status and when it was read; `refreshing` while a background read runs.
#[derive(Default)]
struct StatusCache {
    value: Option<(Instant, EngineStatus)>,
    refreshing: bool,
}

/// How long an engine status read from Docker is shown before it is read again.
const ENGINE_STATUS_TTL: Duration = Duration::from_secs(3);

/// The Docker engine as the dashboard shows it.
#[derive(Debug, Clone)]
pub enum EngineStatus {
    Available(EngineInfo),
    Unavailable {
        /// What berth tried, e.g. `unix:///var/run/docker.sock`.
        target: String,
        error: String,
        hint: Option<String>,
    },
}

impl Engine {
    pub async fn new(store: Store, docker: DockerClient) -> Result<Engine, DeployError> {
        let instance_id = berth_store::settings::instance_id(&store).await?;
        Ok(Engine {
            inner: Arc::new(Inner {
                store,
                docker,
                instance_id,
                app_locks: Mutex::new(HashMap::new()),
                engine_status: Mutex::new(StatusCache::default()),
                edge: std::sync::OnceLock::new(),
                deploys: deployments::Active::default(),
                options: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Applies the command line's settings; call once, before serving.
    pub fn configure(&self, options: Options) {
        let resolved = ResolvedOptions {
            volumes_root: options
                .volumes_root
                .unwrap_or_else(|| self.data_dir().join("volumes")),
            object_labels: options.object_labels,
        };
        if self.inner.options.set(resolved).is_err() {
            tracing::warn!("the engine was configured twice; keeping the first");
        }
    }

    pub(crate) fn options(&self) -> &ResolvedOptions {
        self.inner.options.get_or_init(|| ResolvedOptions {
            volumes_root: self.data_dir().join("volumes"),
            object_labels: Default::default(),
        })
    }

    /// The extra labels every object berth creates carries (see [`Options`]).
    pub(crate) fn object_labels(&self) -> std::collections::BTreeMap<String, String> {
        self.options().object_labels.clone()
    }

    /// berth's data dir (where the database is).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.store()
            .path()
            .parent()
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn docker(&self) -> &DockerClient {
        &self.inner.docker
    }

    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// The engine's status, read from Docker at most every few seconds.
    pub async fn engine_status(&self) -> EngineStatus {
        {
            let mut cache = self
                .inner
                .engine_status
                .lock()
                .expect("status cache poisoned");
            if let Some((at, status)) = &cache.value {
                let status = status.clone();
                // Stale: show what we have and refresh in the background, so a
                // page never waits on Docker once berth has heard from it.
                if at.elapsed() >= ENGINE_STATUS_TTL && !cache.refreshing {
                    cache.refreshing = true;
                    let engine = self.clone();
                    tokio::spawn(async move {
                        let fresh = engine.read_engine_status().await;
                        let mut cache = engine
                            .inner
                            .engine_status
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
        let status = self.read_engine_status().await;
        let mut cache = self
            .inner
            .engine_status
            .lock()
            .expect("status cache poisoned");
        cache.value = Some((Instant::now(), status.clone()));
        status
    }

    async fn read_engine_status(&self) -> EngineStatus {
        match self.docker().engine_info().await {
            Ok(info) => EngineStatus::Available(info),
            Err(err) => EngineStatus::Unavailable {
                target: self.docker().target().to_owned(),
                error: err.to_string(),
                hint: err.hint(),
            },
        }
    }

    fn app_lock(&self, app_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.app_locks.lock().expect("app lock map poisoned");
        locks.entry(app_id).or_default().clone()
    }
}
