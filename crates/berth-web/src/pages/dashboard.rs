use axum::extract::State;
use axum::response::Html;

use crate::auth::CurrentUser;
use crate::forms::FieldErrors;
use crate::routes::{Access, Table};
use crate::views::{AppRow, Chrome, DashboardPage, EngineView, ProjectRow, render};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Session, "/", show);
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Html<String>, WebError> {
    let page = page(&state, &user, String::new(), FieldErrors::default()).await?;
    Ok(render(&page))
}

/// The dashboard, also re-shown with the new-project form's input and errors.
pub async fn page(
    state: &AppState,
    user: &CurrentUser,
    project_input: String,
    errors: FieldErrors,
) -> Result<DashboardPage, WebError> {
    let engine = state.system.docker_status().await;
    let projects = state.projects.list_projects().await?;
    let app_count = state.apps.count_apps().await?;
    let attention = state
        .apps
        .apps_needing_attention()
        .await?
        .iter()
        .map(AppRow::from)
        .collect();
    Ok(DashboardPage {
        chrome: Chrome::from(user),
        engine: EngineView::from(engine),
        projects: projects
            .into_iter()
            .map(|p| ProjectRow {
                name: p.project.name.to_string(),
                app_count: p.app_count,
            })
            .collect(),
        project_input,
        errors,
        app_count: usize::try_from(app_count).unwrap_or_default(),
        attention,
    })
}
