//! Deployments through the API: deploy, redeploy, rollback, cancel, the list
//! and one deployment with its log, and the deploy settings. The same engine
//! functions as the dashboard's buttons.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use berth_core::App;
use berth_core::AppName;
use berth_core::Deployment;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiJson;
use super::projects::project_name;
use crate::error::{ApiError, ErrorBody};
use crate::pages::deployments::SettingsInput;
use crate::{AppState, WebError};

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
    fn new(d: &Deployment, app: &App) -> DeploymentOut {
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

#[derive(Serialize, ToSchema)]
pub struct DeploySettingsOut {
    /// `image` or `git`.
    pub source: String,
    pub git_url: String,
    pub git_branch: String,
    pub git_subdir: String,
    pub dockerfile: String,
    pub health_path: String,
    pub health_status: String,
    pub health_interval_ms: String,
    pub health_timeout_ms: String,
    pub health_retries: String,
    pub health_start_secs: String,
    pub drain_secs: String,
    pub stop_timeout_secs: String,
    pub memory_mb: String,
    pub cpus: String,
    pub restart_policy: String,
    pub keep_images: String,
    /// `rolling`, `recreate`, or empty when berth chooses (recreate with volumes, else rolling).
    pub strategy: String,
    /// Seconds the edge holds the app's requests during a recreate switch.
    pub hold_secs: String,
    /// The public half of the app's SSH deploy key (OpenSSH format, made on
    /// first use): add it to the repository as a read-only deploy key for
    /// `ssh://…` or `git@host:path` sources. The private half is never shown.
    pub deploy_key: String,
}

impl From<SettingsInput> for DeploySettingsOut {
    fn from(s: SettingsInput) -> Self {
        DeploySettingsOut {
            source: s.source,
            git_url: s.git_url,
            git_branch: s.git_branch,
            git_subdir: s.git_subdir,
            dockerfile: s.dockerfile,
            health_path: s.health_path,
            health_status: s.health_status,
            health_interval_ms: s.health_interval_ms,
            health_timeout_ms: s.health_timeout_ms,
            health_retries: s.health_retries,
            health_start_secs: s.health_start_secs,
            drain_secs: s.drain_secs,
            stop_timeout_secs: s.stop_timeout_secs,
            memory_mb: s.memory_mb,
            cpus: s.cpus,
            restart_policy: s.restart_policy,
            keep_images: s.keep_images,
            strategy: s.strategy,
            hold_secs: s.hold_secs,
            deploy_key: String::new(),
        }
    }
}

/// Settings to change; fields left out keep their value.
#[derive(serde::Deserialize, ToSchema, Default)]
pub struct DeploySettingsIn {
    pub source: Option<String>,
    pub git_url: Option<String>,
    pub git_branch: Option<String>,
    pub git_subdir: Option<String>,
    pub dockerfile: Option<String>,
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
    pub restart_policy: Option<String>,
    pub keep_images: Option<u32>,
    /// `rolling`, `recreate`, or `` for berth's choice.
    pub strategy: Option<String>,
    /// Seconds (1–600) the edge holds requests during a recreate switch.
    pub hold_secs: Option<u32>,
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
    let mut out = DeploySettingsOut::from(SettingsInput::from_settings(&settings));
    out.deploy_key = state.deployments.deploy_key(&app).await?;
    Ok(Json(out))
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
    let num = |v: Option<u32>, old: &mut String| {
        if let Some(v) = v {
            *old = v.to_string();
        }
    };
    if let Some(v) = input.source {
        s.source = v;
    }
    for (v, field) in [
        (input.git_url, &mut s.git_url),
        (input.git_branch, &mut s.git_branch),
        (input.git_subdir, &mut s.git_subdir),
        (input.dockerfile, &mut s.dockerfile),
        (input.health_path, &mut s.health_path),
        (input.restart_policy, &mut s.restart_policy),
        (input.strategy, &mut s.strategy),
    ] {
        if let Some(v) = v {
            *field = v;
        }
    }
    num(input.health_status, &mut s.health_status);
    num(input.health_interval_ms, &mut s.health_interval_ms);
    num(input.health_timeout_ms, &mut s.health_timeout_ms);
    num(input.health_retries, &mut s.health_retries);
    num(input.health_start_secs, &mut s.health_start_secs);
    num(input.drain_secs, &mut s.drain_secs);
    num(input.stop_timeout_secs, &mut s.stop_timeout_secs);
    num(input.keep_images, &mut s.keep_images);
    num(input.hold_secs, &mut s.hold_secs);
    match input.memory_mb {
        Some(0) => s.memory_mb.clear(),
        Some(m) => s.memory_mb = m.to_string(),
        None => {}
    }
    match input.cpus {
        Some(0.0) => s.cpus.clear(),
        Some(c) => s.cpus = c.to_string(),
        None => {}
    }
    let settings = s.parse().map_err(WebError::Invalid)?;
    state
        .deployments
        .save_deploy_settings(&app, &settings)
        .await?;
    let mut out = DeploySettingsOut::from(SettingsInput::from_settings(&settings));
    out.deploy_key = state.deployments.deploy_key(&app).await?;
    Ok(Json(out))
}
