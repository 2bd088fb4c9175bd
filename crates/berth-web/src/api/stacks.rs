//! `/api/v1/projects/{project}/stacks`: install, inspect, update and
//! uninstall stacks; the same `Stacks` functions as the install forms.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_compose::plan::WarningKind;
use berth_core::{ProjectName, Stack, StackName};
use berth_deploy::{PlanPreview, ServiceState, StackView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiJson;
use super::apps::{LogsOut, LogsQuery};
use super::projects::project_name;
use crate::error::{ApiError, ErrorBody};
use crate::forms::FieldErrors;
use crate::routes::Table;
use crate::stack_forms::{StackInput, StackUpdateInput};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.api(__path_list_templates, list_templates);
    t.api(__path_list_stacks, list_stacks);
    t.api(__path_install_stack, install_stack);
    t.api(__path_get_stack, get_stack);
    t.api(__path_update_stack, update_stack);
    t.api(__path_uninstall_stack, uninstall_stack);
    t.api(__path_get_stack_service_logs, get_stack_service_logs);
}

/// One template of berth's catalogue.
#[derive(Serialize, ToSchema)]
pub struct TemplateOut {
    /// What `template` takes when installing.
    pub id: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub tags: Vec<String>,
    /// The version of the application it installs.
    pub version: Option<String>,
    pub logo: Option<String>,
}

/// A stack as stored.
#[derive(Serialize, ToSchema)]
pub struct StackOut {
    pub project: String,
    pub name: String,
    /// One of installing, updating, running, failed.
    pub status: String,
    /// Why it failed, or what it is doing.
    pub message: Option<String>,
    /// `template`, `compose` or `git`.
    pub source_kind: String,
    /// The catalogue id, for stacks from a template.
    pub template: Option<String>,
    /// The admin confirmed the plan's dangerous settings at install.
    pub dangerous_confirmed: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// This stack in the API.
    pub url: String,
}

impl From<&Stack> for StackOut {
    fn from(s: &Stack) -> StackOut {
        StackOut {
            project: s.project.to_string(),
            name: s.name.to_string(),
            status: s.status.as_str().to_owned(),
            message: s.message.clone(),
            source_kind: s.source_kind.clone(),
            template: s.template.clone(),
            dangerous_confirmed: s.dangerous_confirmed,
            created_at: s.created_at,
            updated_at: s.updated_at,
            url: format!("/api/v1/projects/{}/stacks/{}", s.project, s.name),
        }
    }
}

/// A stack with its services as Docker has them, and its routes.
#[derive(Serialize, ToSchema)]
pub struct StackDetailOut {
    #[serde(flatten)]
    pub stack: StackOut,
    pub services: Vec<ServiceOut>,
    pub routes: Vec<StackRouteOut>,
    pub warnings: Vec<WarningOut>,
}

#[derive(Serialize, ToSchema)]
pub struct ServiceOut {
    pub name: String,
    /// The image reference as the file gives it.
    pub image: String,
    /// `latest` or no tag: the image can change under the stack.
    pub unpinned: bool,
    /// The container's name.
    pub container: String,
    /// One of running, done (a one-shot service that exited 0), exited,
    /// restarting, created, missing.
    pub state: String,
    /// With state `exited`: the exit code.
    pub exit_code: Option<i64>,
    /// Docker's health verdict when the service has a health check.
    pub health: Option<String>,
    /// `rolling` or `recreate`.
    pub strategy: String,
    /// Ports published on the host, as `127.0.0.1:5432->5432/tcp`.
    pub published: Vec<String>,
    /// The services it waits for.
    pub depends_on: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StackRouteOut {
    pub service: String,
    pub port: u16,
    pub host: String,
    pub path: String,
    /// Where to open it through the edge, when there is an edge.
    pub url: Option<String>,
    /// The user's own domain (its certificate comes from the ACME CA).
    pub own_domain: bool,
}

#[derive(Serialize, ToSchema)]
pub struct WarningOut {
    pub service: Option<String>,
    /// `unpinned_image`, `dangerous` or `note`.
    pub kind: String,
    pub message: String,
}

pub fn warning_kind(kind: WarningKind) -> &'static str {
    match kind {
        WarningKind::UnpinnedImage => "unpinned_image",
        WarningKind::Dangerous => "dangerous",
        WarningKind::Note => "note",
    }
}

/// With state `exited`: the exit code.
pub fn exit_code(state: &ServiceState) -> Option<i64> {
    match state {
        ServiceState::Exited(code) => Some(*code),
        _ => None,
    }
}

impl From<&StackView> for StackDetailOut {
    fn from(v: &StackView) -> StackDetailOut {
        StackDetailOut {
            stack: StackOut::from(&v.stack),
            services: v
                .services
                .iter()
                .map(|s| ServiceOut {
                    name: s.name.clone(),
                    image: s.image.clone(),
                    unpinned: s.unpinned,
                    container: s.container.clone(),
                    state: s.state.as_str().to_owned(),
                    exit_code: exit_code(&s.state),
                    health: s.health.clone(),
                    strategy: s.strategy.as_str().to_owned(),
                    published: s.published.clone(),
                    depends_on: s.depends_on.clone(),
                })
                .collect(),
            routes: v
                .routes
                .iter()
                .map(|r| StackRouteOut {
                    service: r.service.clone(),
                    port: r.port,
                    host: r.host.to_string(),
                    path: r.path.clone(),
                    url: r.url.clone(),
                    own_domain: r.own_domain,
                })
                .collect(),
            warnings: v
                .warnings
                .iter()
                .map(|w| WarningOut {
                    service: w.service.clone(),
                    kind: warning_kind(w.kind).to_owned(),
                    message: w.message.clone(),
                })
                .collect(),
        }
    }
}

/// Which services an update recreated.
#[derive(Serialize, ToSchema)]
pub struct UpdateOut {
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct UninstallQuery {
    /// Required: `keep` (the volumes stay, orphaned, with their data) or
    /// `delete` (they are removed with their data).
    pub volumes: Option<String>,
    /// With `volumes=delete`: the stack's name, typed again.
    pub confirm: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UninstalledOut {
    pub name: String,
    pub volumes_deleted: bool,
}

fn names(project: &str, stack: &str) -> Result<(ProjectName, StackName), ApiError> {
    Ok((
        project_name(project)?,
        StackName::parse(stack).map_err(|_| ApiError(WebError::NotFound("stack")))?,
    ))
}

fn invalid(field: &'static str, message: impl std::fmt::Display) -> ApiError {
    let mut errors = FieldErrors::default();
    errors.add(field, message);
    ApiError(WebError::Invalid(errors))
}

/// The plan exactly as `berth stack plan` prints it, each route with the
/// host it would answer on (`host`), and, when it cannot install, `error`.
pub fn plan_json(preview: &PlanPreview) -> serde_json::Value {
    let mut json = serde_json::to_value(&preview.plan).unwrap_or_default();
    if let Some(routes) = json.get_mut("routes").and_then(|r| r.as_array_mut()) {
        for (route, host) in routes.iter_mut().zip(&preview.hosts) {
            if let Some(route) = route.as_object_mut() {
                route.insert(
                    "host".to_owned(),
                    host.as_ref()
                        .map_or(serde_json::Value::Null, |h| h.to_string().into()),
                );
            }
        }
    }
    if !preview.plan.is_ok()
        && let Some(object) = json.as_object_mut()
    {
        object.insert(
            "error".to_owned(),
            format!(
                "the file cannot be installed: {} problem(s), listed under errors",
                preview.plan.errors.len()
            )
            .into(),
        );
    }
    json
}

#[utoipa::path(get, path = "/api/v1/templates", tag = "stacks",
    responses((status = 200, body = Vec<TemplateOut>)))]
pub async fn list_templates(State(state): State<AppState>) -> Json<Vec<TemplateOut>> {
    Json(
        crate::pages::catalogue::entries(&state)
            .iter()
            .map(|e| TemplateOut {
                id: e.id.clone(),
                name: e.name.clone(),
                description: e.description.clone(),
                category: e.category.clone(),
                tags: e.tags.clone(),
                version: (!e.version.is_empty()).then(|| e.version.clone()),
                logo: (!e.logo.is_empty()).then(|| e.logo.clone()),
            })
            .collect(),
    )
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/stacks", tag = "stacks", params(("project" = String, Path)),
    responses((status = 200, body = Vec<StackOut>), (status = 404, body = ErrorBody)))]
pub async fn list_stacks(
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<Vec<StackOut>>, ApiError> {
    let project = project_name(&project)?;
    let stacks = state.stacks.list(&project).await?;
    Ok(Json(stacks.iter().map(StackOut::from).collect()))
}

/// Installs a stack: 201 with the stack (`installing`; poll it until
/// `running` or `failed`). With `dry_run` it only plans: 200 with the plan,
/// or 422 with the plan when it has errors; nothing changes either way.
/// A plan with dangerous settings needs `confirm_dangerous`.
#[utoipa::path(post, path = "/api/v1/projects/{project}/stacks", tag = "stacks", params(("project" = String, Path)), request_body = StackInput,
    responses((status = 201, body = StackOut), (status = 200, description = "dry_run: the plan as `berth stack plan` prints it, each route with its `host`", body = Object),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, description = "invalid input (ErrorBody), or a plan with errors (the plan, with `error` and `errors`)", body = ErrorBody)))]
pub async fn install_stack(
    State(state): State<AppState>,
    Path(project): Path<String>,
    ApiJson(input): ApiJson<StackInput>,
) -> Result<Response, ApiError> {
    let project = project_name(&project)?;
    let dry_run = input.dry_run;
    // Checked before anything is planned, so bad input changes nothing.
    let known = known_templates(&state);
    let request = input.parse(&known).map_err(WebError::Invalid)?;
    let preview = state.stacks.plan(&project, &request).await?;
    if dry_run || !preview.plan.is_ok() {
        let status = if preview.plan.is_ok() {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        return Ok((status, Json(plan_json(&preview))).into_response());
    }
    // `install` refuses unconfirmed dangerous settings under `confirm_dangerous`.
    let stack = state.stacks.install(&project, request).await?;
    Ok((StatusCode::CREATED, Json(StackOut::from(&stack))).into_response())
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/stacks/{stack}", tag = "stacks", params(("project" = String, Path), ("stack" = String, Path)),
    responses((status = 200, body = StackDetailOut), (status = 404, body = ErrorBody)))]
pub async fn get_stack(
    State(state): State<AppState>,
    Path((project, stack)): Path<(String, String)>,
) -> Result<Json<StackDetailOut>, ApiError> {
    let (project, name) = names(&project, &stack)?;
    Ok(Json(StackDetailOut::from(
        &state.stacks.get(&project, &name).await?,
    )))
}

/// Re-plans the stack (a new file, or the installed one with new inputs) and
/// recreates only the services whose configuration changed.
#[utoipa::path(put, path = "/api/v1/projects/{project}/stacks/{stack}", tag = "stacks", params(("project" = String, Path), ("stack" = String, Path)), request_body = StackUpdateInput,
    responses((status = 200, body = UpdateOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_stack(
    State(state): State<AppState>,
    Path((project, stack)): Path<(String, String)>,
    ApiJson(input): ApiJson<StackUpdateInput>,
) -> Result<Json<UpdateOut>, ApiError> {
    let (project, name) = names(&project, &stack)?;
    let update = input
        .parse(&known_templates(&state))
        .map_err(WebError::Invalid)?;
    let outcome = state.stacks.update(&project, &name, update).await?;
    Ok(Json(UpdateOut {
        changed: outcome.changed,
        unchanged: outcome.unchanged,
    }))
}

/// Removes the stack's containers, network and routes. `volumes` is
/// required: `keep`, or `delete` together with `confirm` set to the stack's name.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/stacks/{stack}", tag = "stacks", params(("project" = String, Path), ("stack" = String, Path), UninstallQuery),
    responses((status = 200, body = UninstalledOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn uninstall_stack(
    State(state): State<AppState>,
    Path((project, stack)): Path<(String, String)>,
    Query(query): Query<UninstallQuery>,
) -> Result<Json<UninstalledOut>, ApiError> {
    let (project, name) = names(&project, &stack)?;
    // Unlike apps there is no default: a stack often holds databases, so
    // the caller says what becomes of their data.
    let delete_volumes = query
        .volumes
        .as_deref()
        .and_then(volumes_choice)
        .ok_or_else(|| invalid("volumes", "must be keep or delete"))?;
    if delete_volumes && query.confirm.as_deref().map(str::trim) != Some(name.as_str()) {
        return Err(invalid(
            "confirm",
            format!(
                "to delete the volumes and their data, set confirm to the stack's name, {name}"
            ),
        ));
    }
    state
        .stacks
        .uninstall(&project, &name, delete_volumes)
        .await?;
    Ok(Json(UninstalledOut {
        name: name.to_string(),
        volumes_deleted: delete_volumes,
    }))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/stacks/{stack}/services/{service}/logs", tag = "stacks",
    params(("project" = String, Path), ("stack" = String, Path), ("service" = String, Path), LogsQuery),
    responses((status = 200, body = LogsOut), (status = 404, body = ErrorBody)))]
pub async fn get_stack_service_logs(
    State(state): State<AppState>,
    Path((project, stack, service)): Path<(String, String, String)>,
    Query(query): Query<LogsQuery>,
) -> Result<Json<LogsOut>, ApiError> {
    let (project, name) = names(&project, &stack)?;
    let service = crate::pages::stacks::service_name(&service)?;
    Ok(Json(LogsOut {
        lines: state
            .stacks
            .service_logs(&project, &name, service, query.count())
            .await?,
    }))
}

/// An uninstall's `volumes`: `keep` (false) or `delete` (true), from the
/// API's query and the stack page's form alike.
pub(crate) fn volumes_choice(volumes: &str) -> Option<bool> {
    match volumes {
        "keep" => Some(false),
        "delete" => Some(true),
        _ => None,
    }
}

/// Whether a template id is in the catalogue (embedded or `--templates-dir`),
/// looked up only when a template is named.
pub(crate) fn known_templates(state: &AppState) -> impl Fn(&str) -> bool + '_ {
    |id| state.stacks.template(id).is_some()
}
