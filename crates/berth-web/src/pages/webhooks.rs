//! Deploy webhooks (public routes: the secret in the URL or the provider's
//! signature is the credential). A wrong one is 401 and deploys nothing.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::post;
use berth_core::{AppName, ProjectName};
use berth_deploy::WebhookOutcome;

use crate::error::ApiError;
use crate::routes::{Access, Table};
use crate::{AppState, WebError};

/// Largest webhook body: push payloads with many commits outgrow the forms' limit.
const MAX_WEBHOOK_BYTES: usize = 2 * 1024 * 1024;

pub(crate) fn routes(t: &mut Table) {
    for (path, handler) in [
        ("/hooks/{project}/{app}/{secret}", post(with_secret)),
        ("/hooks/{project}/{app}", post(signed)),
    ] {
        t.add(
            Access::Public,
            Method::POST,
            path,
            handler.layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES)),
        );
    }
}

#[derive(serde::Serialize)]
pub struct HookOut {
    /// `queued` or `ignored`.
    pub result: &'static str,
    pub deployment: Option<i64>,
    pub detail: String,
}

/// `POST /hooks/{project}/{app}/{secret}`: any caller that knows the URL.
pub async fn with_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((project, app, secret)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<HookOut>), ApiError> {
    handle(&state, &project, &app, Some(&secret), &headers, &body).await
}

/// `POST /hooks/{project}/{app}`: GitHub, Gitea/Forgejo or GitLab push events, signed.
pub async fn signed(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((project, app)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<HookOut>), ApiError> {
    handle(&state, &project, &app, None, &headers, &body).await
}

async fn handle(
    state: &AppState,
    project: &str,
    app: &str,
    secret: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(StatusCode, Json<HookOut>), ApiError> {
    // An unknown app answers like a wrong secret: the URL space reveals nothing.
    let (Ok(project), Ok(app)) = (ProjectName::parse(project), AppName::parse(app)) else {
        return Err(ApiError(WebError::Unauthorized));
    };
    let pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let outcome = match state
        .webhooks
        .webhook_deploy(&project, &app, secret, &pairs, body)
        .await
    {
        Ok(outcome) => outcome,
        Err(berth_deploy::DeployError::NotFound { .. }) => {
            return Err(ApiError(WebError::Unauthorized));
        }
        Err(err) => {
            tracing::info!(project.name = %project, app.name = %app, error = %err, "webhook refused");
            return Err(ApiError(err.into()));
        }
    };
    Ok(match outcome {
        WebhookOutcome::Queued(dep) => (
            StatusCode::ACCEPTED,
            Json(HookOut {
                result: "queued",
                deployment: Some(dep.number),
                detail: format!("deployment #{} queued", dep.number),
            }),
        ),
        WebhookOutcome::Ignored(why) => (
            StatusCode::OK,
            Json(HookOut {
                result: "ignored",
                deployment: None,
                detail: why,
            }),
        ),
    })
}
