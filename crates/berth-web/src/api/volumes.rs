//! Volumes in the API: every volume berth made (the Storage page), and
//! each app's mounts.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use berth_core::{AppName, MountPath, ProjectName, VolumeName};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiJson;
use crate::error::{ApiError, ErrorBody};
use crate::forms::{FieldErrors, VolumeInput};
use crate::routes::Table;
use crate::views::VolumeRow;
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.api(__path_list_volumes, list_volumes);
    t.api(__path_delete_volume, delete_volume);
    t.api(__path_attach_volume, attach_volume);
    t.api(__path_list_app_volumes, list_app_volumes);
    t.api(__path_add_app_volume, add_app_volume);
    t.api(__path_detach_app_volume, detach_app_volume);
}

/// One volume berth made (or a host path an app mounts).
#[derive(Serialize, ToSchema)]
pub struct VolumeOut {
    /// The Docker volume's name, or the host path of a bind mount.
    pub name: String,
    /// `volume` or `bind`.
    pub kind: &'static str,
    /// The app that mounts it now, as `project/app`; null when orphaned.
    pub owner: Option<String>,
    /// Where the owner mounts it.
    pub target: Option<String>,
    /// The installed stack it belongs to, as `project/stack`.
    pub stack: Option<String>,
    /// The managed database whose data it holds, as `project/database`.
    pub database: Option<String>,
    pub orphaned: bool,
    /// The project and app it was made for (from its labels).
    pub project: Option<String>,
    pub made_for: Option<String>,
    /// Bytes, as Docker measures them; null when unknown.
    pub size_bytes: Option<u64>,
    /// How many containers (running or not) mount it; Docker counts this
    /// for volumes only, so it is 0 for a bind mount.
    pub containers: u64,
    /// `containers > 0` (always false for a bind mount, see `containers`).
    pub in_use: bool,
}

impl From<&berth_deploy::StorageVolume> for VolumeOut {
    fn from(v: &berth_deploy::StorageVolume) -> VolumeOut {
        VolumeOut {
            name: v.name.clone(),
            kind: if v.bind { "bind" } else { "volume" },
            owner: v.owner.as_ref().map(|o| format!("{}/{}", o.project, o.app)),
            target: v.owner.as_ref().map(|o| o.volume.target.to_string()),
            stack: v.stack.clone(),
            database: v.database.clone(),
            orphaned: v.orphaned(),
            project: v.project.clone(),
            made_for: v.made_for.clone(),
            size_bytes: v.size_bytes,
            containers: v.containers,
            in_use: v.in_use(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AppVolumesOut {
    /// `rolling` or `recreate`: how the next deployment replaces the container.
    pub strategy: &'static str,
    /// Why that strategy.
    pub strategy_reason: String,
    /// The admin allowed bind mounts outside the volumes root for this app.
    pub dangerous_mounts: bool,
    pub volumes: Vec<VolumeRow>,
}

#[utoipa::path(get, path = "/api/v1/volumes", tag = "volumes",
    responses((status = 200, body = Vec<VolumeOut>)))]
pub async fn list_volumes(State(state): State<AppState>) -> Result<Json<Vec<VolumeOut>>, ApiError> {
    Ok(Json(
        state
            .storage
            .list_storage()
            .await?
            .iter()
            .map(VolumeOut::from)
            .collect(),
    ))
}

#[derive(Deserialize, IntoParams)]
pub struct ConfirmQuery {
    /// The volume's name again: nothing is deleted without it.
    pub confirm: Option<String>,
}

/// Deletes an orphaned volume and its data; `?confirm=<name>` is required.
#[utoipa::path(delete, path = "/api/v1/volumes/{volume}", tag = "volumes", params(("volume" = String, Path), ConfirmQuery),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete_volume(
    State(state): State<AppState>,
    Path(volume): Path<String>,
    Query(query): Query<ConfirmQuery>,
) -> Result<StatusCode, ApiError> {
    state
        .storage
        .delete_volume(&volume, query.confirm.as_deref().unwrap_or_default())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct AttachIn {
    /// An app of the project the volume was made in.
    #[serde(default)]
    pub app: String,
    /// Where the app mounts it, e.g. `/data`. A volume mounted there before is detached (and kept).
    #[serde(default)]
    pub target: String,
}

/// Attaches an orphaned volume to an app of its project, mounted from the app's next deployment.
#[utoipa::path(post, path = "/api/v1/volumes/{volume}/attach", tag = "volumes", params(("volume" = String, Path)), request_body = AttachIn,
    responses((status = 200, body = AppVolumesOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn attach_volume(
    State(state): State<AppState>,
    Path(volume): Path<String>,
    ApiJson(input): ApiJson<AttachIn>,
) -> Result<Json<AppVolumesOut>, ApiError> {
    let mut errors = FieldErrors::default();
    let app = errors.check("app", AppName::parse(&input.app));
    let target = errors.check("target", MountPath::parse(&input.target));
    let (Some(app), Some(target)) = (app, target) else {
        return Err(ApiError(WebError::Invalid(errors)));
    };
    let app = state.storage.attach_volume(&volume, &app, &target).await?;
    app_volumes_out(&state, &app).await
}

async fn app_volumes_out(
    state: &AppState,
    app: &berth_core::App,
) -> Result<Json<AppVolumesOut>, ApiError> {
    let volumes = state.storage.app_volumes(app).await?;
    let (strategy, strategy_reason) = state.storage.app_strategy(app).await?;
    Ok(Json(AppVolumesOut {
        strategy: strategy.as_str(),
        strategy_reason,
        dangerous_mounts: app.dangerous_mounts,
        volumes: volumes.iter().map(VolumeRow::from).collect(),
    }))
}

fn names(project: &str, app: &str) -> Result<(ProjectName, AppName), ApiError> {
    Ok((
        super::projects::project_name(project)?,
        AppName::parse(app).map_err(|_| ApiError(WebError::NotFound("app")))?,
    ))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/apps/{app}/volumes", tag = "volumes",
    params(("project" = String, Path), ("app" = String, Path)),
    responses((status = 200, body = AppVolumesOut), (status = 404, body = ErrorBody)))]
pub async fn list_app_volumes(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
) -> Result<Json<AppVolumesOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    let app = state.apps.find_app(&project, &name).await?;
    app_volumes_out(&state, &app).await
}

/// One volume of an app.
#[derive(Deserialize, ToSchema)]
pub struct VolumeIn {
    /// The volume's name in the app (a DNS label), e.g. `data`; by default made from `target`.
    #[serde(default)]
    pub name: String,
    /// Empty for a named Docker volume; a host path for a bind mount (under the volumes root unless dangerous mounts are allowed).
    #[serde(default)]
    pub host_path: String,
    /// Where it is mounted in the container, e.g. `/data`.
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

impl From<VolumeIn> for VolumeInput {
    /// The form's row, so both are checked by one parse.
    fn from(v: VolumeIn) -> VolumeInput {
        VolumeInput {
            name: v.name,
            host_path: v.host_path,
            target: v.target,
            read_only: v.read_only,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct AddVolumeIn {
    #[serde(flatten)]
    pub volume: VolumeIn,
    /// Allow a host path outside the volumes root for this app (recorded and shown on its page).
    #[serde(default)]
    pub dangerous: bool,
}

/// Adds a volume to the app; it is mounted from the next deployment.
#[utoipa::path(post, path = "/api/v1/projects/{project}/apps/{app}/volumes", tag = "volumes",
    params(("project" = String, Path), ("app" = String, Path)), request_body = AddVolumeIn,
    responses((status = 200, body = AppVolumesOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_app_volume(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
    ApiJson(input): ApiJson<AddVolumeIn>,
) -> Result<Json<AppVolumesOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    let mut errors = FieldErrors::default();
    let request = VolumeInput::from(input.volume).parse(&mut errors);
    let Some(request) = request.filter(|_| errors.is_empty()) else {
        return Err(ApiError(WebError::Invalid(errors)));
    };
    let app = state
        .storage
        .add_volume(&project, &name, request, input.dangerous)
        .await?;
    app_volumes_out(&state, &app).await
}

/// Stops mounting the volume (from the next deployment); the volume and its data stay, orphaned.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/apps/{app}/volumes/{volume}", tag = "volumes",
    params(("project" = String, Path), ("app" = String, Path), ("volume" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn detach_app_volume(
    State(state): State<AppState>,
    Path((project, app, volume)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let (project, name) = names(&project, &app)?;
    let volume = VolumeName::parse(&volume).map_err(|_| ApiError(WebError::NotFound("volume")))?;
    state
        .storage
        .detach_volume(&project, &name, &volume)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
