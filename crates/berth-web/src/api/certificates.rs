//! `/api/v1/certificates` and `/api/v1/acme`: the same service calls as the
//! certificates page.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use berth_core::{certificate::Certificate, certificate::Source};
use berth_edge::acme::{AcmeSettingsInput, Challenge};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use crate::error::{ApiError, ErrorBody};
use crate::forms::CertificateUpload;
use crate::pages::certificates::cert_id;
use crate::routes::Table;
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.api(__path_list_certificates, list_certificates);
    t.api(__path_upload_certificate, upload_certificate);
    t.api(__path_get_certificate, get_certificate);
    t.api(__path_delete_certificate, delete_certificate);
    t.api(__path_renew_certificate, renew_certificate);
    t.api(__path_get_acme_settings, get_acme_settings);
    t.api(__path_save_acme_settings, save_acme_settings);
}

#[derive(Serialize, ToSchema)]
pub struct CertificateOut {
    pub id: i64,
    /// The domain it was obtained or uploaded for.
    pub domain: String,
    /// `acme` or `uploaded`.
    pub source: String,
    /// DNS names the certificate covers (empty while pending).
    pub names: Vec<String>,
    pub issuer: Option<String>,
    /// Hex serial number.
    pub serial: Option<String>,
    /// Unix seconds.
    pub not_before: Option<i64>,
    /// Unix seconds.
    pub not_after: Option<i64>,
    /// `pending`, `valid`, `expiring` or `expired`.
    pub state: String,
    /// Whether a domain still wants it (ACME certificates nobody uses are not renewed).
    pub in_use: bool,
    /// Unix seconds of the last ACME attempt.
    pub last_attempt_at: Option<i64>,
    /// Unix seconds of the next ACME attempt (renewal or retry).
    pub next_attempt_at: Option<i64>,
    /// Consecutive failed attempts.
    pub failures: i64,
    /// The CA's (or the network's) error of the last failed attempt.
    pub last_error: Option<String>,
    /// The last failure was the CA's rate limit (`urn:ietf:params:acme:error:rateLimited`).
    pub rate_limited: bool,
    /// The CA's suggested renewal window (ACME renewal information), unix seconds.
    pub renewal_window: Option<[i64; 2]>,
}

/// The ACME settings, replaced whole.
#[derive(Deserialize, ToSchema)]
pub struct AcmeSettingsIn {
    /// Contact e-mail for the CA (expiry notices); may be empty.
    #[serde(default)]
    pub email: String,
    /// `production` (Let's Encrypt, the default), `staging`, or a directory URL.
    #[serde(default)]
    pub directory: String,
    /// External account binding key id, for CAs that require one.
    #[serde(default)]
    pub eab_key_id: String,
    /// External account binding HMAC key (base64url). Write-only: empty keeps the stored one.
    #[serde(default)]
    pub eab_hmac: String,
    /// Remove the stored EAB HMAC key.
    #[serde(default)]
    pub clear_eab: bool,
    /// Default `http-01`.
    pub challenge: Option<ChallengeIn>,
}

/// How the CA checks a domain.
#[derive(Deserialize, ToSchema, Clone, Copy)]
pub enum ChallengeIn {
    /// On port 80.
    #[serde(rename = "http-01")]
    Http01,
    /// On port 443, for servers without port 80.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

impl From<AcmeSettingsIn> for AcmeSettingsInput {
    fn from(a: AcmeSettingsIn) -> AcmeSettingsInput {
        AcmeSettingsInput {
            email: a.email,
            directory: a.directory,
            eab_key_id: a.eab_key_id,
            eab_hmac: a.eab_hmac,
            clear_eab: a.clear_eab,
            challenge: match a.challenge.unwrap_or(ChallengeIn::Http01) {
                ChallengeIn::Http01 => Challenge::Http01,
                ChallengeIn::TlsAlpn01 => Challenge::TlsAlpn01,
            }
            .as_str()
            .to_owned(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AcmeSettingsOut {
    pub email: String,
    pub directory_url: String,
    pub eab_key_id: String,
    /// Whether an EAB HMAC key is stored (the key itself is never returned).
    pub eab_hmac_set: bool,
    /// `http-01` or `tls-alpn-01`.
    pub challenge: String,
}

fn out(state: &AppState, cert: Certificate) -> Result<CertificateOut, ApiError> {
    let certs = state.certs()?;
    Ok(CertificateOut {
        state: certs
            .state(&cert, berth_core::unix_now())
            .as_str()
            .to_owned(),
        in_use: cert.source == Source::Uploaded || certs.in_use(&cert.domain),
        id: cert.id,
        domain: cert.domain,
        source: cert.source.as_str().to_owned(),
        names: cert.names,
        issuer: cert.issuer,
        serial: cert.serial,
        not_before: cert.not_before,
        not_after: cert.not_after,
        last_attempt_at: cert.last_attempt_at,
        next_attempt_at: cert.next_attempt_at,
        failures: cert.failures,
        last_error: cert.last_error,
        rate_limited: cert.rate_limited,
        renewal_window: cert.ari_start.zip(cert.ari_end).map(|(a, b)| [a, b]),
    })
}

#[utoipa::path(get, path = "/api/v1/certificates", tag = "certificates",
    responses((status = 200, body = Vec<CertificateOut>), (status = 401, body = ErrorBody)))]
pub async fn list_certificates(
    State(state): State<AppState>,
) -> Result<Json<Vec<CertificateOut>>, ApiError> {
    let certs = state.certs()?.list().await?;
    Ok(Json(
        certs
            .into_iter()
            .map(|c| out(&state, c))
            .collect::<Result<_, _>>()?,
    ))
}

#[utoipa::path(get, path = "/api/v1/certificates/{id}", tag = "certificates",
    params(("id" = i64, Path)),
    responses((status = 200, body = CertificateOut), (status = 404, body = ErrorBody)))]
pub async fn get_certificate(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CertificateOut>, ApiError> {
    let cert = state.certs()?.get(cert_id(&id)?).await?;
    Ok(Json(out(&state, cert)?))
}

/// Uploads a certificate chain and key for a domain. Validated first
/// (key matches, chain order, names cover the domain, not expired); nothing
/// is saved on error (422 with the field at fault). A certificate with a
/// name another domain's certificate serves is refused (field `replace`)
/// unless `replace` is true.
#[utoipa::path(post, path = "/api/v1/certificates", tag = "certificates",
    request_body = CertificateUpload,
    responses((status = 201, body = CertificateOut), (status = 422, body = ErrorBody)))]
pub async fn upload_certificate(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<CertificateUpload>,
) -> Result<(StatusCode, Json<CertificateOut>), ApiError> {
    let cert = state
        .certs()?
        .upload(&input.domain, &input.certificate, &input.key, input.replace)
        .await?;
    Ok((StatusCode::CREATED, Json(out(&state, cert)?)))
}

/// Renews an ACME certificate now (in the background: poll the certificate
/// for a new serial or `last_error`).
#[utoipa::path(post, path = "/api/v1/certificates/{id}/renew", tag = "certificates",
    params(("id" = i64, Path)),
    responses((status = 202, body = CertificateOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn renew_certificate(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CertificateOut>), ApiError> {
    let cert = state.certs()?.renew_now(cert_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(out(&state, cert)?)))
}

/// Deletes a certificate: it is no longer served and its files are removed.
/// A domain that still uses ACME gets a new one on the next pass.
#[utoipa::path(delete, path = "/api/v1/certificates/{id}", tag = "certificates",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_certificate(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.certs()?.delete(cert_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/acme", tag = "certificates",
    responses((status = 200, body = AcmeSettingsOut)))]
pub async fn get_acme_settings(
    State(state): State<AppState>,
) -> Result<Json<AcmeSettingsOut>, ApiError> {
    let view = state.certs()?.settings().await?;
    Ok(Json(AcmeSettingsOut {
        email: view.email,
        directory_url: view.directory_url,
        eab_key_id: view.eab_key_id,
        eab_hmac_set: view.eab_hmac_set,
        challenge: view.challenge.as_str().to_owned(),
    }))
}

/// Replaces the ACME settings. `directory` is `production`, `staging` or a URL.
#[utoipa::path(post, path = "/api/v1/acme", tag = "certificates",
    request_body = AcmeSettingsIn,
    responses((status = 200, body = AcmeSettingsOut), (status = 422, body = ErrorBody)))]
pub async fn save_acme_settings(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<AcmeSettingsIn>,
) -> Result<Json<AcmeSettingsOut>, ApiError> {
    state
        .certs()?
        .save_settings(&input.into())
        .await
        .map_err(WebError::from)?;
    get_acme_settings(State(state)).await
}
