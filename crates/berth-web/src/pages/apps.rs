use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use berth_core::{AppName, ProjectName};
use berth_deploy::{DeployError, VolumeChoice};

use super::parse_path;
use super::projects::field_errors;
use crate::auth::CurrentUser;
use crate::auth::csrf::CsrfForm;
use crate::forms::{AppInput, FieldErrors, VolumeInput};
use crate::routes::{Access, Table};
use crate::views::{AppPage, AppRow, AppsPage, Chrome, VolumeRow, render};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Session, "/apps", list);
    t.post(Access::Session, "/projects/{project}/apps", create);
    t.get(Access::Session, "/projects/{project}/apps/{app}", show);
    t.post(
        Access::Session,
        "/projects/{project}/apps/{app}/start",
        start,
    );
    t.post(Access::Session, "/projects/{project}/apps/{app}/stop", stop);
    t.post(
        Access::Session,
        "/projects/{project}/apps/{app}/restart",
        restart,
    );
    t.post(
        Access::Session,
        "/projects/{project}/apps/{app}/delete",
        delete,
    );
}

/// How many log lines the app page shows.
pub const LOG_LINES: usize = 200;

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Html<String>, WebError> {
    let apps = state.apps.list_apps().await?;
    Ok(render(&AppsPage {
        chrome: Chrome::from(&user),
        apps: apps.iter().map(AppRow::from).collect(),
    }))
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<String>,
    CsrfForm(input): CsrfForm<AppInput>,
) -> Result<Response, WebError> {
    let project = parse_path(ProjectName::parse, &project, "project")?;
    let result = match input.parse(&project) {
        Ok(p) => state
            .apps
            .create_app_from(&project, p.new, p.source, p.volumes, p.strategy)
            .await
            .map_err(WebError::from),
        Err(errors) => Err(WebError::Invalid(errors)),
    };
    match result {
        Ok((app, _)) => Ok(Redirect::to(&app_url(&project, &app.name)).into_response()),
        Err(err @ (WebError::Invalid(_) | WebError::Conflict(_))) => {
            // Credentials typed into the URL are not sent back in the page.
            let mut input = input;
            input.git_url = berth_core::redact_url_credentials(&input.git_url).into_owned();
            let page = super::projects::page(
                &state,
                &user,
                &project,
                input,
                field_errors(err, "name"),
                String::new(),
            )
            .await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
        Err(err) => Err(err),
    }
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, app)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let (project, name) = parse_names(&project, &app)?;
    Ok(render(&page(&state, &user, &project, &name, String::new()).await?).into_response())
}

pub async fn start(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(names): Path<(String, String)>,
    _: CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    act(&state, &user, names, Action::Start).await
}

pub async fn stop(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(names): Path<(String, String)>,
    _: CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    act(&state, &user, names, Action::Stop).await
}

pub async fn restart(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(names): Path<(String, String)>,
    _: CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    act(&state, &user, names, Action::Restart).await
}

/// The app page's delete form: the app's name, typed again to confirm, and
/// what becomes of its volumes (kept unless `delete` is chosen).
#[derive(serde::Deserialize)]
pub struct DeleteInput {
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    volumes: String,
}

pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, app)): Path<(String, String)>,
    CsrfForm(input): CsrfForm<DeleteInput>,
) -> Result<Response, WebError> {
    let (project, name) = parse_names(&project, &app)?;
    // A slip of the mouse must not remove an app: nothing happens unless its name was typed.
    if input.confirm.trim() != name.as_str() {
        let flash = format!(
            "Nothing was deleted: to delete the app, type its name, {name}, in the box next to the Delete button."
        );
        let page = page(&state, &user, &project, &name, flash).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    }
    let volumes = if input.volumes == "delete" {
        VolumeChoice::Delete
    } else {
        VolumeChoice::Keep
    };
    match state.apps.delete_app(&project, &name, volumes).await {
        Ok(_) => Ok(Redirect::to(&format!("/projects/{project}")).into_response()),
        Err(err) => failed_action(&state, &user, &project, &name, err).await,
    }
}

/// The app page's buttons that keep the app (delete has its own handler).
#[derive(Clone, Copy)]
enum Action {
    Start,
    Stop,
    Restart,
}

/// Runs one app action; success goes back to the app page, a failure shows
/// the app page with Docker's message.
async fn act(
    state: &AppState,
    user: &CurrentUser,
    (project, app): (String, String),
    action: Action,
) -> Result<Response, WebError> {
    let (project, name) = parse_names(&project, &app)?;
    let apps = &state.apps;
    let result = match action {
        Action::Start => apps.start_app(&project, &name).await,
        Action::Stop => apps.stop_app(&project, &name).await,
        Action::Restart => apps.restart_app(&project, &name).await,
    };
    match result {
        Ok(_) => Ok(Redirect::to(&app_url(&project, &name)).into_response()),
        Err(err) => failed_action(state, user, &project, &name, err).await,
    }
}

async fn failed_action(
    state: &AppState,
    user: &CurrentUser,
    project: &ProjectName,
    name: &AppName,
    err: DeployError,
) -> Result<Response, WebError> {
    let err = WebError::from(err);
    if matches!(err, WebError::NotFound(_) | WebError::Internal(_)) {
        return Err(err);
    }
    let page = page(state, user, project, name, err.public_message()).await?;
    Ok((err.status_code(), render(&page)).into_response())
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    project: &ProjectName,
    name: &AppName,
    flash: String,
) -> Result<AppPage, WebError> {
    page_with_form(
        state,
        user,
        project,
        name,
        flash,
        VolumeInput::default(),
        FieldErrors::default(),
    )
    .await
}

async fn page_with_form(
    state: &AppState,
    user: &CurrentUser,
    project: &ProjectName,
    name: &AppName,
    flash: String,
    volume_form: VolumeInput,
    volume_errors: FieldErrors,
) -> Result<AppPage, WebError> {
    let app = state.apps.find_app(project, name).await?;
    let volumes = state.storage.app_volumes(&app).await?;
    let (strategy, strategy_why) = state.storage.app_strategy(&app).await?;
    let (logs, logs_error) = match state.apps.app_logs(&app, LOG_LINES).await {
        Ok(logs) => (logs, String::new()),
        Err(err) => (
            Vec::new(),
            format!(
                "Logs are unavailable: {}",
                WebError::from(err).public_message()
            ),
        ),
    };
    let public_urls = super::resources::app_urls(state, &app).await?;
    Ok(AppPage {
        chrome: Chrome::from(user),
        port: app.container_port.get(),
        public_urls,
        command: app
            .command
            .as_ref()
            .map(|c| c.to_line())
            .unwrap_or_default(),
        app: AppRow::from(&app),
        logs,
        logs_error,
        flash,
        volumes: volumes.iter().map(VolumeRow::from).collect(),
        strategy: strategy.as_str(),
        strategy_why,
        dangerous_mounts: app.dangerous_mounts,
        volume_form,
        volume_errors,
    })
}

/// The app page's add-volume form.
#[derive(serde::Deserialize)]
pub struct AddVolumeInput {
    #[serde(flatten)]
    volume: VolumeInput,
    #[serde(default)]
    dangerous: Option<String>,
}

pub async fn add_volume(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, app)): Path<(String, String)>,
    CsrfForm(input): CsrfForm<AddVolumeInput>,
) -> Result<Response, WebError> {
    let (project, name) = parse_names(&project, &app)?;
    let mut errors = FieldErrors::default();
    let result = match input.volume.parse(&mut errors) {
        Some(request) if errors.is_empty() => state
            .storage
            .add_volume(&project, &name, request, input.dangerous.is_some())
            .await
            .map_err(WebError::from),
        _ => Err(WebError::Invalid(errors)),
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("{}#storage", app_url(&project, &name))).into_response()),
        // The form comes back as typed, with the reason next to its field.
        Err(err @ (WebError::Invalid(_) | WebError::Conflict(_))) => {
            let status = err.status_code();
            let errors = match err {
                WebError::Invalid(errors) => errors,
                other => {
                    let mut errors = FieldErrors::default();
                    errors.add("volume_name", other.public_message());
                    errors
                }
            };
            let page = page_with_form(
                &state,
                &user,
                &project,
                &name,
                String::new(),
                input.volume,
                errors,
            )
            .await?;
            Ok((status, render(&page)).into_response())
        }
        Err(err) => Err(err),
    }
}

pub async fn detach_volume(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, app, volume)): Path<(String, String, String)>,
    _: CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let (project, name) = parse_names(&project, &app)?;
    let volume = parse_path(berth_core::VolumeName::parse, &volume, "volume")?;
    match state.storage.detach_volume(&project, &name, &volume).await {
        Ok(()) => {
            Ok(Redirect::to(&format!("{}#storage", app_url(&project, &name))).into_response())
        }
        Err(err) => failed_action(&state, &user, &project, &name, err).await,
    }
}

fn parse_names(project: &str, app: &str) -> Result<(ProjectName, AppName), WebError> {
    Ok((
        parse_path(ProjectName::parse, project, "project")?,
        parse_path(AppName::parse, app, "app")?,
    ))
}

fn app_url(project: &ProjectName, app: &AppName) -> String {
    format!("/projects/{project}/apps/{app}")
}
