//! `/metrics`: the collector's latest figures in Prometheus' text format,
//! behind an API token like the rest of the API.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::routes::Table;

pub(crate) fn routes(t: &mut Table) {
    t.api(__path_get_metrics, get_metrics);
}

/// The server's and every container's figures for Prometheus: containers
/// with cAdvisor's names (`container_cpu_usage_seconds_total`, …), the server
/// with node_exporter's (`node_cpu_seconds_total`, …).
#[utoipa::path(get, path = "/metrics", tag = "monitoring",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, body = ErrorBody),
        (status = 404, description = "berth runs without the collector", body = ErrorBody)))]
pub async fn get_metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let monitor = state.monitor()?;
    // Before the first tick (just after start) there is nothing to show:
    // collect once rather than answer an empty page.
    let snapshot = match monitor.latest() {
        Some(s) => s,
        None => monitor.collect().await,
    };
    Ok((
        [(CONTENT_TYPE, berth_monitor::prometheus::CONTENT_TYPE)],
        berth_monitor::prometheus::render(&snapshot),
    )
        .into_response())
}
