//! `/tokens`: the API tokens with when each was made, last used and ends,
//! a form to make one (shown once) and a revoke button per token.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use berth_core::{ApiToken, ApiTokenId, TokenScope};

use super::projects::field_errors;
use crate::auth::CurrentUser;
use crate::auth::csrf::CsrfForm;
use crate::forms::FieldErrors;
use crate::routes::{Access, Table};
use crate::views::{Chrome, render, when};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Session, "/tokens", list);
    t.post(Access::Session, "/tokens", create);
    t.post(Access::Session, "/tokens/{id}/revoke", revoke);
}

#[derive(askama::Template)]
#[template(path = "tokens.html")]
pub struct TokensPage {
    pub chrome: Chrome,
    pub tokens: Vec<TokenRow>,
    /// A token just made: the only time it is shown.
    pub created: Option<Created>,
    pub form: TokenForm,
    pub errors: FieldErrors,
}

pub struct Created {
    pub name: String,
    pub token: String,
}

pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub made: String,
    pub last_used: String,
    pub expires: String,
    pub expired: bool,
    pub read_only: bool,
}

impl TokenRow {
    fn new(token: &ApiToken, now: i64) -> TokenRow {
        TokenRow {
            id: token.id.get(),
            name: token.name.clone(),
            made: when(Some(token.created_at), now),
            last_used: token
                .last_used_at
                .map_or_else(|| "never".to_owned(), |at| when(Some(at), now)),
            expires: token
                .expires_at
                .map_or_else(|| "never".to_owned(), |at| when(Some(at), now)),
            expired: token.expires_at.is_some_and(|at| at <= now),
            read_only: token.read_only,
        }
    }
}

#[derive(serde::Deserialize, Default)]
pub struct TokenForm {
    #[serde(default)]
    pub name: String,
    /// Days until it ends; empty for never.
    #[serde(default)]
    pub expires_in_days: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    pub read_only: Option<String>,
}

pub async fn list(State(state): State<AppState>, user: CurrentUser) -> Result<Response, WebError> {
    let page = page(
        &state,
        &user,
        None,
        TokenForm::default(),
        FieldErrors::default(),
    )
    .await?;
    Ok(render(&page).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(form): CsrfForm<TokenForm>,
) -> Result<Response, WebError> {
    let mut errors = FieldErrors::default();
    let days = match form.expires_in_days.trim() {
        "" => None,
        typed => match typed.parse::<u32>() {
            Ok(days @ 1..=3650) => Some(days),
            _ => {
                errors.add(
                    "expires_in_days",
                    "a whole number of days from 1 to 3650, or empty for never",
                );
                None
            }
        },
    };
    let scope = TokenScope {
        expires_at: days.map(|d| berth_core::unix_now() + i64::from(d) * 24 * 3600),
        read_only: form.read_only.is_some(),
    };
    let made = if errors.is_empty() {
        state
            .accounts
            .create_token(&form.name, scope)
            .await
            .map_err(WebError::from)
    } else {
        Err(WebError::Invalid(errors))
    };
    match made {
        Ok((made, token)) => {
            let created = Created {
                name: made.name,
                token,
            };
            // Shown in this answer only (no redirect): the page is no-store.
            let page = page(
                &state,
                &user,
                Some(created),
                TokenForm::default(),
                FieldErrors::default(),
            )
            .await?;
            Ok(render(&page).into_response())
        }
        // The form comes back as typed, a name clash under the name.
        Err(err @ (WebError::Invalid(_) | WebError::Conflict(_))) => {
            let page = page(&state, &user, None, form, field_errors(err, "name")).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
        Err(err) => Err(err),
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let id = id
        .parse()
        .map(ApiTokenId::new)
        .map_err(|_| WebError::NotFound("token"))?;
    state.accounts.revoke_token(id).await?;
    Ok(Redirect::to("/tokens").into_response())
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    created: Option<Created>,
    form: TokenForm,
    errors: FieldErrors,
) -> Result<TokensPage, WebError> {
    let now = berth_core::unix_now();
    let tokens = state.accounts.tokens().await?;
    Ok(TokensPage {
        chrome: Chrome::from(user),
        tokens: tokens.iter().map(|t| TokenRow::new(t, now)).collect(),
        created,
        form,
        errors,
    })
}
