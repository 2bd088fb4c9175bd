//! An app's deployments: the list with deploy, rollback and cancel; one
//! deployment with its log (live through server-sent events, and readable
//! afterwards without JavaScript); the deploy settings; the webhook.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use berth_core::{
    App, AppName, DeploySettings, Deployment, GitSource, HealthCheck, ProjectName, RestartPolicy,
    deployment::Source,
};
use futures_util::Stream;

use super::parse_path;
use crate::auth::CurrentUser;
use crate::auth::csrf::CsrfForm;
use crate::forms::FieldErrors;
use crate::routes::{Access, Table};
use crate::views::{AppRow, Chrome, render, when};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(
        Access::Session,
        "/projects/{project}/apps/{app}/deployments",
        list,
    );
    t.post(
        Access::Session,
        "/projects/{project}/apps/{app}/deploy",
        deploy,
    );
    t.post(
        Access::Session,
        "/projects/{project}/apps/{app}/redeploy",
        redeploy,
    );
    t.post(
        Access::Session,
        "/projects/{project}/apps/{app}/deploy-settings",
        save_settings,
    );
    t.post(
        Access::Session,
        "/projects/{project}/apps/{app}/webhook/regenerate",
        regenerate_webhook,
    );
    t.get(
        Access::Session,
        "/projects/{project}/apps/{app}/deployments/{number}",
        show,
    );
    t.get(
        Access::Session,
        "/projects/{project}/apps/{app}/deployments/{number}/events",
        events,
    );
    t.post(
        Access::Session,
        "/projects/{project}/apps/{app}/deployments/{number}/rollback",
        rollback,
    );
    t.post(
        Access::Session,
        "/projects/{project}/apps/{app}/deployments/{number}/cancel",
        cancel,
    );
}

/// One deployment as lists show it.
pub struct DeploymentRow {
    pub number: i64,
    pub status: &'static str,
    pub active: bool,
    pub trigger: String,
    pub source: String,
    pub reason: String,
    pub created: String,
    pub finished: String,
    pub serving: bool,
    pub can_rollback: bool,
}

impl DeploymentRow {
    pub fn new(d: &Deployment, app: &App, now: i64) -> DeploymentRow {
        let serving = d.container_id.is_some() && d.container_id == app.container_id;
        let mut source = d.image.clone().unwrap_or_else(|| "git".to_owned());
        if let Some(commit) = &d.commit_sha {
            source = format!("{source} @ {}", &commit[..commit.len().min(10)]);
        } else if let Some(id) = &d.image_id {
            let id = id.strip_prefix("sha256:").unwrap_or(id);
            source = format!("{source} ({})", &id[..id.len().min(12)]);
        }
        DeploymentRow {
            number: d.number,
            status: d.status.as_str(),
            active: d.status.is_active(),
            trigger: d.trigger.clone(),
            source,
            reason: d.reason.clone().unwrap_or_default(),
            created: when(Some(d.created_at), now),
            finished: when(d.finished_at, now),
            serving,
            can_rollback: !serving
                && d.status == berth_core::DeploymentStatus::Succeeded
                && !d.pruned
                && d.image.is_some(),
        }
    }
}

/// The deploy settings form as typed. `Debug` masks credentials in the git URL.
#[derive(Clone, Default, serde::Deserialize)]
pub struct SettingsInput {
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub git_url: String,
    #[serde(default)]
    pub git_branch: String,
    #[serde(default)]
    pub git_subdir: String,
    #[serde(default)]
    pub dockerfile: String,
    #[serde(default)]
    pub health_path: String,
    #[serde(default)]
    pub health_status: String,
    #[serde(default)]
    pub health_interval_ms: String,
    #[serde(default)]
    pub health_timeout_ms: String,
    #[serde(default)]
    pub health_retries: String,
    #[serde(default)]
    pub health_start_secs: String,
    #[serde(default)]
    pub drain_secs: String,
    #[serde(default)]
    pub stop_timeout_secs: String,
    #[serde(default)]
    pub memory_mb: String,
    #[serde(default)]
    pub cpus: String,
    #[serde(default)]
    pub restart_policy: String,
    #[serde(default)]
    pub keep_images: String,
    /// `rolling`, `recreate`, or empty: berth chooses.
    #[serde(default)]
    pub strategy: String,
    #[serde(default)]
    pub hold_secs: String,
    /// Minutes; empty: the default.
    #[serde(default)]
    pub build_timeout_mins: String,
}

impl std::fmt::Debug for SettingsInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsInput")
            .field("source", &self.source)
            .field(
                "git_url",
                &berth_core::redact_url_credentials(&self.git_url),
            )
            .field("git_branch", &self.git_branch)
            .field("git_subdir", &self.git_subdir)
            .field("dockerfile", &self.dockerfile)
            .field("health_path", &self.health_path)
            .field("health_status", &self.health_status)
            .field("health_interval_ms", &self.health_interval_ms)
            .field("health_timeout_ms", &self.health_timeout_ms)
            .field("health_retries", &self.health_retries)
            .field("health_start_secs", &self.health_start_secs)
            .field("drain_secs", &self.drain_secs)
            .field("stop_timeout_secs", &self.stop_timeout_secs)
            .field("memory_mb", &self.memory_mb)
            .field("cpus", &self.cpus)
            .field("restart_policy", &self.restart_policy)
            .field("keep_images", &self.keep_images)
            .field("strategy", &self.strategy)
            .field("hold_secs", &self.hold_secs)
            .field("build_timeout_mins", &self.build_timeout_mins)
            .finish()
    }
}

impl SettingsInput {
    pub fn from_settings(s: &DeploySettings) -> SettingsInput {
        let git = match &s.source {
            Source::Git(g) => g.clone(),
            Source::Image => GitSource::default(),
        };
        SettingsInput {
            source: if matches!(s.source, Source::Git(_)) {
                "git"
            } else {
                "image"
            }
            .to_owned(),
            // The form never holds the credentials: `***` sent back keeps them.
            git_url: berth_core::redact_url_credentials(&git.url).into_owned(),
            git_branch: git.branch,
            git_subdir: git.subdir,
            dockerfile: git.dockerfile,
            health_path: s.health.path.clone().unwrap_or_default(),
            health_status: s.health.expected_status.to_string(),
            health_interval_ms: s.health.interval_ms.to_string(),
            health_timeout_ms: s.health.timeout_ms.to_string(),
            health_retries: s.health.retries.to_string(),
            health_start_secs: s.health.start_secs.to_string(),
            drain_secs: s.drain_secs.to_string(),
            stop_timeout_secs: s.stop_timeout_secs.to_string(),
            memory_mb: s.memory_mb.map(|m| m.to_string()).unwrap_or_default(),
            cpus: s
                .cpu_millis
                .map(|m| format!("{}", f64::from(m) / 1000.0))
                .unwrap_or_default(),
            restart_policy: s.restart_policy.as_str().to_owned(),
            keep_images: s.keep_images.to_string(),
            strategy: s
                .strategy
                .map(|s| s.as_str())
                .unwrap_or_default()
                .to_owned(),
            hold_secs: s.hold_secs.to_string(),
            build_timeout_mins: s.build_timeout_mins.to_string(),
        }
    }

    /// Parses every field, reporting each bad one under its name.
    pub fn parse(&self) -> Result<DeploySettings, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut num = |field: &'static str, value: &str, min: u32, max: u32| -> u32 {
            match value.trim().parse::<u32>() {
                Ok(n) if (min..=max).contains(&n) => n,
                _ => {
                    errors.add(field, format!("must be a whole number from {min} to {max}"));
                    0
                }
            }
        };
        let health = HealthCheck {
            path: Some(self.health_path.trim().to_owned()).filter(|p| !p.is_empty()),
            expected_status: u16::try_from(num("health_status", &self.health_status, 100, 599))
                .unwrap_or(200),
            interval_ms: num("health_interval_ms", &self.health_interval_ms, 50, 600_000),
            timeout_ms: num("health_timeout_ms", &self.health_timeout_ms, 100, 600_000),
            retries: num("health_retries", &self.health_retries, 1, 1000),
            start_secs: num("health_start_secs", &self.health_start_secs, 0, 3600),
        };
        let drain_secs = num("drain_secs", &self.drain_secs, 0, 3600);
        let stop_timeout_secs = num("stop_timeout_secs", &self.stop_timeout_secs, 0, 3600);
        let keep_images = num("keep_images", &self.keep_images, 1, 100);
        let hold_secs = if self.hold_secs.trim().is_empty() {
            DeploySettings::default().hold_secs
        } else {
            num("hold_secs", &self.hold_secs, 1, 600)
        };
        let build_timeout_mins = if self.build_timeout_mins.trim().is_empty() {
            DeploySettings::default().build_timeout_mins
        } else {
            let bounds = berth_core::deployment::BUILD_TIMEOUT_MINS;
            num(
                "build_timeout_mins",
                &self.build_timeout_mins,
                *bounds.start(),
                *bounds.end(),
            )
        };
        let memory_mb = if self.memory_mb.trim().is_empty() {
            None
        } else {
            Some(num("memory_mb", &self.memory_mb, 6, 1_048_576))
        };
        let cpu_millis = match self.cpus.trim() {
            "" => None,
            text => match text.parse::<f64>() {
                Ok(c) if c > 0.0 && c <= 1024.0 => Some((c * 1000.0).round() as u32),
                _ => {
                    errors.add("cpus", "must be a number of CPUs such as 0.5 or 2");
                    None
                }
            },
        };
        let source = if self.source == "git" {
            if self.git_url.trim().is_empty() {
                errors.add(
                    "git_url",
                    "a repository URL or path is needed for a git source",
                );
            }
            Source::Git(GitSource {
                url: self.git_url.trim().to_owned(),
                branch: self.git_branch.trim().to_owned(),
                subdir: self.git_subdir.trim().to_owned(),
                dockerfile: self.dockerfile.trim().to_owned(),
            })
        } else {
            Source::Image
        };
        if let Some(problem) = health.path.as_deref().and_then(HealthCheck::path_problem) {
            errors.add("health_path", problem);
        }
        let restart_policy = if self.restart_policy.is_empty() {
            Some(RestartPolicy::UnlessStopped)
        } else {
            RestartPolicy::parse(self.restart_policy.trim())
        };
        if restart_policy.is_none() {
            errors.add(
                "restart_policy",
                "must be one of no, unless-stopped, on-failure, always",
            );
        }
        let strategy = crate::forms::parse_strategy(&mut errors, &self.strategy).flatten();
        let Some(restart_policy) = restart_policy.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        Ok(DeploySettings {
            strategy,
            hold_secs,
            build_timeout_mins,
            source,
            health,
            drain_secs,
            stop_timeout_secs,
            memory_mb,
            cpu_millis,
            restart_policy,
            keep_images,
        })
    }
}

#[derive(Template)]
#[template(path = "deployments.html")]
pub struct DeploymentsPage {
    pub chrome: Chrome,
    pub app: AppRow,
    pub deployments: Vec<DeploymentRow>,
    pub any_active: bool,
    pub settings: SettingsInput,
    pub errors: FieldErrors,
    pub webhook_url: String,
    /// The public half of the app's SSH deploy key.
    pub deploy_key: String,
    /// Why there is no deploy key (e.g. `ssh-keygen` is missing); the page still works.
    pub deploy_key_error: String,
    /// The SSH host keys recorded for the git source's host.
    pub ssh_host_keys: Vec<berth_deploy::HostKey>,
    pub flash: String,
}

#[derive(Template)]
#[template(path = "deployment.html")]
pub struct DeploymentPage {
    pub chrome: Chrome,
    pub app: AppRow,
    pub deployment: DeploymentRow,
    pub commit: String,
    pub started: String,
    pub log: Vec<String>,
    pub last_seq: i64,
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path((project, app)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let (project, name) = names(&project, &app)?;
    let page = page(
        &state,
        &user,
        &headers,
        &project,
        &name,
        None,
        FieldErrors::default(),
        String::new(),
    )
    .await?;
    Ok(render(&page).into_response())
}

#[expect(
    clippy::too_many_arguments,
    reason = "one page, built from the request's parts"
)]
async fn page(
    state: &AppState,
    user: &CurrentUser,
    headers: &HeaderMap,
    project: &ProjectName,
    name: &AppName,
    typed: Option<SettingsInput>,
    errors: FieldErrors,
    flash: String,
) -> Result<DeploymentsPage, WebError> {
    let app = state.apps.find_app(project, name).await?;
    let deployments = state.deployments.list_deployments(&app).await?;
    let settings = match typed {
        Some(t) => t,
        None => SettingsInput::from_settings(&state.deployments.deploy_settings(&app).await?),
    };
    let secret = state.webhooks.webhook_secret(project, name).await?;
    let (deploy_key, deploy_key_error) = match state.deployments.deploy_key(&app).await {
        Ok(key) => (key, String::new()),
        Err(err) => {
            tracing::warn!(error = %err, "no deploy key");
            (String::new(), err.to_string())
        }
    };
    let ssh_host_keys = state.deployments.ssh_host_keys(&app).await?;
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    // The URL carries the secret: https whenever the page itself came over it.
    let scheme = if crate::auth::Https::decide(state, headers).0 {
        "https"
    } else {
        "http"
    };
    let now = berth_core::unix_now();
    Ok(DeploymentsPage {
        chrome: Chrome::from(user),
        any_active: deployments.iter().any(|d| d.status.is_active()),
        deployments: deployments
            .iter()
            .map(|d| DeploymentRow::new(d, &app, now))
            .collect(),
        app: AppRow::from(&app),
        settings,
        errors,
        webhook_url: format!("{scheme}://{host}/hooks/{project}/{name}/{secret}"),
        deploy_key,
        deploy_key_error,
        ssh_host_keys,
        flash,
    })
}

/// Queues a deployment from the app's source and shows it.
pub async fn deploy(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
    _: CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let (project, name) = names(&project, &app)?;
    let dep = state
        .deployments
        .deploy_app(&project, &name, "dashboard")
        .await?;
    Ok(Redirect::to(&deployment_url(&project, &name, dep.number)).into_response())
}

/// "Redeploy": the serving image again with the current settings and env.
pub async fn redeploy(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
    _: CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let (project, name) = names(&project, &app)?;
    let dep = state
        .deployments
        .redeploy_app(&project, &name, "dashboard redeploy")
        .await?;
    Ok(Redirect::to(&deployment_url(&project, &name, dep.number)).into_response())
}

pub async fn rollback(
    State(state): State<AppState>,
    Path((project, app, number)): Path<(String, String, String)>,
    _: CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let (project, name) = names(&project, &app)?;
    let number = parse_path(|n: &str| n.parse::<i64>(), &number, "deployment")?;
    let dep = state
        .deployments
        .rollback_app(&project, &name, number)
        .await?;
    Ok(Redirect::to(&deployment_url(&project, &name, dep.number)).into_response())
}

pub async fn cancel(
    State(state): State<AppState>,
    Path((project, app, number)): Path<(String, String, String)>,
    _: CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let (project, name) = names(&project, &app)?;
    let number = parse_path(|n: &str| n.parse::<i64>(), &number, "deployment")?;
    state
        .deployments
        .cancel_deployment(&project, &name, number)
        .await?;
    Ok(Redirect::to(&deployment_url(&project, &name, number)).into_response())
}

pub async fn save_settings(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path((project, app)): Path<(String, String)>,
    CsrfForm(input): CsrfForm<SettingsInput>,
) -> Result<Response, WebError> {
    let (project, name) = names(&project, &app)?;
    let app_row = state.apps.find_app(&project, &name).await?;
    let result = match input.parse() {
        Ok(settings) => state
            .deployments
            .save_deploy_settings(&app_row, &settings)
            .await
            .map_err(WebError::from),
        Err(errors) => Err(WebError::Invalid(errors)),
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!(
            "/projects/{project}/apps/{name}/deployments?saved=1"
        ))
        .into_response()),
        Err(WebError::Invalid(errors)) => {
            // Credentials typed in are not sent back in the page either.
            let mut input = input;
            input.git_url = berth_core::redact_url_credentials(&input.git_url).into_owned();
            let page = page(
                &state,
                &user,
                &headers,
                &project,
                &name,
                Some(input),
                errors,
                String::new(),
            )
            .await?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
        Err(err) => Err(err),
    }
}

pub async fn regenerate_webhook(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
    _: CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let (project, name) = names(&project, &app)?;
    state
        .webhooks
        .regenerate_webhook_secret(&project, &name)
        .await?;
    Ok(Redirect::to(&format!(
        "/projects/{project}/apps/{name}/deployments#webhook"
    ))
    .into_response())
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, app, number)): Path<(String, String, String)>,
) -> Result<Html<String>, WebError> {
    let (project, name) = names(&project, &app)?;
    let number = parse_path(|n: &str| n.parse::<i64>(), &number, "deployment")?;
    let (app, dep) = state
        .deployments
        .find_deployment(&project, &name, number)
        .await?;
    let log = state.deployments.deployment_log(&dep, 0).await?;
    let now = berth_core::unix_now();
    Ok(render(&DeploymentPage {
        chrome: Chrome::from(&user),
        deployment: DeploymentRow::new(&dep, &app, now),
        commit: dep.commit_sha.clone().unwrap_or_default(),
        started: when(dep.started_at, now),
        last_seq: log.last().map_or(0, |(seq, _)| *seq),
        log: log.into_iter().map(|(_, line)| line).collect(),
        app: AppRow::from(&app),
    }))
}

#[derive(serde::Deserialize)]
pub struct AfterQuery {
    /// The last line the page already shows.
    pub after: Option<i64>,
}

/// The deployment's log as server-sent events: one `line` event per log
/// line (its id is the line's number, so a reconnect resumes after
/// `Last-Event-ID`), then one `end` event with the final status.
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((project, app, number)): Path<(String, String, String)>,
    axum::extract::Query(query): axum::extract::Query<AfterQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, WebError> {
    let (project, name) = names(&project, &app)?;
    let number = parse_path(|n: &str| n.parse::<i64>(), &number, "deployment")?;
    let (_, dep) = state
        .deployments
        .find_deployment(&project, &name, number)
        .await?;
    let after: i64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or(query.after)
        .unwrap_or(0);
    Ok(
        Sse::new(log_events(state.deployments.clone(), dep, after))
            .keep_alive(KeepAlive::default()),
    )
}

/// Polls the stored log: the store is the one source, so a page opened
/// late, a reconnect and a second viewer all see the same lines.
pub(crate) fn log_events(
    deployments: berth_deploy::Deployments,
    dep: Deployment,
    after: i64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    struct S {
        deployments: berth_deploy::Deployments,
        dep: Deployment,
        after: i64,
        pending: std::collections::VecDeque<Event>,
        done: bool,
    }
    futures_util::stream::unfold(
        S {
            deployments,
            dep,
            after,
            pending: Default::default(),
            done: false,
        },
        |mut s| async move {
            loop {
                if let Some(event) = s.pending.pop_front() {
                    return Some((Ok(event), s));
                }
                if s.done {
                    return None;
                }
                // Read the status before the lines, so no line written before the end is missed.
                let current = s.deployments.reload(&s.dep).await;
                let finished = current.as_ref().map_or(true, |d| !d.status.is_active());
                if let Ok(lines) = s.deployments.deployment_log(&s.dep, s.after).await {
                    for (seq, line) in lines {
                        s.after = seq;
                        s.pending.push_back(
                            Event::default()
                                .event("line")
                                .id(seq.to_string())
                                .data(line),
                        );
                    }
                }
                if finished {
                    let status = current.map_or("gone", |d| d.status.as_str());
                    s.pending
                        .push_back(Event::default().event("end").data(status));
                    s.done = true;
                    continue;
                }
                if s.pending.is_empty() {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        },
    )
}

fn names(project: &str, app: &str) -> Result<(ProjectName, AppName), WebError> {
    Ok((
        parse_path(ProjectName::parse, project, "project")?,
        parse_path(AppName::parse, app, "app")?,
    ))
}

fn deployment_url(project: &ProjectName, app: &AppName, number: i64) -> String {
    format!("/projects/{project}/apps/{app}/deployments/{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_settings_forms_git_url_never_show_in_debug_output() {
        let input = SettingsInput {
            source: "git".into(),
            git_url: "https://x-access-token:ghs_s3cr3t@github.com/o/r.git".into(),
            git_branch: "main".into(),
            ..SettingsInput::default()
        };
        let shown = format!("{input:?} {input:#?}");
        assert!(
            !shown.contains("ghs_s3cr3t") && !shown.contains("x-access-token"),
            "{shown}"
        );
        assert!(shown.contains("https://***@github.com/o/r.git"), "{shown}");
    }
}
