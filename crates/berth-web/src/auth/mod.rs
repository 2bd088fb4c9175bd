//! Who is asking: browser sessions, API bearer tokens, CSRF and login throttling.

pub mod csrf;
pub mod rate_limit;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::{AppState, WebError};

/// One of berth's cookies, by the name it has over plain HTTP and over HTTPS.
#[derive(Debug, Clone, Copy)]
pub struct CookieName {
    plain: &'static str,
    /// With the `__Host-` prefix a browser takes the cookie only from a
    /// secure origin, with `Path=/` and no `Domain`: a site on a sibling
    /// subdomain cannot plant or overwrite it (session fixation, login CSRF).
    /// The prefix needs `Secure`, so plain HTTP keeps the plain name.
    secure: &'static str,
}

impl CookieName {
    pub fn for_request(self, https: Https) -> &'static str {
        if https.0 { self.secure } else { self.plain }
    }
}

pub const SESSION_COOKIE: CookieName = CookieName {
    plain: "berth_session",
    secure: "__Host-berth_session",
};

/// Whether the browser reached the dashboard over HTTPS: through berth's own
/// edge (the request carries the edge's secret) on its TLS listener. A bare
/// `X-Forwarded-Proto` proves nothing, since any local process can send it.
/// Set on every request by [`mark_transport`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Https(pub bool);

impl Https {
    /// What [`mark_transport`] decided for this request.
    pub fn of(extensions: &axum::http::Extensions) -> Https {
        extensions.get::<Https>().copied().unwrap_or_default()
    }

    /// Decides it from the headers: the edge's secret and its `X-Forwarded-Proto`.
    pub fn decide(state: &AppState, headers: &HeaderMap) -> Https {
        Https(
            from_edge(state, headers)
                && headers
                    .get("x-forwarded-proto")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Https {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Https::of(&parts.extensions))
    }
}

/// Whether the request came through berth's own edge: it carries the secret
/// the edge adds to the dashboard's requests (and strips from everyone else's).
pub fn from_edge(state: &AppState, headers: &HeaderMap) -> bool {
    state.edge_secret.as_deref().is_some_and(|secret| {
        headers
            .get(berth_edge::DASHBOARD_SECRET_HEADER)
            .is_some_and(|sent| bool::from(sent.as_bytes().ct_eq(secret.as_bytes())))
    })
}

/// Layer for every route: decides once whether the request came over HTTPS
/// (see [`Https`]) and puts the answer in its extensions.
pub async fn mark_transport(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let https = Https::decide(&state, req.headers());
    req.extensions_mut().insert(https);
    next.run(req).await
}

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
    let name = SESSION_COOKIE.for_request(Https::of(req.extensions()));
    if let Some(token) = cookie(req.headers(), name) {
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
            Ok(Some(token)) if !token.allows(req.method().as_str()) => {
                return ApiError(WebError::ReadOnlyToken).into_response();
            }
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

/// A `Set-Cookie` header value: always HttpOnly and SameSite=Lax; over
/// HTTPS also Secure, under its `__Host-` name.
pub fn set_cookie(
    https: Https,
    name: CookieName,
    value: &str,
    max_age_secs: i64,
) -> (axum::http::HeaderName, HeaderValue) {
    let secure = if https.0 { "; Secure" } else { "" };
    let name = name.for_request(https);
    let value =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}");
    (
        SET_COOKIE,
        HeaderValue::from_str(&value).expect("cookie values are hex"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_and_csrf_tokens_never_show_in_debug_output() {
        let user = CurrentUser {
            username: "admin".to_owned(),
            csrf_token: "csrf-s3cr3t".to_owned(),
            session_token: "session-s3cr3t".to_owned(),
        };
        let shown = format!("{user:?} {user:#?}");
        assert!(
            !shown.contains("csrf-s3cr3t") && !shown.contains("session-s3cr3t"),
            "{shown}"
        );
        assert!(shown.contains("admin"), "{shown}");
    }
}
