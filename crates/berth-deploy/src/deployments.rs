//! Deployments: one at a time per app, each a numbered, logged row.
//!
//! The switch never drops a request: the new container starts beside the
//! one serving, is health-checked, and only then does the app (and so the
//! edge's route table) point at it; the old one keeps its in-flight
//! requests for the drain period, then gets SIGTERM and, after the stop
//! timeout, SIGKILL. A failed or cancelled deploy removes only the new
//! container, so the old version never stops serving.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_core::{
    App, AppId, AppName, AppStatus, DeploySettings, DeployStrategy, Deployment, DeploymentId,
    DeploymentStatus, DesiredState, HealthCheck, ProjectName, ResourceKind, deployment::Source,
};
use berth_docker::{BuildSpec, ContainerInfo, ContainerSpec, ContainerState};
use berth_store::apps;
use berth_store::deployments::{self, NewDeployment};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::naming::{APP, DEPLOYMENT, INSTANCE, KIND, MANAGED, PROJECT, RESOURCE, SERVICE};
use crate::{DeployError, Deployments, HostKey, Runtime, deployment_container_name, network_name};

/// How many git builds run at once across all apps.
const BUILDS_AT_ONCE: usize = 2;
static BUILD_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(BUILDS_AT_ONCE);

/// How long a switch waits before counting in-flight requests to the old upstream.
pub(crate) const DRAIN_SETTLE: Duration = Duration::from_millis(250);

/// Pull progress is logged at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// How many of the new container's last log lines a failed deploy keeps.
const FAILED_LOG_LINES: usize = 20;
/// How long `redeploy_app` and cancel wait for a deployment to end.
const WAIT_FOR_END: Duration = Duration::from_secs(900);

/// Deployments this process queued or runs, with the token that cancels them.
/// One not listed here but queued or running in the store was interrupted by
/// a restart of berth (see [`Runtime::reconcile_deployments`]).
#[derive(Default)]
pub(crate) struct Active {
    tokens: Mutex<HashMap<DeploymentId, CancellationToken>>,
    /// Held from recording a deployment until it is tracked, and by reconcile
    /// while it decides which deployments were interrupted: a deployment this
    /// process just queued is never mistaken for one a crash left behind.
    recording: tokio::sync::Mutex<()>,
}

impl Active {
    fn track(&self, id: DeploymentId) -> CancellationToken {
        let mut tokens = self.tokens.lock().expect("active deployments poisoned");
        tokens.entry(id).or_default().clone()
    }

    fn forget(&self, id: DeploymentId) {
        self.tokens
            .lock()
            .expect("active deployments poisoned")
            .remove(&id);
    }

    fn cancel(&self, id: DeploymentId) -> bool {
        match self
            .tokens
            .lock()
            .expect("active deployments poisoned")
            .get(&id)
        {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    fn is_tracked(&self, id: DeploymentId) -> bool {
        self.tokens
            .lock()
            .expect("active deployments poisoned")
            .contains_key(&id)
    }
}

/// Why a deployment stopped before the switch.
enum Stop {
    Cancelled,
    Failed(String),
}

impl From<DeployError> for Stop {
    fn from(err: DeployError) -> Stop {
        Stop::Failed(err.to_string())
    }
}

/// The new container, started and checked.
struct Started {
    id: String,
    /// Where the edge reaches it (see `Runtime::upstream_of`).
    upstream: Option<std::net::SocketAddr>,
    env_version: i64,
}

/// A `recreate` switch under way: the old container was stopped (it comes
/// back if the new one fails), and the edge holds the app's requests until
/// the switch ends either way.
#[derive(Default)]
struct Recreating {
    stopped_old: Option<ContainerInfo>,
    hold: Option<berth_edge::HoldGuard>,
}

impl Deployments {
    /// Queues a deployment of the app from its source (its image, or its git
    /// repository) and returns at once; the deployment runs when the app's
    /// earlier one is done. A deployment still queued is replaced.
    pub async fn deploy_app(
        &self,
        project: &ProjectName,
        name: &AppName,
        trigger: &str,
    ) -> Result<Deployment, DeployError> {
        let app = self.app(project, name).await?;
        self.enqueue_from_source(&app, trigger).await
    }

    /// Queues a deployment of the image that serves now (no pull, no build):
    /// a fresh container with the saved variables, without downtime.
    pub async fn redeploy_serving(
        &self,
        project: &ProjectName,
        name: &AppName,
        trigger: &str,
    ) -> Result<Deployment, DeployError> {
        let app = self.app(project, name).await?;
        let serving = deployments::list_for_app(self.store(), app.id, 10_000)
            .await?
            .into_iter()
            .find(|d| {
                d.container_id.is_some() && d.container_id == app.container_id && d.image.is_some()
            });
        let Some(serving) = serving else {
            return self.enqueue_from_source(&app, trigger).await;
        };
        self.enqueue(
            &app,
            NewDeployment {
                trigger: trigger.to_owned(),
                image: serving.image.clone(),
                image_id: serving.image_id.clone(),
                rollback_of: None,
            },
        )
        .await
    }

    /// "Redeploy": queues a deployment of the image that serves now with
    /// the current settings and saved environment, and returns it at once
    /// (no pull, no build; "Deploy" does those). A reference that does not
    /// resolve is refused before anything is queued.
    pub async fn redeploy_app(
        &self,
        project: &ProjectName,
        name: &AppName,
        trigger: &str,
    ) -> Result<Deployment, DeployError> {
        let app = self.app(project, name).await?;
        // A reference that does not resolve must not cost the running container.
        self.runtime_env(&app).await?;
        apps::set_desired_state(self.store(), app.id, DesiredState::Running).await?;
        let dep = self.redeploy_serving(project, name, trigger).await?;
        tracing::info!(project.name = %project, app.name = %name, deployment.number = dep.number, "redeploy queued");
        Ok(dep)
    }

    /// Queues a deployment of the image a kept deployment ran.
    pub async fn rollback_app(
        &self,
        project: &ProjectName,
        name: &AppName,
        number: i64,
    ) -> Result<Deployment, DeployError> {
        let app = self.app(project, name).await?;
        let target = deployments::find_number(self.store(), app.id, number).await?;
        let Some(image) = target
            .image
            .clone()
            .filter(|_| target.status == DeploymentStatus::Succeeded && !target.pruned)
        else {
            return Err(DeployError::Invalid {
                field: "deployment",
                message: format!(
                    "deployment #{number} cannot be rolled back to: only succeeded deployments whose image is kept can"
                ),
            });
        };
        self.enqueue(
            &app,
            NewDeployment {
                trigger: format!("rollback to #{number}"),
                image: Some(image),
                image_id: target.image_id.clone(),
                rollback_of: Some(number),
            },
        )
        .await
    }

    /// Cancels a queued or running deployment and waits until it has stopped.
    /// A deployment past its switch finishes (the new version already serves).
    pub async fn cancel_deployment(
        &self,
        project: &ProjectName,
        name: &AppName,
        number: i64,
    ) -> Result<Deployment, DeployError> {
        let app = self.app(project, name).await?;
        let dep = deployments::find_number(self.store(), app.id, number).await?;
        if dep.status == DeploymentStatus::Queued
            && deployments::cancel_queued(self.store(), dep.id, "cancelled by the user").await?
        {
            self.inner.deploys.forget(dep.id);
            tracing::info!(app.name = %name, deployment.number = number, "queued deployment cancelled");
        } else if dep.status.is_active() {
            self.inner.deploys.cancel(dep.id);
        }
        self.wait_for_deployment(dep.id).await
    }

    /// Polls the deployment until it is no longer queued or running.
    pub async fn wait_for_deployment(&self, id: DeploymentId) -> Result<Deployment, DeployError> {
        let deadline = Instant::now() + WAIT_FOR_END;
        loop {
            let dep = deployments::find(self.store(), id).await?;
            if !dep.status.is_active() || Instant::now() >= deadline {
                return Ok(dep);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn list_deployments(&self, app: &App) -> Result<Vec<Deployment>, DeployError> {
        Ok(deployments::list_for_app(self.store(), app.id, 100).await?)
    }

    pub async fn find_deployment(
        &self,
        project: &ProjectName,
        name: &AppName,
        number: i64,
    ) -> Result<(App, Deployment), DeployError> {
        let app = self.app(project, name).await?;
        let dep = deployments::find_number(self.store(), app.id, number).await?;
        Ok((app, dep))
    }

    /// The deployment as stored now (its status moves on while it runs).
    pub async fn reload(&self, dep: &Deployment) -> Result<Deployment, DeployError> {
        Ok(deployments::find(self.store(), dep.id).await?)
    }

    /// The deployment's log lines after `after_seq`, as (seq, line).
    pub async fn deployment_log(
        &self,
        dep: &Deployment,
        after_seq: i64,
    ) -> Result<Vec<(i64, String)>, DeployError> {
        Ok(deployments::log_since(self.store(), dep.id, after_seq).await?)
    }

    pub async fn deploy_settings(&self, app: &App) -> Result<DeploySettings, DeployError> {
        Ok(deployments::settings(self.store(), app.id).await?)
    }

    /// Saves how the app is deployed; takes effect with the next deployment.
    ///
    /// Pages and the API show a git URL's credentials as `***`: a URL sent
    /// back as it was shown keeps the stored credentials.
    pub async fn save_deploy_settings(
        &self,
        app: &App,
        settings: &DeploySettings,
    ) -> Result<(), DeployError> {
        let mut settings = settings.clone();
        if let Source::Git(git) = &mut settings.source
            && berth_core::url_has_masked_credentials(&git.url)
        {
            let stored = match deployments::settings(self.store(), app.id).await?.source {
                Source::Git(stored) => Some(stored.url),
                Source::Image => None,
            };
            match stored
                .filter(|stored| berth_core::redact_url_credentials(stored) == git.url.as_str())
            {
                Some(stored) => git.url = stored,
                None => {
                    return Err(DeployError::Invalid {
                        field: "git_url",
                        message: "*** stands for the saved credentials of the same URL: type the credentials again for a different host or path".to_owned(),
                    });
                }
            }
        }
        let settings = &settings;
        self.check_source(&settings.source)?;
        if let Some(problem) = settings
            .health
            .path
            .as_deref()
            .and_then(HealthCheck::path_problem)
        {
            return Err(DeployError::Invalid {
                field: "health_path",
                message: problem.to_owned(),
            });
        }
        deployments::save_settings(self.store(), app.id, settings).await?;
        tracing::info!(project.name = %app.project, app.name = %app.name, "deploy settings saved");
        Ok(())
    }

    /// The SSH host keys berth recorded for the host of the app's git
    /// source at its first clone (empty before that, or for other sources).
    pub async fn ssh_host_keys(&self, app: &App) -> Result<Vec<HostKey>, DeployError> {
        let Source::Git(git) = deployments::settings(self.store(), app.id).await?.source else {
            return Ok(Vec::new());
        };
        let Some(name) = crate::git::known_hosts_name(&git.url) else {
            return Ok(Vec::new());
        };
        let text = match tokio::fs::read_to_string(self.known_hosts_file()).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(DeployError::Tool(format!("cannot read known_hosts: {e}"))),
        };
        Ok(crate::git::recorded_host_keys(&text, &name))
    }

    /// The public half of the app's SSH deploy key (to add to the
    /// repository as a read-only deploy key), made on first use. The
    /// private half stays sealed in the store and is never shown.
    pub async fn deploy_key(&self, app: &App) -> Result<String, DeployError> {
        if let Some(public) = deployments::deploy_key_public(self.store(), app.id).await? {
            return Ok(public);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = self
            .data_dir()
            .join("builds")
            .join(format!("keygen-{}-{nanos}", app.id));
        std::fs::create_dir_all(self.data_dir().join("builds"))
            .map_err(|e| DeployError::Tool(format!("cannot create the builds dir: {e}")))?;
        let comment = format!("berth {}/{}", app.project, app.name);
        let (public, private) = crate::git::generate_key(&dir, &comment)
            .await
            .map_err(DeployError::Tool)?;
        let public = deployments::save_deploy_key(self.store(), app.id, &public, &private).await?;
        tracing::info!(project.name = %app.project, app.name = %app.name, "deploy key created");
        Ok(public)
    }
}

impl Runtime {
    pub(crate) async fn enqueue_from_source(
        &self,
        app: &App,
        trigger: &str,
    ) -> Result<Deployment, DeployError> {
        let settings = deployments::settings(self.store(), app.id).await?;
        let image = match settings.source {
            Source::Image => Some(app.image.to_pullable()),
            Source::Git(_) => None,
        };
        self.enqueue(
            app,
            NewDeployment {
                trigger: trigger.to_owned(),
                image,
                ..NewDeployment::default()
            },
        )
        .await
    }

    /// Records the deployment, replaces one still queued, and runs it in the
    /// background once the app's lock is free.
    pub(crate) async fn enqueue(
        &self,
        app: &App,
        new: NewDeployment,
    ) -> Result<Deployment, DeployError> {
        let recording = self.inner.deploys.recording.lock().await;
        let (dep, replaced) = deployments::enqueue(self.store(), app.id, &new).await?;
        self.inner.deploys.track(dep.id);
        drop(recording);
        for old in replaced {
            self.inner.deploys.forget(old.id);
            self.log(old.id, format!("replaced by deployment #{}", dep.number))
                .await;
        }
        self.log(
            dep.id,
            format!("deployment #{} queued ({})", dep.number, dep.trigger),
        )
        .await;
        tracing::info!(project.name = %app.project, app.name = %app.name, deployment.number = dep.number, deployment.trigger = %dep.trigger, "deployment queued");
        self.spawn_deployment(dep.app_id, dep.id);
        Ok(dep)
    }

    pub(crate) fn spawn_deployment(&self, app_id: AppId, dep_id: DeploymentId) {
        self.inner.deploys.track(dep_id);
        let engine = self.clone();
        tokio::spawn(async move {
            let lock = engine.app_lock(app_id);
            let _guard = lock.lock().await;
            if let Err(err) = engine.run_deployment_locked(dep_id).await {
                tracing::warn!(deployment.id = %dep_id, error = %err, "deployment failed");
            }
            engine.inner.deploys.forget(dep_id);
        });
    }

    /// Records a deployment and runs it now; the caller holds the app's lock.
    pub(crate) async fn deploy_now_locked(
        &self,
        app_id: AppId,
        trigger: &str,
    ) -> Result<(), DeployError> {
        let app = apps::find_by_id(self.store(), app_id).await?;
        let settings = deployments::settings(self.store(), app.id).await?;
        let image = match settings.source {
            Source::Image => Some(app.image.to_pullable()),
            Source::Git(_) => None,
        };
        let new = NewDeployment {
            trigger: trigger.to_owned(),
            image,
            ..NewDeployment::default()
        };
        let recording = self.inner.deploys.recording.lock().await;
        let (dep, _) = deployments::enqueue(self.store(), app.id, &new).await?;
        self.inner.deploys.track(dep.id);
        drop(recording);
        let result = self.run_deployment_locked(dep.id).await;
        self.inner.deploys.forget(dep.id);
        result
    }

    /// Runs a queued deployment to its end. Errors are recorded on the
    /// deployment (and on the app when nothing else serves it).
    pub(crate) async fn run_deployment_locked(
        &self,
        dep_id: DeploymentId,
    ) -> Result<(), DeployError> {
        let dep = deployments::find(self.store(), dep_id).await?;
        if dep.status != DeploymentStatus::Queued {
            return Ok(()); // cancelled or replaced while it waited
        }
        deployments::mark_running(self.store(), dep_id).await?;
        let result = self.run_running(&dep).await;
        if let Err(err) = &result {
            // Whatever went wrong, the deployment ends and says why.
            let reason = err.to_string();
            let current = deployments::find(self.store(), dep_id).await?;
            if current.status.is_active() {
                self.log(
                    dep_id,
                    format!("deployment #{} failed: {reason}", dep.number),
                )
                .await;
                deployments::finish(
                    self.store(),
                    dep_id,
                    DeploymentStatus::Failed,
                    Some(&reason),
                )
                .await?;
            }
            let app = apps::find_by_id(self.store(), dep.app_id).await?;
            if app.container_id.is_none() {
                apps::set_status(self.store(), app.id, AppStatus::Failed, Some(&reason)).await?;
            }
        }
        result
    }

    async fn run_running(&self, dep: &Deployment) -> Result<(), DeployError> {
        let dep_id = dep.id;
        let token = self.inner.deploys.track(dep_id);
        let app = apps::find_by_id(self.store(), dep.app_id).await?;
        // Deploying is asking for the app to run.
        apps::set_desired_state(self.store(), app.id, berth_core::DesiredState::Running).await?;
        let settings = deployments::settings(self.store(), app.id).await?;
        let serving = self.serving_container(&app).await?;
        let fresh = serving.is_none();
        self.log(
            dep_id,
            match &serving {
                Some(c) => format!(
                    "deployment #{} started; {} keeps serving until the new container passes its check",
                    dep.number, c.name
                ),
                None => format!(
                    "deployment #{} started; nothing is serving, so the new container serves as soon as it runs",
                    dep.number
                ),
            },
        )
        .await;
        let mut recreating = Recreating::default();
        let outcome = self
            .prepare_and_check(
                &app,
                dep,
                &settings,
                serving.as_ref(),
                &mut recreating,
                &token,
            )
            .await;
        match outcome {
            Ok(started) => {
                self.switch_and_drain(
                    &app,
                    dep,
                    &settings,
                    serving.as_ref(),
                    &started,
                    &mut recreating,
                )
                .await?;
                // The line first: a live log ends when it sees the status change.
                self.log(dep_id, format!("deployment #{} succeeded", dep.number))
                    .await;
                deployments::finish(self.store(), dep_id, DeploymentStatus::Succeeded, None)
                    .await?;
                tracing::info!(project.name = %app.project, app.name = %app.name, deployment.number = dep.number, "deployment succeeded");
                if let Err(err) = self.prune_images(&app, &settings).await {
                    tracing::warn!(app.name = %app.name, error = %err, "image cleanup failed");
                }
                Ok(())
            }
            Err(stop) => {
                let (status, reason) = match stop {
                    Stop::Cancelled => (DeploymentStatus::Cancelled, "cancelled".to_owned()),
                    Stop::Failed(reason) => (DeploymentStatus::Failed, reason),
                };
                let tail = self.discard_new_containers(&app, dep, fresh, status).await;
                if let Some(old) = recreating.stopped_old.take() {
                    self.bring_back(&app, dep, &old).await;
                }
                // Held requests go on to whatever serves now.
                drop(recreating);
                let mut full = reason.clone();
                if !tail.is_empty() {
                    full.push_str("\nlast lines of the new container:\n");
                    full.push_str(&tail.join("\n"));
                }
                self.log(
                    dep_id,
                    format!("deployment #{} {}: {reason}", dep.number, status.as_str()),
                )
                .await;
                if !tail.is_empty() {
                    let mut lines = vec!["last lines of the new container:".to_owned()];
                    lines.extend(tail.iter().map(|l| format!("  {l}")));
                    let _ = deployments::append_log(self.store(), dep_id, &lines).await;
                }
                deployments::finish(self.store(), dep_id, status, Some(&full)).await?;
                tracing::info!(project.name = %app.project, app.name = %app.name, deployment.number = dep.number, deployment.status = status.as_str(), "deployment ended");
                if fresh {
                    let app = apps::find_by_id(self.store(), app.id).await?;
                    if app.container_id.is_none() && status == DeploymentStatus::Failed {
                        apps::set_status(self.store(), app.id, AppStatus::Failed, Some(&reason))
                            .await?;
                    }
                    self.routes_changed().await;
                }
                Ok(())
            }
        }
    }

    /// The container serving the app now, if it runs.
    async fn serving_container(&self, app: &App) -> Result<Option<ContainerInfo>, DeployError> {
        let Some(id) = self.current_container(app).await? else {
            return Ok(None);
        };
        let Some(info) = self.docker().inspect_container(&id).await? else {
            return Ok(None);
        };
        if info.state != ContainerState::Running {
            return Ok(None);
        }
        if !info.labels.contains_key(DEPLOYMENT) {
            // Made before deployments existed: it becomes deployment 0.
            deployments::adopt_legacy(self.store(), app.id, &info.image, &info.id).await?;
        }
        Ok(Some(info))
    }

    /// Image (pulled or built), mounts ready, container created and started,
    /// health check passed. With the `recreate` strategy the serving
    /// container is stopped (and recorded in `recreating`) after the new one
    /// is created and before it starts, while the edge holds the app's
    /// requests.
    async fn prepare_and_check(
        &self,
        app: &App,
        dep: &Deployment,
        settings: &DeploySettings,
        serving: Option<&ContainerInfo>,
        recreating: &mut Recreating,
        token: &CancellationToken,
    ) -> Result<Started, Stop> {
        let fresh = serving.is_none();
        let docker = self.docker();
        let network = network_name(&app.project);
        let mut labels = self.object_labels();
        labels.extend([
            (MANAGED.to_owned(), "true".to_owned()),
            (INSTANCE.to_owned(), self.instance_id().to_owned()),
            (PROJECT.to_owned(), app.project.to_string()),
        ]);
        docker
            .ensure_network(&network, &labels)
            .await
            .map_err(DeployError::from)?;
        labels.extend([
            (KIND.to_owned(), ResourceKind::App.as_str().to_owned()),
            (RESOURCE.to_owned(), app.name.to_string()),
            (SERVICE.to_owned(), app.name.to_string()),
            (APP.to_owned(), app.name.to_string()),
            (DEPLOYMENT.to_owned(), dep.number.to_string()),
        ]);

        // Cancelling stops the waiting parts (pull, clone, build, health
        // check); Docker calls that create something run to their end, so
        // what they made is there for the clean-up to find.
        let image =
            cancellable(token, self.obtain_image(app, dep, settings, fresh, &labels)).await?;
        let info = docker
            .image_info(&image)
            .await
            .map_err(DeployError::from)?
            .ok_or_else(|| {
                Stop::Failed(format!(
                    "the image {image} is missing after it was prepared"
                ))
            })?;

        // Resolved before anything else, so a broken reference costs nothing.
        let (env_version, env) = self.runtime_env(app).await?;
        let mounts = self.prepare_mounts(app, &info.volumes).await?;
        for m in &mounts.mounts {
            self.log(dep.id, describe_mount(m)).await;
        }
        let (strategy, why) = DeployStrategy::choose(settings.strategy, mounts.count);
        self.log(dep.id, format!("strategy {why}")).await;
        if fresh {
            apps::set_status(self.store(), app.id, AppStatus::Starting, None)
                .await
                .map_err(DeployError::from)?;
        }
        let name = deployment_container_name(&app.project, &app.name, dep.number);
        if let Some(stale) = docker
            .inspect_container(&name)
            .await
            .map_err(DeployError::from)?
        {
            docker
                .remove_container(&stale.id)
                .await
                .map_err(DeployError::from)?;
        }
        if token.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        // Created before a `recreate` stops the old container: creating
        // costs a few hundred ms on a busy host, and the edge holds the app's
        // requests only from the stop to the new version's check.
        let spec = ContainerSpec {
            name: name.clone(),
            image: image.clone(),
            cmd: app.command.as_ref().map(|c| c.args().to_vec()),
            env,
            labels,
            network,
            network_aliases: vec![app.name.to_string()],
            // Published only where the host cannot reach Docker's networks.
            container_port: if self.direct() {
                0
            } else {
                app.container_port.get()
            },
            restart: settings.restart_policy,
            memory_bytes: settings.memory_mb.map(|mb| i64::from(mb) * 1024 * 1024),
            nano_cpus: settings.cpu_millis.map(|m| i64::from(m) * 1_000_000),
            mounts: mounts.mounts,
            options: Default::default(),
        };
        let id = docker
            .create_container(&spec)
            .await
            .map_err(DeployError::from)?;
        deployments::set_container(self.store(), dep.id, Some(&id))
            .await
            .map_err(DeployError::from)?;
        if strategy == DeployStrategy::Recreate
            && let Some(old) = serving
        {
            let hold = std::time::Duration::from_secs(u64::from(settings.hold_secs.max(1)));
            recreating.hold = self.hold_requests(app, old, hold);
            self.log(
                dep.id,
                format!(
                    "holding the app's requests at the edge (up to {} s) while {} stops and the new version starts",
                    settings.hold_secs.max(1),
                    old.name
                ),
            )
            .await;
            // Read as berth's own restart by the event watcher, not as a crash.
            apps::set_status(
                self.store(),
                app.id,
                AppStatus::Restarting,
                Some(&format!("recreate: deployment #{}", dep.number)),
            )
            .await
            .map_err(DeployError::from)?;
            // New requests wait at the edge now; those already under way
            // finish before the old container gets its SIGTERM.
            if let Some(upstream) = self.upstream_of(app, old) {
                let grace = Duration::from_secs(u64::from(settings.drain_secs));
                if !self.drain_address(upstream, grace).await {
                    self.log(
                        dep.id,
                        "grace period over with requests still in flight: stopping anyway"
                            .to_owned(),
                    )
                    .await;
                }
            }
            let timeout = i32::try_from(settings.stop_timeout_secs).unwrap_or(10);
            self.log(
                dep.id,
                format!("stopping {} (SIGTERM, SIGKILL after {timeout} s)", old.name),
            )
            .await;
            recreating.stopped_old = Some(old.clone());
            docker
                .stop_container(&old.id, timeout)
                .await
                .map_err(DeployError::from)?;
        }
        if let Some(old) = serving
            && !mounts.fresh_targets.is_empty()
        {
            // The old container was made before berth kept volumes: its data
            // moves into the named volumes made just now for the same paths.
            let old = docker
                .inspect_container(&old.id)
                .await
                .map_err(DeployError::from)?
                .unwrap_or_else(|| old.clone());
            for line in self
                .adopt_anonymous_data(&old, &id, &mounts.fresh_targets)
                .await?
            {
                self.log(dep.id, line).await;
            }
        }
        if fresh {
            // Nothing else serves: the app follows this container from the start.
            apps::set_container(self.store(), app.id, Some(&id), None, None)
                .await
                .map_err(DeployError::from)?;
            self.mark_env_deployed(app, env_version).await?;
        }
        self.log(dep.id, format!("starting container {name}")).await;
        docker
            .start_container(&id)
            .await
            .map_err(DeployError::from)?;
        let upstream = docker
            .inspect_container(&id)
            .await
            .map_err(DeployError::from)?
            .and_then(|i| self.upstream_of(app, &i));
        if fresh {
            self.record_running(app.id, &id).await?;
        }
        if token.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        let mut lines = Vec::new();
        let checked = cancellable(token, async {
            crate::health::wait_healthy(
                docker,
                &id,
                upstream,
                &settings.health,
                info.has_healthcheck,
                recreating.stopped_old.is_some(),
                &mut |line| lines.push(line),
            )
            .await
            .map_err(Stop::Failed)
        })
        .await;
        deployments::append_log(self.store(), dep.id, &lines)
            .await
            .map_err(DeployError::from)?;
        checked?;
        Ok(Started {
            id,
            upstream,
            env_version,
        })
    }

    /// After a failed or cancelled `recreate`: the old container starts
    /// again on its volumes and serves as before.
    async fn bring_back(&self, app: &App, dep: &Deployment, old: &ContainerInfo) {
        self.log(
            dep.id,
            format!("starting the previous version ({}) again", old.name),
        )
        .await;
        let result = async {
            self.docker().start_container(&old.id).await?;
            self.record_running(app.id, &old.id).await
        }
        .await;
        match result {
            Ok(()) => {
                self.log(dep.id, format!("{} serves again", old.name)).await;
            }
            Err(err) => {
                let message = format!("the previous version could not be started again: {err}");
                self.log(dep.id, message.clone()).await;
                let _ =
                    apps::set_status(self.store(), app.id, AppStatus::Failed, Some(&message)).await;
            }
        }
        self.routes_changed().await;
    }

    /// The image to run: a fixed one (pulled when missing) or one built from
    /// the app's git repository. Records it (and its ID) on the deployment.
    async fn obtain_image(
        &self,
        app: &App,
        dep: &Deployment,
        settings: &DeploySettings,
        fresh: bool,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<String, Stop> {
        let docker = self.docker();
        if let Some(image) = &dep.image {
            // A rollback runs the very image it names, even if the tag moved since.
            if let Some(id) = &dep.image_id
                && docker.image_exists(id).await.map_err(DeployError::from)?
            {
                self.log(
                    dep.id,
                    format!("using the kept image {image} ({})", short_id(id)),
                )
                .await;
                deployments::set_image(self.store(), dep.id, image, Some(id), false)
                    .await
                    .map_err(DeployError::from)?;
                return Ok(id.clone());
            }
            if !docker
                .image_exists(image)
                .await
                .map_err(DeployError::from)?
            {
                self.pull(app, dep, image, fresh).await?;
            } else {
                self.log(dep.id, format!("image {image} is present")).await;
            }
            let id = docker
                .image_info(image)
                .await
                .map_err(DeployError::from)?
                .map(|i| i.id);
            deployments::set_image(self.store(), dep.id, image, id.as_deref(), false)
                .await
                .map_err(DeployError::from)?;
            return Ok(image.clone());
        }
        let Source::Git(git) = &settings.source else {
            return Err(Stop::Failed(
                "the app has no image and no git source".to_owned(),
            ));
        };
        if fresh {
            apps::set_status(
                self.store(),
                app.id,
                AppStatus::Pulling,
                Some("building from git"),
            )
            .await
            .map_err(DeployError::from)?;
        }
        // Builds take CPU, memory and disk from the apps that serve: at most
        // BUILDS_AT_ONCE across all apps, the rest wait their turn.
        let slot = match BUILD_SLOTS.try_acquire() {
            Ok(slot) => slot,
            Err(_) => {
                self.log(
                    dep.id,
                    format!("waiting for a build slot ({BUILDS_AT_ONCE} builds run at a time)"),
                )
                .await;
                BUILD_SLOTS
                    .acquire()
                    .await
                    .map_err(|e| Stop::Failed(e.to_string()))?
            }
        };
        let dir = self.build_dir(dep.id);
        let _ = std::fs::remove_dir_all(&dir);
        // Dropping the build on time-out kills git and closes Docker's build stream.
        let minutes = settings.build_timeout_mins.clamp(
            *berth_core::deployment::BUILD_TIMEOUT_MINS.start(),
            *berth_core::deployment::BUILD_TIMEOUT_MINS.end(),
        );
        let result = tokio::time::timeout(
            Duration::from_secs(u64::from(minutes) * 60),
            self.build_from_git(app, dep, git, &dir, labels),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Stop::Failed(format!(
                "the clone and build took longer than {minutes} minute{} and were stopped (the app's build time-out)",
                if minutes == 1 { "" } else { "s" }
            )))
        });
        drop(slot);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    async fn build_from_git(
        &self,
        app: &App,
        dep: &Deployment,
        git: &berth_core::GitSource,
        dir: &std::path::Path,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<String, Stop> {
        let branch = if git.branch.is_empty() {
            "(default branch)"
        } else {
            &git.branch
        };
        // The log is shown to anyone who sees the app: a token in the URL stays out.
        let url = berth_core::redact_url_credentials(&git.url);
        self.log(dep.id, format!("cloning {url} {branch}")).await;
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Stop::Failed(format!("cannot create {}: {e}", parent.display())))?;
        }
        // Over SSH with the app's deploy key (if it has one), in a 0600 file
        // of berth's own that is removed once the clone is done.
        let key_file = if crate::git::is_ssh_url(&git.url) {
            match deployments::deploy_key_private(self.store(), app.id)
                .await
                .map_err(DeployError::from)?
            {
                Some(private) => {
                    let path = dir.with_extension("key");
                    let file = crate::git::KeyFile::write(path, &private).map_err(Stop::Failed)?;
                    self.log(dep.id, "using the app's deploy key".to_owned())
                        .await;
                    Some(file)
                }
                None => None,
            }
        } else {
            None
        };
        // Every SSH clone, with a deploy key or not, records the host's key
        // on first use and holds the host to it afterwards.
        let known_hosts = self.known_hosts_file();
        let ssh = crate::git::is_ssh_url(&git.url).then(|| crate::git::Ssh {
            key_file: key_file.as_ref().map(|file| file.path()),
            known_hosts: &known_hosts,
        });
        // Checked again: the root may have changed since the source was saved.
        let transport = self.git_transport(&git.url)?;
        let cloned = crate::git::clone(&git.url, &transport, &git.branch, dir, ssh.as_ref()).await;
        drop(key_file);
        let commit = cloned.map_err(Stop::Failed)?;
        deployments::set_commit(self.store(), dep.id, &commit)
            .await
            .map_err(DeployError::from)?;
        self.log(dep.id, format!("checked out commit {commit}"))
            .await;
        let context = crate::git::context_stream(dir, &git.subdir)
            .await
            .map_err(Stop::Failed)?;
        let build_args = self.env().app_build_args(app).await?;
        let tag = build_tag(app, dep.number);
        self.log(
            dep.id,
            format!(
                "building {tag} ({} build args: {})",
                build_args.len(),
                build_args
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .await;
        let spec = BuildSpec {
            tag: tag.clone(),
            dockerfile: git.dockerfile.clone(),
            labels: labels.clone(),
            build_args: build_args.into_iter().collect(),
            target: None,
        };
        let mut stream = Box::pin(self.docker().build_image(&spec, context));
        let mut batch = Vec::new();
        let mut last_write = Instant::now();
        while let Some(item) = stream.next().await {
            match item {
                Ok(progress) => batch.push(progress.line),
                Err(err) => {
                    let _ = deployments::append_log(self.store(), dep.id, &batch).await;
                    return Err(Stop::Failed(format!("the build failed: {err}")));
                }
            }
            if last_write.elapsed() >= Duration::from_millis(250) {
                deployments::append_log(self.store(), dep.id, &batch)
                    .await
                    .map_err(DeployError::from)?;
                batch.clear();
                last_write = Instant::now();
            }
        }
        deployments::append_log(self.store(), dep.id, &batch)
            .await
            .map_err(DeployError::from)?;
        let id = self
            .docker()
            .image_info(&tag)
            .await
            .map_err(DeployError::from)?
            .map(|i| i.id);
        deployments::set_image(self.store(), dep.id, &tag, id.as_deref(), true)
            .await
            .map_err(DeployError::from)?;
        Ok(tag)
    }

    /// Where berth records SSH host keys on first use, for every app.
    pub(crate) fn known_hosts_file(&self) -> PathBuf {
        self.data_dir().join("known_hosts")
    }

    fn build_dir(&self, dep_id: DeploymentId) -> PathBuf {
        self.data_dir().join("builds").join(dep_id.to_string())
    }

    async fn pull(
        &self,
        app: &App,
        dep: &Deployment,
        image: &str,
        fresh: bool,
    ) -> Result<(), Stop> {
        self.log(dep.id, format!("pulling {image}")).await;
        if fresh {
            apps::set_status(
                self.store(),
                app.id,
                AppStatus::Pulling,
                Some("starting the pull"),
            )
            .await
            .map_err(DeployError::from)?;
        }
        let mut layers: HashMap<String, (u64, u64)> = HashMap::new();
        let mut last_write = Instant::now() - PROGRESS_EVERY;
        let mut stream = Box::pin(self.docker().pull_image(image));
        while let Some(progress) = stream.next().await {
            let progress = match progress {
                Ok(p) => p,
                Err(err) => {
                    let message = err.to_string();
                    if fresh {
                        let _ = apps::set_status(
                            self.store(),
                            app.id,
                            AppStatus::Failed,
                            Some(&message),
                        )
                        .await;
                    }
                    return Err(Stop::Failed(message));
                }
            };
            if let (Some(id), Some(total)) = (&progress.id, progress.total) {
                layers.insert(id.clone(), (progress.current.unwrap_or(0), total));
            }
            if last_write.elapsed() >= PROGRESS_EVERY {
                last_write = Instant::now();
                let detail = describe_pull(&progress, &layers);
                self.log(dep.id, detail.clone()).await;
                if fresh {
                    apps::set_status(self.store(), app.id, AppStatus::Pulling, Some(&detail))
                        .await
                        .map_err(DeployError::from)?;
                }
            }
        }
        self.log(dep.id, format!("pulled {image}")).await;
        Ok(())
    }

    /// Points the app (and the edge) at the new container, then drains and
    /// stops the old one. Past the switch nothing is cancelled.
    async fn switch_and_drain(
        &self,
        app: &App,
        dep: &Deployment,
        settings: &DeploySettings,
        serving: Option<&ContainerInfo>,
        started: &Started,
        recreating: &mut Recreating,
    ) -> Result<(), DeployError> {
        let host_port = started
            .upstream
            .filter(|u| u.ip().is_loopback())
            .map(|u| u.port());
        apps::set_container(
            self.store(),
            app.id,
            Some(&started.id),
            host_port,
            started.upstream,
        )
        .await?;
        apps::set_status(self.store(), app.id, AppStatus::Running, None).await?;
        self.mark_env_deployed(app, started.env_version).await?;
        self.routes_changed().await;
        // The new version serves: requests held during a recreate go on to it.
        let recreated = recreating.stopped_old.take().is_some();
        recreating.hold = None;
        if let Some(upstream) = started.upstream {
            self.log(
                dep.id,
                format!("switched: the app now routes to {upstream}"),
            )
            .await;
        }
        let mut old: Vec<ContainerInfo> = Vec::new();
        if let Some(serving) = serving {
            old.push(serving.clone());
        }
        // Stopped leftovers of earlier deployments go too.
        for c in self.app_containers(app).await? {
            if c.id != started.id && !old.iter().any(|o| o.id == c.id) {
                old.push(c);
            }
        }
        if let Some(serving) = serving.filter(|_| !recreated) {
            self.log(
                dep.id,
                format!(
                    "draining {} (up to {} s)",
                    serving.name, settings.drain_secs
                ),
            )
            .await;
            // In-flight requests to the old upstream finish there while new ones go to
            // the new one. A short settle first covers a request that read the old
            // table just before the swap but had not been counted yet; then wait
            // until the old upstream is idle, at most the grace period.
            let grace = Duration::from_secs(u64::from(settings.drain_secs));
            let settle = DRAIN_SETTLE.min(grace);
            tokio::time::sleep(settle).await;
            let drained = match self.upstream_of(app, serving) {
                Some(upstream) => self.drain_address(upstream, grace - settle).await,
                None => {
                    tokio::time::sleep(grace - settle).await;
                    true
                }
            };
            if !drained {
                self.log(
                    dep.id,
                    "grace period over with requests still in flight: stopping anyway".to_owned(),
                )
                .await;
            }
        }
        let timeout = i32::try_from(settings.stop_timeout_secs).unwrap_or(10);
        for c in old {
            if c.state == ContainerState::Running {
                self.log(
                    dep.id,
                    format!("stopping {} (SIGTERM, SIGKILL after {timeout} s)", c.name),
                )
                .await;
                if let Err(err) = self.docker().stop_container(&c.id, timeout).await {
                    tracing::warn!(container.id = %c.id, error = %err, "could not stop the old container");
                }
            }
            self.docker().remove_container(&c.id).await?;
            if let Ok(old_dep) = deployments::list_for_app(self.store(), app.id, 1000).await {
                for d in old_dep
                    .iter()
                    .filter(|d| d.container_id.as_deref() == Some(c.id.as_str()))
                {
                    deployments::set_container(self.store(), d.id, None).await?;
                }
            }
        }
        Ok(())
    }

    /// Removes this deployment's containers unless one became the serving one;
    /// returns the new container's last log lines.
    async fn discard_new_containers(
        &self,
        app: &App,
        dep: &Deployment,
        fresh: bool,
        status: DeploymentStatus,
    ) -> Vec<String> {
        let number = dep.number.to_string();
        let containers = match self.app_containers(app).await {
            Ok(c) => c,
            Err(_) => return Vec::new(),
        };
        let mut tail = Vec::new();
        for c in containers
            .iter()
            .filter(|c| c.labels.get(DEPLOYMENT) == Some(&number))
        {
            tail = self
                .docker()
                .logs_tail(&c.id, FAILED_LOG_LINES)
                .await
                .unwrap_or_default();
            // With nothing else to serve, a container that merely failed its
            // check stays: it is the best there is, and its status follows Docker.
            if fresh && status == DeploymentStatus::Failed {
                continue;
            }
            if let Err(err) = self.docker().remove_container(&c.id).await {
                tracing::warn!(container.id = %c.id, error = %err, "could not remove a discarded container");
            }
            if fresh {
                let _ = apps::set_container(self.store(), app.id, None, None, None).await;
                let _ = apps::set_status(
                    self.store(),
                    app.id,
                    AppStatus::Failed,
                    Some(&format!("deployment #{} was cancelled", dep.number)),
                )
                .await;
            }
        }
        let _ = deployments::set_container(self.store(), dep.id, None).await;
        if !fresh {
            // The old version serves on; say so rather than leave a deploy's detail.
            let _ = apps::set_status(self.store(), app.id, AppStatus::Running, None).await;
        }
        tail
    }

    /// Every container of this installation that belongs to the app.
    pub(crate) async fn app_containers(
        &self,
        app: &App,
    ) -> Result<Vec<ContainerInfo>, DeployError> {
        let mut containers = self
            .docker()
            .list_containers(&[
                (INSTANCE, self.instance_id()),
                (PROJECT, app.project.as_str()),
                (APP, app.name.as_str()),
            ])
            .await?;
        containers.retain(|c| crate::naming::is_app_kind(&c.labels));
        Ok(containers)
    }

    /// Keeps the images of the app's last `keep_images` successful
    /// deployments; older deployments can no longer be rolled back to, and
    /// the images berth built for them are removed unless a kept deployment
    /// runs the same image. Pulled images are never removed: other apps or
    /// people may use them.
    async fn prune_images(&self, app: &App, settings: &DeploySettings) -> Result<(), DeployError> {
        let all = deployments::list_for_app(self.store(), app.id, 10_000).await?;
        let succeeded: Vec<&Deployment> = all
            .iter()
            .filter(|d| d.status == DeploymentStatus::Succeeded && !d.pruned)
            .collect();
        let keep = usize::try_from(settings.keep_images.max(1)).unwrap_or(5);
        let kept_ids: HashSet<&str> = succeeded
            .iter()
            .take(keep)
            .filter_map(|d| d.image_id.as_deref())
            .collect();
        for d in succeeded.iter().skip(keep) {
            if d.built
                && let Some(image) = &d.image
                && !d
                    .image_id
                    .as_deref()
                    .is_some_and(|id| kept_ids.contains(id))
            {
                match self.docker().remove_image(image).await {
                    Ok(()) => {
                        tracing::info!(image.ref = %image, "removed an image no kept deployment uses")
                    }
                    Err(err) => {
                        tracing::warn!(image.ref = %image, error = %err, "could not remove an old image")
                    }
                }
            }
            deployments::mark_pruned(self.store(), d.id).await?;
        }
        Ok(())
    }

    /// Removes the images berth built for the app (when the app is deleted).
    pub(crate) async fn remove_built_images(&self, app_id: AppId) -> Result<(), DeployError> {
        for d in deployments::list_for_app(self.store(), app_id, 10_000).await? {
            if d.built
                && !d.pruned
                && let Some(image) = &d.image
            {
                let _ = self.docker().remove_image(image).await;
            }
        }
        Ok(())
    }

    /// After a restart of berth: deployments left queued resume; ones left
    /// running were interrupted and are failed, unless their container had
    /// already taken over (then they succeeded). Containers of interrupted
    /// deployments that do not serve are removed. Returns the containers the
    /// rest of reconcile must leave alone (removed ones and those of
    /// deployments in flight in this process).
    pub(crate) async fn reconcile_deployments(
        &self,
        containers: &[ContainerInfo],
    ) -> Result<HashSet<String>, DeployError> {
        let mut skip = HashSet::new();
        let mut in_flight: HashSet<(AppId, String)> = HashSet::new();
        let recording = self.inner.deploys.recording.lock().await;
        for dep in deployments::list_active(self.store()).await? {
            if self.inner.deploys.is_tracked(dep.id) {
                in_flight.insert((dep.app_id, dep.number.to_string()));
                continue;
            }
            let app = apps::find_by_id(self.store(), dep.app_id).await?;
            if dep.status == DeploymentStatus::Queued {
                tracing::info!(app.name = %app.name, deployment.number = dep.number, "resuming a queued deployment after a restart");
                self.log(dep.id, "berth restarted; the deployment resumes".to_owned())
                    .await;
                self.spawn_deployment(app.id, dep.id);
                in_flight.insert((dep.app_id, dep.number.to_string()));
                continue;
            }
            let took_over = dep.container_id.is_some() && dep.container_id == app.container_id;
            let (status, reason) = if took_over {
                (
                    DeploymentStatus::Succeeded,
                    "berth restarted after the switch; the new version serves",
                )
            } else {
                (
                    DeploymentStatus::Failed,
                    "interrupted: berth stopped during this deployment; the previous version kept serving",
                )
            };
            tracing::info!(app.name = %app.name, deployment.number = dep.number, deployment.status = status.as_str(), "reconciled an interrupted deployment");
            self.log(dep.id, reason.to_owned()).await;
            deployments::finish(self.store(), dep.id, status, Some(reason)).await?;
            // A recreate stops the old container before the new one runs:
            // interrupted in between, the old version starts again.
            if !took_over
                && app.desired_state == berth_core::DesiredState::Running
                && let Some(id) = &app.container_id
                && let Some(old) = self.docker().inspect_container(id).await?
                && matches!(old.state, ContainerState::Exited | ContainerState::Created)
            {
                tracing::info!(app.name = %app.name, container.name = %old.name, "starting the previous version again after an interrupted recreate");
                self.log(
                    dep.id,
                    format!("starting the previous version ({}) again", old.name),
                )
                .await;
                self.docker().start_container(&old.id).await?;
            }
        }
        drop(recording);
        let apps = apps::list_all(self.store()).await?;
        for c in containers {
            let (Some(project), Some(name)) = (c.labels.get(PROJECT), c.labels.get(APP)) else {
                continue;
            };
            let Some(app) = apps
                .iter()
                .find(|a| a.project.as_str() == project && a.name.as_str() == name)
            else {
                continue;
            };
            let number = c.labels.get(DEPLOYMENT).cloned().unwrap_or_default();
            if in_flight.contains(&(app.id, number)) && app.container_id.as_deref() != Some(&c.id) {
                skip.insert(c.id.clone());
                continue;
            }
            // One version serves: another container of an app that has a serving one is a leftover.
            let serving_exists = app
                .container_id
                .as_deref()
                .is_some_and(|id| containers.iter().any(|o| o.id == id));
            if serving_exists && app.container_id.as_deref() != Some(&c.id) {
                tracing::info!(container.name = %c.name, "removing a leftover container of an interrupted deployment");
                self.docker().remove_container(&c.id).await?;
                skip.insert(c.id.clone());
            }
        }
        Ok(skip)
    }

    /// Whether a deployment of the app is queued or running.
    pub(crate) async fn has_active_deployment(&self, app_id: AppId) -> Result<bool, DeployError> {
        Ok(deployments::list_active(self.store())
            .await?
            .iter()
            .any(|d| d.app_id == app_id))
    }

    /// Appends one line to a deployment's log; a failure to write is logged, not fatal.
    pub(crate) async fn log(&self, dep_id: DeploymentId, line: String) {
        if let Err(err) = deployments::append_log(self.store(), dep_id, &[line]).await {
            tracing::warn!(deployment.id = %dep_id, error = %err, "could not write the deployment log");
        }
    }
}

/// Refuses a git source berth could not clone (or that could pass an option to git).
impl Runtime {
    /// Refuses a git source berth will not clone: no URL, a URL or branch
    /// that git would read as an option, or a transport off the list (see
    /// [`crate::git::Transport`]).
    pub(crate) fn check_source(&self, source: &Source) -> Result<(), DeployError> {
        if let Source::Git(git) = source {
            if git.url.trim().is_empty() {
                return Err(DeployError::Invalid {
                    field: "git_url",
                    message: "a repository URL or path is needed for a git source".to_owned(),
                });
            }
            self.git_transport(&git.url)?;
            if git.branch.starts_with('-') {
                return Err(DeployError::Invalid {
                    field: "git_branch",
                    message: "a branch may not start with '-'".to_owned(),
                });
            }
        }
        Ok(())
    }

    pub(crate) fn git_transport(&self, url: &str) -> Result<crate::git::Transport, DeployError> {
        crate::git::Transport::of(url, self.options().git_file_root.as_deref()).map_err(|message| {
            DeployError::Invalid {
                field: "git_url",
                message,
            }
        })
    }
}

/// Runs `work` unless the deployment is cancelled first.
async fn cancellable<T>(
    token: &CancellationToken,
    work: impl std::future::Future<Output = Result<T, Stop>>,
) -> Result<T, Stop> {
    tokio::select! {
        r = work => r,
        _ = token.cancelled() => Err(Stop::Cancelled),
    }
}

/// The tag berth gives an image it built: one repository per app, the deployment number as tag.
fn build_tag(app: &App, number: i64) -> String {
    format!("berth-build/{}-{}:{number}", app.project, app.name)
}

/// One line of a deployment's log per mount.
fn describe_mount(mount: &berth_docker::Mount) -> String {
    match mount {
        berth_docker::Mount::Volume {
            name,
            target,
            read_only,
        } => format!(
            "mounting volume {name} at {target}{}",
            if *read_only { " (read-only)" } else { "" }
        ),
        berth_docker::Mount::Bind {
            source,
            target,
            read_only,
        } => format!(
            "mounting host path {source} at {target}{}",
            if *read_only { " (read-only)" } else { "" }
        ),
    }
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

pub(crate) fn describe_pull(
    progress: &berth_docker::PullProgress,
    layers: &HashMap<String, (u64, u64)>,
) -> String {
    let (current, total) = layers
        .values()
        .fold((0, 0), |(c, t), (lc, lt)| (c + lc, t + lt));
    if total > 0 {
        format!(
            "{}: {} of {} in {} layers",
            progress.status,
            crate::human_bytes(current),
            crate::human_bytes(total),
            layers.len()
        )
    } else {
        progress.status.clone()
    }
}
