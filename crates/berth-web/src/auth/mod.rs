//! Who is asking: browser sessions, API bearer tokens, CSRF and login throttling.

pub mod csrf;
pub mod rate_limit;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::ApiError;
use crate::{AppState, WebError};

pub const SESSION_COOKIE: &str = "berth_session";

/// The logged-in admin of a browser request (put there by `require_session`).
/// Its `Debug` hides both tokens.
#[derive(Clone)]
pub struct CurrentUser {
    pub username: String,
    pub csrf_token: String,
    /// The session cookie value, so logout can end exactly this session.
    pub session_token: String,
}

impl std::fmt::Debug for CurrentUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentUser")
            .field("username", &self.username)
            .field("csrf_token", &berth_core::REDACTED)
            .field("session_token", &berth_core::REDACTED)
            .finish()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<CurrentUser>()
            .cloned()
            .ok_or(WebError::Unauthorized)
    }
}

/// Who made an API request (put there by `require_bearer`), for history entries.
#[derive(Debug, Clone)]
pub struct ApiCaller(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ApiCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ApiCaller>()
            .cloned()
            .ok_or(ApiError(WebError::Unauthorized))
    }
}

/// Layer for dashboard routes: no valid session → to the login page (or to
/// setup while no admin exists).
pub async fn require_session(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(token) = cookie(req.headers(), SESSION_COOKIE) {
        match state.accounts.session_user(&token).await {
            Ok(Some(user)) => {
                req.extensions_mut().insert(CurrentUser {
                    username: user.username,
                    csrf_token: user.csrf_token,
                    session_token: token,
                });
                return next.run(req).await;
            }
            Ok(None) => {}
            Err(err) => return WebError::from(err).into_response(),
        }
    }
    match state.accounts.has_admin().await {
        Ok(false) => Redirect::to("/setup").into_response(),
        Ok(true) => Redirect::to("/login").into_response(),
        Err(err) => WebError::from(err).into_response(),
    }
}

/// Layer for `/api/v1`: a valid `Authorization: Bearer` token or 401.
pub async fn require_bearer(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(token) = token {
        match state.accounts.authenticate_token(token).await {
            Ok(Some(token)) => {
                req.extensions_mut()
                    .insert(ApiCaller(format!("api token {}", token.name)));
                return next.run(req).await;
            }
            Ok(None) => {}
            Err(err) => return ApiError::from(err).into_response(),
        }
    }
    let mut response = ApiError(WebError::Unauthorized).into_response();
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// The request reached berth over HTTPS (directly later, or through a proxy that says so).
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The dashboard never answers a request the edge received over plain HTTP
/// (its domain before the certificate is issued): a login form there would
/// send the password in clear across the internet. Once the certificate
/// exists the edge redirects such requests itself. Requests straight to the
/// dashboard's own listener carry no `X-Forwarded-Proto` and pass.
pub async fn refuse_plain_http(request: Request, next: Next) -> Response {
    let plain = request
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"http"));
    if plain {
        return (
            axum::http::StatusCode::FORBIDDEN,
            "The berth dashboard is served only over HTTPS. Its certificate is not issued yet: \
             see berth's output on the server.\n",
        )
            .into_response();
    }
    next.run(request).await
}

/// A `Set-Cookie` header value: always HttpOnly and SameSite=Lax, Secure over HTTPS.
pub fn set_cookie(
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age_secs: i64,
) -> (axum::http::HeaderName, HeaderValue) {
    let secure = if is_https(headers) { "; Secure" } else { "" };
    let value =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}");
    (
        SET_COOKIE,
        HeaderValue::from_str(&value).expect("cookie values are hex"),
    )
}
