//! `/api/v1/projects/{project}/databases`: managed databases; the same
//! `Databases` functions as the database pages.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use berth_core::{DatabaseEngine, DatabaseName, EnvKey, ImageRef, ProjectName};
use berth_deploy::{DatabaseRequest, DatabaseUpdate, DatabaseView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiJson;
use super::apps::{LogsOut, LogsQuery};
use super::projects::project_name;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ErrorBody};
use crate::forms::FieldErrors;
use crate::routes::Table;
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.api(__path_list_databases, list_databases);
    t.api(__path_create_database, create_database);
    t.api(__path_get_database, get_database);
    t.api(__path_update_database, update_database);
    t.api(__path_delete_database, delete_database);
    t.api(__path_start_database, start_database);
    t.api(__path_stop_database, stop_database);
    t.api(__path_restart_database, restart_database);
    t.api(__path_rotate_database_password, rotate_database_password);
    t.api(__path_use_database_in_app, use_database_in_app);
    t.api(__path_get_database_logs, get_database_logs);
}

/// What the password and URL show unless revealed.
pub const MASK: &str = "••••••••";

/// A new database.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseInput {
    /// Lowercase letters, digits and `-` (like an app's name), unique among
    /// the project's apps, stacks and databases.
    pub name: String,
    /// postgres, mysql, mariadb, redis, valkey or mongodb.
    pub engine: String,
    /// A supported major version; the engine's default when absent.
    pub version: Option<String>,
    /// A custom image (PostGIS…); the engine's official image when absent.
    pub image: Option<String>,
    /// Publish the port on 127.0.0.1 at this host port (none by default).
    pub host_port: Option<u16>,
}

impl DatabaseInput {
    /// Every field checked, each error under its field; nothing is created
    /// when any is wrong.
    pub fn parse(&self) -> Result<DatabaseRequest, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = DatabaseName::parse(&self.name)
            .map_err(|e| errors.add("name", format!("name {e}")))
            .ok();
        let engine = DatabaseEngine::parse(&self.engine)
            .map_err(|e| errors.add("engine", e))
            .ok();
        if let Some(engine) = engine
            && let Err(e) = engine.version(self.version.as_deref())
        {
            errors.add("version", e);
        }
        let image = parse_image(self.image.as_deref(), &mut errors);
        if self.host_port == Some(0) {
            errors.add("host_port", "must be between 1 and 65535");
        }
        match (name, engine) {
            (Some(name), Some(engine)) if errors.is_empty() => Ok(DatabaseRequest {
                name,
                engine,
                version: self.version.clone(),
                image,
                host_port: self.host_port,
            }),
            _ => Err(errors),
        }
    }
}

fn parse_image(image: Option<&str>, errors: &mut FieldErrors) -> Option<ImageRef> {
    let image = image.map(str::trim).filter(|s| !s.is_empty())?;
    ImageRef::parse(image)
        .map_err(|e| errors.add("image", format!("image {e}")))
        .ok()
}

/// New settings (absent: kept). Each change recreates the container on the
/// same volume.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DatabaseUpdateInput {
    pub version: Option<String>,
    pub image: Option<String>,
    /// A host port on 127.0.0.1; `0` stops publishing.
    pub host_port: Option<u16>,
}

impl DatabaseUpdateInput {
    pub fn parse(&self) -> Result<DatabaseUpdate, FieldErrors> {
        let mut errors = FieldErrors::default();
        let image = parse_image(self.image.as_deref(), &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(DatabaseUpdate {
            version: self
                .version
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            image,
            host_port: self.host_port.map(|p| (p != 0).then_some(p)),
        })
    }
}

/// What deleting does with the volume (the body may be left out: it stays).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DeleteDatabaseInput {
    /// Also delete the volume and its data (needs `confirm`).
    #[serde(default)]
    pub delete_volume: bool,
    /// The database's name, typed again.
    pub confirm: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UseInAppInput {
    /// The app of the same project.
    pub app: String,
    /// The variable to set (default `DATABASE_URL`).
    pub variable: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UseInAppOut {
    pub app: String,
    pub variable: String,
    /// What the app's environment holds: a reference, never the password.
    pub value: String,
}

#[derive(Deserialize, IntoParams)]
pub struct RevealQuery {
    /// Show the password and the full connection URL.
    #[serde(default)]
    pub reveal: bool,
}

/// A database with its container.
#[derive(Serialize, ToSchema)]
pub struct DatabaseOut {
    pub project: String,
    pub name: String,
    pub engine: String,
    /// The major version its data is made with.
    pub version: String,
    pub image: String,
    /// The image's tag names no version: it may change under the data.
    pub unpinned: bool,
    /// A port published on 127.0.0.1, when asked for.
    pub host_port: Option<u16>,
    /// `running` or `stopped`: what berth keeps it at.
    pub desired: String,
    /// What it is doing (`starting`), or why the last action failed.
    pub message: Option<String>,
    pub container: String,
    /// Docker's state (`running`, `exited`…) or `missing`.
    pub state: String,
    /// The readiness check's verdict: `starting`, `healthy`, `unhealthy`.
    pub health: Option<String>,
    pub published: Vec<String>,
    pub volume: String,
    /// The project network, where apps reach it at `host:port`.
    pub network: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    /// Masked unless `?reveal=true`.
    pub password: String,
    /// The connection URL; its password masked unless `?reveal=true`.
    pub url: String,
    pub created_at: i64,
    pub updated_at: i64,
}

fn out(v: &DatabaseView, revealed: Option<(&str, String)>) -> DatabaseOut {
    let db = &v.database;
    let (password, url) = match revealed {
        Some((pw, url)) => (pw.to_owned(), url),
        None => (MASK.to_owned(), v.url_masked.clone()),
    };
    DatabaseOut {
        project: db.project.to_string(),
        name: db.name.to_string(),
        engine: db.engine.as_str().to_owned(),
        version: db.version.clone(),
        image: db.image.to_string(),
        unpinned: v.unpinned,
        host_port: db.host_port,
        desired: db.desired.as_str().to_owned(),
        message: db.message.clone(),
        container: v.container.clone(),
        state: v.state.clone(),
        health: v.health.clone(),
        published: v.published.clone(),
        volume: v.volume.clone(),
        network: berth_deploy::network_name(&db.project),
        host: v.host.clone(),
        port: v.port,
        user: v.user.clone(),
        database: v.database_name.clone(),
        password,
        url,
        created_at: db.created_at,
        updated_at: db.updated_at,
    }
}

fn names(project: &str, db: &str) -> Result<(ProjectName, DatabaseName), ApiError> {
    Ok((
        project_name(project)?,
        DatabaseName::parse(db).map_err(|_| ApiError(WebError::NotFound("database")))?,
    ))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/databases", tag = "databases", params(("project" = String, Path)),
    responses((status = 200, body = Vec<DatabaseOut>), (status = 404, body = ErrorBody)))]
pub async fn list_databases(
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<Vec<DatabaseOut>>, ApiError> {
    let project = project_name(&project)?;
    let list = state.databases.list(&project).await?;
    Ok(Json(list.iter().map(|v| out(v, None)).collect()))
}

/// Creates a database: 201 with it (`message` is `starting` until it passes
/// its readiness check; poll it). Bad input: 422, a taken name: 409; nothing
/// is created either way.
#[utoipa::path(post, path = "/api/v1/projects/{project}/databases", tag = "databases", params(("project" = String, Path)), request_body = DatabaseInput,
    responses((status = 201, body = DatabaseOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_database(
    State(state): State<AppState>,
    Path(project): Path<String>,
    ApiJson(input): ApiJson<DatabaseInput>,
) -> Result<(StatusCode, Json<DatabaseOut>), ApiError> {
    let project = project_name(&project)?;
    let request = input.parse().map_err(WebError::Invalid)?;
    let db = state.databases.create(&project, request).await?;
    let view = state.databases.get(&project, &db.name).await?;
    Ok((StatusCode::CREATED, Json(out(&view, None))))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/databases/{database}", tag = "databases",
    params(("project" = String, Path), ("database" = String, Path), RevealQuery),
    responses((status = 200, body = DatabaseOut), (status = 404, body = ErrorBody)))]
pub async fn get_database(
    State(state): State<AppState>,
    Path((project, db)): Path<(String, String)>,
    Query(query): Query<RevealQuery>,
) -> Result<Json<DatabaseOut>, ApiError> {
    let (project, name) = names(&project, &db)?;
    let view = state.databases.get(&project, &name).await?;
    if query.reveal {
        let creds = state.databases.reveal(&project, &name).await?;
        let url = state.databases.connection_url(&project, &name).await?;
        return Ok(Json(out(&view, Some((&creds.password, url)))));
    }
    Ok(Json(out(&view, None)))
}

/// Changes the version, image or host port by recreating the container on
/// the same volume. Another major version on a volume with data is refused
/// (422) with the way to move; a new container that fails its readiness
/// check is removed, the old one runs again (409).
#[utoipa::path(patch, path = "/api/v1/projects/{project}/databases/{database}", tag = "databases",
    params(("project" = String, Path), ("database" = String, Path)), request_body = DatabaseUpdateInput,
    responses((status = 200, body = DatabaseOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_database(
    State(state): State<AppState>,
    Path((project, db)): Path<(String, String)>,
    ApiJson(input): ApiJson<DatabaseUpdateInput>,
) -> Result<Json<DatabaseOut>, ApiError> {
    let (project, name) = names(&project, &db)?;
    let update = input.parse().map_err(WebError::Invalid)?;
    state.databases.update(&project, &name, update).await?;
    Ok(Json(out(
        &state.databases.get(&project, &name).await?,
        None,
    )))
}

/// Removes the database's container; its volume stays (orphaned on the
/// Storage page) unless `delete_volume` with `confirm` set to its name.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/databases/{database}", tag = "databases",
    params(("project" = String, Path), ("database" = String, Path)), request_body(content = Option<DeleteDatabaseInput>),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete_database(
    State(state): State<AppState>,
    Path((project, db)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let (project, name) = names(&project, &db)?;
    let input: DeleteDatabaseInput = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteDatabaseInput::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            let mut errors = FieldErrors::default();
            errors.add("body", e);
            ApiError(WebError::Invalid(errors))
        })?
    };
    state
        .databases
        .delete(
            &project,
            &name,
            input.delete_volume,
            input.confirm.as_deref().unwrap_or_default(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

macro_rules! action {
    ($fn:ident, $method:ident, $path:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "databases",
            params(("project" = String, Path), ("database" = String, Path)),
            responses((status = 200, body = DatabaseOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
        pub async fn $fn(
            State(state): State<AppState>,
            Path((project, db)): Path<(String, String)>,
        ) -> Result<Json<DatabaseOut>, ApiError> {
            let (project, name) = names(&project, &db)?;
            state.databases.$method(&project, &name).await?;
            Ok(Json(out(&state.databases.get(&project, &name).await?, None)))
        }
    };
}

action!(
    start_database,
    start,
    "/api/v1/projects/{project}/databases/{database}/start",
    "Starts the database and waits for its readiness check."
);
action!(
    stop_database,
    stop,
    "/api/v1/projects/{project}/databases/{database}/stop",
    "Stops the database (it stays stopped across berth's restarts)."
);
action!(
    restart_database,
    restart,
    "/api/v1/projects/{project}/databases/{database}/restart",
    "Restarts the database and waits for its readiness check."
);
action!(
    rotate_database_password,
    rotate_password,
    "/api/v1/projects/{project}/databases/{database}/rotate-password",
    "Changes the password in the server and in berth. Apps that use the database by reference get it at their next deploy."
);

/// Adds `variable` (default `DATABASE_URL`) to an app's environment as the
/// reference `${database.<name>}`; each deploy fills in the URL.
#[utoipa::path(post, path = "/api/v1/projects/{project}/databases/{database}/use-in-app", tag = "databases",
    params(("project" = String, Path), ("database" = String, Path)), request_body = UseInAppInput,
    responses((status = 200, body = UseInAppOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn use_database_in_app(
    State(state): State<AppState>,
    Path((project, db)): Path<(String, String)>,
    caller: ApiCaller,
    ApiJson(input): ApiJson<UseInAppInput>,
) -> Result<Json<UseInAppOut>, ApiError> {
    let (project, name) = names(&project, &db)?;
    let mut errors = FieldErrors::default();
    let app = berth_core::AppName::parse(&input.app)
        .map_err(|e| errors.add("app", format!("app {e}")))
        .ok();
    let variable = input
        .variable
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(EnvKey::parse)
        .transpose()
        .map_err(|e| errors.add("variable", e))
        .ok()
        .flatten();
    let Some(app) = app.filter(|_| errors.is_empty()) else {
        return Err(ApiError(WebError::Invalid(errors)));
    };
    let key = state
        .databases
        .use_in_app(&project, &name, &app, variable, &caller.0)
        .await?;
    Ok(Json(UseInAppOut {
        app: app.to_string(),
        variable: key.to_string(),
        value: format!("${{database.{name}}}"),
    }))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/databases/{database}/logs", tag = "databases",
    params(("project" = String, Path), ("database" = String, Path), LogsQuery),
    responses((status = 200, body = LogsOut), (status = 404, body = ErrorBody)))]
pub async fn get_database_logs(
    State(state): State<AppState>,
    Path((project, db)): Path<(String, String)>,
    Query(query): Query<LogsQuery>,
) -> Result<Json<LogsOut>, ApiError> {
    let (project, name) = names(&project, &db)?;
    Ok(Json(LogsOut {
        lines: state.databases.logs(&project, &name, query.count()).await?,
    }))
}
