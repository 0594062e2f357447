//! Start, stop, upgrade and health.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{AcceptedResponse, ServiceView, respond_submitted};
use crate::api::AppState;
use crate::api::extract::{IdPath, JsonBody, Query, Wait, WaitParams};
use crate::api::problem::ApiResult;
use crate::api::problem::responses as errors;
use crate::manager::HealthReport;

#[utoipa::path(
    post,
    path = "/external-services/{id}/start",
    tag = "services",
    summary = "Start a service",
    params(("id" = i64, Path, description = "Service id"), WaitParams),
    responses(
        AcceptedResponse,
        (status = 200, description = "Running (the default)", body = ServiceView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::NotStarted,
        errors::OperationFailed,
        errors::Unavailable
    )
)]
pub async fn start(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    wait: Wait,
) -> ApiResult<Response> {
    let manager = state.manager.clone();
    let submitted = state.manager.submit(async move { manager.start(id).await });
    respond_submitted(&state, submitted, wait, id, StatusCode::OK).await
}

#[utoipa::path(
    post,
    path = "/external-services/{id}/stop",
    tag = "services",
    summary = "Stop a service (data kept)",
    params(("id" = i64, Path, description = "Service id"), WaitParams),
    responses(
        AcceptedResponse,
        (status = 200, description = "Stopped (the default)", body = ServiceView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::NotStarted,
        errors::OperationFailed,
        errors::Unavailable
    )
)]
pub async fn stop(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    wait: Wait,
) -> ApiResult<Response> {
    let manager = state.manager.clone();
    let submitted = state.manager.submit(async move { manager.stop(id).await });
    respond_submitted(&state, submitted, wait, id, StatusCode::OK).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    /// A Docker image reference of the same major version.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$",
        min_length = 1,
        max_length = 255
    )]
    pub docker_image: String,
}

#[utoipa::path(
    post,
    path = "/external-services/{id}/upgrade",
    tag = "services",
    summary = "Swap the image within the same major version, keeping the volume",
    params(("id" = i64, Path, description = "Service id"), WaitParams),
    request_body = UpgradeRequest,
    responses(
        AcceptedResponse,
        (status = 200, description = "Upgraded (the default)", body = ServiceView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::NotStarted,
        errors::OperationFailed,
        errors::Unavailable
    )
)]
pub async fn upgrade(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    wait: Wait,
    JsonBody(request): JsonBody<UpgradeRequest>,
) -> ApiResult<Response> {
    let manager = state.manager.clone();
    let submitted = state
        .manager
        .submit(async move { manager.upgrade(id, request.docker_image).await });
    respond_submitted(&state, submitted, wait, id, StatusCode::OK).await
}

/// The explicit way out of `data_missing`: starts the service again with EMPTY data, its
/// recorded credentials and every tenant that still has a login provisioned again.
#[utoipa::path(
    post,
    path = "/external-services/{id}/recreate",
    tag = "services",
    summary = "Recreate a service whose data volume is missing (starts with EMPTY data)",
    params(("id" = i64, Path, description = "Service id"), WaitParams),
    responses(
        AcceptedResponse,
        (status = 200, description = "Running again with empty data (the default)", body = ServiceView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::NotStarted,
        errors::OperationFailed,
        errors::Unavailable
    )
)]
pub async fn recreate(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    wait: Wait,
) -> ApiResult<Response> {
    let manager = state.manager.clone();
    let submitted = state
        .manager
        .submit(async move { manager.recreate(id).await });
    respond_submitted(&state, submitted, wait, id, StatusCode::OK).await
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HealthQuery {
    /// true: the detailed report (container state, probe latency, message, `warnings`)
    /// instead of Temps' JSON boolean.
    #[serde(default)]
    pub detail: bool,
}

/// `GET .../health`: Temps' JSON boolean, or with `?detail=true` Berth's detailed report.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum HealthAnswer {
    /// true when the server accepts connections with its data in place.
    Healthy(bool),
    Detail(HealthReport),
}

#[utoipa::path(
    get,
    path = "/external-services/{id}/health",
    tag = "services",
    summary = "Whether the service accepts connections (JSON boolean, as Temps); ?detail=true for the report",
    params(("id" = i64, Path, description = "Service id"), HealthQuery),
    responses(
        (status = 200, description = "`true`/`false`; with ?detail=true the detailed report", body = HealthAnswer),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn health(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Query(query): Query<HealthQuery>,
) -> ApiResult<Response> {
    let report = state.manager.health(id).await?;
    let answer = if query.detail {
        HealthAnswer::Detail(report)
    } else {
        // `healthy` is only true when the probe succeeded on a service whose data is in
        // place (a data_missing service has no container to probe).
        HealthAnswer::Healthy(report.healthy)
    };
    Ok(Json(answer).into_response())
}
