use axum::Json;
use axum::extract::State;
use serde_json::json;

use crate::AppState;
use crate::routes::{Access, Table};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Public, "/healthz", healthz);
}

/// Liveness for load balancers and scripts: answers while the database does.
pub async fn healthz(
    State(state): State<AppState>,
) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    match state.accounts.has_admin().await {
        Ok(_) => (axum::http::StatusCode::OK, Json(json!({ "status": "ok" }))),
        Err(err) => {
            tracing::error!(error = %err, "health check failed");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "database unavailable" })),
            )
        }
    }
}
