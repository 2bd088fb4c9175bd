//! `/backups`: destinations (with Test and retention) and the history of
//! every backup; and a database service's backups section (schedules with
//! their next runs, "Back up now", history per destination, restore with
//! the name typed), on the page of a stack's database service and of a
//! managed database alike: a template include over [`BackupsSection`],
//! keyed by subject.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use berth_deploy::{
    BackupNowRequest, BackupRow, BackupSubject, DestinationRequest, DestinationRow,
    DestinationTarget, ScheduleRequest, human_bytes,
};
use futures_util::Stream;
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::auth::csrf::CsrfForm;
use crate::forms::FieldErrors;
use crate::routes::{Access, Table};
use crate::views::{Chrome, render, when};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Session, "/backups", list);
    t.post(Access::Session, "/backups/destinations", create_destination);
    t.post(
        Access::Session,
        "/backups/destinations/{id}/test",
        test_destination,
    );
    t.post(Access::Session, "/backups/{id}/restore", restore);
    t.post(Access::Session, "/backups/{id}/cancel", cancel);
    t.get(Access::Session, "/backups/{id}/events", events);
    t.post(
        Access::Session,
        "/backups/schedules/{id}/delete",
        delete_schedule,
    );
    t.get(
        Access::Session,
        "/projects/{project}/stacks/{stack}/services/{service}/backups",
        service_page,
    );
    t.post(
        Access::Session,
        "/projects/{project}/stacks/{stack}/services/{service}/backups",
        back_up_now,
    );
    t.post(
        Access::Session,
        "/projects/{project}/stacks/{stack}/services/{service}/backup-schedules",
        create_schedule,
    );
    t.get(
        Access::Session,
        "/projects/{project}/databases/{db}/backups",
        database_page,
    );
    t.post(
        Access::Session,
        "/projects/{project}/databases/{db}/backups",
        back_up_database_now,
    );
    t.post(
        Access::Session,
        "/projects/{project}/databases/{db}/backup-schedules",
        create_database_schedule,
    );
}

/// One destination as the Backups page lists it.
pub struct DestinationView {
    pub id: i64,
    pub name: String,
    pub kind: &'static str,
    pub place: String,
    pub retention: String,
}

impl From<&DestinationRow> for DestinationView {
    fn from(d: &DestinationRow) -> Self {
        let (kind, place) = match &d.target {
            DestinationTarget::Local { path } => (
                "local",
                path.clone()
                    .unwrap_or_else(|| "<data dir>/backups".to_owned()),
            ),
            DestinationTarget::S3 {
                endpoint,
                bucket,
                prefix,
                ..
            } => ("s3", format!("{endpoint} · {bucket}/{prefix}")),
        };
        let r = d.retention;
        let mut parts = Vec::new();
        if let Some(n) = r.keep_last {
            parts.push(format!("keep last {n}"));
        }
        if let Some(days) = r.max_age_days {
            parts.push(format!("at most {days} days old"));
        }
        if let Some(bytes) = r.max_total_bytes {
            parts.push(format!(
                "at most {} in all",
                human_bytes(u64::try_from(bytes).unwrap_or(0))
            ));
        }
        DestinationView {
            id: d.id,
            name: d.name.clone(),
            kind,
            place,
            retention: if parts.is_empty() {
                "keep everything".to_owned()
            } else {
                parts.join(", ")
            },
        }
    }
}

/// One destination's copy, in a history row.
pub struct CopyView {
    pub destination: String,
    pub status: &'static str,
    pub size: String,
    pub duration: String,
    pub sha256: String,
    pub error: String,
}

/// One backup in a history.
pub struct BackupView {
    pub id: i64,
    pub subject: String,
    pub trigger: String,
    pub status: String,
    pub when: String,
    pub dump_size: String,
    pub sha256: String,
    pub error: String,
    pub copies: Vec<CopyView>,
    pub restorable: bool,
    pub active: bool,
}

impl BackupView {
    fn new(b: &BackupRow, subject: String, now: i64) -> Self {
        BackupView {
            id: b.id,
            subject,
            trigger: b.trigger.clone(),
            status: b.status.clone(),
            when: when(Some(b.created_at), now),
            dump_size: b
                .dump_bytes
                .map(|n| human_bytes(u64::try_from(n).unwrap_or(0)))
                .unwrap_or_default(),
            sha256: b.sha256.clone().unwrap_or_default(),
            error: b.error.clone().unwrap_or_default(),
            copies: b
                .copies
                .iter()
                .map(|c| CopyView {
                    destination: c.destination_name.clone(),
                    status: if c.error.is_some() {
                        "failed"
                    } else if c.deleted_at.is_some() {
                        "deleted"
                    } else {
                        "ok"
                    },
                    size: c
                        .size
                        .map(|n| human_bytes(u64::try_from(n).unwrap_or(0)))
                        .unwrap_or_default(),
                    duration: c
                        .duration_ms
                        .map(|ms| {
                            format!(
                                "{:.1} s",
                                f64::from(u32::try_from(ms).unwrap_or(u32::MAX)) / 1000.0
                            )
                        })
                        .unwrap_or_default(),
                    sha256: c.sha256.clone().unwrap_or_default(),
                    error: c.error.clone().unwrap_or_default(),
                })
                .collect(),
            restorable: matches!(b.status.as_str(), "succeeded" | "partial"),
            active: matches!(b.status.as_str(), "queued" | "running"),
        }
    }
}

/// A schedule in the section.
pub struct ScheduleLine {
    pub id: i64,
    pub cron: String,
    pub time_zone: String,
    pub enabled: bool,
    pub encrypted: bool,
    pub next_runs: Vec<String>,
}

/// The backups of one subject, for the include `partials/backups_section.html`.
pub struct BackupsSection {
    /// What the user types to confirm a restore.
    pub name: String,
    /// Where "Back up now" posts; schedules post to `schedules_url`.
    pub backup_url: String,
    pub schedules_url: String,
    pub destinations: Vec<DestinationView>,
    pub schedules: Vec<ScheduleLine>,
    pub history: Vec<BackupView>,
    pub form: ScheduleForm,
    pub errors: FieldErrors,
    /// A backup is queued or running: the page follows it.
    pub any_active: bool,
}

impl BackupsSection {
    async fn load(
        state: &AppState,
        subject: &BackupSubject,
        name: String,
        base: String,
        form: ScheduleForm,
        errors: FieldErrors,
    ) -> Result<Self, WebError> {
        let now = berth_core::unix_now();
        let destinations = state.backups.destinations().await?;
        let schedules = state.backups.schedules(subject).await?;
        let history = state.backups.list(subject, 50).await?;
        let any_active = history
            .iter()
            .any(|b| matches!(b.status.as_str(), "queued" | "running"));
        Ok(BackupsSection {
            any_active,
            name: name.clone(),
            backup_url: base.clone(),
            schedules_url: base.replace("/backups", "/backup-schedules"),
            destinations: destinations.iter().map(DestinationView::from).collect(),
            schedules: schedules
                .into_iter()
                .map(|s| ScheduleLine {
                    id: s.row.id,
                    cron: s.row.cron,
                    time_zone: s.row.time_zone,
                    enabled: s.row.enabled,
                    encrypted: s.row.encrypted,
                    next_runs: s.next_runs,
                })
                .collect(),
            history: history
                .iter()
                .map(|b| BackupView::new(b, name.clone(), now))
                .collect(),
            form,
            errors,
        })
    }
}

#[derive(Deserialize, Default)]
pub struct ScheduleForm {
    #[serde(default)]
    pub cron: String,
    #[serde(default)]
    pub time_zone: String,
    #[serde(default)]
    pub passphrase: String,
}

#[derive(Deserialize, Default)]
pub struct DestinationForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub path_style: Option<String>,
    #[serde(default)]
    pub access_key_id: String,
    #[serde(default)]
    pub secret_access_key: String,
    #[serde(default)]
    pub keep_last: String,
    #[serde(default)]
    pub max_age_days: String,
}

#[derive(askama::Template)]
#[template(path = "backups.html")]
pub struct BackupsPage {
    pub chrome: Chrome,
    pub destinations: Vec<DestinationView>,
    pub history: Vec<BackupView>,
    pub form: DestinationForm,
    pub errors: FieldErrors,
    pub flash: String,
    pub flash_error: bool,
}

/// The backups page of one subject: a stack's database service or a managed database.
#[derive(askama::Template)]
#[template(path = "subject_backups.html")]
pub struct SubjectBackupsPage {
    pub chrome: Chrome,
    pub project: String,
    /// The stack a service belongs to, with its page, for the crumbs.
    pub parent: Option<(String, String)>,
    /// The service's or the database's name, with its page.
    pub name: String,
    pub name_url: Option<String>,
    pub section: BackupsSection,
    pub flash: String,
    pub flash_error: bool,
}

/// Whose backups a page shows, as its URL names it.
enum Owner {
    Service {
        project: String,
        stack: String,
        service: String,
    },
    Database {
        project: String,
        db: String,
    },
}

impl Owner {
    async fn subject(&self, state: &AppState) -> Result<BackupSubject, WebError> {
        match self {
            Self::Service {
                project,
                stack,
                service,
            } => crate::api::backups::stack_subject(state, project, stack, service).await,
            Self::Database { project, db } => {
                crate::api::backups::database_subject(state, project, db).await
            }
        }
        .map_err(|e| e.0)
    }

    /// The page's own URL; "Back up now" posts here too.
    fn base(&self) -> String {
        match self {
            Self::Service {
                project,
                stack,
                service,
            } => format!("/projects/{project}/stacks/{stack}/services/{service}/backups"),
            Self::Database { project, db } => format!("/projects/{project}/databases/{db}/backups"),
        }
    }

    async fn page(
        &self,
        state: &AppState,
        user: &CurrentUser,
        form: ScheduleForm,
        errors: FieldErrors,
        flash: (String, bool),
    ) -> Result<SubjectBackupsPage, WebError> {
        let subject = self.subject(state).await?;
        let (project, parent, name, name_url) = match self {
            Self::Service {
                project,
                stack,
                service,
            } => (
                project,
                Some((stack.clone(), format!("/projects/{project}/stacks/{stack}"))),
                service,
                None,
            ),
            Self::Database { project, db } => (
                project,
                None,
                db,
                Some(format!("/projects/{project}/databases/{db}")),
            ),
        };
        let section =
            BackupsSection::load(state, &subject, name.clone(), self.base(), form, errors).await?;
        Ok(SubjectBackupsPage {
            chrome: Chrome::from(user),
            project: project.clone(),
            parent,
            name: name.clone(),
            name_url,
            section,
            flash: flash.0,
            flash_error: flash.1,
        })
    }

    /// The page as a GET shows it: an empty schedule form, no message.
    async fn show(&self, state: &AppState, user: &CurrentUser) -> Result<Response, WebError> {
        let page = self
            .page(
                state,
                user,
                ScheduleForm::default(),
                FieldErrors::default(),
                (String::new(), false),
            )
            .await?;
        Ok(render(&page).into_response())
    }

    async fn back_up_now(
        &self,
        state: &AppState,
        user: &CurrentUser,
        form: BackUpForm,
    ) -> Result<Response, WebError> {
        let subject = self.subject(state).await?;
        let flash = match state
            .backups
            .back_up_now(
                &subject,
                &BackupNowRequest {
                    destinations: Vec::new(),
                    passphrase: Some(form.passphrase).filter(|p| !p.is_empty()),
                },
            )
            .await
        {
            Ok(id) => (format!("Backup {id} started."), false),
            Err(e) => (WebError::from(e).public_message(), true),
        };
        let page = self
            .page(
                state,
                user,
                ScheduleForm::default(),
                FieldErrors::default(),
                flash,
            )
            .await?;
        Ok(render(&page).into_response())
    }

    async fn create_schedule(
        &self,
        state: &AppState,
        user: &CurrentUser,
        form: ScheduleForm,
    ) -> Result<Response, WebError> {
        let subject = self.subject(state).await?;
        let made = state
            .backups
            .create_schedule(
                &subject,
                &ScheduleRequest {
                    cron: form.cron.clone(),
                    time_zone: form.time_zone.clone(),
                    destinations: Vec::new(),
                    passphrase: Some(form.passphrase.clone()).filter(|p| !p.is_empty()),
                    enabled: true,
                },
            )
            .await
            .map_err(WebError::from);
        match made {
            Ok(_) => Ok(Redirect::to(&self.base()).into_response()),
            Err(err @ WebError::Invalid(_)) => {
                let errors = super::projects::field_errors(err, "cron");
                // Everything but the passphrase comes back filled in.
                let form = ScheduleForm {
                    passphrase: String::new(),
                    ..form
                };
                let page = self
                    .page(state, user, form, errors, (String::new(), false))
                    .await?;
                Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
            }
            Err(err) => Err(err),
        }
    }
}

async fn backups_page(
    state: &AppState,
    user: &CurrentUser,
    form: DestinationForm,
    errors: FieldErrors,
    flash: (String, bool),
) -> Result<BackupsPage, WebError> {
    let now = berth_core::unix_now();
    let destinations = state.backups.destinations().await?;
    let mut history = Vec::new();
    for b in state.backups.list_all(100).await? {
        let subject = state.backups.subject_label(&b.subject).await;
        history.push(BackupView::new(&b, subject, now));
    }
    Ok(BackupsPage {
        chrome: Chrome::from(user),
        destinations: destinations.iter().map(DestinationView::from).collect(),
        history,
        form,
        errors,
        flash: flash.0,
        flash_error: flash.1,
    })
}

pub async fn list(State(state): State<AppState>, user: CurrentUser) -> Result<Response, WebError> {
    let page = backups_page(
        &state,
        &user,
        DestinationForm::default(),
        FieldErrors::default(),
        (String::new(), false),
    )
    .await?;
    Ok(render(&page).into_response())
}

fn number(errors: &mut FieldErrors, field: &'static str, raw: &str) -> Option<i64> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    match raw.parse::<i64>() {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            errors.add(field, "a whole number from 1, or empty for no limit");
            None
        }
    }
}

pub async fn create_destination(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<DestinationForm>,
) -> Result<Response, WebError> {
    let mut errors = FieldErrors::default();
    let keep_last = number(&mut errors, "keep_last", &form.keep_last);
    let max_age_days = number(&mut errors, "max_age_days", &form.max_age_days);
    let made = if errors.is_empty() {
        state
            .backups
            .create_destination(&DestinationRequest {
                name: form.name.clone(),
                kind: form.kind.clone(),
                path: Some(form.path.clone()),
                endpoint: form.endpoint.clone(),
                region: form.region.clone(),
                bucket: form.bucket.clone(),
                prefix: form.prefix.clone(),
                path_style: form.path_style.is_some(),
                access_key_id: form.access_key_id.clone(),
                secret_access_key: Some(form.secret_access_key.clone()),
                keep_last,
                max_age_days,
                max_total_bytes: None,
            })
            .await
            .map_err(WebError::from)
    } else {
        Err(WebError::Invalid(errors))
    };
    match made {
        Ok(_) => Ok(Redirect::to("/backups").into_response()),
        Err(err @ (WebError::Invalid(_) | WebError::Conflict(_))) => {
            // The form comes back as typed, except the secret.
            let form = DestinationForm {
                secret_access_key: String::new(),
                ..form
            };
            let errors = super::projects::field_errors(err, "name");
            let page = backups_page(&state, &user, form, errors, (String::new(), false)).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
        Err(err) => Err(err),
    }
}

fn id_of(raw: &str, what: &'static str) -> Result<i64, WebError> {
    raw.parse().map_err(|_| WebError::NotFound(what))
}

pub async fn test_destination(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let id = id_of(&id, "backup destination")?;
    let d = state.backups.destination(id).await?;
    let flash = match state.backups.test_destination(id).await {
        Ok(()) => (
            format!("{}: wrote, read back and deleted a test object", d.name),
            false,
        ),
        Err(e) => (format!("{}: the test failed: {e}", d.name), true),
    };
    let page = backups_page(
        &state,
        &user,
        DestinationForm::default(),
        FieldErrors::default(),
        flash,
    )
    .await?;
    Ok(render(&page).into_response())
}

/// The page to go back to after an action on a backup: its subject's.
async fn back_to(state: &AppState, id: i64) -> String {
    let Ok(b) = state.backups.get(id).await else {
        return "/backups".to_owned();
    };
    let label = state.backups.subject_label(&b.subject).await;
    match label.split('/').collect::<Vec<_>>()[..] {
        [project, stack, service] if b.subject.kind == "stack_service" => {
            format!("/projects/{project}/stacks/{stack}/services/{service}/backups")
        }
        _ => "/backups".to_owned(),
    }
}

#[derive(Deserialize)]
pub struct RestoreForm {
    #[serde(default)]
    pub confirm: String,
}

pub async fn restore(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<RestoreForm>,
) -> Result<Response, WebError> {
    let id = id_of(&id, "backup")?;
    state
        .backups
        .restore(id, "same", form.confirm.trim())
        .await?;
    Ok(Redirect::to(&back_to(&state, id).await).into_response())
}

pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let id = id_of(&id, "backup")?;
    state.backups.cancel(id).await?;
    Ok(Redirect::to(&back_to(&state, id).await).into_response())
}

/// Live progress for the page (the same events as the API's).
pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, WebError> {
    let id = id_of(&id, "backup")?;
    state.backups.get(id).await?;
    Ok(Sse::new(crate::api::backups::progress_events(state, id)).keep_alive(KeepAlive::default()))
}

pub async fn delete_schedule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let id = id_of(&id, "backup schedule")?;
    state.backups.delete_schedule(id).await?;
    let back = q
        .get("back")
        .filter(|b| b.starts_with("/projects/") && !b.contains("//"))
        .cloned()
        .unwrap_or_else(|| "/backups".to_owned());
    Ok(Redirect::to(&back).into_response())
}

pub async fn service_page(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, stack, service)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    Owner::Service {
        project,
        stack,
        service,
    }
    .show(&state, &user)
    .await
}

#[derive(Deserialize, Default)]
pub struct BackUpForm {
    #[serde(default)]
    pub passphrase: String,
}

pub async fn back_up_now(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, stack, service)): Path<(String, String, String)>,
    CsrfForm(form): CsrfForm<BackUpForm>,
) -> Result<Response, WebError> {
    Owner::Service {
        project,
        stack,
        service,
    }
    .back_up_now(&state, &user, form)
    .await
}

pub async fn create_schedule(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, stack, service)): Path<(String, String, String)>,
    CsrfForm(form): CsrfForm<ScheduleForm>,
) -> Result<Response, WebError> {
    Owner::Service {
        project,
        stack,
        service,
    }
    .create_schedule(&state, &user, form)
    .await
}

pub async fn database_page(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, db)): Path<(String, String)>,
) -> Result<Response, WebError> {
    Owner::Database { project, db }.show(&state, &user).await
}

pub async fn back_up_database_now(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, db)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<BackUpForm>,
) -> Result<Response, WebError> {
    Owner::Database { project, db }
        .back_up_now(&state, &user, form)
        .await
}

pub async fn create_database_schedule(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, db)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<ScheduleForm>,
) -> Result<Response, WebError> {
    Owner::Database { project, db }
        .create_schedule(&state, &user, form)
        .await
}
