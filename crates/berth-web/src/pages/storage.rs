//! The Storage page: every volume berth made, its owner, size and use;
//! orphaned ones can be deleted (name typed) or attached to an app.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use berth_core::{AppName, MountPath};

use crate::auth::CurrentUser;
use crate::auth::csrf::CsrfForm;
use crate::routes::{Access, Table};
use crate::views::{Chrome, StoragePage, StorageRow, render};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Session, "/storage", show);
    t.post(Access::Session, "/storage/{volume}/delete", delete);
    t.post(Access::Session, "/storage/{volume}/attach", attach);
    t.post(
        Access::Session,
        "/projects/{project}/apps/{app}/volumes",
        super::apps::add_volume,
    );
    t.post(
        Access::Session,
        "/projects/{project}/apps/{app}/volumes/{volume}/detach",
        super::apps::detach_volume,
    );
}

pub async fn show(State(state): State<AppState>, user: CurrentUser) -> Result<Response, WebError> {
    Ok(render(&page(&state, &user, String::new(), false).await?).into_response())
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    flash: String,
    error: bool,
) -> Result<StoragePage, WebError> {
    let volumes = state.storage.list_storage().await?;
    Ok(StoragePage {
        chrome: Chrome::from(user),
        volumes: volumes.iter().map(StorageRow::from).collect(),
        flash,
        error,
    })
}

/// A refused action shows the page again with why, and changes nothing.
async fn refused(
    state: &AppState,
    user: &CurrentUser,
    err: WebError,
) -> Result<Response, WebError> {
    if matches!(err, WebError::Internal(_)) {
        return Err(err);
    }
    let status = err.status_code();
    let page = page(state, user, err.public_message(), true).await?;
    Ok((status, render(&page)).into_response())
}

#[derive(serde::Deserialize)]
pub struct DeleteInput {
    #[serde(default)]
    confirm: String,
}

pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(volume): Path<String>,
    CsrfForm(input): CsrfForm<DeleteInput>,
) -> Result<Response, WebError> {
    match state.storage.delete_volume(&volume, &input.confirm).await {
        Ok(()) => Ok(Redirect::to("/storage").into_response()),
        Err(err) => refused(&state, &user, err.into()).await,
    }
}

#[derive(serde::Deserialize)]
pub struct AttachInput {
    #[serde(default)]
    app: String,
    #[serde(default)]
    target: String,
}

pub async fn attach(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(volume): Path<String>,
    CsrfForm(input): CsrfForm<AttachInput>,
) -> Result<Response, WebError> {
    let result = async {
        let app = AppName::parse(&input.app).map_err(|e| invalid("app", e))?;
        let target = MountPath::parse(&input.target).map_err(|e| invalid("target", e))?;
        let app = state.storage.attach_volume(&volume, &app, &target).await?;
        Ok::<_, WebError>(format!(
            "/projects/{}/apps/{}#storage",
            app.project, app.name
        ))
    }
    .await;
    match result {
        Ok(url) => Ok(Redirect::to(&url).into_response()),
        Err(err) => refused(&state, &user, err).await,
    }
}

fn invalid(field: &'static str, message: impl std::fmt::Display) -> WebError {
    let mut errors = crate::forms::FieldErrors::default();
    errors.add(field, message);
    WebError::Invalid(errors)
}
