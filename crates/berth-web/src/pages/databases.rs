//! Database pages: the "New database" form and a database's page (status,
//! connection URL, credentials with reveal, "Use in app", settings, logs,
//! delete with the name typed). They call the same `Databases` functions
//! as the API.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use berth_core::{AppName, DatabaseEngine, DatabaseName, EnvKey, ProjectName};
use berth_deploy::{DEFAULT_URL_VARIABLE, DatabaseView};

use super::parse_path;
use super::projects::field_errors;
use crate::api::databases::{DatabaseInput, DatabaseUpdateInput, MASK};
use crate::auth::CurrentUser;
use crate::auth::csrf::CsrfForm;
use crate::forms::{FieldErrors, is_ticked};
use crate::routes::{Access, Table};
use crate::views::{Chrome, render};
use crate::{AppState, WebError};

/// The page of a database's backups (crates/berth-web/src/pages/backups.rs).
pub fn backups_url(project: &str, db: &str) -> String {
    format!("/projects/{project}/databases/{db}/backups")
}

/// How many log lines the page shows.
const LOG_LINES: usize = 100;

pub(crate) fn routes(t: &mut Table) {
    t.get(
        Access::Session,
        "/projects/{project}/databases/new",
        new_form,
    );
    t.post(Access::Session, "/projects/{project}/databases", create);
    t.get(Access::Session, "/projects/{project}/databases/{db}", show);
    t.post(
        Access::Session,
        "/projects/{project}/databases/{db}/reveal",
        reveal,
    );
    t.post(
        Access::Session,
        "/projects/{project}/databases/{db}/start",
        start,
    );
    t.post(
        Access::Session,
        "/projects/{project}/databases/{db}/stop",
        stop,
    );
    t.post(
        Access::Session,
        "/projects/{project}/databases/{db}/restart",
        restart,
    );
    t.post(
        Access::Session,
        "/projects/{project}/databases/{db}/rotate-password",
        rotate_password,
    );
    t.post(
        Access::Session,
        "/projects/{project}/databases/{db}/settings",
        settings,
    );
    t.post(
        Access::Session,
        "/projects/{project}/databases/{db}/use-in-app",
        use_in_app,
    );
    t.post(
        Access::Session,
        "/projects/{project}/databases/{db}/delete",
        delete,
    );
}

/// An engine and its versions, for the form's selects.
pub struct EngineOption {
    pub id: &'static str,
    pub label: &'static str,
    pub versions: Vec<&'static str>,
    pub default: &'static str,
}

fn engines() -> Vec<EngineOption> {
    DatabaseEngine::ALL
        .iter()
        .map(|e| EngineOption {
            id: e.as_str(),
            label: e.label(),
            versions: e.versions().to_vec(),
            default: e.default_version(),
        })
        .collect()
}

/// The new-database form's fields, as typed.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct NewDatabaseForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub engine: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub host_port: String,
}

#[derive(askama::Template)]
#[template(path = "database_new.html")]
pub struct NewDatabasePage {
    pub chrome: Chrome,
    pub project: String,
    pub engines: Vec<EngineOption>,
    pub input: NewDatabaseForm,
    pub errors: FieldErrors,
}

pub async fn new_form(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<String>,
) -> Result<Response, WebError> {
    let project = parse_path(ProjectName::parse, &project, "project")?;
    state.projects.find_project(&project).await?;
    let page = NewDatabasePage {
        chrome: Chrome::from(&user),
        project: project.to_string(),
        engines: engines(),
        input: NewDatabaseForm {
            engine: "postgres".to_owned(),
            ..Default::default()
        },
        errors: FieldErrors::default(),
    };
    Ok(render(&page).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<String>,
    CsrfForm(input): CsrfForm<NewDatabaseForm>,
) -> Result<Response, WebError> {
    let project = parse_path(ProjectName::parse, &project, "project")?;
    let host_port = input.host_port.trim();
    let parsed_port = if host_port.is_empty() {
        Ok(None)
    } else {
        host_port.parse::<u16>().map(Some)
    };
    let result = async {
        let Ok(host_port) = parsed_port else {
            let mut errors = FieldErrors::default();
            errors.add("host_port", "must be a number between 1 and 65535");
            return Err(WebError::Invalid(errors));
        };
        let api_input = DatabaseInput {
            name: input.name.clone(),
            engine: input.engine.clone(),
            version: Some(input.version.clone()).filter(|v| !v.trim().is_empty()),
            image: Some(input.image.clone()),
            host_port,
        };
        let request = api_input.parse().map_err(WebError::Invalid)?;
        Ok(state.databases.create(&project, request).await?)
    }
    .await;
    match result {
        Ok(db) => Ok(
            Redirect::to(&format!("/projects/{}/databases/{}", project, db.name)).into_response(),
        ),
        Err(err @ (WebError::Invalid(_) | WebError::Conflict(_))) => {
            let status = err.status_code();
            let page = NewDatabasePage {
                chrome: Chrome::from(&user),
                project: project.to_string(),
                engines: engines(),
                input,
                errors: field_errors(err, "name"),
            };
            Ok((status, render(&page)).into_response())
        }
        Err(err) => Err(err),
    }
}

#[derive(askama::Template)]
#[template(path = "database.html")]
pub struct DatabasePage {
    pub chrome: Chrome,
    pub project: String,
    pub name: String,
    pub engine: String,
    pub version: String,
    pub versions: Vec<&'static str>,
    pub image: String,
    pub unpinned: bool,
    pub host_port: String,
    pub desired: String,
    pub message: String,
    pub container: String,
    pub state: String,
    pub health: String,
    pub published: Vec<String>,
    pub volume: String,
    pub network: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    /// The password, or the mask when not revealed.
    pub password: String,
    /// The connection URL, its password masked unless revealed.
    pub url: String,
    pub revealed: bool,
    /// The project's apps, for "Use in app".
    pub apps: Vec<String>,
    pub default_variable: &'static str,
    pub logs: Vec<String>,
    pub flash: String,
    pub error: bool,
    pub errors: FieldErrors,
    pub backups_url: String,
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    project: &ProjectName,
    name: &DatabaseName,
    revealed: bool,
    flash: (String, bool),
    errors: FieldErrors,
) -> Result<DatabasePage, WebError> {
    let v: DatabaseView = state.databases.get(project, name).await?;
    let (password, url) = if revealed {
        (
            state.databases.reveal(project, name).await?.password,
            state.databases.connection_url(project, name).await?,
        )
    } else {
        (MASK.to_owned(), v.url_masked.clone())
    };
    let apps = state
        .apps
        .list_apps_in_project(project)
        .await?
        .into_iter()
        .map(|a| a.name.to_string())
        .collect();
    let logs = state
        .databases
        .logs(project, name, LOG_LINES)
        .await
        .unwrap_or_default();
    let db = &v.database;
    Ok(DatabasePage {
        chrome: Chrome::from(user),
        project: project.to_string(),
        name: name.to_string(),
        engine: db.engine.label().to_owned(),
        version: db.version.clone(),
        versions: db.engine.versions().to_vec(),
        image: db.image.to_string(),
        unpinned: v.unpinned,
        host_port: db.host_port.map(|p| p.to_string()).unwrap_or_default(),
        desired: db.desired.as_str().to_owned(),
        message: db.message.clone().unwrap_or_default(),
        container: v.container.clone(),
        state: v.state.clone(),
        health: v.health.clone().unwrap_or_default(),
        published: v.published.clone(),
        volume: v.volume.clone(),
        network: berth_deploy::network_name(project),
        host: v.host.clone(),
        port: v.port,
        user: v.user.clone(),
        database: v.database_name.clone(),
        password,
        url,
        revealed,
        apps,
        default_variable: DEFAULT_URL_VARIABLE,
        logs,
        flash: flash.0,
        error: flash.1,
        errors,
        backups_url: backups_url(project.as_str(), name.as_str()),
    })
}

fn names(project: &str, db: &str) -> Result<(ProjectName, DatabaseName), WebError> {
    Ok((
        parse_path(ProjectName::parse, project, "project")?,
        parse_path(DatabaseName::parse, db, "database")?,
    ))
}

fn db_url(project: &ProjectName, name: &DatabaseName) -> String {
    format!("/projects/{project}/databases/{name}")
}

/// The page again with why an action was refused; nothing changed.
async fn refused(
    state: &AppState,
    user: &CurrentUser,
    project: &ProjectName,
    name: &DatabaseName,
    err: WebError,
) -> Result<Response, WebError> {
    if matches!(err, WebError::Internal(_) | WebError::NotFound(_)) {
        return Err(err);
    }
    let status = err.status_code();
    let errors = match &err {
        WebError::Invalid(errors) => errors.clone(),
        _ => FieldErrors::default(),
    };
    let page = page(
        state,
        user,
        project,
        name,
        false,
        (err.public_message(), true),
        errors,
    )
    .await?;
    Ok((status, render(&page)).into_response())
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, db)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let (project, name) = names(&project, &db)?;
    let page = page(
        &state,
        &user,
        &project,
        &name,
        false,
        (String::new(), false),
        FieldErrors::default(),
    )
    .await?;
    Ok(render(&page).into_response())
}

/// Shows the password and the full URL, on purpose (a POST, so no link or
/// history entry reveals it again).
pub async fn reveal(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, db)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let (project, name) = names(&project, &db)?;
    let page = page(
        &state,
        &user,
        &project,
        &name,
        true,
        (String::new(), false),
        FieldErrors::default(),
    )
    .await?;
    Ok(render(&page).into_response())
}

macro_rules! action {
    ($fn:ident, $method:ident) => {
        pub async fn $fn(
            State(state): State<AppState>,
            user: CurrentUser,
            Path((project, db)): Path<(String, String)>,
            CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
        ) -> Result<Response, WebError> {
            let (project, name) = names(&project, &db)?;
            match state.databases.$method(&project, &name).await {
                Ok(()) => Ok(Redirect::to(&db_url(&project, &name)).into_response()),
                Err(err) => refused(&state, &user, &project, &name, err.into()).await,
            }
        }
    };
}

action!(start, start);
action!(stop, stop);
action!(restart, restart);
action!(rotate_password, rotate_password);

#[derive(Debug, Default, serde::Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub host_port: String,
}

pub async fn settings(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, db)): Path<(String, String)>,
    CsrfForm(input): CsrfForm<SettingsForm>,
) -> Result<Response, WebError> {
    let (project, name) = names(&project, &db)?;
    let result = async {
        let host_port = match input.host_port.trim() {
            "" => 0,
            p => p.parse::<u16>().map_err(|_| {
                let mut errors = FieldErrors::default();
                errors.add(
                    "host_port",
                    "must be a number between 1 and 65535, or empty",
                );
                WebError::Invalid(errors)
            })?,
        };
        let update = DatabaseUpdateInput {
            version: Some(input.version.clone()),
            image: Some(input.image.clone()),
            host_port: Some(host_port),
        }
        .parse()
        .map_err(WebError::Invalid)?;
        state.databases.update(&project, &name, update).await?;
        Ok::<_, WebError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(Redirect::to(&db_url(&project, &name)).into_response()),
        Err(err) => refused(&state, &user, &project, &name, err).await,
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct UseInAppForm {
    #[serde(default)]
    pub app: String,
    #[serde(default)]
    pub variable: String,
}

pub async fn use_in_app(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, db)): Path<(String, String)>,
    CsrfForm(input): CsrfForm<UseInAppForm>,
) -> Result<Response, WebError> {
    let (project, name) = names(&project, &db)?;
    let result = async {
        let mut errors = FieldErrors::default();
        let app = AppName::parse(&input.app)
            .map_err(|e| errors.add("app", format!("app {e}")))
            .ok();
        let variable = match input.variable.trim() {
            "" => None,
            v => EnvKey::parse(v).map_err(|e| errors.add("variable", e)).ok(),
        };
        let Some(app) = app.filter(|_| errors.is_empty()) else {
            return Err(WebError::Invalid(errors));
        };
        state
            .databases
            .use_in_app(&project, &name, &app, variable, &user.username)
            .await?;
        Ok(format!("/projects/{project}/apps/{app}/env"))
    }
    .await;
    match result {
        Ok(url) => Ok(Redirect::to(&url).into_response()),
        Err(err) => refused(&state, &user, &project, &name, err).await,
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    pub delete_volume: Option<String>,
    #[serde(default)]
    pub confirm: String,
}

pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, db)): Path<(String, String)>,
    CsrfForm(input): CsrfForm<DeleteForm>,
) -> Result<Response, WebError> {
    let (project, name) = names(&project, &db)?;
    let delete_volume = input.delete_volume.as_deref().is_some_and(is_ticked);
    match state
        .databases
        .delete(&project, &name, delete_volume, &input.confirm)
        .await
    {
        Ok(()) => Ok(Redirect::to(&format!("/projects/{project}")).into_response()),
        Err(err) => refused(&state, &user, &project, &name, err.into()).await,
    }
}
