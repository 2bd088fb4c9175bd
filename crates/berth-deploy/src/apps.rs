use berth_core::{
    App, AppId, AppName, AppStatus, Deployment, DesiredState, NewApp, ProjectName,
    deployment::Source,
};
use berth_store::apps;
use berth_store::deployments;

use crate::{Apps, DeployError, Runtime, container_name, network_name};

/// How long a container gets to stop after SIGTERM before it is killed.
const STOP_TIMEOUT_SECS: i32 = 10;

impl Apps {
    /// Records the app with where its deployments come from (the same
    /// deploy settings as saving that source afterwards, the other settings
    /// at their defaults), its volumes and its deploy strategy (`None`:
    /// berth chooses), all in place before the first deployment, and queues
    /// that deployment. Everything is checked before anything is recorded.
    /// Returns at once: the app is `pending` and its status moves on as
    /// deployment #1 (returned too) runs.
    pub async fn create_app_from(
        &self,
        project: &ProjectName,
        new: NewApp,
        source: Source,
        volumes: Vec<crate::VolumeRequest>,
        strategy: Option<berth_core::DeployStrategy>,
    ) -> Result<(App, Deployment), DeployError> {
        self.check_source(&source)?;
        self.check_volumes(&volumes, new.dangerous_mounts)?;
        let app = apps::create(self.store(), project, &new).await?;
        let settings = berth_core::DeploySettings {
            source,
            strategy,
            ..berth_core::DeploySettings::default()
        };
        let recorded = async {
            if settings != berth_core::DeploySettings::default() {
                deployments::save_settings(self.store(), app.id, &settings).await?;
            }
            self.record_volumes(&app, &volumes).await
        }
        .await;
        if let Err(err) = recorded {
            // Without its source or volumes the app would deploy the wrong thing.
            let _ = apps::delete(self.store(), app.id).await;
            return Err(err);
        }
        tracing::info!(project.name = %project, app.name = %app.name, app.image = %app.image, "app created");
        let deployment = self.enqueue_from_source(&app, "create").await?;
        Ok((app, deployment))
    }

    pub async fn list_apps(&self) -> Result<Vec<App>, DeployError> {
        Ok(apps::list_all(self.store()).await?)
    }

    pub async fn count_apps(&self) -> Result<i64, DeployError> {
        Ok(apps::count_all(self.store()).await?)
    }

    /// Crashed and failed apps: what the dashboard asks the user to look at.
    pub async fn apps_needing_attention(&self) -> Result<Vec<App>, DeployError> {
        Ok(apps::list_with_status(self.store(), &[AppStatus::Crashed, AppStatus::Failed]).await?)
    }

    pub async fn list_apps_in_project(
        &self,
        project: &ProjectName,
    ) -> Result<Vec<App>, DeployError> {
        Ok(apps::list_in_project(self.store(), project).await?)
    }

    pub async fn find_app(
        &self,
        project: &ProjectName,
        name: &AppName,
    ) -> Result<App, DeployError> {
        self.app(project, name).await
    }

    pub async fn start_app(
        &self,
        project: &ProjectName,
        name: &AppName,
    ) -> Result<App, DeployError> {
        let app = self.find_app(project, name).await?;
        let lock = self.app_lock(app.id);
        let _guard = lock.lock().await;
        apps::set_desired_state(self.store(), app.id, DesiredState::Running).await?;
        match self.current_container(&app).await? {
            Some(id) => {
                apps::set_status(self.store(), app.id, AppStatus::Starting, None).await?;
                self.docker().start_container(&id).await?;
                self.record_running(app.id, &id).await?;
            }
            None => self.launch_locked(app.id).await?,
        }
        tracing::info!(project.name = %project, app.name = %name, "app started");
        Ok(apps::find_by_id(self.store(), app.id).await?)
    }

    pub async fn stop_app(
        &self,
        project: &ProjectName,
        name: &AppName,
    ) -> Result<App, DeployError> {
        let app = self.find_app(project, name).await?;
        let lock = self.app_lock(app.id);
        let _guard = lock.lock().await;
        // Recorded first, so the `die` event that follows reads as a stop, not a crash.
        apps::set_desired_state(self.store(), app.id, DesiredState::Stopped).await?;
        if let Some(id) = self.current_container(&app).await? {
            self.docker().stop_container(&id, STOP_TIMEOUT_SECS).await?;
        }
        apps::set_status(self.store(), app.id, AppStatus::Stopped, None).await?;
        self.routes_changed().await;
        tracing::info!(project.name = %project, app.name = %name, "app stopped");
        Ok(apps::find_by_id(self.store(), app.id).await?)
    }

    pub async fn restart_app(
        &self,
        project: &ProjectName,
        name: &AppName,
    ) -> Result<App, DeployError> {
        let app = self.find_app(project, name).await?;
        let lock = self.app_lock(app.id);
        let _guard = lock.lock().await;
        apps::set_desired_state(self.store(), app.id, DesiredState::Running).await?;
        match self.current_container(&app).await? {
            Some(id) => {
                apps::set_status(self.store(), app.id, AppStatus::Restarting, None).await?;
                self.docker()
                    .restart_container(&id, STOP_TIMEOUT_SECS)
                    .await?;
                self.record_running(app.id, &id).await?;
            }
            None => self.launch_locked(app.id).await?,
        }
        tracing::info!(project.name = %project, app.name = %name, "app restarted");
        Ok(apps::find_by_id(self.store(), app.id).await?)
    }

    /// Removes the app's containers and the app; the project's network goes too
    /// once no app is left in it. Its volumes stay (orphaned, on the Storage
    /// page) unless `volumes` says to delete them; host directories of bind
    /// mounts always stay. Returns the volumes kept.
    pub async fn delete_app(
        &self,
        project: &ProjectName,
        name: &AppName,
        volumes: crate::VolumeChoice,
    ) -> Result<Vec<String>, DeployError> {
        let app = self.find_app(project, name).await?;
        let lock = self.app_lock(app.id);
        let _guard = lock.lock().await;
        let mounts = self.storage().app_volumes(&app).await?;
        apps::set_desired_state(self.store(), app.id, DesiredState::Stopped).await?;
        for container in self.app_containers(&app).await? {
            self.docker().remove_container(&container.id).await?;
        }
        self.remove_built_images(app.id).await?;
        let mut kept: Vec<String> = Vec::new();
        if volumes == crate::VolumeChoice::Delete {
            kept.extend(self.remove_app_volumes(&mounts).await);
        } else {
            kept.extend(mounts.iter().filter_map(|v| match &v.source {
                berth_core::VolumeSource::Volume(n) => Some(n.clone()),
                berth_core::VolumeSource::Bind(_) => None,
            }));
        }
        apps::delete(self.store(), app.id).await?;
        self.routes_changed().await;
        // The project network stays while a database or a stack of the
        // project is on it (Docker refuses to remove a network in use).
        if apps::list_in_project(self.store(), project)
            .await?
            .is_empty()
            && berth_store::databases::list(self.store(), project)
                .await?
                .is_empty()
            && berth_store::stacks::list(self.store(), project)
                .await?
                .is_empty()
        {
            self.docker().remove_network(&network_name(project)).await?;
        }
        tracing::info!(project.name = %project, app.name = %name, volumes.kept = kept.len(), "app deleted");
        Ok(kept)
    }

    /// The last `lines` lines the app's container wrote (empty when it has none).
    pub async fn app_logs(&self, app: &App, lines: usize) -> Result<Vec<String>, DeployError> {
        match &app.container_id {
            Some(id) => match self.docker().logs_tail(id, lines).await {
                Ok(logs) => Ok(logs),
                Err(berth_docker::DockerError::NotFound(_)) => Ok(Vec::new()),
                Err(err) => Err(err.into()),
            },
            None => Ok(Vec::new()),
        }
    }
}

impl Runtime {
    /// The app by its project and name (every service looks apps up so).
    pub(crate) async fn app(
        &self,
        project: &ProjectName,
        name: &AppName,
    ) -> Result<App, DeployError> {
        Ok(apps::find(self.store(), project, name).await?)
    }

    /// Launches the app in the background as a recorded deployment (queued
    /// behind any deployment of the app already running).
    pub(crate) fn spawn_launch(&self, app_id: AppId, trigger: &'static str) {
        let engine = self.clone();
        tokio::spawn(async move {
            let result = match apps::find_by_id(engine.store(), app_id).await {
                Ok(app) => engine.enqueue_from_source(&app, trigger).await.map(drop),
                Err(err) => Err(err.into()),
            };
            if let Err(err) = result {
                tracing::warn!(app.id = %app_id, error = %err, "launch failed");
            }
        });
    }

    /// Brings the app's container up from scratch as a deployment; the
    /// caller holds the app's lock. Failures are recorded on the deployment
    /// and on the app (status `failed` with Docker's message).
    pub(crate) async fn launch_locked(&self, app_id: AppId) -> Result<(), DeployError> {
        self.deploy_now_locked(app_id, "start").await
    }

    /// Reads the published port of a started container and marks the app running.
    pub(crate) async fn record_running(
        &self,
        app_id: AppId,
        container_id: &str,
    ) -> Result<(), DeployError> {
        let info = self.docker().inspect_container(container_id).await?;
        let app = apps::find_by_id(self.store(), app_id).await?;
        let host_port = info.as_ref().and_then(|i| i.host_port);
        let upstream = info.as_ref().and_then(|i| self.upstream_of(&app, i));
        apps::set_container(
            self.store(),
            app_id,
            Some(container_id),
            host_port,
            upstream,
        )
        .await?;
        let running = info.is_some_and(|i| i.state == berth_docker::ContainerState::Running);
        if running {
            apps::set_status(self.store(), app_id, AppStatus::Running, None).await?;
        }
        self.routes_changed().await;
        Ok(())
    }

    /// The app's container id, if it still exists.
    pub(crate) async fn current_container(&self, app: &App) -> Result<Option<String>, DeployError> {
        let name = container_name(&app.project, &app.name);
        let by_id = match &app.container_id {
            Some(id) => self.docker().inspect_container(id).await?,
            None => None,
        };
        let found = match by_id {
            Some(info) => Some(info),
            None => self.docker().inspect_container(&name).await?,
        };
        Ok(found.map(|info| info.id))
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_docker_prints_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12_300_000), "12.3 MB");
        assert_eq!(human_bytes(2_000_000_000), "2.0 GB");
    }
}
