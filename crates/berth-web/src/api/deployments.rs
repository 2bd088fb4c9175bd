//! Deployments through the API: deploy, redeploy, rollback, cancel, the list
//! and one deployment with its log, and the deploy settings. The same engine
//! functions as the dashboard's buttons.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use berth_core::{
    App, AppName, DeploySettings, DeployStrategy, Deployment, GitSource, RestartPolicy,
    deployment::Source,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use super::projects::project_name;
use crate::error::{ApiError, ErrorBody};
use crate::pages::deployments::SettingsInput;
use crate::routes::Table;
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.api(__path_deploy_app, deploy_app);
    t.api(__path_redeploy_app, redeploy_app);
    t.api(__path_list_deployments, list_deployments);
    t.api(__path_get_deployment, get_deployment);
    t.api(__path_rollback_deployment, rollback_deployment);
    t.api(__path_cancel_deployment, cancel_deployment);
    t.api(__path_get_deploy_settings, get_deploy_settings);
    t.api(__path_set_deploy_settings, set_deploy_settings);
}

#[derive(Serialize, ToSchema)]
pub struct DeploymentOut {
    pub number: i64,
    /// queued, running, succeeded, failed or cancelled.
    pub status: String,
    pub trigger: String,
    /// The image deployed (pulled, or built and tagged by berth).
    pub image: Option<String>,
    /// The image's ID (`sha256:…`).
    pub image_id: Option<String>,
    /// The git commit built, for git sources.
    pub commit: Option<String>,
    /// For rollbacks: the deployment whose image this runs.
    pub rollback_of: Option<i64>,
    /// Why it failed or was cancelled (with the new container's last log lines).
    pub reason: Option<String>,
    /// This deployment's container serves the app now.
    pub serving: bool,
    /// Its image is kept: it can be rolled back to.
    pub rollback_available: bool,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The whole log (only when one deployment is asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<Vec<String>>,
    /// This deployment in the API (poll it until `status` ends).
    pub url: String,
    /// Its live log on the dashboard (server-sent events).
    pub log_url: String,
}

impl DeploymentOut {
    pub(super) fn new(d: &Deployment, app: &App) -> DeploymentOut {
        let row = crate::pages::deployments::DeploymentRow::new(d, app, 0);
        DeploymentOut {
            number: d.number,
            status: d.status.as_str().to_owned(),
            trigger: d.trigger.clone(),
            image: d.image.clone(),
            image_id: d.image_id.clone(),
            commit: d.commit_sha.clone(),
            rollback_of: d.rollback_of,
            reason: d.reason.clone(),
            serving: row.serving,
            rollback_available: row.can_rollback,
            created_at: d.created_at,
            started_at: d.started_at,
            finished_at: d.finished_at,
            log: None,
            url: format!(
                "/api/v1/projects/{}/apps/{}/deployments/{}",
                app.project, app.name, d.number
            ),
            log_url: format!(
                "/projects/{}/apps/{}/deployments/{}/events",
                app.project, app.name, d.number
            ),
        }
    }
}

/// Where deployments come from.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The app's image, pulled again.
    Image,
    /// The app's git repository, built.
    Git,
}

impl SourceKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            SourceKind::Image => "image",
            SourceKind::Git => "git",
        }
    }
}

/// How the next deployment replaces the container.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum StrategyChoice {
    /// Berth chooses: `recreate` when the app has volumes, else `rolling`.
    Auto,
    Rolling,
    Recreate,
}

impl StrategyChoice {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            StrategyChoice::Auto => "auto",
            StrategyChoice::Rolling => "rolling",
            StrategyChoice::Recreate => "recreate",
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeploySettingsOut {
    pub source: SourceKind,
    /// Credentials in the URL show as `***` (`https://***@host/…`); a
    /// `git_url` sent back as shown keeps them.
    pub git_url: String,
    pub git_branch: String,
    pub git_subdir: String,
    pub dockerfile: String,
    /// Empty: no HTTP check (the image's HEALTHCHECK, or still running after `health_start_secs`).
    pub health_path: String,
    pub health_status: u16,
    pub health_interval_ms: u32,
    pub health_timeout_ms: u32,
    pub health_retries: u32,
    pub health_start_secs: u32,
    pub drain_secs: u32,
    pub stop_timeout_secs: u32,
    /// Null: no memory limit.
    pub memory_mb: Option<u32>,
    /// Null: no CPU limit.
    pub cpus: Option<f64>,
    /// Docker's restart policy for the app's container.
    #[schema(value_type = String, pattern = "^(no|unless-stopped|on-failure|always)$")]
    pub restart_policy: RestartPolicy,
    pub keep_images: u32,
    pub strategy: StrategyChoice,
    /// Seconds the edge holds the app's requests during a recreate switch.
    pub hold_secs: u32,
    /// Minutes a clone and build may take before both are stopped.
    pub build_timeout_mins: u32,
    /// The public half of the app's SSH deploy key (OpenSSH format, made on
    /// first use): add it to the repository as a read-only deploy key for
    /// `ssh://…` or `git@host:path` sources. The private half is never shown.
    pub deploy_key: String,
    /// The SSH host keys berth recorded for the git source's host at its
    /// first clone (`ssh-ed25519 SHA256:…`); empty before that. A clone from
    /// a server showing another key fails.
    pub ssh_host_keys: Vec<String>,
}

impl DeploySettingsOut {
    fn new(
        s: &DeploySettings,
        deploy_key: String,
        ssh_host_keys: &[berth_deploy::HostKey],
    ) -> DeploySettingsOut {
        let git = match &s.source {
            Source::Git(g) => g.clone(),
            Source::Image => GitSource::default(),
        };
        DeploySettingsOut {
            source: match s.source {
                Source::Image => SourceKind::Image,
                Source::Git(_) => SourceKind::Git,
            },
            // Credentials stay in the store: sent back as shown, they are kept.
            git_url: berth_core::redact_url_credentials(&git.url).into_owned(),
            git_branch: git.branch,
            git_subdir: git.subdir,
            dockerfile: git.dockerfile,
            health_path: s.health.path.clone().unwrap_or_default(),
            health_status: s.health.expected_status,
            health_interval_ms: s.health.interval_ms,
            health_timeout_ms: s.health.timeout_ms,
            health_retries: s.health.retries,
            health_start_secs: s.health.start_secs,
            drain_secs: s.drain_secs,
            stop_timeout_secs: s.stop_timeout_secs,
            memory_mb: s.memory_mb,
            cpus: s.cpu_millis.map(|m| f64::from(m) / 1000.0),
            restart_policy: s.restart_policy,
            keep_images: s.keep_images,
            strategy: match s.strategy {
                None => StrategyChoice::Auto,
                Some(DeployStrategy::Rolling) => StrategyChoice::Rolling,
                Some(DeployStrategy::Recreate) => StrategyChoice::Recreate,
            },
            hold_secs: s.hold_secs,
            build_timeout_mins: s.build_timeout_mins,
            deploy_key,
            ssh_host_keys: ssh_host_keys
                .iter()
                .map(|k| format!("{} {}", k.kind, k.fingerprint))
                .collect(),
        }
    }
}

/// Settings to change; fields left out keep their value.
#[derive(Deserialize, ToSchema, Default)]
pub struct DeploySettingsIn {
    pub source: Option<SourceKind>,
    pub git_url: Option<String>,
    pub git_branch: Option<String>,
    pub git_subdir: Option<String>,
    pub dockerfile: Option<String>,
    /// Empty removes the HTTP check.
    pub health_path: Option<String>,
    pub health_status: Option<u32>,
    pub health_interval_ms: Option<u32>,
    pub health_timeout_ms: Option<u32>,
    pub health_retries: Option<u32>,
    pub health_start_secs: Option<u32>,
    pub drain_secs: Option<u32>,
    pub stop_timeout_secs: Option<u32>,
    /// 0 removes the limit.
    pub memory_mb: Option<u32>,
    /// 0 removes the limit.
    pub cpus: Option<f64>,
    /// `no`, `unless-stopped`, `on-failure` or `always`.
    #[schema(value_type = Option<String>, pattern = "^(no|unless-stopped|on-failure|always)$")]
    pub restart_policy: Option<RestartPolicy>,
    pub keep_images: Option<u32>,
    pub strategy: Option<StrategyChoice>,
    /// Seconds (1–600) the edge holds requests during a recreate switch.
    pub hold_secs: Option<u32>,
    /// Minutes (1–240) a clone and build may take before both are stopped.
    pub build_timeout_mins: Option<u32>,
}

impl DeploySettingsIn {
    /// Applies the change to the form's fields, so the dashboard's parse
    /// checks it (the same ranges and messages, under the same field names).
    fn apply(self, s: &mut SettingsInput) {
        let text = |v: Option<&str>, old: &mut String| {
            if let Some(v) = v {
                v.clone_into(old);
            }
        };
        text(self.source.map(SourceKind::as_str), &mut s.source);
        text(self.git_url.as_deref(), &mut s.git_url);
        text(self.git_branch.as_deref(), &mut s.git_branch);
        text(self.git_subdir.as_deref(), &mut s.git_subdir);
        text(self.dockerfile.as_deref(), &mut s.dockerfile);
        text(self.health_path.as_deref(), &mut s.health_path);
        text(
            self.restart_policy.map(RestartPolicy::as_str),
            &mut s.restart_policy,
        );
        text(self.strategy.map(StrategyChoice::as_str), &mut s.strategy);
        for (v, old) in [
            (self.health_status, &mut s.health_status),
            (self.health_interval_ms, &mut s.health_interval_ms),
            (self.health_timeout_ms, &mut s.health_timeout_ms),
            (self.health_retries, &mut s.health_retries),
            (self.health_start_secs, &mut s.health_start_secs),
            (self.drain_secs, &mut s.drain_secs),
            (self.stop_timeout_secs, &mut s.stop_timeout_secs),
            (self.keep_images, &mut s.keep_images),
            (self.hold_secs, &mut s.hold_secs),
            (self.build_timeout_mins, &mut s.build_timeout_mins),
        ] {
            if let Some(v) = v {
                *old = v.to_string();
            }
        }
        // 0 is "no limit", which the form writes as an empty field.
        match self.memory_mb {
            Some(0) => s.memory_mb.clear(),
            Some(m) => s.memory_mb = m.to_string(),
            None => {}
        }
        match self.cpus {
            Some(0.0) => s.cpus.clear(),
            Some(c) => s.cpus = c.to_string(),
            None => {}
        }
    }
}

fn names(project: &str, app: &str) -> Result<(berth_core::ProjectName, AppName), ApiError> {
    Ok((
        project_name(project)?,
        AppName::parse(app).map_err(|_| ApiError(WebError::NotFound("app")))?,
    ))
}

/// "Deploy": queues a deployment from the app's source (its image, pulled again, or its git repository, built); returns at once, poll `url` until it ends.
#[utoipa::path(post, path = "/api/v1/projects/{project}/apps/{app}/deploy", tag = "deployments",
    params(("project" = String, Path), ("app" = String, Path)),
    responses((status = 202, body = DeploymentOut), (status = 404, body = ErrorBody)))]
pub async fn deploy_app(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
) -> Result<(StatusCode, Json<DeploymentOut>), ApiError> {
    let (project, name) = names(&project, &app)?;
    let dep = state.deployments.deploy_app(&project, &name, "api").await?;
    let app = state.apps.find_app(&project, &name).await?;
    Ok((StatusCode::ACCEPTED, Json(DeploymentOut::new(&dep, &app))))
}

/// "Redeploy": runs the image that serves now again with the current settings and saved variables (no pull, no build; `deploy` does those). Returns the queued deployment at once.
#[utoipa::path(post, path = "/api/v1/projects/{project}/apps/{app}/redeploy", tag = "deployments",
    params(("project" = String, Path), ("app" = String, Path)),
    responses((status = 202, body = DeploymentOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn redeploy_app(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
) -> Result<(StatusCode, Json<DeploymentOut>), ApiError> {
    let (project, name) = names(&project, &app)?;
    let dep = state
        .deployments
        .redeploy_app(&project, &name, "api redeploy")
        .await?;
    let app = state.apps.find_app(&project, &name).await?;
    Ok((StatusCode::ACCEPTED, Json(DeploymentOut::new(&dep, &app))))
}

/// The app's deployments, newest first (without logs).
#[utoipa::path(get, path = "/api/v1/projects/{project}/apps/{app}/deployments", tag = "deployments",
    params(("project" = String, Path), ("app" = String, Path)),
    responses((status = 200, body = Vec<DeploymentOut>), (status = 404, body = ErrorBody)))]
pub async fn list_deployments(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
) -> Result<Json<Vec<DeploymentOut>>, ApiError> {
    let (project, name) = names(&project, &app)?;
    let app = state.apps.find_app(&project, &name).await?;
    let list = state.deployments.list_deployments(&app).await?;
    Ok(Json(
        list.iter().map(|d| DeploymentOut::new(d, &app)).collect(),
    ))
}

/// One deployment with its whole log.
#[utoipa::path(get, path = "/api/v1/projects/{project}/apps/{app}/deployments/{number}", tag = "deployments",
    params(("project" = String, Path), ("app" = String, Path), ("number" = i64, Path)),
    responses((status = 200, body = DeploymentOut), (status = 404, body = ErrorBody)))]
pub async fn get_deployment(
    State(state): State<AppState>,
    Path((project, app, number)): Path<(String, String, i64)>,
) -> Result<Json<DeploymentOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    let (app, dep) = state
        .deployments
        .find_deployment(&project, &name, number)
        .await?;
    let log = state.deployments.deployment_log(&dep, 0).await?;
    let mut out = DeploymentOut::new(&dep, &app);
    out.log = Some(log.into_iter().map(|(_, l)| l).collect());
    Ok(Json(out))
}

/// Queues a deployment of the image a kept deployment ran.
#[utoipa::path(post, path = "/api/v1/projects/{project}/apps/{app}/deployments/{number}/rollback", tag = "deployments",
    params(("project" = String, Path), ("app" = String, Path), ("number" = i64, Path)),
    responses((status = 202, body = DeploymentOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rollback_deployment(
    State(state): State<AppState>,
    Path((project, app, number)): Path<(String, String, i64)>,
) -> Result<(StatusCode, Json<DeploymentOut>), ApiError> {
    let (project, name) = names(&project, &app)?;
    let dep = state
        .deployments
        .rollback_app(&project, &name, number)
        .await?;
    let app = state.apps.find_app(&project, &name).await?;
    Ok((StatusCode::ACCEPTED, Json(DeploymentOut::new(&dep, &app))))
}

/// Cancels a queued or running deployment (the serving version stays) and returns it once it has stopped.
#[utoipa::path(post, path = "/api/v1/projects/{project}/apps/{app}/deployments/{number}/cancel", tag = "deployments",
    params(("project" = String, Path), ("app" = String, Path), ("number" = i64, Path)),
    responses((status = 200, body = DeploymentOut), (status = 404, body = ErrorBody)))]
pub async fn cancel_deployment(
    State(state): State<AppState>,
    Path((project, app, number)): Path<(String, String, i64)>,
) -> Result<Json<DeploymentOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    let dep = state
        .deployments
        .cancel_deployment(&project, &name, number)
        .await?;
    let app = state.apps.find_app(&project, &name).await?;
    Ok(Json(DeploymentOut::new(&dep, &app)))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/apps/{app}/deploy-settings", tag = "deployments",
    params(("project" = String, Path), ("app" = String, Path)),
    responses((status = 200, body = DeploySettingsOut), (status = 404, body = ErrorBody)))]
pub async fn get_deploy_settings(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
) -> Result<Json<DeploySettingsOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    let app = state.apps.find_app(&project, &name).await?;
    let settings = state.deployments.deploy_settings(&app).await?;
    let deploy_key = state.deployments.deploy_key(&app).await?;
    let host_keys = state.deployments.ssh_host_keys(&app).await?;
    Ok(Json(DeploySettingsOut::new(
        &settings, deploy_key, &host_keys,
    )))
}

/// Changes how the app deploys (source, health check, drain, limits, restart policy, kept images); applies from the next deployment.
#[utoipa::path(post, path = "/api/v1/projects/{project}/apps/{app}/deploy-settings", tag = "deployments",
    params(("project" = String, Path), ("app" = String, Path)), request_body = DeploySettingsIn,
    responses((status = 200, body = DeploySettingsOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_deploy_settings(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
    ApiJson(input): ApiJson<DeploySettingsIn>,
) -> Result<Json<DeploySettingsOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    let app = state.apps.find_app(&project, &name).await?;
    let mut s = SettingsInput::from_settings(&state.deployments.deploy_settings(&app).await?);
    input.apply(&mut s);
    let settings = s.parse().map_err(WebError::Invalid)?;
    state
        .deployments
        .save_deploy_settings(&app, &settings)
        .await?;
    let deploy_key = state.deployments.deploy_key(&app).await?;
    let host_keys = state.deployments.ssh_host_keys(&app).await?;
    Ok(Json(DeploySettingsOut::new(
        &settings, deploy_key, &host_keys,
    )))
}
