//! Installation settings: the dashboard's own domain, served through the edge.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use berth_core::DomainName;

use crate::auth::CurrentUser;
use crate::auth::csrf::CsrfForm;
use crate::forms::FieldErrors;
use crate::routes::{Access, Table};
use crate::views::{Chrome, render};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Session, "/settings", show);
    t.post(
        Access::Session,
        "/settings/dashboard-domain",
        set_dashboard_domain,
    );
}

#[derive(askama::Template)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    pub chrome: Chrome,
    /// Where apps' default hosts live (`--base-domain`).
    pub base_domain: String,
    /// The domain as saved, or empty.
    pub current: String,
    /// Where it opens through the edge, when set.
    pub url: String,
    pub input: String,
    pub errors: FieldErrors,
}

#[derive(serde::Deserialize)]
pub struct DashboardDomainForm {
    #[serde(default)]
    domain: String,
}

pub async fn show(State(state): State<AppState>, user: CurrentUser) -> Result<Response, WebError> {
    let current = state.domains.dashboard_domain().await?;
    let input = current
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    Ok(render(&page(&state, &user, input, FieldErrors::default()).await?).into_response())
}

/// Sets the dashboard's domain; an empty field removes it.
pub async fn set_dashboard_domain(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<DashboardDomainForm>,
) -> Result<Response, WebError> {
    let domain = match form.domain.trim() {
        "" => None,
        typed => match DomainName::parse(typed) {
            Ok(d) if d.is_wildcard() => {
                let mut errors = FieldErrors::default();
                errors.add("domain", "must be one host name, not a wildcard");
                return invalid(&state, &user, form.domain, errors).await;
            }
            Ok(d) => Some(d),
            Err(err) => {
                let mut errors = FieldErrors::default();
                errors.add("domain", err);
                return invalid(&state, &user, form.domain, errors).await;
            }
        },
    };
    match state.domains.set_dashboard_domain(domain.as_ref()).await {
        Ok(()) => Ok(Redirect::to("/settings").into_response()),
        Err(err) => match WebError::from(err) {
            WebError::Invalid(errors) => invalid(&state, &user, form.domain, errors).await,
            other => Err(other),
        },
    }
}

async fn invalid(
    state: &AppState,
    user: &CurrentUser,
    input: String,
    errors: FieldErrors,
) -> Result<Response, WebError> {
    let page = page(state, user, input, errors).await?;
    Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    input: String,
    errors: FieldErrors,
) -> Result<SettingsPage, WebError> {
    let current = state
        .domains
        .dashboard_domain()
        .await?
        .map(|d| d.to_string())
        .unwrap_or_default();
    let url = if current.is_empty() {
        String::new()
    } else {
        state.domains.site_url(&current, "/").unwrap_or_default()
    };
    Ok(SettingsPage {
        chrome: Chrome::from(user),
        base_domain: state
            .domains
            .base_domain()
            .map(|d| d.to_string())
            .unwrap_or_default(),
        current,
        url,
        input,
        errors,
    })
}
