//! Backups: destinations (`/api/v1/backup-destinations`), schedules and
//! backups of a stack's database service or of a managed database, one
//! backup, its restore, its cancel and its live progress (SSE). The same
//! `Backups` functions as the dashboard's forms.

use std::convert::Infallible;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use berth_deploy::{
    BackupNowRequest, BackupRow, BackupSubject, CopyRow, DestinationRequest, DestinationRow,
    DestinationTarget, RestoreStatus, ScheduleRequest, ScheduleView,
};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use super::projects::project_name;
use crate::error::{ApiError, ErrorBody};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.api(__path_list_destinations, list_destinations);
    t.api(__path_create_destination, create_destination);
    t.api(__path_get_destination, get_destination);
    t.api(__path_update_destination, update_destination);
    t.api(__path_delete_destination, delete_destination);
    t.api(__path_test_destination, test_destination);
    t.api(__path_list_service_backups, list_service_backups);
    t.api(__path_back_up_service, back_up_service);
    t.api(__path_list_service_schedules, list_service_schedules);
    t.api(__path_create_service_schedule, create_service_schedule);
    t.api(__path_list_database_backups, list_database_backups);
    t.api(__path_back_up_database, back_up_database);
    t.api(__path_list_database_schedules, list_database_schedules);
    t.api(__path_create_database_schedule, create_database_schedule);
    t.api(__path_delete_schedule, delete_schedule);
    t.api(__path_get_backup, get_backup);
    t.api(__path_restore_backup, restore_backup);
    t.api(__path_cancel_backup, cancel_backup);
    t.api(__path_get_restore, get_restore);
    t.api(__path_backup_progress, backup_progress);
}

use crate::routes::Table;

/// A destination; the S3 secret key is never shown (`has_secret` says whether one is stored).
#[derive(Serialize, ToSchema)]
pub struct DestinationOut {
    pub id: i64,
    pub name: String,
    /// `local` or `s3`.
    pub kind: String,
    /// Local: the directory (`null`: `<data dir>/backups`).
    pub path: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub has_secret: bool,
    pub keep_last: Option<i64>,
    pub max_age_days: Option<i64>,
    pub max_total_bytes: Option<i64>,
}

impl From<&DestinationRow> for DestinationOut {
    fn from(d: &DestinationRow) -> Self {
        let mut out = DestinationOut {
            id: d.id,
            name: d.name.clone(),
            kind: String::new(),
            path: None,
            endpoint: None,
            region: None,
            bucket: None,
            prefix: None,
            path_style: None,
            access_key_id: None,
            has_secret: d.has_secret,
            keep_last: d.retention.keep_last,
            max_age_days: d.retention.max_age_days,
            max_total_bytes: d.retention.max_total_bytes,
        };
        match &d.target {
            DestinationTarget::Local { path } => {
                out.kind = "local".to_owned();
                out.path = path.clone();
            }
            DestinationTarget::S3 {
                endpoint,
                region,
                bucket,
                prefix,
                path_style,
                access_key_id,
            } => {
                out.kind = "s3".to_owned();
                out.endpoint = Some(endpoint.clone());
                out.region = Some(region.clone());
                out.bucket = Some(bucket.clone());
                out.prefix = Some(prefix.clone());
                out.path_style = Some(*path_style);
                out.access_key_id = Some(access_key_id.clone());
            }
        }
        out
    }
}

/// A destination to create or replace.
#[derive(Deserialize, ToSchema)]
pub struct DestinationIn {
    pub name: String,
    /// `local` or `s3`.
    pub kind: String,
    /// Local: an absolute directory; empty: `<data dir>/backups`.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "yes")]
    pub path_style: bool,
    #[serde(default)]
    pub access_key_id: String,
    /// Required for a new S3 destination; omitted on an update keeps the stored one.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub keep_last: Option<i64>,
    #[serde(default)]
    pub max_age_days: Option<i64>,
    #[serde(default)]
    pub max_total_bytes: Option<i64>,
}

fn yes() -> bool {
    true
}

impl From<DestinationIn> for DestinationRequest {
    fn from(d: DestinationIn) -> Self {
        DestinationRequest {
            name: d.name,
            kind: d.kind,
            path: d.path,
            endpoint: d.endpoint,
            region: d.region,
            bucket: d.bucket,
            prefix: d.prefix,
            path_style: d.path_style,
            access_key_id: d.access_key_id,
            secret_access_key: d.secret_access_key,
            keep_last: d.keep_last,
            max_age_days: d.max_age_days,
            max_total_bytes: d.max_total_bytes,
        }
    }
}

/// The outcome of a destination's test.
#[derive(Serialize, ToSchema)]
pub struct TestOut {
    pub ok: bool,
    /// The server's or the file system's own words when it failed.
    pub error: Option<String>,
}

/// One destination's copy of a backup.
#[derive(Serialize, ToSchema)]
pub struct CopyOut {
    pub destination_id: i64,
    pub destination: String,
    pub key: String,
    pub location: Option<String>,
    /// `ok`, `failed` or `deleted` (by retention).
    pub status: String,
    pub size: Option<i64>,
    pub duration_ms: Option<i64>,
    pub sha256: Option<String>,
    pub error: Option<String>,
}

impl From<&CopyRow> for CopyOut {
    fn from(c: &CopyRow) -> Self {
        let status = if c.error.is_some() {
            "failed"
        } else if c.deleted_at.is_some() {
            "deleted"
        } else {
            "ok"
        };
        CopyOut {
            destination_id: c.destination_id,
            destination: c.destination_name.clone(),
            key: c.key.clone(),
            location: c.location.clone(),
            status: status.to_owned(),
            size: c.size,
            duration_ms: c.duration_ms,
            sha256: c.sha256.clone(),
            error: c.error.clone(),
        }
    }
}

/// A backup with each destination's copy.
#[derive(Serialize, ToSchema)]
pub struct BackupOut {
    pub id: i64,
    /// `stack_service` or `database`.
    pub subject_kind: String,
    pub subject_id: i64,
    pub subject_service: String,
    /// `manual`, `schedule` or `safety`.
    pub trigger: String,
    /// queued, running, succeeded, partial (some destination failed), failed, cancelled, interrupted.
    pub status: String,
    pub engine: Option<String>,
    pub encrypted: bool,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub dump_bytes: Option<i64>,
    pub stored_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub error: Option<String>,
    pub copies: Vec<CopyOut>,
    pub url: String,
}

impl From<&BackupRow> for BackupOut {
    fn from(b: &BackupRow) -> Self {
        BackupOut {
            id: b.id,
            subject_kind: b.subject.kind.to_owned(),
            subject_id: b.subject.id,
            subject_service: b.subject.service.clone(),
            trigger: b.trigger.clone(),
            status: b.status.clone(),
            engine: b.engine.clone(),
            encrypted: b.encrypted,
            created_at: b.created_at,
            started_at: b.started_at,
            finished_at: b.finished_at,
            dump_bytes: b.dump_bytes,
            stored_bytes: b.stored_bytes,
            sha256: b.sha256.clone(),
            error: b.error.clone(),
            copies: b.copies.iter().map(CopyOut::from).collect(),
            url: format!("/api/v1/backups/{}", b.id),
        }
    }
}

/// "Back up now".
#[derive(Deserialize, ToSchema, Default)]
pub struct BackupNowIn {
    /// Destination ids; empty or omitted: every destination.
    #[serde(default)]
    pub destinations: Vec<i64>,
    /// Encrypts the backup with age; needed again to restore it.
    #[serde(default)]
    pub passphrase: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct QueuedOut {
    pub id: i64,
    pub url: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ScheduleIn {
    /// Five-field cron (`0 3 * * *`) or `@daily`, `@hourly`…
    pub cron: String,
    /// IANA zone (`Europe/Berlin`); default UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Destination ids; empty: every destination.
    #[serde(default)]
    pub destinations: Vec<i64>,
    #[serde(default)]
    pub passphrase: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ScheduleOut {
    pub id: i64,
    pub cron: String,
    pub time_zone: String,
    pub destinations: Vec<i64>,
    pub encrypted: bool,
    pub enabled: bool,
    pub last_run_at: Option<i64>,
    pub next_run_at: Option<i64>,
    /// The next five runs in the schedule's zone.
    pub next_runs: Vec<String>,
}

impl From<&ScheduleView> for ScheduleOut {
    fn from(s: &ScheduleView) -> Self {
        ScheduleOut {
            id: s.row.id,
            cron: s.row.cron.clone(),
            time_zone: s.row.time_zone.clone(),
            destinations: s.row.destinations.clone(),
            encrypted: s.row.encrypted,
            enabled: s.row.enabled,
            last_run_at: s.row.last_run_at,
            next_run_at: s.row.next_run_at,
            next_runs: s.next_runs.clone(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct RestoreIn {
    /// `same`: into the database the backup was taken of.
    pub target: String,
    /// The database's name (for a stack, the service's name), typed to confirm.
    pub confirm: String,
}

#[derive(Serialize, ToSchema)]
pub struct RestoreOut {
    pub id: i64,
    pub backup_id: i64,
    /// The backup taken just before (restored again if the restore fails).
    pub safety_backup_id: Option<i64>,
    /// running, succeeded, failed, rolled_back.
    pub status: String,
    pub error: Option<String>,
    pub url: String,
}

impl From<RestoreStatus> for RestoreOut {
    fn from(r: RestoreStatus) -> Self {
        RestoreOut {
            url: format!("/api/v1/restores/{}", r.id),
            id: r.id,
            backup_id: r.backup_id,
            safety_backup_id: r.safety_backup_id,
            status: r.status,
            error: r.error,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CancelOut {
    pub cancelled: bool,
}

fn id_of(raw: &str, what: &'static str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .map_err(|_| ApiError(WebError::NotFound(what)))
}

/// The subject of a stack's service, checked to be a database berth can back up.
pub(crate) async fn stack_subject(
    state: &AppState,
    project: &str,
    stack: &str,
    service: &str,
) -> Result<BackupSubject, ApiError> {
    let project = project_name(project)?;
    let stack =
        berth_core::StackName::parse(stack).map_err(|_| ApiError(WebError::NotFound("stack")))?;
    let service = crate::pages::stacks::service_name(service)?;
    Ok(state
        .backups
        .stack_subject(&project, &stack, service)
        .await?
        .0)
}

/// The subject of a managed database.
pub(crate) async fn database_subject(
    state: &AppState,
    project: &str,
    db: &str,
) -> Result<BackupSubject, ApiError> {
    let project = project_name(project)?;
    let db = berth_core::DatabaseName::parse(db)
        .map_err(|_| ApiError(WebError::NotFound("database")))?;
    Ok(state.backups.database_subject(&project, &db).await?.0)
}

#[utoipa::path(get, path = "/api/v1/backup-destinations", tag = "backups",
    responses((status = 200, body = Vec<DestinationOut>)))]
pub async fn list_destinations(
    State(state): State<AppState>,
) -> Result<Json<Vec<DestinationOut>>, ApiError> {
    let list = state.backups.destinations().await?;
    Ok(Json(list.iter().map(DestinationOut::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/backup-destinations", tag = "backups", request_body = DestinationIn,
    responses((status = 201, body = DestinationOut), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_destination(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<DestinationIn>,
) -> Result<Response, ApiError> {
    let d = state
        .backups
        .create_destination(&DestinationRequest::from(input))
        .await?;
    Ok((StatusCode::CREATED, Json(DestinationOut::from(&d))).into_response())
}

#[utoipa::path(get, path = "/api/v1/backup-destinations/{id}", tag = "backups", params(("id" = i64, Path)),
    responses((status = 200, body = DestinationOut), (status = 404, body = ErrorBody)))]
pub async fn get_destination(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DestinationOut>, ApiError> {
    let id = id_of(&id, "backup destination")?;
    Ok(Json(DestinationOut::from(
        &state.backups.destination(id).await?,
    )))
}

#[utoipa::path(put, path = "/api/v1/backup-destinations/{id}", tag = "backups", params(("id" = i64, Path)), request_body = DestinationIn,
    responses((status = 200, body = DestinationOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_destination(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<DestinationIn>,
) -> Result<Json<DestinationOut>, ApiError> {
    let id = id_of(&id, "backup destination")?;
    let d = state
        .backups
        .update_destination(id, &DestinationRequest::from(input))
        .await?;
    Ok(Json(DestinationOut::from(&d)))
}

/// Removes a destination that holds no backup (nothing is deleted from it).
#[utoipa::path(delete, path = "/api/v1/backup-destinations/{id}", tag = "backups", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_destination(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = id_of(&id, "backup destination")?;
    state.backups.delete_destination(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Writes a small object, reads it back and deletes it.
#[utoipa::path(post, path = "/api/v1/backup-destinations/{id}/test", tag = "backups", params(("id" = i64, Path)),
    responses((status = 200, body = TestOut), (status = 404, body = ErrorBody)))]
pub async fn test_destination(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TestOut>, ApiError> {
    let id = id_of(&id, "backup destination")?;
    state.backups.destination(id).await?;
    Ok(Json(match state.backups.test_destination(id).await {
        Ok(()) => TestOut {
            ok: true,
            error: None,
        },
        Err(e) => TestOut {
            ok: false,
            error: Some(e.to_string()),
        },
    }))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/stacks/{stack}/services/{service}/backups", tag = "backups",
    params(("project" = String, Path), ("stack" = String, Path), ("service" = String, Path)),
    responses((status = 200, body = Vec<BackupOut>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_service_backups(
    State(state): State<AppState>,
    Path((project, stack, service)): Path<(String, String, String)>,
) -> Result<Json<Vec<BackupOut>>, ApiError> {
    let subject = stack_subject(&state, &project, &stack, &service).await?;
    backups_of(&state, &subject).await
}

async fn backups_of(
    state: &AppState,
    subject: &BackupSubject,
) -> Result<Json<Vec<BackupOut>>, ApiError> {
    let list = state.backups.list(subject, 200).await?;
    Ok(Json(list.iter().map(BackupOut::from).collect()))
}

/// Backs the database service up now: returns the backup's id at once (202).
#[utoipa::path(post, path = "/api/v1/projects/{project}/stacks/{stack}/services/{service}/backups", tag = "backups",
    params(("project" = String, Path), ("stack" = String, Path), ("service" = String, Path)), request_body = BackupNowIn,
    responses((status = 202, body = QueuedOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn back_up_service(
    State(state): State<AppState>,
    Path((project, stack, service)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let subject = stack_subject(&state, &project, &stack, &service).await?;
    back_up(&state, &subject, &body).await
}

async fn back_up(
    state: &AppState,
    subject: &BackupSubject,
    body: &[u8],
) -> Result<Response, ApiError> {
    // The body is optional: none backs up to every destination.
    let input: BackupNowIn = if body.iter().all(u8::is_ascii_whitespace) {
        BackupNowIn::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            let mut errors = crate::forms::FieldErrors::default();
            errors.add("body", e.to_string());
            ApiError(WebError::Invalid(errors))
        })?
    };
    let id = state
        .backups
        .back_up_now(
            subject,
            &BackupNowRequest {
                destinations: input.destinations,
                passphrase: input.passphrase,
            },
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(QueuedOut {
            id,
            url: format!("/api/v1/backups/{id}"),
        }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/stacks/{stack}/services/{service}/backup-schedules", tag = "backups",
    params(("project" = String, Path), ("stack" = String, Path), ("service" = String, Path)),
    responses((status = 200, body = Vec<ScheduleOut>), (status = 404, body = ErrorBody)))]
pub async fn list_service_schedules(
    State(state): State<AppState>,
    Path((project, stack, service)): Path<(String, String, String)>,
) -> Result<Json<Vec<ScheduleOut>>, ApiError> {
    let subject = stack_subject(&state, &project, &stack, &service).await?;
    schedules_of(&state, &subject).await
}

async fn schedules_of(
    state: &AppState,
    subject: &BackupSubject,
) -> Result<Json<Vec<ScheduleOut>>, ApiError> {
    let list = state.backups.schedules(subject).await?;
    Ok(Json(list.iter().map(ScheduleOut::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/stacks/{stack}/services/{service}/backup-schedules", tag = "backups",
    params(("project" = String, Path), ("stack" = String, Path), ("service" = String, Path)), request_body = ScheduleIn,
    responses((status = 201, body = ScheduleOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_service_schedule(
    State(state): State<AppState>,
    Path((project, stack, service)): Path<(String, String, String)>,
    ApiJson(input): ApiJson<ScheduleIn>,
) -> Result<Response, ApiError> {
    let subject = stack_subject(&state, &project, &stack, &service).await?;
    schedule(&state, &subject, input).await
}

async fn schedule(
    state: &AppState,
    subject: &BackupSubject,
    input: ScheduleIn,
) -> Result<Response, ApiError> {
    let row = state
        .backups
        .create_schedule(
            subject,
            &ScheduleRequest {
                cron: input.cron,
                time_zone: input.time_zone.unwrap_or_default(),
                destinations: input.destinations,
                passphrase: input.passphrase,
                enabled: input.enabled,
            },
        )
        .await?;
    let view = state
        .backups
        .schedules(subject)
        .await?
        .into_iter()
        .find(|s| s.row.id == row.id)
        .ok_or(ApiError(WebError::NotFound("backup schedule")))?;
    Ok((StatusCode::CREATED, Json(ScheduleOut::from(&view))).into_response())
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/databases/{db}/backups", tag = "backups",
    params(("project" = String, Path), ("db" = String, Path)),
    responses((status = 200, body = Vec<BackupOut>), (status = 404, body = ErrorBody)))]
pub async fn list_database_backups(
    State(state): State<AppState>,
    Path((project, db)): Path<(String, String)>,
) -> Result<Json<Vec<BackupOut>>, ApiError> {
    let subject = database_subject(&state, &project, &db).await?;
    backups_of(&state, &subject).await
}

/// Backs the managed database up now: returns the backup's id at once (202).
#[utoipa::path(post, path = "/api/v1/projects/{project}/databases/{db}/backups", tag = "backups",
    params(("project" = String, Path), ("db" = String, Path)), request_body = BackupNowIn,
    responses((status = 202, body = QueuedOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn back_up_database(
    State(state): State<AppState>,
    Path((project, db)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let subject = database_subject(&state, &project, &db).await?;
    back_up(&state, &subject, &body).await
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/databases/{db}/backup-schedules", tag = "backups",
    params(("project" = String, Path), ("db" = String, Path)),
    responses((status = 200, body = Vec<ScheduleOut>), (status = 404, body = ErrorBody)))]
pub async fn list_database_schedules(
    State(state): State<AppState>,
    Path((project, db)): Path<(String, String)>,
) -> Result<Json<Vec<ScheduleOut>>, ApiError> {
    let subject = database_subject(&state, &project, &db).await?;
    schedules_of(&state, &subject).await
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/databases/{db}/backup-schedules", tag = "backups",
    params(("project" = String, Path), ("db" = String, Path)), request_body = ScheduleIn,
    responses((status = 201, body = ScheduleOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_database_schedule(
    State(state): State<AppState>,
    Path((project, db)): Path<(String, String)>,
    ApiJson(input): ApiJson<ScheduleIn>,
) -> Result<Response, ApiError> {
    let subject = database_subject(&state, &project, &db).await?;
    schedule(&state, &subject, input).await
}

#[utoipa::path(delete, path = "/api/v1/backup-schedules/{id}", tag = "backups", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_schedule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = id_of(&id, "backup schedule")?;
    state.backups.delete_schedule(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/backups/{id}", tag = "backups", params(("id" = i64, Path)),
    responses((status = 200, body = BackupOut), (status = 404, body = ErrorBody)))]
pub async fn get_backup(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<BackupOut>, ApiError> {
    let id = id_of(&id, "backup")?;
    Ok(Json(BackupOut::from(&state.backups.get(id).await?)))
}

/// Restores the backup into the database it was taken of, after a safety
/// backup; a failed restore puts the safety backup back. Runs as a job (202).
#[utoipa::path(post, path = "/api/v1/backups/{id}/restore", tag = "backups", params(("id" = i64, Path)), request_body = RestoreIn,
    responses((status = 202, body = RestoreOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn restore_backup(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<RestoreIn>,
) -> Result<Response, ApiError> {
    let id = id_of(&id, "backup")?;
    let restore_id = state
        .backups
        .restore(id, input.target.trim(), input.confirm.trim())
        .await?;
    let status = state.backups.restore_status(restore_id).await?;
    Ok((StatusCode::ACCEPTED, Json(RestoreOut::from(status))).into_response())
}

#[utoipa::path(get, path = "/api/v1/restores/{id}", tag = "backups", params(("id" = i64, Path)),
    responses((status = 200, body = RestoreOut), (status = 404, body = ErrorBody)))]
pub async fn get_restore(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RestoreOut>, ApiError> {
    let id = id_of(&id, "restore")?;
    Ok(Json(RestoreOut::from(
        state.backups.restore_status(id).await?,
    )))
}

/// Cancels a queued or running backup: its dump container is removed and nothing is kept.
#[utoipa::path(post, path = "/api/v1/backups/{id}/cancel", tag = "backups", params(("id" = i64, Path)),
    responses((status = 200, body = CancelOut), (status = 404, body = ErrorBody)))]
pub async fn cancel_backup(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CancelOut>, ApiError> {
    let id = id_of(&id, "backup")?;
    Ok(Json(CancelOut {
        cancelled: state.backups.cancel(id).await?,
    }))
}

/// Server-sent events: `progress` (JSON: bytes, rate in bytes/s, status)
/// while the backup runs, then one `end` with its final status.
#[utoipa::path(get, path = "/api/v1/backups/{id}/events", tag = "backups", params(("id" = i64, Path)),
    responses((status = 200, description = "text/event-stream"), (status = 404, body = ErrorBody)))]
pub async fn backup_progress(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = id_of(&id, "backup")?;
    state.backups.get(id).await?;
    Ok(Sse::new(progress_events(state, id)).keep_alive(KeepAlive::default()))
}

/// The progress channel while it exists; the stored row otherwise.
pub(crate) fn progress_events(
    state: AppState,
    id: i64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let rx = state.backups.progress(id);
    futures_util::stream::unfold(
        (state, rx, false),
        move |(state, mut rx, ended)| async move {
            if ended {
                return None;
            }
            if let Some(r) = rx.as_mut() {
                let current = r.borrow_and_update().clone();
                if !current.done {
                    let event = Event::default()
                        .event("progress")
                        .json_data(&current)
                        .unwrap_or_default();
                    if r.changed().await.is_err() {
                        rx = None;
                    }
                    return Some((Ok(event), (state, rx, false)));
                }
            }
            let status = match state.backups.get(id).await {
                Ok(b) if matches!(b.status.as_str(), "queued" | "running") => {
                    // Not in this process's channels: poll the row.
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    let event = Event::default().event("progress").json_data(
                        serde_json::json!({"backup_id": id, "status": b.status, "bytes": 0, "rate": 0, "done": false}),
                    );
                    return Some((Ok(event.unwrap_or_default()), (state, rx, false)));
                }
                Ok(b) => b.status,
                Err(_) => "unknown".to_owned(),
            };
            let end = Event::default()
                .event("end")
                .json_data(serde_json::json!({"backup_id": id, "status": status}))
                .unwrap_or_default();
            Some((Ok(end), (state, rx, true)))
        },
    )
}
