use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use berth_core::{App, AppName, DesiredState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiJson;
use super::deployments::{DeploymentOut, SourceKind, StrategyChoice};
use super::projects::project_name;
use super::volumes::VolumeIn;
use crate::error::{ApiError, ErrorBody};
use crate::forms::{AppInput, FormVolume, VolumeInput};
use crate::routes::Table;
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.api(__path_list_all_apps, list_all_apps);
    t.api(__path_list_apps, list_apps);
    t.api(__path_create_app, create_app);
    t.api(__path_get_app, get_app);
    t.api(__path_delete_app, delete_app);
    t.api(__path_start_app, start_app);
    t.api(__path_stop_app, stop_app);
    t.api(__path_restart_app, restart_app);
    t.api(__path_get_app_logs, get_app_logs);
}

#[derive(Serialize, ToSchema)]
pub struct AppOut {
    pub project: String,
    pub name: String,
    pub image: String,
    /// False for `latest` or no tag: the image may change on the next pull.
    pub image_pinned: bool,
    pub port: u16,
    /// The command as an argument array, or null for the image's own.
    pub command: Option<Vec<String>>,
    /// One of pending, pulling, starting, running, restarting, stopped, crashed, failed.
    pub status: String,
    pub status_detail: Option<String>,
    /// `running` or `stopped`: what was last asked for.
    pub desired_state: String,
    pub container_id: Option<String>,
    /// `http://127.0.0.1:<port>` while running.
    pub local_address: Option<String>,
}

impl From<&App> for AppOut {
    fn from(app: &App) -> AppOut {
        AppOut {
            project: app.project.to_string(),
            name: app.name.to_string(),
            image: app.image.to_string(),
            image_pinned: app.image.is_pinned(),
            port: app.container_port.get(),
            command: app.command.as_ref().map(|c| c.args().to_vec()),
            status: app.status.to_string(),
            status_detail: app.status_detail.clone(),
            desired_state: match app.desired_state {
                DesiredState::Running => "running",
                DesiredState::Stopped => "stopped",
            }
            .to_owned(),
            container_id: app.container_id.clone(),
            local_address: crate::views::AppRow::from(app).address,
        }
    }
}

/// A new app.
#[derive(Deserialize, ToSchema)]
pub struct AppIn {
    /// DNS label: lowercase letters, digits and '-'.
    pub name: String,
    /// Image reference, e.g. `nginx:1.27` or `ghcr.io/owner/app:v2`; with a
    /// git source it may be left out (berth names the images it builds).
    #[serde(default)]
    pub image: String,
    /// The port the container listens on.
    pub port: u16,
    /// Optional command, split like a shell would split words (never run through a shell).
    #[serde(default)]
    pub command: String,
    /// Where deployments come from, as in the deploy settings (default `image`).
    pub source: Option<SourceKind>,
    /// With `source` `git`: `https://…`, `ssh://…`, `file:///path` or a path on the server.
    #[serde(default)]
    pub git_url: String,
    /// With `source` `git`: the branch; empty for the repository's default branch.
    #[serde(default)]
    pub git_branch: String,
    /// With `source` `git`: the build context inside the repository; empty for its root.
    #[serde(default)]
    pub git_subdir: String,
    /// With `source` `git`: the Dockerfile inside the context; empty for `Dockerfile`.
    #[serde(default)]
    pub dockerfile: String,
    /// Default `auto`.
    pub strategy: Option<StrategyChoice>,
    /// The app's volumes. Paths the image declares with VOLUME get one each by themselves.
    #[serde(default)]
    pub volumes: Vec<VolumeIn>,
    /// Allow bind mounts outside the volumes root (system paths, the data dir, the Docker socket). The app page shows it.
    #[serde(default)]
    pub dangerous_mounts: bool,
}

impl From<AppIn> for AppInput {
    /// The create form's fields, so both are checked by one parse.
    fn from(a: AppIn) -> AppInput {
        AppInput {
            name: a.name,
            image: a.image,
            port: a.port.to_string(),
            command: a.command,
            source: a
                .source
                .map(SourceKind::as_str)
                .unwrap_or_default()
                .to_owned(),
            git_url: a.git_url,
            git_branch: a.git_branch,
            git_subdir: a.git_subdir,
            dockerfile: a.dockerfile,
            strategy: a
                .strategy
                .map(StrategyChoice::as_str)
                .unwrap_or_default()
                .to_owned(),
            volumes: a.volumes.into_iter().map(VolumeInput::from).collect(),
            volume: FormVolume::default(),
            dangerous_mounts: a.dangerous_mounts,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LogsOut {
    pub lines: Vec<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct LogsQuery {
    /// How many lines from the end (default 200, at most 10000).
    pub lines: Option<usize>,
}

impl LogsQuery {
    /// The lines asked for, within 1..=10000; the pages' count when none.
    pub fn count(&self) -> usize {
        self.lines
            .unwrap_or(crate::pages::apps::LOG_LINES)
            .clamp(1, 10_000)
    }
}

fn names(project: &str, app: &str) -> Result<(berth_core::ProjectName, AppName), ApiError> {
    Ok((
        project_name(project)?,
        AppName::parse(app).map_err(|_| ApiError(WebError::NotFound("app")))?,
    ))
}

#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", responses((status = 200, body = Vec<AppOut>)))]
pub async fn list_all_apps(State(state): State<AppState>) -> Result<Json<Vec<AppOut>>, ApiError> {
    Ok(Json(
        state
            .apps
            .list_apps()
            .await?
            .iter()
            .map(AppOut::from)
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/apps", tag = "apps", params(("project" = String, Path)),
    responses((status = 200, body = Vec<AppOut>), (status = 404, body = ErrorBody)))]
pub async fn list_apps(
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<Vec<AppOut>>, ApiError> {
    let project = project_name(&project)?;
    state.projects.find_project(&project).await?;
    Ok(Json(
        state
            .apps
            .list_apps_in_project(&project)
            .await?
            .iter()
            .map(AppOut::from)
            .collect(),
    ))
}

/// An app just created, with its first deployment.
#[derive(Serialize, ToSchema)]
pub struct CreatedAppOut {
    #[serde(flatten)]
    pub app: AppOut,
    /// Deployment #1, queued: poll its `url` (or the app) until it ends.
    pub deployment: DeploymentOut,
}

/// Creates the app and queues its first deployment; returns both at once.
/// Poll `deployment.url` until it ends, or the app until `status` is `running` (or `failed`).
/// With `source` `git` the first deployment builds the repository (the image may then be empty).
#[utoipa::path(post, path = "/api/v1/projects/{project}/apps", tag = "apps", params(("project" = String, Path)), request_body = AppIn,
    responses((status = 202, body = CreatedAppOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_app(
    State(state): State<AppState>,
    Path(project): Path<String>,
    ApiJson(input): ApiJson<AppIn>,
) -> Result<(StatusCode, Json<CreatedAppOut>), ApiError> {
    let project = project_name(&project)?;
    let p = AppInput::from(input)
        .parse(&project)
        .map_err(WebError::Invalid)?;
    let (app, dep) = state
        .apps
        .create_app_from(&project, p.new, p.source, p.volumes, p.strategy)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CreatedAppOut {
            app: AppOut::from(&app),
            deployment: DeploymentOut::new(&dep, &app),
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/apps/{app}", tag = "apps", params(("project" = String, Path), ("app" = String, Path)),
    responses((status = 200, body = AppOut), (status = 404, body = ErrorBody)))]
pub async fn get_app(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
) -> Result<Json<AppOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    Ok(Json(AppOut::from(
        &state.apps.find_app(&project, &name).await?,
    )))
}

#[derive(Deserialize, IntoParams)]
pub struct DeleteQuery {
    /// `keep` (the default): the app's volumes stay, orphaned, with their data;
    /// `delete`: its named volumes are removed with their data (host paths never are).
    pub volumes: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeletedOut {
    /// The Docker volumes that still exist (kept on purpose, or in use elsewhere).
    pub volumes_kept: Vec<String>,
}

/// Removes the app's containers (and the project network once it is empty).
/// Its volumes are kept unless `?volumes=delete`.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/apps/{app}", tag = "apps", params(("project" = String, Path), ("app" = String, Path), DeleteQuery),
    responses((status = 200, body = DeletedOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete_app(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
    Query(query): Query<DeleteQuery>,
) -> Result<Json<DeletedOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    let volumes = match query.volumes.as_deref() {
        None | Some("keep") => berth_deploy::VolumeChoice::Keep,
        Some("delete") => berth_deploy::VolumeChoice::Delete,
        Some(_) => {
            let mut errors = crate::forms::FieldErrors::default();
            errors.add("volumes", "must be keep or delete");
            return Err(ApiError(WebError::Invalid(errors)));
        }
    };
    let volumes_kept = state.apps.delete_app(&project, &name, volumes).await?;
    Ok(Json(DeletedOut { volumes_kept }))
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/apps/{app}/start", tag = "apps", params(("project" = String, Path), ("app" = String, Path)),
    responses((status = 200, body = AppOut), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn start_app(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
) -> Result<Json<AppOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    Ok(Json(AppOut::from(
        &state.apps.start_app(&project, &name).await?,
    )))
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/apps/{app}/stop", tag = "apps", params(("project" = String, Path), ("app" = String, Path)),
    responses((status = 200, body = AppOut), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn stop_app(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
) -> Result<Json<AppOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    Ok(Json(AppOut::from(
        &state.apps.stop_app(&project, &name).await?,
    )))
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/apps/{app}/restart", tag = "apps", params(("project" = String, Path), ("app" = String, Path)),
    responses((status = 200, body = AppOut), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn restart_app(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
) -> Result<Json<AppOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    Ok(Json(AppOut::from(
        &state.apps.restart_app(&project, &name).await?,
    )))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/apps/{app}/logs", tag = "apps",
    params(("project" = String, Path), ("app" = String, Path), LogsQuery),
    responses((status = 200, body = LogsOut), (status = 404, body = ErrorBody)))]
pub async fn get_app_logs(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
    Query(query): Query<LogsQuery>,
) -> Result<Json<LogsOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    let app = state.apps.find_app(&project, &name).await?;
    Ok(Json(LogsOut {
        lines: state.apps.app_logs(&app, query.count()).await?,
    }))
}
