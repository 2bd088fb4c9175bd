//! `/api/v1/projects/{project}/apps/{app}/domains`: an app's domains and the
//! static sites mounted on them. The input type is shared with the
//! dashboard's domains tab, so both parse the same way.

use std::path::PathBuf;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use berth_core::Domain;
use berth_core::DomainTarget;
use berth_core::NewDomain;
use berth_core::TlsMode;
use berth_core::{AppName, DomainName, PathPrefix, ProjectName};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiJson;
use super::projects::project_name;
use crate::error::{ApiError, ErrorBody};
use crate::forms::FieldErrors;
use crate::{AppState, WebError};

/// A domain (or, with `static_dir`, a static site) as typed, so a form can
/// show it again with its errors.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
pub struct DomainInput {
    /// `app.example.com` or `*.example.com`.
    #[serde(default)]
    pub host: String,
    /// Optional path prefix such as `/blog`; empty or `/` for the whole host.
    #[serde(default)]
    pub path_prefix: String,
    /// Remove the prefix before passing the path on (default false; static sites always strip).
    #[serde(default, deserialize_with = "flag")]
    #[schema(value_type = Option<bool>)]
    pub strip_prefix: Option<bool>,
    /// `acme` (default), `uploaded` or `none`.
    #[serde(default)]
    pub tls_mode: String,
    /// Redirect plain HTTP to HTTPS once a certificate exists (default true).
    #[serde(default, deserialize_with = "flag")]
    #[schema(value_type = Option<bool>)]
    pub redirect_https: Option<bool>,
    /// Send Strict-Transport-Security over HTTPS (default false).
    #[serde(default, deserialize_with = "flag")]
    #[schema(value_type = Option<bool>)]
    pub hsts: Option<bool>,
    /// Serve this absolute directory instead of the app (a static site).
    #[serde(default)]
    pub static_dir: Option<String>,
    /// For a static site: answer `index.html` for paths that do not exist.
    #[serde(default, deserialize_with = "flag")]
    #[schema(value_type = Option<bool>)]
    pub spa_fallback: Option<bool>,
}

impl DomainInput {
    pub fn is_static(&self) -> bool {
        self.static_dir.is_some()
    }

    /// An HTML form leaves an unticked box out; there, absent means no.
    pub fn unticked_boxes_are_false(mut self) -> DomainInput {
        for flag in [
            &mut self.strip_prefix,
            &mut self.redirect_https,
            &mut self.hsts,
            &mut self.spa_fallback,
        ] {
            flag.get_or_insert(false);
        }
        self
    }

    pub fn parse(&self) -> Result<NewDomain, FieldErrors> {
        let mut errors = FieldErrors::default();
        let host = errors.check("host", DomainName::parse(&self.host));
        let path_prefix = errors.check("path_prefix", PathPrefix::parse(&self.path_prefix));
        let tls_mode = match self.tls_mode.trim() {
            "" => Some(TlsMode::Acme),
            mode => errors.check(
                "tls_mode",
                TlsMode::parse(mode).ok_or("must be acme, uploaded or none"),
            ),
        };
        let target = match &self.static_dir {
            None => Some(DomainTarget::App),
            Some(dir) if dir.trim().is_empty() => {
                errors.add("static_dir", "is required");
                None
            }
            Some(dir) if !dir.trim().starts_with('/') => {
                errors.add(
                    "static_dir",
                    "must be an absolute path, such as /srv/blog/public",
                );
                None
            }
            Some(dir) => Some(DomainTarget::Static {
                dir: PathBuf::from(dir.trim()),
                spa_fallback: self.spa_fallback.unwrap_or(false),
            }),
        };
        match (host, path_prefix, tls_mode, target) {
            (Some(host), Some(path_prefix), Some(tls_mode), Some(target)) if errors.is_empty() => {
                Ok(NewDomain {
                    host,
                    path_prefix,
                    // A static site's files sit at the root of its directory.
                    strip_prefix: matches!(target, DomainTarget::Static { .. })
                        || self.strip_prefix.unwrap_or(false),
                    target,
                    tls_mode,
                    redirect_https: self.redirect_https.unwrap_or(true),
                    hsts: self.hsts.unwrap_or(false),
                })
            }
            _ => Err(errors),
        }
    }
}

/// A JSON `true`/`false`, or a form checkbox's `on` (any non-empty value but `false`/`off`/`0`).
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        B(bool),
        S(String),
    }
    Ok(match Option::<Either>::deserialize(d)? {
        None => None,
        Some(Either::B(b)) => Some(b),
        Some(Either::S(s)) => Some(!matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "false" | "off" | "0" | "no"
        )),
    })
}

#[derive(Serialize, ToSchema)]
pub struct DomainOut {
    pub host: String,
    pub path_prefix: String,
    pub strip_prefix: bool,
    pub tls_mode: String,
    pub redirect_https: bool,
    pub hsts: bool,
    /// Set for a static site: the directory it serves.
    pub static_dir: Option<String>,
    pub spa_fallback: bool,
}

impl From<&Domain> for DomainOut {
    fn from(d: &Domain) -> DomainOut {
        let (static_dir, spa_fallback) = match &d.target {
            DomainTarget::App => (None, false),
            DomainTarget::Static { dir, spa_fallback } => {
                (Some(dir.display().to_string()), *spa_fallback)
            }
        };
        DomainOut {
            host: d.host.to_string(),
            path_prefix: d.path_prefix.to_string(),
            strip_prefix: d.strip_prefix,
            tls_mode: d.tls_mode.as_str().to_owned(),
            redirect_https: d.redirect_https,
            hsts: d.hsts,
            static_dir,
            spa_fallback,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DomainsOut {
    /// `<app>.<project>.<base domain>`: the host every app answers to.
    pub default_host: Option<String>,
    pub domains: Vec<DomainOut>,
}

#[derive(Deserialize, IntoParams)]
pub struct RemoveQuery {
    /// Only the route at this prefix; without it, every route of the host.
    pub path_prefix: Option<String>,
}

fn names(project: &str, app: &str) -> Result<(ProjectName, AppName), ApiError> {
    Ok((
        project_name(project)?,
        AppName::parse(app).map_err(|_| ApiError(WebError::NotFound("app")))?,
    ))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/apps/{app}/domains", tag = "domains",
    params(("project" = String, Path), ("app" = String, Path)),
    responses((status = 200, body = DomainsOut), (status = 404, body = ErrorBody)))]
pub async fn list_domains(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
) -> Result<Json<DomainsOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    let (_, domains) = state.domains.list_domains(&project, &name).await?;
    Ok(Json(DomainsOut {
        default_host: state
            .domains
            .default_host(&project, &name)
            .map(|h| h.to_string()),
        domains: domains.iter().map(DomainOut::from).collect(),
    }))
}

/// Adds a domain, or a static site when `static_dir` is given. Routed at once.
#[utoipa::path(post, path = "/api/v1/projects/{project}/apps/{app}/domains", tag = "domains",
    params(("project" = String, Path), ("app" = String, Path)), request_body = DomainInput,
    responses((status = 201, body = DomainOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_domain(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
    ApiJson(input): ApiJson<DomainInput>,
) -> Result<(StatusCode, Json<DomainOut>), ApiError> {
    let (project, name) = names(&project, &app)?;
    let new = input.parse().map_err(WebError::Invalid)?;
    let domain = state.domains.add_domain(&project, &name, new).await?;
    Ok((StatusCode::CREATED, Json(DomainOut::from(&domain))))
}

/// Removes the app's routes for the host (only the one at `path_prefix` when given).
#[utoipa::path(delete, path = "/api/v1/projects/{project}/apps/{app}/domains/{domain}", tag = "domains",
    params(("project" = String, Path), ("app" = String, Path), ("domain" = String, Path), RemoveQuery),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_domain(
    State(state): State<AppState>,
    Path((project, app, domain)): Path<(String, String, String)>,
    Query(query): Query<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    let (project, name) = names(&project, &app)?;
    let host = DomainName::parse(&domain).map_err(|_| ApiError(WebError::NotFound("domain")))?;
    let prefix = query
        .path_prefix
        .as_deref()
        .map(PathPrefix::parse)
        .transpose()
        .map_err(|_| ApiError(WebError::NotFound("domain")))?;
    state
        .domains
        .remove_domain(&project, &name, &host, prefix.as_ref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct DashboardDomain {
    /// The host the dashboard answers to through the edge; null for none.
    pub domain: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/settings/dashboard-domain", tag = "domains",
    responses((status = 200, body = DashboardDomain)))]
pub async fn get_dashboard_domain(
    State(state): State<AppState>,
) -> Result<Json<DashboardDomain>, ApiError> {
    Ok(Json(DashboardDomain {
        domain: state
            .domains
            .dashboard_domain()
            .await?
            .map(|d| d.to_string()),
    }))
}

/// Sets (or with null or an empty string removes) the dashboard's domain; routed at once.
#[utoipa::path(post, path = "/api/v1/settings/dashboard-domain", tag = "domains", request_body = DashboardDomain,
    responses((status = 200, body = DashboardDomain), (status = 422, body = ErrorBody)))]
pub async fn set_dashboard_domain(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<DashboardDomain>,
) -> Result<Json<DashboardDomain>, ApiError> {
    let domain = match input.domain.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(typed) => {
            let mut errors = FieldErrors::default();
            match DomainName::parse(typed) {
                Ok(d) if !d.is_wildcard() => Some(d),
                Ok(_) => {
                    errors.add("domain", "must be one host name, not a wildcard");
                    return Err(ApiError(WebError::Invalid(errors)));
                }
                Err(err) => {
                    errors.add("domain", err);
                    return Err(ApiError(WebError::Invalid(errors)));
                }
            }
        }
    };
    state.domains.set_dashboard_domain(domain.as_ref()).await?;
    Ok(Json(DashboardDomain {
        domain: domain.map(|d| d.to_string()),
    }))
}
