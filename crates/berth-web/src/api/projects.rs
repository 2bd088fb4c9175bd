use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use berth_core::ProjectName;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiJson;
use crate::error::{ApiError, ErrorBody};
use crate::forms::ProjectInput;
use crate::routes::Table;
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.api(__path_list_projects, list_projects);
    t.api(__path_create_project, create_project);
    t.api(__path_get_project, get_project);
    t.api(__path_delete_project, delete_project);
}

#[derive(Serialize, ToSchema)]
pub struct ProjectOut {
    pub name: String,
    pub app_count: i64,
    /// Unix seconds.
    pub created_at: i64,
}

pub(super) fn project_name(name: &str) -> Result<ProjectName, ApiError> {
    ProjectName::parse(name).map_err(|_| ApiError(WebError::NotFound("project")))
}

#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    responses((status = 200, body = Vec<ProjectOut>), (status = 401, body = ErrorBody)))]
pub async fn list_projects(
    State(state): State<AppState>,
) -> Result<Json<Vec<ProjectOut>>, ApiError> {
    let projects = state.projects.list_projects().await?;
    Ok(Json(
        projects
            .into_iter()
            .map(|p| ProjectOut {
                name: p.project.name.to_string(),
                app_count: p.app_count,
                created_at: p.project.created_at,
            })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = ProjectInput,
    responses((status = 201, body = ProjectOut), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_project(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<ProjectInput>,
) -> Result<(StatusCode, Json<ProjectOut>), ApiError> {
    let name = input.parse().map_err(WebError::Invalid)?;
    let project = state.projects.create_project(&name).await?;
    Ok((
        StatusCode::CREATED,
        Json(ProjectOut {
            name: project.name.to_string(),
            app_count: 0,
            created_at: project.created_at,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}", tag = "projects",
    params(("project" = String, Path)),
    responses((status = 200, body = ProjectOut), (status = 404, body = ErrorBody)))]
pub async fn get_project(
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<ProjectOut>, ApiError> {
    let name = project_name(&project)?;
    let project = state.projects.find_project(&name).await?;
    let app_count = state.apps.list_apps_in_project(&name).await?.len() as i64;
    Ok(Json(ProjectOut {
        name: project.name.to_string(),
        app_count,
        created_at: project.created_at,
    }))
}

/// Deletes an empty project (409 while it still has apps).
#[utoipa::path(delete, path = "/api/v1/projects/{project}", tag = "projects",
    params(("project" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_project(
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .projects
        .delete_project(&project_name(&project)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
