//! Stacks in the dashboard: the install forms (a catalogue template, or
//! the user's own compose file) with the plan shown before anything
//! happens, the stack page (services, routes, update, uninstall) and each
//! service's logs. Secret input values never go back into a page.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use berth_compose::plan::{Condition, MountSource, Warning};
use berth_compose::{InputKind, Plan};
use berth_core::{ProjectName, StackName, StackStatus};
use berth_deploy::{StackRoute, StackView};

use super::catalogue::{self, Entry};
use super::parse_path;
use super::projects::field_errors;
use crate::api::apps::LogsQuery;
use crate::api::stacks::volumes_choice;
use crate::auth::CurrentUser;
use crate::auth::csrf::CsrfForm;
use crate::forms::{FieldErrors, is_ticked};
use crate::routes::{Access, Table};
use crate::stack_forms::{GitInput, PublishInput, StackInput, StackUpdateInput, is_secret};
use crate::views::{Chrome, render};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Session, "/projects/{project}/install", own_form);
    t.post(Access::Session, "/projects/{project}/install", own_submit);
    t.get(
        Access::Session,
        "/projects/{project}/install/{template}",
        template_form,
    );
    t.post(
        Access::Session,
        "/projects/{project}/install/{template}",
        template_submit,
    );
    t.get(Access::Session, "/projects/{project}/stacks/{stack}", show);
    t.post(
        Access::Session,
        "/projects/{project}/stacks/{stack}/update",
        update,
    );
    t.post(
        Access::Session,
        "/projects/{project}/stacks/{stack}/uninstall",
        uninstall,
    );
    t.get(
        Access::Session,
        "/projects/{project}/stacks/{stack}/services/{service}/logs",
        logs,
    );
}

/// A compose service name in a URL: compose allows letters, digits, `.`, `_`, `-`.
pub fn service_name(name: &str) -> Result<&str, WebError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(name)
    } else {
        Err(WebError::NotFound("service"))
    }
}

fn stack_url(project: &ProjectName, stack: &StackName) -> String {
    format!("/projects/{project}/stacks/{stack}")
}

// ---------------------------------------------------------------------------
// The install form as posted

/// The install forms as posted. Besides the named fields it carries
/// `input.<NAME>` (the plan's inputs), `publish.<service>.<port>`
/// (`local` or `public`), `publish_public` (the confirmation for public
/// ports) and `danger.<n>` (one tick per dangerous setting).
#[derive(Clone, Default, serde::Deserialize)]
pub struct StackForm {
    #[serde(default)]
    pub name: String,
    /// The own-file form: `compose` (pasted) or `git`.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub compose: String,
    #[serde(default)]
    pub git_url: String,
    #[serde(default)]
    pub git_branch: String,
    #[serde(default)]
    pub git_path: String,
    /// `preview` or `install`: the button pressed.
    #[serde(default)]
    pub action: String,
    #[serde(default, flatten)]
    pub fields: BTreeMap<String, String>,
}

impl std::fmt::Debug for StackForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackForm")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

/// A form's `<prefix><name>` fields (`input.`, `domain.`), by name.
fn fields_under(fields: &BTreeMap<String, String>, prefix: &str) -> BTreeMap<String, String> {
    fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_owned(), v.clone())))
        .collect()
}

/// The values typed for a plan's inputs; an empty field is left out so the
/// input's default (or, on update, its installed value) applies.
fn typed_inputs(fields: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut inputs = fields_under(fields, "input.");
    inputs.retain(|_, v| !v.is_empty());
    inputs
}

fn ticked(value: Option<&String>) -> bool {
    value.is_some_and(|v| is_ticked(v))
}

impl StackForm {
    pub fn inputs(&self) -> BTreeMap<String, String> {
        typed_inputs(&self.fields)
    }

    fn publish(&self) -> Vec<PublishInput> {
        self.fields
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix("publish.")?;
                // Service names may hold dots; the port is after the last one.
                let (service, port) = rest.rsplit_once('.')?;
                let public = match v.as_str() {
                    "local" => false,
                    "public" => true,
                    _ => return None,
                };
                Some(PublishInput {
                    service: service.to_owned(),
                    port: port.parse().ok()?,
                    public,
                })
            })
            .collect()
    }

    fn danger_ticked(&self, n: usize) -> bool {
        ticked(self.fields.get(&format!("danger.{n}")))
    }

    fn public_confirmed(&self) -> bool {
        ticked(self.fields.get("publish_public"))
    }

    pub fn to_input(&self, template: Option<&str>) -> StackInput {
        let (compose, template, git) = match (template, self.source.as_str()) {
            (Some(id), _) => (None, Some(id.to_owned()), None),
            (None, "git") => (
                None,
                None,
                Some(GitInput {
                    url: self.git_url.clone(),
                    branch: self.git_branch.clone(),
                    path: self.git_path.clone(),
                }),
            ),
            (None, _) => (Some(self.compose.clone()), None, None),
        };
        StackInput {
            name: self.name.clone(),
            compose,
            template,
            git,
            inputs: self.inputs(),
            confirm_dangerous: false,
            dry_run: false,
            publish: self.publish(),
            domains: fields_under(&self.fields, "domain."),
        }
    }
}

// ---------------------------------------------------------------------------
// The plan as the install form shows it

/// One input of the plan as a form field.
pub struct InputField {
    pub name: String,
    /// `text`, `password`, `email`, `number` or `boolean` (a yes/no select).
    pub html_type: &'static str,
    /// Empty for secrets, whatever was typed.
    pub value: String,
    pub required: bool,
    pub description: String,
    pub secret: bool,
    /// A secret was typed but is not sent back: the user types it again.
    pub reenter: bool,
    pub error: String,
}

pub struct PlanServiceRow {
    pub name: String,
    pub image: String,
    pub unpinned: bool,
    pub strategy: &'static str,
    pub volumes: Vec<String>,
    pub depends_on: Vec<String>,
    pub ports: Vec<PortChoice>,
}

/// A container port the form offers to publish on the host.
pub struct PortChoice {
    /// `publish.<service>.<port>`.
    pub field: String,
    pub port: u16,
    /// `""` (not published), `local` or `public`.
    pub choice: String,
}

pub struct PlanRouteRow {
    pub service: String,
    pub port: String,
    pub path: String,
    pub host: String,
    /// The service's first route: it offers a field for the user's own domain.
    pub first: bool,
    /// What was typed there.
    pub domain: String,
}

pub struct WarningRow {
    pub service: String,
    pub kind: &'static str,
    pub message: String,
    /// For a dangerous setting: its confirmation's field, `danger.<n>`.
    pub field: String,
    pub ticked: bool,
}

impl From<&Warning> for WarningRow {
    fn from(w: &Warning) -> WarningRow {
        WarningRow {
            service: w.service.clone().unwrap_or_default(),
            kind: crate::api::stacks::warning_kind(w.kind),
            message: w.message.clone(),
            field: String::new(),
            ticked: false,
        }
    }
}

pub struct PlanView {
    pub fields: Vec<InputField>,
    pub services: Vec<PlanServiceRow>,
    pub routes: Vec<PlanRouteRow>,
    /// Names of the values berth generates (never the values).
    pub generated: Vec<String>,
    pub warnings: Vec<WarningRow>,
    pub dangers: Vec<WarningRow>,
    /// Problems that stop the install, other than an input's.
    pub errors: Vec<String>,
    pub ok: bool,
}

fn html_type(kind: InputKind, secret: bool) -> &'static str {
    match kind {
        _ if secret => "password",
        InputKind::Email => "email",
        InputKind::Number => "number",
        InputKind::Boolean => "boolean",
        InputKind::String | InputKind::Secret | InputKind::Domain => "text",
    }
}

fn condition(c: Condition) -> &'static str {
    match c {
        Condition::ServiceStarted => "started",
        Condition::ServiceHealthy => "healthy",
        Condition::ServiceCompletedSuccessfully => "completed",
    }
}

impl PlanView {
    /// `submitted` is false on the form's first showing: a required input
    /// nobody has typed yet is not an error to show.
    pub fn new(
        plan: &Plan,
        hosts: &[Option<String>],
        form: &StackForm,
        submitted: bool,
    ) -> PlanView {
        let typed = form.inputs();
        let publish = form.publish();
        let mut input_errors: BTreeMap<String, String> = BTreeMap::new();
        let mut errors = Vec::new();
        for p in &plan.errors {
            match p.key.strip_prefix("inputs.") {
                Some(name) => {
                    input_errors.insert(name.to_owned(), p.message.clone());
                }
                None => errors.push(p.to_string()),
            }
        }
        let fields = plan
            .inputs
            .iter()
            .map(|input| {
                let secret = is_secret(input);
                let given = typed.get(&input.name);
                InputField {
                    name: input.name.clone(),
                    html_type: html_type(input.kind, secret),
                    value: if secret {
                        String::new()
                    } else {
                        given
                            .or(input.default.as_ref())
                            .cloned()
                            .unwrap_or_default()
                    },
                    required: input.required,
                    description: input.description.clone().unwrap_or_default(),
                    secret,
                    reenter: secret && given.is_some(),
                    error: if submitted {
                        input_errors.get(&input.name).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    },
                }
            })
            .collect();
        let services = plan
            .services
            .iter()
            .map(|s| PlanServiceRow {
                name: s.name.clone(),
                image: match (&s.image, &s.build) {
                    (Some(image), _) => image.to_string(),
                    (None, Some(build)) => format!("built from {}", build.context),
                    (None, None) => String::new(),
                },
                unpinned: s.image.as_ref().is_some_and(|i| !i.is_pinned()),
                strategy: s.strategy.as_str(),
                volumes: s
                    .volumes
                    .iter()
                    .map(|m| {
                        let source = match &m.source {
                            MountSource::Volume { name, .. } => name.clone(),
                            MountSource::Anonymous { volume } => volume.to_string(),
                            MountSource::Bind { path, .. } => format!("host {path}"),
                            MountSource::Tmpfs { .. } => "tmpfs".to_owned(),
                        };
                        format!("{source} → {}", m.target)
                    })
                    .collect(),
                depends_on: s
                    .depends_on
                    .iter()
                    .map(|d| format!("{} ({})", d.service, condition(d.condition)))
                    .collect(),
                ports: s
                    .ports
                    .iter()
                    .map(|p| {
                        let chosen = publish
                            .iter()
                            .find(|c| c.service == s.name && c.port == p.target);
                        PortChoice {
                            field: format!("publish.{}.{}", s.name, p.target),
                            port: p.target,
                            choice: match chosen {
                                Some(c) if c.public => "public",
                                Some(_) => "local",
                                None => "",
                            }
                            .to_owned(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let routes = plan
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| PlanRouteRow {
                service: r.service.clone(),
                port: r
                    .port
                    .map_or_else(|| "the image's".to_owned(), |p| p.to_string()),
                path: r.path.clone(),
                host: hosts.get(i).cloned().flatten().unwrap_or_default(),
                first: !plan.routes[..i].iter().any(|o| o.service == r.service),
                domain: form
                    .fields
                    .get(&format!("domain.{}", r.service))
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        let mut warnings = Vec::new();
        let mut dangers = Vec::new();
        for w in &plan.warnings {
            let mut row = WarningRow::from(w);
            if w.needs_confirmation() {
                row.field = format!("danger.{}", dangers.len());
                row.ticked = form.danger_ticked(dangers.len());
                dangers.push(row);
            } else {
                warnings.push(row);
            }
        }
        PlanView {
            fields,
            services,
            routes,
            generated: plan.generated.iter().map(|g| g.name.clone()).collect(),
            warnings,
            dangers,
            errors,
            ok: plan.is_ok(),
        }
    }
}

/// A plan to show when berth could not plan the request (a bad name, a
/// name in use): the same file planned without the server's knowledge, so
/// the form still shows what it would install. Never installed from.
fn display_plan(
    template: Option<&berth_compose::catalogue::Template>,
    input: &StackInput,
) -> Option<Plan> {
    let options = berth_compose::Options {
        inputs: input.inputs.clone(),
        ..Default::default()
    };
    if input.template.is_some() {
        return Some(template?.plan(&options));
    }
    let text = input.compose.as_deref().filter(|t| !t.trim().is_empty())?;
    Some(berth_compose::plan(
        text,
        berth_compose::Format::detect(text),
        &options,
    ))
}

// ---------------------------------------------------------------------------
// Install pages

#[derive(askama::Template)]
#[template(path = "stack_install.html")]
pub struct InstallPage {
    pub chrome: Chrome,
    pub project: String,
    /// The catalogue template; `None` on the own-file form.
    pub template: Option<Entry>,
    pub action_url: String,
    pub form: StackForm,
    pub plan: Option<PlanView>,
    pub errors: FieldErrors,
    pub public_confirmed: bool,
}

fn install_url(project: &ProjectName, template: Option<&Entry>) -> String {
    match template {
        Some(t) => format!("/projects/{project}/install/{}", t.id),
        None => format!("/projects/{project}/install"),
    }
}

fn template_entry(state: &AppState, id: &str) -> Result<Entry, WebError> {
    catalogue::find(state, id).ok_or(WebError::NotFound("template"))
}

pub async fn own_form(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<String>,
) -> Result<Response, WebError> {
    let project = parse_path(ProjectName::parse, &project, "project")?;
    state.projects.find_project(&project).await?;
    let form = StackForm {
        source: "compose".to_owned(),
        ..StackForm::default()
    };
    Ok(render(&InstallPage {
        chrome: Chrome::from(&user),
        project: project.to_string(),
        template: None,
        action_url: install_url(&project, None),
        form,
        plan: None,
        errors: FieldErrors::default(),
        public_confirmed: false,
    })
    .into_response())
}

pub async fn template_form(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, template)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let project = parse_path(ProjectName::parse, &project, "project")?;
    let entry = template_entry(&state, &template)?;
    state.projects.find_project(&project).await?;
    let form = StackForm {
        name: entry.id.clone(),
        ..StackForm::default()
    };
    let (page, _) = planned_page(&state, &user, &project, Some(entry), form, false).await?;
    Ok(render(&page).into_response())
}

pub async fn own_submit(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<String>,
    CsrfForm(form): CsrfForm<StackForm>,
) -> Result<Response, WebError> {
    let project = parse_path(ProjectName::parse, &project, "project")?;
    submit(&state, &user, &project, None, form).await
}

pub async fn template_submit(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, template)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<StackForm>,
) -> Result<Response, WebError> {
    let project = parse_path(ProjectName::parse, &project, "project")?;
    let entry = template_entry(&state, &template)?;
    submit(&state, &user, &project, Some(entry), form).await
}

/// Preview re-shows the form with the plan for what was typed; Install
/// installs when the plan is clean and every confirmation is ticked, and
/// otherwise re-shows the form with the reasons.
async fn submit(
    state: &AppState,
    user: &CurrentUser,
    project: &ProjectName,
    template: Option<Entry>,
    form: StackForm,
) -> Result<Response, WebError> {
    let install = form.action == "install";
    let (mut page, request) = planned_page(state, user, project, template, form, true).await?;
    let Some(mut request) = request.filter(|_| install) else {
        let status = if page.errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        return Ok((status, render(&page)).into_response());
    };
    let plan = page.plan.as_ref();
    let plan_ok = plan.is_some_and(|p| p.ok);
    if !plan_ok {
        page.errors.add(
            "form",
            "The plan has errors (listed below): nothing was installed.",
        );
    }
    let dangers = plan.map_or(0, |p| p.dangers.len());
    if (0..dangers).any(|n| !page.form.danger_ticked(n)) {
        page.errors.add(
            "dangers",
            "Tick each dangerous setting to confirm it, or change the file.",
        );
    }
    if request.publish.iter().any(|p| p.public) && !page.public_confirmed {
        page.errors.add(
            "publish",
            "Confirm that the ports you chose to publish on every interface may be reached from the internet.",
        );
    }
    if page.errors.is_empty() {
        request.confirm_dangerous = dangers > 0;
        match state.stacks.install(project, request).await {
            Ok(stack) => {
                return Ok(Redirect::to(&stack_url(project, &stack.name)).into_response());
            }
            Err(err) => page.errors = form_errors(WebError::from(err))?,
        }
    }
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
}

/// Validation errors and conflicts (about the name) go on the form, as
/// `field_errors` puts them; anything else is the error page.
fn form_errors(err: WebError) -> Result<FieldErrors, WebError> {
    match err {
        err @ (WebError::Invalid(_) | WebError::Conflict(_)) => Ok(field_errors(err, "name")),
        other => Err(other),
    }
}

/// The install page for what the form holds, planned by `Stacks::plan`
/// when the request parses; also the parsed request.
async fn planned_page(
    state: &AppState,
    user: &CurrentUser,
    project: &ProjectName,
    template: Option<Entry>,
    form: StackForm,
    submitted: bool,
) -> Result<(InstallPage, Option<berth_deploy::StackRequest>), WebError> {
    let input = form.to_input(template.as_ref().map(|t| t.id.as_str()));
    let mut errors = FieldErrors::default();
    let request = match input.parse(&crate::api::stacks::known_templates(state)) {
        Ok(request) => Some(request),
        Err(e) => {
            errors = e;
            None
        }
    };
    let mut plan = None;
    if let Some(request) = &request {
        match state.stacks.plan(project, request).await {
            Ok(preview) => {
                let hosts: Vec<Option<String>> = preview
                    .hosts
                    .iter()
                    .map(|h| h.as_ref().map(|h| h.to_string()))
                    .collect();
                plan = Some(PlanView::new(&preview.plan, &hosts, &form, submitted));
            }
            Err(err) => errors = form_errors(WebError::from(err))?,
        }
    }
    if plan.is_none() {
        plan = display_plan(
            input
                .template
                .as_deref()
                .and_then(|id| state.stacks.template(id))
                .as_ref(),
            &input,
        )
        .map(|p| PlanView::new(&p, &[], &form, submitted));
    }
    let request = request.filter(|_| errors.is_empty());
    Ok((
        InstallPage {
            chrome: Chrome::from(user),
            project: project.to_string(),
            action_url: install_url(project, template.as_ref()),
            template,
            public_confirmed: form.public_confirmed(),
            form,
            plan,
            errors,
        },
        request,
    ))
}

// ---------------------------------------------------------------------------
// The stack page

pub struct StackRow {
    pub project: String,
    pub name: String,
    pub status: &'static str,
    pub message: String,
    pub source_kind: String,
    pub template: String,
    /// Installing or updating: the page refreshes itself.
    pub transitional: bool,
    /// An admin confirmed the plan's dangerous settings at install.
    pub dangerous_confirmed: bool,
}

pub struct ServiceRow {
    pub name: String,
    pub image: String,
    pub unpinned: bool,
    pub state: &'static str,
    pub exit_code: Option<i64>,
    pub health: String,
    pub strategy: &'static str,
    pub published: Vec<String>,
    pub depends_on: String,
    /// The names of its environment variables (never their values).
    pub env_keys: String,
    /// Its image is a database engine berth backs up: the row links to its backups.
    pub database: bool,
}

#[derive(askama::Template)]
#[template(path = "stack.html")]
pub struct StackPage {
    pub chrome: Chrome,
    pub stack: StackRow,
    pub services: Vec<ServiceRow>,
    pub routes: Vec<StackRoute>,
    pub warnings: Vec<WarningRow>,
    /// The template's inputs, for the update form (empty keeps a value).
    pub update_fields: Vec<InputField>,
    /// The update form's other inputs, `KEY=VALUE` a line.
    pub update_inputs_text: String,
    /// The update form's domain field per routed service: (service, value).
    pub update_domains: Vec<(String, String)>,
    pub update_errors: FieldErrors,
    pub flash: String,
    pub flash_error: bool,
}

impl StackPage {
    /// `template` is the catalogue's template the stack came from, if any:
    /// its inputs become the update form's fields.
    pub fn new(
        view: &StackView,
        template: Option<&berth_compose::catalogue::Template>,
        chrome: Chrome,
    ) -> StackPage {
        let s = &view.stack;
        let update_fields = template
            .map(|t| t.plan(&berth_compose::Options::default()))
            .map(|plan| {
                plan.inputs
                    .iter()
                    .map(|input| {
                        let secret = is_secret(input);
                        InputField {
                            name: input.name.clone(),
                            html_type: match html_type(input.kind, secret) {
                                // Empty must be possible: it keeps the installed value.
                                "boolean" => "text",
                                other => other,
                            },
                            value: String::new(),
                            required: false,
                            description: input.description.clone().unwrap_or_default(),
                            secret,
                            reenter: false,
                            error: String::new(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        StackPage {
            chrome,
            stack: StackRow {
                project: s.project.to_string(),
                name: s.name.to_string(),
                status: s.status.as_str(),
                message: s.message.clone().unwrap_or_default(),
                source_kind: s.source_kind.clone(),
                template: s.template.clone().unwrap_or_default(),
                transitional: matches!(s.status, StackStatus::Installing | StackStatus::Updating),
                dangerous_confirmed: s.dangerous_confirmed,
            },
            services: view
                .services
                .iter()
                .map(|sv| ServiceRow {
                    name: sv.name.clone(),
                    image: sv.image.clone(),
                    unpinned: sv.unpinned,
                    state: sv.state.as_str(),
                    exit_code: crate::api::stacks::exit_code(&sv.state),
                    health: sv.health.clone().unwrap_or_default(),
                    strategy: sv.strategy.as_str(),
                    published: sv.published.clone(),
                    depends_on: sv.depends_on.join(", "),
                    env_keys: sv.env_keys.join(", "),
                    database: berth_deploy::engine_of(&sv.image, &BTreeMap::new()).is_some(),
                })
                .collect(),
            routes: view.routes.clone(),
            warnings: view.warnings.iter().map(WarningRow::from).collect(),
            update_fields,
            update_inputs_text: String::new(),
            update_domains: own_domains(&view.routes),
            update_errors: FieldErrors::default(),
            flash: String::new(),
            flash_error: false,
        }
    }
}

/// Each routed service once, in route order, with its own domain (empty
/// when it answers on the generated host).
fn own_domains(routes: &[StackRoute]) -> Vec<(String, String)> {
    let mut domains: Vec<(String, String)> = Vec::new();
    for r in routes {
        if domains.iter().any(|(service, _)| service == &r.service) {
            continue;
        }
        let own = routes
            .iter()
            .find(|o| o.service == r.service && o.own_domain);
        domains.push((
            r.service.clone(),
            own.map(|o| o.host.to_string()).unwrap_or_default(),
        ));
    }
    domains
}

/// The stack page as stored and as Docker has it now, its update form
/// empty. Its template is the catalogue's, if still there (a
/// `--templates-dir` file may have been removed since).
async fn stack_page(
    state: &AppState,
    user: &CurrentUser,
    project: &ProjectName,
    name: &StackName,
) -> Result<StackPage, WebError> {
    let view = state.stacks.get(project, name).await?;
    let template = view
        .stack
        .template
        .as_deref()
        .and_then(|id| state.stacks.template(id));
    Ok(StackPage::new(&view, template.as_ref(), Chrome::from(user)))
}

fn parse_names(project: &str, stack: &str) -> Result<(ProjectName, StackName), WebError> {
    Ok((
        parse_path(ProjectName::parse, project, "project")?,
        parse_path(StackName::parse, stack, "stack")?,
    ))
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, stack)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let (project, name) = parse_names(&project, &stack)?;
    let mut page = stack_page(&state, &user, &project, &name).await?;
    prefill_update(&state, &mut page, &project, &name, None).await?;
    Ok(render(&page).into_response())
}

/// Fills the update form: what the user typed (after an error or a
/// preview), else the values installed now. Secret values are never put
/// back into the page: their fields stay empty, which keeps them.
async fn prefill_update(
    state: &AppState,
    page: &mut StackPage,
    project: &ProjectName,
    name: &StackName,
    typed: Option<&UpdateForm>,
) -> Result<(), WebError> {
    let (_, installed) = state.stacks.installed(project, name).await?;
    for field in page.update_fields.iter_mut().filter(|f| !f.secret) {
        let typed = typed
            .and_then(|t| t.fields.get(&format!("input.{}", field.name)))
            .filter(|v| !v.is_empty());
        if let Some(value) = typed.or_else(|| installed.get(&field.name)) {
            field.value = value.clone();
        }
    }
    if let Some(typed) = typed {
        for (service, value) in page.update_domains.iter_mut() {
            if let Some(v) = typed.fields.get(&format!("domain.{service}")) {
                *value = v.clone();
            }
        }
    }
    page.update_inputs_text = match typed {
        Some(t) => t.inputs_text.clone(),
        None => installed
            .iter()
            .filter(|(k, _)| !page.update_fields.iter().any(|f| &f.name == *k))
            .filter(|(k, _)| !crate::stack_forms::looks_secret(k))
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect(),
    };
    Ok(())
}

/// The update form: the template's input fields (`input.<NAME>`), other
/// inputs as `KEY=VALUE` lines, and, for a pasted file, a new file.
#[derive(Default, serde::Deserialize)]
pub struct UpdateForm {
    #[serde(default)]
    pub compose: String,
    #[serde(default)]
    pub inputs_text: String,
    #[serde(default, flatten)]
    pub fields: BTreeMap<String, String>,
}

impl UpdateForm {
    pub fn parse(&self) -> Result<StackUpdateInput, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut inputs = typed_inputs(&self.fields);
        for (n, line) in self.inputs_text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    inputs.insert(key.trim().to_owned(), value.to_owned());
                }
                _ => errors.add("inputs_text", format!("line {}: write KEY=VALUE", n + 1)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let domains = fields_under(&self.fields, "domain.");
        Ok(StackUpdateInput {
            compose: (!self.compose.trim().is_empty()).then(|| self.compose.clone()),
            inputs,
            // The page always offers every routed service's field.
            domains: (!domains.is_empty()).then_some(domains),
            ..StackUpdateInput::default()
        })
    }
}

pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, stack)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<UpdateForm>,
) -> Result<Response, WebError> {
    let (project, name) = parse_names(&project, &stack)?;
    let preview = form.fields.get("action").is_some_and(|a| a == "preview");
    let parsed = form
        .parse()
        .and_then(|input| input.parse(&crate::api::stacks::known_templates(&state)))
        .map_err(WebError::Invalid);
    let result = match parsed {
        Ok(update) if preview => state
            .stacks
            .update_preview(&project, &name, update)
            .await
            .map_err(WebError::from),
        Ok(update) => state
            .stacks
            .update(&project, &name, update)
            .await
            .map_err(WebError::from),
        Err(err) => Err(err),
    };
    let mut page = stack_page(&state, &user, &project, &name).await?;
    let keep_typed = preview || result.is_err();
    prefill_update(
        &state,
        &mut page,
        &project,
        &name,
        keep_typed.then_some(&form),
    )
    .await?;
    match result {
        Ok(outcome) => {
            let unchanged = if outcome.unchanged.is_empty() {
                "none".to_owned()
            } else {
                outcome.unchanged.join(", ")
            };
            page.flash = match (preview, outcome.changed.is_empty()) {
                (true, true) => "This update would change nothing: every service is up to date. Nothing was changed.".to_owned(),
                (true, false) => format!(
                    "This update would recreate {}; unchanged: {unchanged}. Nothing was changed yet: press Update to apply it.",
                    outcome.changed.join(", ")
                ),
                (false, true) => "Nothing changed: every service was already up to date.".to_owned(),
                (false, false) => format!(
                    "Recreated {}; unchanged: {unchanged}.",
                    outcome.changed.join(", ")
                ),
            };
            Ok(render(&page).into_response())
        }
        Err(err) => {
            let status = err.status_code();
            page.update_errors = form_errors(err)?;
            page.flash = "The stack was not updated: see the update form.".to_owned();
            page.flash_error = true;
            Ok((status, render(&page)).into_response())
        }
    }
}

/// The uninstall form: the stack's name typed again, and what becomes of its volumes.
#[derive(Default, serde::Deserialize)]
pub struct UninstallForm {
    #[serde(default)]
    pub confirm: String,
    #[serde(default)]
    pub volumes: String,
}

pub async fn uninstall(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, stack)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<UninstallForm>,
) -> Result<Response, WebError> {
    let (project, name) = parse_names(&project, &stack)?;
    // As with apps, a slip of the mouse must not remove a stack.
    let result = if form.confirm.trim() != name.as_str() {
        Err(format!(
            "Nothing was uninstalled: type the stack's name, {name}, to confirm."
        ))
    } else if let Some(delete) = volumes_choice(&form.volumes) {
        state
            .stacks
            .uninstall(&project, &name, delete)
            .await
            .map_err(|e| WebError::from(e).public_message())
    } else {
        Err("Nothing was uninstalled: choose whether its volumes are kept or deleted.".to_owned())
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/projects/{project}")).into_response()),
        Err(message) => {
            let mut page = stack_page(&state, &user, &project, &name).await?;
            page.flash = message;
            page.flash_error = true;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
    }
}

#[derive(askama::Template)]
#[template(path = "stack_logs.html")]
pub struct LogsPage {
    pub chrome: Chrome,
    pub project: String,
    pub stack: String,
    pub service: String,
    pub lines: Vec<String>,
    pub error: String,
}

pub async fn logs(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, stack, service)): Path<(String, String, String)>,
    Query(query): Query<LogsQuery>,
) -> Result<Response, WebError> {
    let (project, name) = parse_names(&project, &stack)?;
    let service = service_name(&service)?;
    let (lines, error) = match state
        .stacks
        .service_logs(&project, &name, service, query.count())
        .await
    {
        Ok(lines) => (lines, String::new()),
        Err(err) => {
            let err = WebError::from(err);
            if matches!(err, WebError::NotFound(_)) {
                return Err(err);
            }
            (
                Vec::new(),
                format!("Logs are unavailable: {}", err.public_message()),
            )
        }
    };
    Ok(render(&LogsPage {
        chrome: Chrome::from(&user),
        project: project.to_string(),
        stack: name.to_string(),
        service: service.to_owned(),
        lines,
        error,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use askama::Template;
    use berth_compose::template::Input;
    use berth_core::{DeployStrategy, DomainName, Stack, StackId};
    use berth_deploy::{ServiceState, ServiceView};

    use super::*;

    fn chrome() -> Chrome {
        Chrome {
            username: "admin".into(),
            csrf: "the-csrf-token".into(),
        }
    }

    fn form(fields: &[(&str, &str)]) -> StackForm {
        StackForm {
            name: "Bad_Name".into(),
            source: "compose".into(),
            action: "install".into(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..StackForm::default()
        }
    }

    /// A plan with a typed secret input and a plain one, as a template gives them.
    fn plan_with_inputs() -> Plan {
        let mut plan = berth_compose::catalogue::find("gitea")
            .unwrap()
            .plan(&berth_compose::Options::default());
        let mut secret = Input::variable("SMTP_PASS", None, true);
        secret.kind = InputKind::Secret;
        plan.inputs.push(secret);
        plan
    }

    fn install_page(
        plan: &Plan,
        hosts: &[Option<String>],
        form: StackForm,
        errors: FieldErrors,
    ) -> String {
        InstallPage {
            chrome: chrome(),
            project: "demo".into(),
            template: Some(Entry::of(berth_compose::catalogue::find("gitea").unwrap())),
            action_url: "/projects/demo/install/gitea".into(),
            plan: Some(PlanView::new(plan, hosts, &form, true)),
            form,
            errors,
            public_confirmed: false,
        }
        .render()
        .unwrap()
    }

    #[test]
    fn the_form_comes_back_with_typed_values_but_never_a_secret() {
        let form = form(&[
            ("input.APP_NAME", "My own forge"),
            ("input.SMTP_PASS", "hunter2-do-not-echo"),
            ("csrf", "the-csrf-token"),
        ]);
        let mut errors = FieldErrors::default();
        errors.add("name", "must be lowercase");
        let html = install_page(&plan_with_inputs(), &[], form, errors);
        assert!(html.contains("value=\"My own forge\""), "{html}");
        assert!(html.contains("value=\"Bad_Name\""));
        assert!(html.contains("must be lowercase"));
        assert!(
            !html.contains("hunter2"),
            "a secret went back into the page"
        );
        assert!(html.contains("name=\"input.SMTP_PASS\" type=\"password\" value=\"\""));
        assert!(html.contains("enter it again"));
    }

    #[test]
    fn a_compose_variable_named_like_a_secret_is_not_echoed_either() {
        let text = "services:\n  web:\n    image: nginx:1.27.3\n    environment:\n      DB_PASSWORD: ${DB_PASSWORD}\n      TITLE: ${TITLE}\n";
        let mut f = form(&[
            ("input.DB_PASSWORD", "s3cret-value"),
            ("input.TITLE", "Hello"),
        ]);
        f.compose = text.into();
        let input = f.to_input(None);
        let plan = display_plan(None, &input).unwrap();
        let view = PlanView::new(&plan, &[], &f, true);
        let password = view
            .fields
            .iter()
            .find(|x| x.name == "DB_PASSWORD")
            .unwrap();
        assert_eq!(
            (password.html_type, password.value.as_str()),
            ("password", "")
        );
        let title = view.fields.iter().find(|x| x.name == "TITLE").unwrap();
        assert_eq!(title.value, "Hello");
    }

    #[test]
    fn the_plan_shows_services_routes_and_generated_names_only() {
        let plan = berth_compose::catalogue::find("gitea")
            .unwrap()
            .plan(&berth_compose::Options::default());
        let hosts = vec![Some("gitea.demo.example.com".to_owned())];
        let f = StackForm::default();
        let view = PlanView::new(&plan, &hosts, &f, false);
        assert_eq!(view.services[1].strategy, "recreate");
        assert_eq!(view.routes[0].host, "gitea.demo.example.com");
        assert_eq!(view.generated, ["DB_PASSWORD", "SECRET_KEY"]);
        let html = install_page(&plan, &hosts, f, FieldErrors::default());
        assert!(html.contains("gitea.demo.example.com"));
        assert!(html.contains("<code>DB_PASSWORD</code>"));
    }

    #[test]
    fn dangerous_settings_each_need_a_tick_and_an_unpinned_image_is_flagged() {
        let text =
            "services:\n  web:\n    image: nginx\n    privileged: true\n    ports: [\"8080:80\"]\n";
        let plan = berth_compose::plan(
            text,
            berth_compose::Format::Compose,
            &berth_compose::Options::default(),
        );
        let f = form(&[("danger.0", "on"), ("publish.web.80", "public")]);
        let view = PlanView::new(&plan, &[], &f, true);
        assert!(view.services[0].unpinned);
        assert_eq!(view.dangers.len(), plan.dangers().count());
        assert!(!view.dangers.is_empty(), "privileged is dangerous");
        assert!(view.dangers[0].ticked);
        assert_eq!(view.services[0].ports[0].choice, "public");
        assert_eq!(
            f.to_input(None).publish,
            [PublishInput {
                service: "web".into(),
                port: 80,
                public: true
            }]
        );
    }

    fn stack_view() -> StackView {
        let service = |name: &str, state: ServiceState, image: &str, unpinned: bool| ServiceView {
            name: name.into(),
            image: image.into(),
            unpinned,
            container: format!("berth_demo_tea_{name}"),
            state,
            health: None,
            strategy: DeployStrategy::Recreate,
            published: vec![],
            depends_on: vec![],
            env_keys: vec!["DB_PASSWORD".into()],
        };
        StackView {
            stack: Stack {
                id: StackId::new(1),
                project: ProjectName::parse("demo").unwrap(),
                name: StackName::parse("tea").unwrap(),
                source_kind: "template".into(),
                template: Some("gitea".into()),
                status: StackStatus::Running,
                message: None,
                dangerous_confirmed: false,
                created_at: 0,
                updated_at: 0,
            },
            services: vec![
                service("migrate", ServiceState::Done, "gitea/gitea:1.22.6", false),
                service("worker", ServiceState::Exited(3), "busybox", true),
            ],
            routes: vec![StackRoute {
                service: "gitea".into(),
                port: 3000,
                host: DomainName::parse("tea.demo.example.com").unwrap(),
                path: "/".into(),
                url: Some("https://tea.demo.example.com/".into()),
                own_domain: false,
            }],
            warnings: vec![],
        }
    }

    #[test]
    fn the_stack_page_shows_done_as_done_an_exit_code_and_the_unpinned_badge() {
        let view = stack_view();
        let template = view
            .stack
            .template
            .as_deref()
            .and_then(berth_compose::catalogue::find);
        let page = StackPage::new(&view, template, chrome());
        let html = page.render().unwrap();
        assert!(html.contains("status-done\">done</span>"), "{html}");
        assert!(html.contains("exited (3)"));
        assert!(html.contains(">unpinned</span>"));
        assert!(html.contains("href=\"https://tea.demo.example.com/\""));
        // The template's inputs come back as empty update fields.
        assert!(html.contains("name=\"input.APP_NAME\""));
        assert!(html.contains("name=\"confirm\""));
    }

    #[test]
    fn the_update_form_offers_each_routed_service_once_with_its_own_domain() {
        let route = |service: &str, host: &str, own_domain: bool| StackRoute {
            service: service.into(),
            port: 80,
            host: DomainName::parse(host).unwrap(),
            path: "/".into(),
            url: None,
            own_domain,
        };
        let routes = [
            route("web", "web.demo.example.com", false),
            route("api", "api.demo.example.com", false),
            route("web", "shop.example.org", true),
        ];
        assert_eq!(
            own_domains(&routes),
            [
                ("web".to_owned(), "shop.example.org".to_owned()),
                ("api".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn the_update_form_reads_key_value_lines_and_names_a_bad_line() {
        let ok = UpdateForm {
            inputs_text: "# a comment\nTITLE=Hello = world\n\n".into(),
            fields: [("input.APP_NAME".to_owned(), "Forge".to_owned())].into(),
            ..UpdateForm::default()
        };
        let parsed = ok.parse().unwrap();
        assert_eq!(parsed.inputs["TITLE"], "Hello = world");
        assert_eq!(parsed.inputs["APP_NAME"], "Forge");
        assert!(parsed.compose.is_none());
        let bad = UpdateForm {
            inputs_text: "no equals sign".into(),
            ..UpdateForm::default()
        };
        assert!(
            bad.parse()
                .unwrap_err()
                .get("inputs_text")
                .unwrap()
                .contains("line 1")
        );
    }

    #[test]
    fn a_service_name_in_a_url_is_checked() {
        assert!(service_name("db").is_ok());
        assert!(service_name("my_app.v2-x").is_ok());
        assert!(service_name("../etc").is_err());
        assert!(service_name("").is_err());
    }
}
