//! The environment editor: an app's variables, a project's shared variables
//! (`${project.NAME}`) and the global ones (`${global.NAME}`), with the same
//! pages for all three.
//!
//! The flow never loses typed text: edit (row or `.env` view) → review (the
//! diff, secrets masked) → save (or save and redeploy). Every step posts the
//! draft as typed; errors and conflicts render it again with the message.

pub mod draft;

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query, RawPathParams, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use berth_core::{App, AppName, EnvChange, EnvSet, EnvVar, HistoryEntry, ProjectName, Saved};
use berth_deploy::{DeployError, SharedScope, SharedUse};

use self::draft::{Draft, DraftErrors, MASK, Mode, rows_for, to_vars};
use crate::auth::CurrentUser;
use crate::auth::csrf::CsrfForm;
use crate::routes::{Access, Table};
use crate::views::{AppRow, Chrome, render};
use crate::{AppState, WebError};

/// The same pages for an app's, a project's shared and the global variables;
/// the handlers read the target from the path.
pub(crate) fn routes(t: &mut Table) {
    use Access::Session;
    for base in [
        "/projects/{project}/apps/{app}/env",
        "/projects/{project}/env",
        "/env",
    ] {
        t.get(Session, base, show);
        t.post(Session, &format!("{base}/edit"), edit);
        t.post(Session, &format!("{base}/review"), review);
        t.post(Session, &format!("{base}/save"), save);
        t.get(Session, &format!("{base}/history"), history);
        t.post(Session, &format!("{base}/revert"), revert);
        t.get(Session, &format!("{base}/export"), export);
    }
    t.post(
        Session,
        "/projects/{project}/apps/{app}/env/redeploy",
        redeploy,
    );
}

/// Whose variables a page edits, from the route's path.
#[derive(Debug, Clone)]
pub enum Target {
    App { project: ProjectName, app: AppName },
    Project(ProjectName),
    Global,
}

impl Target {
    pub fn base(&self) -> String {
        match self {
            Target::App { project, app } => format!("/projects/{project}/apps/{app}/env"),
            Target::Project(project) => format!("/projects/{project}/env"),
            Target::Global => "/env".to_owned(),
        }
    }

    fn scope(&self) -> Option<SharedScope> {
        match self {
            Target::App { .. } => None,
            Target::Project(p) => Some(SharedScope::Project(p.clone())),
            Target::Global => Some(SharedScope::Global),
        }
    }

    fn title(&self) -> String {
        match self {
            Target::App { app, .. } => format!("Environment of {app}"),
            Target::Project(p) => format!("Shared variables of {p}"),
            Target::Global => "Global shared variables".to_owned(),
        }
    }

    async fn load(&self, state: &AppState) -> Result<(Option<App>, EnvSet), WebError> {
        match self {
            Target::App { project, app } => {
                let (app, set) = state.env.app_env(project, app).await?;
                Ok((Some(app), set))
            }
            _ => {
                let scope = self.scope().expect("shared targets have a scope");
                Ok((None, state.env.shared_env(&scope).await?))
            }
        }
    }

    async fn save(
        &self,
        state: &AppState,
        expected: i64,
        vars: &[EnvVar],
        actor: &str,
    ) -> Result<Saved, DeployError> {
        match self {
            Target::App { project, app } => {
                state
                    .env
                    .save_app_env(project, app, Some(expected), vars, actor)
                    .await
            }
            _ => {
                let scope = self.scope().expect("shared targets have a scope");
                state
                    .env
                    .save_shared_env(&scope, Some(expected), vars, actor)
                    .await
            }
        }
    }

    async fn history(
        &self,
        state: &AppState,
        app: Option<&App>,
    ) -> Result<Vec<HistoryEntry>, WebError> {
        Ok(match (self.scope(), app) {
            (Some(scope), _) => state.env.shared_env_history(&scope).await?,
            (None, Some(app)) => state.env.app_env_history(app).await?,
            (None, None) => Vec::new(),
        })
    }
}

/// The route's `{project}` and `{app}`, parsed; a route without them is the global set.
pub struct TargetPath(pub Target);

impl<S: Send + Sync> FromRequestParts<S> for TargetPath {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params: HashMap<String, String> =
            match RawPathParams::from_request_parts(parts, state).await {
                Ok(raw) => raw
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                Err(_) => HashMap::new(),
            };
        let project = params
            .get("project")
            .map(|p| super::parse_path(ProjectName::parse, p, "project"))
            .transpose()?;
        let app = params
            .get("app")
            .map(|a| super::parse_path(AppName::parse, a, "app"))
            .transpose()?;
        Ok(TargetPath(match (project, app) {
            (Some(project), Some(app)) => Target::App { project, app },
            (Some(project), None) => Target::Project(project),
            _ => Target::Global,
        }))
    }
}

/// What the page knows besides the draft.
struct Context {
    chrome: Chrome,
    target: Target,
    app: Option<App>,
    set: EnvSet,
    uses: Vec<SharedUse>,
}

async fn context(
    state: &AppState,
    user: &CurrentUser,
    target: Target,
) -> Result<Context, WebError> {
    let (app, set) = target.load(state).await?;
    let uses = match target.scope() {
        Some(scope) => state.env.shared_env_uses(&scope, &set.vars).await?,
        None => Vec::new(),
    };
    Ok(Context {
        chrome: Chrome::from(user),
        target,
        app,
        set,
        uses,
    })
}

/// One variable of the "used by" list of a shared set.
pub struct UseRow {
    pub key: String,
    pub apps: Vec<String>,
}

#[derive(askama::Template)]
#[template(path = "env.html")]
pub struct EnvPage {
    pub chrome: Chrome,
    pub title: String,
    pub base: String,
    pub crumbs: Vec<(String, String)>,
    pub app: Option<AppRow>,
    pub draft: Draft,
    pub errors: DraftErrors,
    pub flash: String,
    pub alert: String,
    /// Why the running container does not have the saved values, if it does not.
    pub stale: String,
    pub uses: Vec<UseRow>,
    pub saved_version: i64,
    pub mask: &'static str,
    /// The draft came from a post, so it may hold changes not saved yet.
    pub unsaved: bool,
}

impl EnvPage {
    fn line_count(&self) -> usize {
        self.draft.text.lines().count().clamp(6, 40) + 2
    }
}

fn crumbs(target: &Target) -> Vec<(String, String)> {
    let mut out = vec![("Dashboard".to_owned(), "/".to_owned())];
    match target {
        Target::App { project, app } => {
            out.push((project.to_string(), format!("/projects/{project}")));
            out.push((app.to_string(), format!("/projects/{project}/apps/{app}")));
        }
        Target::Project(project) => {
            out.push((project.to_string(), format!("/projects/{project}")));
        }
        Target::Global => {}
    }
    out
}

/// Why the app's running container has other values than the saved ones.
fn stale_message(app: Option<&App>, set: &EnvSet) -> String {
    let Some(app) = app else {
        return String::new();
    };
    if app.container_id.is_none() || set.deployed_version == Some(set.version) {
        return String::new();
    }
    if set.version == 0 && set.deployed_version.is_none() {
        return String::new();
    }
    match set.deployed_version.filter(|v| *v > 0) {
        Some(v) => format!(
            "The running app still has the values of version {v}; version {} is saved. Redeploy to use it.",
            set.version
        ),
        None => format!(
            "The running app was started before version {} was saved and does not have these values yet. Redeploy to use them.",
            set.version
        ),
    }
}

fn editor(
    ctx: Context,
    draft: Draft,
    errors: DraftErrors,
    flash: String,
    alert: String,
) -> EnvPage {
    EnvPage {
        title: ctx.target.title(),
        base: ctx.target.base(),
        crumbs: crumbs(&ctx.target),
        app: ctx.app.as_ref().map(AppRow::from),
        stale: stale_message(ctx.app.as_ref(), &ctx.set),
        uses: ctx
            .uses
            .into_iter()
            .map(|u| UseRow {
                key: u.key,
                apps: u.apps,
            })
            .collect(),
        saved_version: ctx.set.version,
        chrome: ctx.chrome,
        draft,
        unsaved: !errors.is_empty(),
        errors,
        flash,
        alert,
        mask: MASK,
    }
}

#[derive(serde::Deserialize, Default)]
pub struct ShowQuery {
    #[serde(default)]
    view: String,
    /// The version just saved, for the confirmation banner.
    saved: Option<i64>,
    #[serde(default)]
    reverted: Option<i64>,
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    TargetPath(target): TargetPath,
    Query(query): Query<ShowQuery>,
) -> Result<Response, WebError> {
    let ctx = context(&state, &user, target).await?;
    let mode = if query.view == "bulk" {
        Mode::Bulk
    } else {
        Mode::Rows
    };
    let draft = Draft::from_saved(ctx.set.version, &ctx.set.vars, mode);
    let flash = match (query.saved, query.reverted) {
        (Some(v), Some(to)) => format!("Reverted to version {to}: saved as version {v}."),
        (Some(v), None) => format!("Saved as version {v}."),
        _ => String::new(),
    };
    Ok(render(&editor(
        ctx,
        draft,
        DraftErrors::default(),
        flash,
        String::new(),
    ))
    .into_response())
}

/// The view switch, "reveal", "more rows" and "back to editing": the editor again, nothing saved.
pub async fn edit(
    State(state): State<AppState>,
    user: CurrentUser,
    TargetPath(target): TargetPath,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let mut draft = Draft::from_pairs(pairs);
    let ctx = context(&state, &user, target).await?;
    let saved = ctx.set.vars.clone();
    let mut errors = DraftErrors::default();
    if let Some(to) = draft.switch.filter(|m| *m != draft.mode) {
        match to_vars(&draft, &saved) {
            Ok(vars) => {
                draft.rows = rows_for(&vars, &saved, None);
                draft.text = text_for(&vars, &saved, false);
                draft.mode = to;
            }
            Err(e) => errors = e,
        }
    }
    if let Some(key) = draft.reveal.clone() {
        reveal(&mut draft, &saved, &key, &mut errors);
    }
    if draft.more_rows {
        draft.pad_rows(3);
    } else {
        draft.pad_rows(0);
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut page = editor(ctx, draft, errors, String::new(), String::new());
    // Warn on leaving only when the draft differs from what is saved.
    page.unsaved = to_vars(&page.draft, &saved).map_or(true, |vars| vars != saved);
    Ok((status, render(&page)).into_response())
}

/// Shows a saved secret on purpose: one row's, or (`*`) all of the bulk text's.
fn reveal(draft: &mut Draft, saved: &[EnvVar], key: &str, errors: &mut DraftErrors) {
    match draft.mode {
        Mode::Rows => {
            for row in &mut draft.rows {
                if row.orig == key
                    && row.masked()
                    && let Some(var) = saved.iter().find(|v| v.key.as_str() == key)
                {
                    row.value = var.value.clone();
                }
            }
        }
        Mode::Bulk => match to_vars(draft, saved) {
            Ok(vars) => draft.text = text_for(&vars, saved, true),
            Err(e) => *errors = e,
        },
    }
}

/// The `.env` text of `vars`, with saved secrets that did not change masked unless `reveal`.
fn text_for(vars: &[EnvVar], saved: &[EnvVar], reveal: bool) -> String {
    let shown: Vec<EnvVar> = vars
        .iter()
        .map(|v| {
            let unchanged_secret = saved
                .iter()
                .any(|s| s.key == v.key && s.flags.secret && s.value == v.value);
            let mut v = v.clone();
            if unchanged_secret && !reveal {
                v.value = MASK.to_owned();
                v.flags.literal = false;
            }
            v
        })
        .collect();
    berth_core::dotenv::render(&shown)
}

/// One line of the diff, values masked where either side is a secret.
pub struct ChangeRow {
    pub kind: &'static str,
    pub key: String,
    pub old: String,
    pub new: String,
    pub notes: Vec<String>,
}

fn shown(var: &EnvVar) -> String {
    if var.flags.secret {
        MASK.to_owned()
    } else {
        var.value.clone()
    }
}

fn change_rows(changes: &[EnvChange]) -> Vec<ChangeRow> {
    changes
        .iter()
        .map(|c| match c {
            EnvChange::Added(v) => ChangeRow {
                kind: "added",
                key: v.key.to_string(),
                old: String::new(),
                new: shown(v),
                notes: flag_words(v),
            },
            EnvChange::Removed(v) => ChangeRow {
                kind: "removed",
                key: v.key.to_string(),
                old: shown(v),
                new: String::new(),
                notes: Vec::new(),
            },
            EnvChange::Changed { old, new } => {
                let secret = old.flags.secret || new.flags.secret;
                let mut notes = Vec::new();
                if old.value != new.value {
                    notes.push("value changed".to_owned());
                }
                for (name, before, after) in [
                    ("secret", old.flags.secret, new.flags.secret),
                    ("build-time", old.flags.build, new.flags.build),
                    ("runtime", old.flags.runtime, new.flags.runtime),
                    ("literal", old.flags.literal, new.flags.literal),
                ] {
                    if before != after {
                        notes.push(format!("{name} {}", if after { "on" } else { "off" }));
                    }
                }
                ChangeRow {
                    kind: "changed",
                    key: new.key.to_string(),
                    old: if secret {
                        MASK.to_owned()
                    } else {
                        old.value.clone()
                    },
                    new: if secret {
                        MASK.to_owned()
                    } else {
                        new.value.clone()
                    },
                    notes,
                }
            }
        })
        .collect()
}

fn flag_words(v: &EnvVar) -> Vec<String> {
    let mut words = Vec::new();
    if v.flags.secret {
        words.push("secret".to_owned());
    }
    if v.flags.build {
        words.push("build-time".to_owned());
    }
    if !v.flags.runtime {
        words.push("not at runtime".to_owned());
    }
    if v.flags.literal {
        words.push("literal".to_owned());
    }
    words
}

#[derive(askama::Template)]
#[template(path = "env_review.html")]
pub struct ReviewPage {
    pub chrome: Chrome,
    pub title: String,
    pub base: String,
    pub crumbs: Vec<(String, String)>,
    pub app: Option<AppRow>,
    pub draft: Draft,
    pub changes: Vec<ChangeRow>,
    /// Set when someone else saved meanwhile.
    pub conflict: String,
    pub is_app: bool,
    pub app_running: bool,
}

fn review_page(ctx: &Context, draft: Draft, changes: &[EnvChange], conflict: String) -> ReviewPage {
    ReviewPage {
        chrome: Chrome {
            username: ctx.chrome.username.clone(),
            csrf: ctx.chrome.csrf.clone(),
        },
        title: ctx.target.title(),
        base: ctx.target.base(),
        crumbs: crumbs(&ctx.target),
        app: ctx.app.as_ref().map(AppRow::from),
        draft,
        changes: change_rows(changes),
        conflict,
        is_app: ctx.app.is_some(),
        app_running: ctx.app.as_ref().is_some_and(|a| a.container_id.is_some()),
    }
}

/// Parses the draft and checks its references; on a problem, the editor again (422).
async fn checked(
    state: &AppState,
    ctx: &Context,
    draft: &Draft,
) -> Result<Vec<EnvVar>, DraftErrors> {
    let vars = to_vars(draft, &ctx.set.vars)?;
    let check = match &ctx.target {
        Target::App { project, .. } => state.env.check_app_env(project, &vars).await,
        _ => Ok(()),
    };
    match check {
        Ok(()) => Ok(vars),
        Err(DeployError::Env(errors)) => Err(DraftErrors {
            form: errors.0.iter().map(ToString::to_string).collect(),
            ..DraftErrors::default()
        }),
        Err(other) => Err(DraftErrors {
            form: vec![WebError::from(other).public_message()],
            ..DraftErrors::default()
        }),
    }
}

fn invalid(ctx: Context, mut draft: Draft, errors: DraftErrors) -> Response {
    draft.pad_rows(0);
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        render(&editor(ctx, draft, errors, String::new(), String::new())),
    )
        .into_response()
}

/// The confirm step: the diff between the saved set and the draft.
pub async fn review(
    State(state): State<AppState>,
    user: CurrentUser,
    TargetPath(target): TargetPath,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let draft = Draft::from_pairs(pairs);
    let ctx = context(&state, &user, target).await?;
    let vars = match checked(&state, &ctx, &draft).await {
        Ok(vars) => vars,
        Err(errors) => return Ok(invalid(ctx, draft, errors)),
    };
    let changes = berth_core::env::diff(&ctx.set.vars, &vars);
    let conflict = if draft.version != ctx.set.version {
        conflict_message(draft.version, ctx.set.version)
    } else {
        String::new()
    };
    let mut draft = draft;
    draft.version = ctx.set.version;
    Ok(render(&review_page(&ctx, draft, &changes, conflict)).into_response())
}

fn conflict_message(yours: i64, current: i64) -> String {
    format!(
        "Someone saved version {current} while you were editing version {yours}. The changes below are against version {current}: saving now replaces it with what you typed."
    )
}

pub async fn save(
    State(state): State<AppState>,
    user: CurrentUser,
    TargetPath(target): TargetPath,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let draft = Draft::from_pairs(pairs);
    let ctx = context(&state, &user, target.clone()).await?;
    let vars = match checked(&state, &ctx, &draft).await {
        Ok(vars) => vars,
        Err(errors) => return Ok(invalid(ctx, draft, errors)),
    };
    let saved = match target
        .save(&state, draft.version, &vars, &user.username)
        .await
    {
        Ok(saved) => saved,
        Err(DeployError::VersionConflict { .. }) => {
            // Show the diff against the latest and keep what was typed.
            let ctx = context(&state, &user, target).await?;
            let changes = berth_core::env::diff(&ctx.set.vars, &vars);
            let conflict = conflict_message(draft.version, ctx.set.version);
            let mut draft = draft;
            draft.version = ctx.set.version;
            let page = review_page(&ctx, draft, &changes, conflict);
            return Ok((StatusCode::CONFLICT, render(&page)).into_response());
        }
        Err(DeployError::Env(errors)) => {
            let errors = DraftErrors {
                form: errors.0.iter().map(ToString::to_string).collect(),
                ..DraftErrors::default()
            };
            return Ok(invalid(ctx, draft, errors));
        }
        Err(err) => return Err(err.into()),
    };
    if draft.redeploy
        && let Target::App { project, app } = &target
    {
        return redeploy_then_show(&state, &user, &target, project, app).await;
    }
    Ok(Redirect::to(&format!("{}?saved={}", target.base(), saved.version)).into_response())
}

async fn redeploy_then_show(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
    project: &ProjectName,
    app: &AppName,
) -> Result<Response, WebError> {
    match state
        .deployments
        .redeploy_app(project, app, "dashboard redeploy")
        .await
    {
        // The deployment runs on; its page shows the live log.
        Ok(dep) => Ok(Redirect::to(&format!(
            "/projects/{project}/apps/{app}/deployments/{}",
            dep.number
        ))
        .into_response()),
        Err(err) => {
            let err = WebError::from(err);
            if matches!(err, WebError::NotFound(_) | WebError::Internal(_)) {
                return Err(err);
            }
            let ctx = context(state, user, target.clone()).await?;
            let draft = Draft::from_saved(ctx.set.version, &ctx.set.vars, Mode::Rows);
            let message = match &err {
                WebError::Invalid(fields) => fields.get("vars").unwrap_or_default().to_owned(),
                other => other.public_message(),
            };
            let page = editor(
                ctx,
                draft,
                DraftErrors::default(),
                String::new(),
                format!("Saved, but the redeploy failed: {message}"),
            );
            Ok((err.status_code(), render(&page)).into_response())
        }
    }
}

pub async fn redeploy(
    State(state): State<AppState>,
    user: CurrentUser,
    TargetPath(target): TargetPath,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    match &target {
        Target::App { project, app } => {
            redeploy_then_show(&state, &user, &target, project, app).await
        }
        _ => Err(WebError::NotFound("app")),
    }
}

/// One save in the history page.
pub struct HistoryRow {
    pub version: i64,
    pub actor: String,
    pub when: String,
    pub changes: Vec<(String, String)>,
    pub note: String,
    pub current: bool,
}

#[derive(askama::Template)]
#[template(path = "env_history.html")]
pub struct HistoryPage {
    pub chrome: Chrome,
    pub title: String,
    pub base: String,
    pub crumbs: Vec<(String, String)>,
    pub app: Option<AppRow>,
    pub rows: Vec<HistoryRow>,
    pub version: i64,
}

pub fn format_time(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| unix.to_string())
}

pub async fn history(
    State(state): State<AppState>,
    user: CurrentUser,
    TargetPath(target): TargetPath,
) -> Result<Response, WebError> {
    let (app, set) = target.load(&state).await?;
    let entries = target.history(&state, app.as_ref()).await?;
    let page = HistoryPage {
        chrome: Chrome::from(&user),
        title: target.title(),
        base: target.base(),
        crumbs: crumbs(&target),
        app: app.as_ref().map(AppRow::from),
        rows: entries
            .into_iter()
            .map(|e| HistoryRow {
                current: e.version == set.version,
                version: e.version,
                actor: e.actor,
                when: format_time(e.created_at),
                changes: e.changes,
                note: e.note.unwrap_or_default(),
            })
            .collect(),
        version: set.version,
    };
    Ok(render(&page).into_response())
}

#[derive(serde::Deserialize)]
pub struct RevertForm {
    version: i64,
    /// The version the history page showed as current.
    expected: i64,
}

/// One click: the set of an earlier version becomes a new version.
pub async fn revert(
    State(state): State<AppState>,
    user: CurrentUser,
    TargetPath(target): TargetPath,
    CsrfForm(form): CsrfForm<RevertForm>,
) -> Result<Response, WebError> {
    let result = match &target {
        Target::App { project, app } => {
            state
                .env
                .revert_app_env(
                    project,
                    app,
                    Some(form.expected),
                    form.version,
                    &user.username,
                )
                .await
        }
        _ => {
            let scope = target.scope().expect("shared targets have a scope");
            state
                .env
                .revert_shared_env(&scope, Some(form.expected), form.version, &user.username)
                .await
        }
    };
    let saved = match result {
        Ok(saved) => saved,
        // The error page shows a conflict's message: it says which reference breaks.
        Err(DeployError::Env(errors)) => {
            return Err(WebError::Conflict(format!(
                "Version {} cannot be restored: {errors}",
                form.version
            )));
        }
        Err(err) => return Err(err.into()),
    };
    Ok(Redirect::to(&format!(
        "{}?saved={}&reverted={}",
        target.base(),
        saved.version,
        form.version
    ))
    .into_response())
}

/// The saved set as a `.env` file, secrets included: a download asked for on purpose.
pub async fn export(
    State(state): State<AppState>,
    TargetPath(target): TargetPath,
) -> Result<Response, WebError> {
    let (_, set) = target.load(&state).await?;
    let name = match &target {
        Target::App { project, app } => format!("{project}-{app}.env"),
        Target::Project(project) => format!("{project}-shared.env"),
        Target::Global => "global.env".to_owned(),
    };
    Ok((
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
        berth_core::dotenv::render(&set.vars),
    )
        .into_response())
}
