use axum::Json;
use axum::extract::State;
use berth_deploy::DockerStatus;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::routes::Table;

pub(crate) fn routes(t: &mut Table) {
    t.api(__path_get_engine, get_engine);
}

#[derive(Serialize, ToSchema)]
pub struct EngineOut {
    /// False when berth cannot reach Docker; `error` and `hint` say why.
    pub available: bool,
    /// What berth connects to, e.g. `unix:///var/run/docker.sock`.
    pub target: String,
    pub version: Option<String>,
    pub api_version: Option<String>,
    pub containers_running: Option<u64>,
    pub containers_stopped: Option<u64>,
    pub images: Option<u64>,
    pub disk_bytes: Option<DiskOut>,
    pub error: Option<String>,
    pub hint: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DiskOut {
    pub images: u64,
    pub containers: u64,
    pub volumes: u64,
    pub build_cache: u64,
}

/// The Docker engine berth drives.
#[utoipa::path(get, path = "/api/v1/engine", tag = "engine",
    responses((status = 200, body = EngineOut), (status = 401, body = ErrorBody)))]
pub async fn get_engine(State(state): State<AppState>) -> Result<Json<EngineOut>, ApiError> {
    let target = state.system.docker_target().to_owned();
    Ok(Json(match state.system.docker_status().await {
        DockerStatus::Available(info) => EngineOut {
            available: true,
            target,
            version: Some(info.version),
            api_version: Some(info.api_version),
            containers_running: Some(info.containers_running),
            containers_stopped: Some(info.containers_stopped + info.containers_paused),
            images: Some(info.images),
            disk_bytes: info.disk.map(|d| DiskOut {
                images: d.images_bytes,
                containers: d.containers_bytes,
                volumes: d.volumes_bytes,
                build_cache: d.build_cache_bytes,
            }),
            error: None,
            hint: None,
        },
        DockerStatus::Unavailable {
            target,
            error,
            hint,
        } => EngineOut {
            available: false,
            target,
            version: None,
            api_version: None,
            containers_running: None,
            containers_stopped: None,
            images: None,
            disk_bytes: None,
            error: Some(error),
            hint,
        },
    }))
}
