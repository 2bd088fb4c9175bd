//! CSRF protection for every state-changing form.
//!
//! Logged in, the token is the session's own (stored with the session). On the
//! setup and login forms, before any session exists, it is a random value in a
//! `berth_csrf` cookie that the form must echo (double submit). Either way a
//! page on another site cannot know the value, and SameSite=Lax keeps the
//! session cookie off cross-site POSTs as a second fence.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::{CookieName, CurrentUser, Https, cookie};
use crate::{MAX_BODY_BYTES, WebError};

pub const PRE_SESSION_COOKIE: CookieName = CookieName {
    plain: "berth_csrf",
    secure: "__Host-berth_csrf",
};

/// A urlencoded form whose `csrf` field was checked before `T` is handed over.
pub struct CsrfForm<T>(pub T);

#[derive(serde::Deserialize)]
struct TokenOnly {
    #[serde(default)]
    csrf: String,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CsrfForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let expected = expected_token(&req);
        let body = Bytes::from_request(req, state).await.map_err(|_| {
            let mut errors = crate::forms::FieldErrors::default();
            errors.add(
                "form",
                format!("the form is too large (at most {MAX_BODY_BYTES} bytes)"),
            );
            WebError::Invalid(errors)
        })?;
        let sent: TokenOnly = serde_urlencoded::from_bytes(&body).map_err(|_| WebError::Csrf)?;
        let matches = expected
            .is_some_and(|e| !e.is_empty() && bool::from(e.as_bytes().ct_eq(sent.csrf.as_bytes())));
        if !matches {
            return Err(WebError::Csrf);
        }
        let value = serde_urlencoded::from_bytes(&body).map_err(|e| {
            let mut errors = crate::forms::FieldErrors::default();
            errors.add("form", e);
            WebError::Invalid(errors)
        })?;
        Ok(CsrfForm(value))
    }
}

fn expected_token(req: &Request) -> Option<String> {
    match req.extensions().get::<CurrentUser>() {
        Some(user) => Some(user.csrf_token.clone()),
        None => cookie(
            req.headers(),
            PRE_SESSION_COOKIE.for_request(Https::of(req.extensions())),
        ),
    }
}

/// A pre-login page (setup, login) rendered with its form token, setting the
/// `berth_csrf` cookie when the browser does not have one yet.
pub fn pre_session_page<P: askama::Template>(
    headers: &HeaderMap,
    https: Https,
    page: impl FnOnce(String) -> P,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (csrf, fresh) = pre_session_token(headers, https);
    let mut response = crate::views::render(&page(csrf.clone())).into_response();
    if fresh {
        let (name, value) = super::set_cookie(https, PRE_SESSION_COOKIE, &csrf, 3600);
        response.headers_mut().insert(name, value);
    }
    response
}

/// The pre-session token for a login or setup page, and whether it must be set as a cookie.
pub fn pre_session_token(headers: &HeaderMap, https: Https) -> (String, bool) {
    match cookie(headers, PRE_SESSION_COOKIE.for_request(https)) {
        Some(token) if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (token, false)
        }
        _ => (random_hex(32), true),
    }
}

pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}
