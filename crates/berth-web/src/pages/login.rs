use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::ClientIp;
use crate::auth::csrf::{CsrfForm, pre_session_page, pre_session_token};
use crate::auth::{CurrentUser, Https, SESSION_COOKIE, cookie, set_cookie};
use crate::routes::{Access, Table};
use crate::views::{LoginPage, render};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Public, "/login", show);
    t.post(Access::Public, "/login", submit);
    t.post(Access::Session, "/logout", logout);
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

pub async fn show(
    State(state): State<AppState>,
    https: Https,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if !state.accounts.has_admin().await? {
        return Ok(Redirect::to("/setup").into_response());
    }
    Ok(pre_session_page(&headers, https, |csrf| LoginPage {
        csrf,
        username: String::new(),
        error: String::new(),
    }))
}

pub async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    https: Https,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, WebError> {
    let again = |status: StatusCode, error: String| {
        let (csrf, _) = pre_session_token(&headers, https);
        (
            status,
            render(&LoginPage {
                csrf,
                username: form.username.clone(),
                error,
            }),
        )
            .into_response()
    };
    // Reserved before the hash is checked, so parallel guesses cannot all get one.
    let Some(attempt) = state.limiter.reserve(ip, &form.username) else {
        tracing::warn!(client.ip = %ip, "login refused: too many failures");
        return Ok(again(
            StatusCode::TOO_MANY_REQUESTS,
            WebError::TooManyAttempts.to_string(),
        ));
    };
    let previous = cookie(&headers, SESSION_COOKIE.for_request(https));
    let Some((_, session)) = state
        .accounts
        .log_in(form.username.trim(), &form.password, previous.as_deref())
        .await?
    else {
        tracing::info!(client.ip = %ip, "failed login");
        return Ok(again(
            StatusCode::UNAUTHORIZED,
            "Wrong username or password.".to_owned(),
        ));
    };
    attempt.succeeded();
    let cookie = set_cookie(
        https,
        SESSION_COOKIE,
        &session.token,
        berth_deploy::SESSION_LIFETIME_SECS,
    );
    Ok(([cookie], Redirect::to("/")).into_response())
}

pub async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
    https: Https,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    state.accounts.log_out(&user.session_token).await?;
    let cookie = set_cookie(https, SESSION_COOKIE, "", 0);
    Ok(([cookie], Redirect::to("/login")).into_response())
}
