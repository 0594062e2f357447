//! Liveness (`/healthz`, unauthenticated) and `/api/system/status` (Docker reachability and
//! the reconciler's state).

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;
use super::problem::responses as errors;
use crate::reconciler::ReconcilerStatus;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Prometheus text format. Unauthenticated like `/healthz` (it carries counts, no names or
/// secrets); bind Berth to loopback or firewall it as you would any exporter. Served from
/// memory: counters plus the gauges of the reconciler's last pass, so scraping costs no state
/// store read and no Docker call.
pub async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let reconciler = state.reconciler.status().await;
    let body = state.manager.metrics.render(&reconciler);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SystemStatus {
    version: &'static str,
    docker_reachable: bool,
    docker_error: Option<String>,
    reconciler: ReconcilerStatus,
}

#[utoipa::path(
    get,
    path = "/system/status",
    tag = "system",
    summary = "Docker reachability and reconciler state",
    responses(
        (status = 200, body = SystemStatus),
        errors::Unauthorized
    )
)]
pub async fn status(State(state): State<AppState>) -> Json<SystemStatus> {
    let docker = state.manager.docker.ping().await;
    Json(SystemStatus {
        version: env!("CARGO_PKG_VERSION"),
        docker_reachable: docker.is_ok(),
        docker_error: docker.err().map(|e| e.to_string()),
        reconciler: state.reconciler.status().await,
    })
}
