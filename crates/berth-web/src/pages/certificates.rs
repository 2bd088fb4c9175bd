//! `/certificates`: every TLS certificate of the edge with its renewal
//! state, the upload form, and the ACME settings.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use berth_core::{certificate::Certificate, certificate::Source};
use berth_edge::acme::{CertManager, Challenge};

use crate::auth::CurrentUser;
use crate::auth::csrf::CsrfForm;
use crate::forms::{AcmeSettingsForm, CertificateUpload, FieldErrors};
use crate::routes::{Access, Table};
use crate::views::{CertRow, CertificatesPage, Chrome, render, when};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Session, "/certificates", list);
    t.post(Access::Session, "/certificates/upload", upload);
    t.post(Access::Session, "/certificates/settings", save_settings);
    t.post(Access::Session, "/certificates/{id}/renew", renew);
    t.post(Access::Session, "/certificates/{id}/delete", delete);
}

pub async fn list(State(state): State<AppState>, user: CurrentUser) -> Result<Response, WebError> {
    let page = page(&state, &user, Form::default()).await?;
    Ok(render(&page).into_response())
}

pub async fn upload(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(input): CsrfForm<CertificateUpload>,
) -> Result<Response, WebError> {
    let certs = state.certs()?;
    match certs
        .upload(&input.domain, &input.certificate, &input.key, input.replace)
        .await
    {
        Ok(_) => Ok(Redirect::to("/certificates").into_response()),
        Err(err) => {
            let err = WebError::from(err);
            let WebError::Invalid(errors) = err else {
                return Err(err);
            };
            // The key is a secret: it is never echoed back into the page.
            let form = Form {
                upload: CertificateUpload {
                    key: String::new(),
                    replace: false,
                    ..input
                },
                upload_errors: errors,
                ..Form::default()
            };
            let page = page(&state, &user, form).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
    }
}

pub async fn renew(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let id = cert_id(&id)?;
    match state.certs()?.renew_now(id).await.map_err(WebError::from) {
        Ok(_) => Ok(Redirect::to("/certificates").into_response()),
        Err(WebError::Invalid(errors)) => {
            let form = Form {
                flash: errors.get("certificate").unwrap_or_default().to_owned(),
                ..Form::default()
            };
            let page = page(&state, &user, form).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
        Err(err) => Err(err),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let id = cert_id(&id)?;
    state.certs()?.delete(id).await?;
    Ok(Redirect::to("/certificates").into_response())
}

pub async fn save_settings(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(input): CsrfForm<AcmeSettingsForm>,
) -> Result<Response, WebError> {
    match state.certs()?.save_settings(&input.to_input()).await {
        Ok(()) => Ok(Redirect::to("/certificates#acme").into_response()),
        Err(err) => {
            let err = WebError::from(err);
            let WebError::Invalid(mut errors) = err else {
                return Err(err);
            };
            // The form calls the custom URL field `custom_url`.
            if let Some(message) = errors.get("directory").map(str::to_owned) {
                errors.add("custom_url", message);
            }
            let form = Form {
                acme: Some(input),
                acme_errors: errors,
                ..Form::default()
            };
            let page = page(&state, &user, form).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
    }
}

/// What a failed submission puts back into the page.
#[derive(Default)]
struct Form {
    upload: CertificateUpload,
    upload_errors: FieldErrors,
    acme: Option<AcmeSettingsForm>,
    acme_errors: FieldErrors,
    flash: String,
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    form: Form,
) -> Result<CertificatesPage, WebError> {
    let certs = state.certs()?;
    let now = berth_core::unix_now();
    let form_errors_empty = form.upload_errors.is_empty() && form.acme_errors.is_empty();
    let rows: Vec<CertRow> = certs
        .list()
        .await?
        .iter()
        .map(|c| row(certs, c, now))
        .collect();
    let mut acme = certs.settings().await?;
    let mut directory_choice = directory_choice(&acme.directory_url);
    if let Some(typed) = form.acme {
        // Show what was typed (never the HMAC key).
        acme.email = typed.email;
        acme.eab_key_id = typed.eab_key_id;
        if let Some(challenge) = Challenge::parse(typed.challenge.trim()) {
            acme.challenge = challenge;
        }
        directory_choice = match typed.directory.as_str() {
            "production" => "production",
            "staging" => "staging",
            _ => "custom",
        };
        if directory_choice == "custom" {
            acme.directory_url = typed.custom_url;
        }
    }
    let custom_url = if directory_choice == "custom" {
        acme.directory_url.clone()
    } else {
        String::new()
    };
    let hmac_hint = if acme.eab_hmac_set {
        "A key is stored. Leave empty to keep it."
    } else {
        "base64url, as your CA shows it."
    };
    Ok(CertificatesPage {
        chrome: Chrome::from(user),
        // Reload while an attempt runs, so its outcome shows up by itself
        // (not while a form with errors is shown: that would lose the input).
        refresh: rows.iter().any(|r: &CertRow| r.working) && form_errors_empty,
        certificates: rows,
        upload: form.upload,
        upload_errors: form.upload_errors,
        acme,
        directory_choice,
        custom_url,
        hmac_hint,
        acme_errors: form.acme_errors,
        flash: form.flash,
    })
}

fn directory_choice(url: &str) -> &'static str {
    match url {
        berth_edge::acme::LETS_ENCRYPT_PRODUCTION => "production",
        berth_edge::acme::LETS_ENCRYPT_STAGING => "staging",
        _ => "custom",
    }
}

pub(crate) fn row(certs: &Arc<CertManager>, cert: &Certificate, now: i64) -> CertRow {
    let in_use = cert.source == Source::Uploaded || certs.in_use(&cert.domain);
    CertRow {
        id: cert.id,
        domain: cert.domain.clone(),
        names: cert.names.join(", "),
        source: cert.source.as_str(),
        issuer: cert.issuer.clone().unwrap_or_default(),
        state: certs.state(cert, now).as_str(),
        expires: when(cert.not_after, now),
        last_attempt: when(cert.last_attempt_at, now),
        next_attempt: match cert.next_attempt_at {
            _ if cert.source != Source::Acme || !in_use => "—".to_owned(),
            Some(at) if at <= now => "now (in progress)".to_owned(),
            at => when(at, now),
        },
        working: cert.source == Source::Acme
            && in_use
            && cert.next_attempt_at.is_some_and(|at| at <= now),
        last_error: cert.last_error.clone().unwrap_or_default(),
        rate_limited: cert.rate_limited,
        renewable: cert.source == Source::Acme && in_use,
        in_use,
    }
}

/// Ids in a URL that do not parse cannot name a certificate.
pub(crate) fn cert_id(id: &str) -> Result<i64, WebError> {
    id.parse().map_err(|_| WebError::NotFound("certificate"))
}
