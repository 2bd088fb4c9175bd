use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use berth_core::ProjectName;

use super::parse_path;
use crate::auth::CurrentUser;
use crate::auth::csrf::CsrfForm;
use crate::forms::{AppInput, FieldErrors, ProjectInput};
use crate::routes::{Access, Table};
use crate::views::{Chrome, ProjectPage, render};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.post(Access::Session, "/projects", create);
    t.get(Access::Session, "/projects/{project}", show);
    t.post(Access::Session, "/projects/{project}/delete", delete);
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(input): CsrfForm<ProjectInput>,
) -> Result<Response, WebError> {
    let result = match input.parse() {
        Ok(name) => state
            .projects
            .create_project(&name)
            .await
            .map_err(WebError::from),
        Err(errors) => Err(WebError::Invalid(errors)),
    };
    match result {
        Ok(project) => Ok(Redirect::to(&format!("/projects/{}", project.name)).into_response()),
        Err(err @ (WebError::Invalid(_) | WebError::Conflict(_))) => {
            let errors = field_errors(err, "name");
            let page = super::dashboard::page(&state, &user, input.name, errors).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
        Err(err) => Err(err),
    }
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<String>,
) -> Result<Response, WebError> {
    let project = parse_path(ProjectName::parse, &project, "project")?;
    let page = page(
        &state,
        &user,
        &project,
        AppInput::default(),
        FieldErrors::default(),
        String::new(),
    )
    .await?;
    Ok(render(&page).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<String>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let project = parse_path(ProjectName::parse, &project, "project")?;
    match state.projects.delete_project(&project).await {
        Ok(()) => Ok(Redirect::to("/").into_response()),
        Err(err) => {
            let err = WebError::from(err);
            if matches!(err, WebError::NotFound(_)) {
                return Err(err);
            }
            let page = page(
                &state,
                &user,
                &project,
                AppInput::default(),
                FieldErrors::default(),
                err.public_message(),
            )
            .await?;
            Ok((err.status_code(), render(&page)).into_response())
        }
    }
}

/// The project page, also re-shown with the new-app form's input and errors.
pub async fn page(
    state: &AppState,
    user: &CurrentUser,
    project: &ProjectName,
    input: AppInput,
    errors: FieldErrors,
    flash: String,
) -> Result<ProjectPage, WebError> {
    state.projects.find_project(project).await?;
    let resources = super::resources::rows(state, Some(project)).await?;
    Ok(ProjectPage {
        chrome: Chrome::from(user),
        project: project.to_string(),
        resources,
        input,
        errors,
        flash,
    })
}

/// Validation errors stay as they are; a name clash becomes an error on `field`.
pub fn field_errors(err: WebError, field: &'static str) -> FieldErrors {
    match err {
        WebError::Invalid(errors) => errors,
        other => {
            let mut errors = FieldErrors::default();
            errors.add(field, other.public_message());
            errors
        }
    }
}
