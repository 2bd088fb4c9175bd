//! Keeps app status in step with Docker: a reconcile pass whenever the event
//! stream (re)connects, then one update per container event.

use std::future::Future;
use std::time::Duration;

use berth_core::{App, AppName, AppStatus, DesiredState, ProjectName, ResourceKind};
use berth_docker::{ContainerEvent, ContainerInfo, ContainerState};
use berth_store::apps;
use futures_util::StreamExt;

use crate::naming::{APP, INSTANCE, KIND, MANAGED, PROJECT, is_app_kind};
use crate::{DeployError, Runtime};

const RETRY_AFTER: Duration = Duration::from_secs(2);
/// How long after a database container stopped berth looks whether
/// Docker's restart policy started it again.
const DATABASE_RESTART_GRACE: Duration = Duration::from_secs(3);

impl Runtime {
    /// Runs until `shutdown` completes. Survives Docker going away and coming back.
    pub async fn watch_docker(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                result = self.watch_once() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "docker event stream ended; retrying");
                    }
                }
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(RETRY_AFTER) => {}
            }
        }
    }

    async fn watch_once(&self) -> Result<(), DeployError> {
        self.docker().ping().await?;
        let instance = self.instance_id().to_owned();
        let labels = [(MANAGED, "true"), (INSTANCE, instance.as_str())];
        // Subscribe before reconciling so no event falls between the two.
        let mut events = Box::pin(self.docker().container_events(&labels));
        self.reconcile().await?;
        while let Some(event) = events.next().await {
            let event = event?;
            if let Err(err) = self.apply_event(&event).await {
                tracing::warn!(container.id = %event.container_id, error = %err, "could not apply a docker event");
            }
        }
        Ok(())
    }

    /// Brings every app's status in line with its container, relaunches apps
    /// whose launch berth did not finish, and removes this installation's
    /// containers that no app owns.
    pub async fn reconcile(&self) -> Result<(), DeployError> {
        let instance = self.instance_id().to_owned();
        let containers = self
            .docker()
            .list_containers(&[(MANAGED, "true"), (INSTANCE, instance.as_str())])
            .await?;
        // Each kind by its own rules: only apps' containers are berth's to
        // touch here (removing one keeps its volumes). A kind this version
        // does not handle (a newer berth's, or one still to come) is left
        // alone, by the deployment pass below too.
        let (containers, others): (Vec<ContainerInfo>, Vec<ContainerInfo>) =
            containers.into_iter().partition(|c| is_app_kind(&c.labels));
        for c in &others {
            let kind = c.labels.get(KIND).map(String::as_str).unwrap_or_default();
            if kind == ResourceKind::Stack.as_str() {
                // A stack's routes follow its containers' addresses, which
                // change when Docker restarts them; the containers stay.
                self.stack_container_moved(c).await;
                continue;
            }
            if kind == ResourceKind::Database.as_str() {
                // Attributed to its record, never removed; started again
                // when it stopped while it should run.
                self.database_container_seen(c).await;
                continue;
            }
            match ResourceKind::parse(kind) {
                Some(kind) => {
                    tracing::debug!(container.name = %c.name, berth.kind = %kind, "a container of a kind this version does not reconcile yet; left alone")
                }
                None => {
                    tracing::warn!(container.name = %c.name, berth.kind = %kind, "a container labelled with a kind this version does not know; left alone")
                }
            }
        }
        self.relaunch_databases(&others).await;
        // Deployments first: leftovers of an interrupted one go, in-flight ones are left alone.
        let skip = self.reconcile_deployments(&containers).await?;
        let containers: Vec<ContainerInfo> = containers
            .into_iter()
            .filter(|c| !skip.contains(&c.id))
            .collect();
        let apps = apps::list_all(self.store()).await?;
        for container in &containers {
            let owned = apps.iter().any(|app| owns(app, container));
            // Only a container that says which app it ran for is attributable.
            let attributable =
                container.labels.contains_key(PROJECT) && container.labels.contains_key(APP);
            if !owned && attributable {
                tracing::info!(container.name = %container.name, "removing a container of an app that is gone (its volumes stay)");
                self.docker().remove_container(&container.id).await?;
            }
        }
        for app in apps {
            // The serving container when it is there, else any the app owns.
            let container = containers
                .iter()
                .find(|c| app.container_id.as_deref() == Some(c.id.as_str()) && owns(&app, c))
                .or_else(|| containers.iter().find(|c| owns(&app, c)));
            match container {
                Some(c) => self.apply_state(&app, c).await?,
                None if app.desired_state == DesiredState::Running
                    && app.status != AppStatus::Failed
                    && !self.has_active_deployment(app.id).await? =>
                {
                    tracing::info!(project.name = %app.project, app.name = %app.name, "relaunching an app without a container");
                    self.spawn_launch(app.id, "reconcile");
                }
                None => {
                    if app.container_id.is_some() {
                        apps::set_container(self.store(), app.id, None, None, None).await?;
                    }
                }
            }
        }
        // Once for the whole pass, not per app.
        self.routes_changed().await;
        Ok(())
    }

    async fn apply_state(&self, app: &App, container: &ContainerInfo) -> Result<(), DeployError> {
        let upstream = self.upstream_of(app, container);
        if app.container_id.as_deref() != Some(container.id.as_str())
            || app.host_port != container.host_port
            || app.upstream != upstream
        {
            apps::set_container(
                self.store(),
                app.id,
                Some(&container.id),
                container.host_port,
                upstream,
            )
            .await?;
        }
        let (status, detail) = match container.state {
            ContainerState::Running => (AppStatus::Running, None),
            // Docker's own restart policy brings a crashed container back; until then it crashed.
            ContainerState::Restarting if app.status != AppStatus::Restarting => (
                AppStatus::Crashed,
                Some(format!(
                    "{}; Docker is restarting it (restart {})",
                    exit_detail(container.exit_code).unwrap_or_else(|| "exited".to_owned()),
                    container.restart_count.unwrap_or(0) + 1
                )),
            ),
            ContainerState::Restarting => return Ok(()),
            ContainerState::Created if app.status.is_transitional() => return Ok(()),
            _ if app.desired_state == DesiredState::Stopped => (AppStatus::Stopped, None),
            _ => (AppStatus::Crashed, exit_detail(container.exit_code)),
        };
        if app.status != status || app.status_detail != detail {
            apps::set_status(self.store(), app.id, status, detail.as_deref()).await?;
        }
        Ok(())
    }

    async fn apply_event(&self, event: &ContainerEvent) -> Result<(), DeployError> {
        if event.labels.get(KIND).map(String::as_str) == Some(ResourceKind::Stack.as_str()) {
            let action = event.action.split(':').next().unwrap_or_default();
            if matches!(action, "start" | "die" | "restart") {
                if let Some(info) = self.docker().inspect_container(&event.container_id).await? {
                    self.stack_container_moved(&info).await;
                }
                self.routes_changed().await;
            }
            return Ok(());
        }
        if event.labels.get(KIND).map(String::as_str) == Some(ResourceKind::Database.as_str()) {
            let action = event.action.split(':').next().unwrap_or_default();
            if matches!(action, "die" | "stop") {
                // Docker's restart policy brings a crashed database back by
                // itself; one that stays down (an OOM kill, a stop outside
                // berth) is started once Docker has had its turn.
                let runtime = self.clone();
                let id = event.container_id.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(DATABASE_RESTART_GRACE).await;
                    if let Ok(Some(info)) = runtime.docker().inspect_container(&id).await {
                        runtime.database_container_seen(&info).await;
                    }
                });
            }
            return Ok(());
        }
        let (Some(project), Some(name)) = (event.labels.get(PROJECT), event.labels.get(APP)) else {
            return Ok(());
        };
        let (Ok(project), Ok(name)) = (ProjectName::parse(project), AppName::parse(name)) else {
            return Ok(());
        };
        let app = match apps::find(self.store(), &project, &name).await {
            Ok(app) => app,
            Err(berth_store::StoreError::NotFound { .. }) => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        // During a deploy the new container runs beside the serving one, and the
        // old one stops after the switch: only the serving container's events count.
        if app
            .container_id
            .as_deref()
            .is_some_and(|id| id != event.container_id)
        {
            return Ok(());
        }
        let action = event.action.split(':').next().unwrap_or_default();
        tracing::debug!(project.name = %project, app.name = %name, docker.action = %event.action, "container event");
        match action {
            "start" | "die" | "stop" | "restart" | "pause" | "unpause" => {
                match self.docker().inspect_container(&event.container_id).await? {
                    Some(info) => {
                        // A restart berth asked for (or a recreate's stop) passes through
                        // `die` and `stop`; its own code records the result.
                        if app.status == AppStatus::Restarting && matches!(action, "die" | "stop") {
                            return Ok(());
                        }
                        self.apply_state(&app, &info).await?;
                        // Container events are rare; a rebuild per event is cheap.
                        self.routes_changed().await;
                        Ok(())
                    }
                    None => Ok(()),
                }
            }
            "destroy" if app.container_id.as_deref() == Some(event.container_id.as_str()) => {
                apps::set_container(self.store(), app.id, None, None, None).await?;
                if app.desired_state == DesiredState::Running && !app.status.is_transitional() {
                    apps::set_status(
                        self.store(),
                        app.id,
                        AppStatus::Stopped,
                        Some("its container was removed outside berth"),
                    )
                    .await?;
                }
                self.routes_changed().await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn owns(app: &App, container: &ContainerInfo) -> bool {
    container.labels.get(PROJECT).map(String::as_str) == Some(app.project.as_str())
        && container.labels.get(APP).map(String::as_str) == Some(app.name.as_str())
}

fn exit_detail(code: Option<i64>) -> Option<String> {
    code.map(|c| format!("exited with code {c}"))
}
