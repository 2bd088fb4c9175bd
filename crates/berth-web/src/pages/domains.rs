//! The app's domains tab: its default host, its domains and static sites,
//! forms to add one and buttons to remove one.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use berth_core::{AppName, Domain, DomainName, DomainTarget, PathPrefix, ProjectName};

use super::parse_path;
use super::projects::field_errors;
use crate::auth::CurrentUser;
use crate::auth::csrf::CsrfForm;
use crate::forms::{DomainInput, FieldErrors};
use crate::routes::{Access, Table};
use crate::views::{AppRow, Chrome, render};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(
        Access::Session,
        "/projects/{project}/apps/{app}/domains",
        show,
    );
    t.post(
        Access::Session,
        "/projects/{project}/apps/{app}/domains",
        add,
    );
    t.post(
        Access::Session,
        "/projects/{project}/apps/{app}/domains/delete",
        remove,
    );
}

/// One route as the tab lists it.
pub struct DomainRow {
    pub host: String,
    pub path_prefix: String,
    /// `None` for a wildcard, which cannot be opened as such.
    pub url: Option<String>,
    pub strip_prefix: bool,
    /// `app` or the directory of a static site.
    pub serves: String,
    pub spa_fallback: bool,
    pub tls_mode: &'static str,
    pub redirect_https: bool,
    pub hsts: bool,
}

#[derive(askama::Template)]
#[template(path = "domains.html")]
pub struct DomainsPage {
    pub chrome: Chrome,
    pub app: AppRow,
    pub default_host: String,
    pub default_url: String,
    pub domains: Vec<DomainRow>,
    pub input: DomainInput,
    pub errors: FieldErrors,
    pub static_input: DomainInput,
    pub static_errors: FieldErrors,
    pub flash: String,
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, app)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let (project, name) = parse_names(&project, &app)?;
    let page = page(&state, &user, &project, &name, Forms::default()).await?;
    Ok(render(&page).into_response())
}

pub async fn add(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, app)): Path<(String, String)>,
    CsrfForm(input): CsrfForm<DomainInput>,
) -> Result<Response, WebError> {
    let (project, name) = parse_names(&project, &app)?;
    let input = input.unticked_boxes_are_false();
    let result = match input.parse() {
        Ok(new) => state
            .domains
            .add_domain(&project, &name, new)
            .await
            .map(drop)
            .map_err(WebError::from),
        Err(errors) => Err(WebError::Invalid(errors)),
    };
    match result {
        Ok(()) => Ok(Redirect::to(&domains_url(&project, &name)).into_response()),
        Err(err @ (WebError::Invalid(_) | WebError::Conflict(_))) => {
            let status = err.status_code();
            let errors = field_errors(err, "host");
            let forms = if input.is_static() {
                Forms {
                    static_input: input,
                    static_errors: errors,
                    ..Forms::default()
                }
            } else {
                Forms {
                    input,
                    errors,
                    ..Forms::default()
                }
            };
            let page = page(&state, &user, &project, &name, forms).await?;
            Ok((status, render(&page)).into_response())
        }
        Err(err) => Err(err),
    }
}

#[derive(serde::Deserialize)]
pub struct RemoveForm {
    host: String,
    #[serde(default)]
    path_prefix: String,
}

pub async fn remove(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project, app)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<RemoveForm>,
) -> Result<Response, WebError> {
    let (project, name) = parse_names(&project, &app)?;
    let host = parse_path(DomainName::parse, &form.host, "domain")?;
    let prefix = parse_path(PathPrefix::parse, &form.path_prefix, "domain")?;
    match state
        .domains
        .remove_domain(&project, &name, &host, Some(&prefix))
        .await
    {
        Ok(()) => Ok(Redirect::to(&domains_url(&project, &name)).into_response()),
        Err(err) => {
            let err = WebError::from(err);
            if matches!(err, WebError::Internal(_)) {
                return Err(err);
            }
            let forms = Forms {
                flash: err.public_message(),
                ..Forms::default()
            };
            let page = page(&state, &user, &project, &name, forms).await?;
            Ok((err.status_code(), render(&page)).into_response())
        }
    }
}

/// What the two forms show: typed input and errors, kept after a failure.
struct Forms {
    input: DomainInput,
    errors: FieldErrors,
    static_input: DomainInput,
    static_errors: FieldErrors,
    flash: String,
}

impl Default for Forms {
    fn default() -> Self {
        Forms {
            input: DomainInput {
                redirect_https: Some(true),
                ..DomainInput::default()
            },
            errors: FieldErrors::default(),
            static_input: DomainInput {
                redirect_https: Some(true),
                ..DomainInput::default()
            },
            static_errors: FieldErrors::default(),
            flash: String::new(),
        }
    }
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    project: &ProjectName,
    name: &AppName,
    forms: Forms,
) -> Result<DomainsPage, WebError> {
    let (app, domains) = state.domains.list_domains(project, name).await?;
    let default_host = state
        .domains
        .default_host(project, name)
        .map(|h| h.to_string())
        .unwrap_or_default();
    let default_url = state
        .domains
        .site_url(&default_host, "/")
        .filter(|_| !default_host.is_empty())
        .unwrap_or_default();
    Ok(DomainsPage {
        chrome: Chrome::from(user),
        app: AppRow::from(&app),
        default_host,
        default_url,
        domains: domains.iter().map(|d| row(state, d)).collect(),
        input: forms.input,
        errors: forms.errors,
        static_input: forms.static_input,
        static_errors: forms.static_errors,
        flash: forms.flash,
    })
}

fn row(state: &AppState, d: &Domain) -> DomainRow {
    let path = if d.path_prefix.is_root() {
        "/".to_owned()
    } else {
        format!("{}/", d.path_prefix)
    };
    let (serves, spa_fallback) = match &d.target {
        DomainTarget::App => ("app".to_owned(), false),
        DomainTarget::Static { dir, spa_fallback } => (dir.display().to_string(), *spa_fallback),
    };
    DomainRow {
        host: d.host.to_string(),
        path_prefix: d.path_prefix.to_string(),
        url: (!d.host.is_wildcard())
            .then(|| state.domains.site_url(d.host.as_str(), &path))
            .flatten(),
        strip_prefix: d.strip_prefix,
        serves,
        spa_fallback,
        tls_mode: d.tls_mode.as_str(),
        redirect_https: d.redirect_https,
        hsts: d.hsts,
    }
}

fn parse_names(project: &str, app: &str) -> Result<(ProjectName, AppName), WebError> {
    Ok((
        parse_path(ProjectName::parse, project, "project")?,
        parse_path(AppName::parse, app, "app")?,
    ))
}

fn domains_url(project: &ProjectName, app: &AppName) -> String {
    format!("/projects/{project}/apps/{app}/domains")
}
