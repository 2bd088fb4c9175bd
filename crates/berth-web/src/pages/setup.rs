//! Claiming a fresh install: the setup token printed at start plus the first admin account.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use berth_core::{Password, Username};
use subtle::ConstantTimeEq;

use crate::auth::csrf::{CsrfForm, pre_session_page, pre_session_token};
use crate::auth::{Https, SESSION_COOKIE, set_cookie};
use crate::forms::FieldErrors;
use crate::routes::{Access, Table};
use crate::views::{SetupPage, render};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Public, "/setup", show);
    t.post(Access::Public, "/setup", submit);
}

#[derive(serde::Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

pub async fn show(
    State(state): State<AppState>,
    https: Https,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if state.accounts.has_admin().await? {
        return Ok(Redirect::to("/login").into_response());
    }
    Ok(pre_session_page(&headers, https, |csrf| SetupPage {
        csrf,
        token: String::new(),
        username: String::new(),
        errors: FieldErrors::default(),
    }))
}

pub async fn submit(
    State(state): State<AppState>,
    https: Https,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<SetupForm>,
) -> Result<Response, WebError> {
    if state.accounts.has_admin().await? {
        return Ok(Redirect::to("/login").into_response());
    }
    let mut errors = FieldErrors::default();
    let expected = state
        .setup_token
        .lock()
        .expect("setup token poisoned")
        .clone();
    let token_ok =
        expected.is_some_and(|t| bool::from(t.as_bytes().ct_eq(form.token.trim().as_bytes())));
    if !token_ok {
        errors.add(
            "token",
            "does not match the token printed when berth started",
        );
    }
    let username = errors.check("username", Username::parse(&form.username));
    let password = errors.check("password", Password::parse_new(&form.password));
    if form.password != form.password_confirm {
        errors.add("password_confirm", "does not match the password");
    }
    let (Some(username), Some(password), true) = (username, password, errors.is_empty()) else {
        let (csrf, _) = pre_session_token(&headers, https);
        let page = SetupPage {
            csrf,
            token: form.token,
            username: form.username,
            errors,
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    };
    let Some((_, session)) = state
        .accounts
        .create_first_admin(&username, &password)
        .await?
    else {
        return Ok(Redirect::to("/login").into_response());
    };
    *state.setup_token.lock().expect("setup token poisoned") = None;
    let cookie = set_cookie(
        https,
        SESSION_COOKIE,
        &session.token,
        berth_deploy::SESSION_LIFETIME_SECS,
    );
    Ok(([cookie], Redirect::to("/")).into_response())
}
