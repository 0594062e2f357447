//! Start, stop, upgrade and health.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{Accepted, ServiceView, respond};
use crate::api::AppState;
use crate::api::extract::{IdPath, JsonBody, Query, WaitQuery};
use crate::api::problem::ApiResult;
use crate::api::problem::responses as errors;
use crate::manager::HealthReport;

#[utoipa::path(
    post,
    path = "/external-services/{id}/start",
    tag = "services",
    summary = "Start a service",
    params(("id" = i64, Path, description = "Service id"), WaitQuery),
    responses(
        (status = 202, description = "Accepted: poll the operation", body = Accepted),
        (status = 200, description = "Running (?wait=true)", body = ServiceView),
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
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    let started = state.manager.start(id).await?;
    respond(&state, started, q.wait, id, StatusCode::OK).await
}

#[utoipa::path(
    post,
    path = "/external-services/{id}/stop",
    tag = "services",
    summary = "Stop a service (data kept)",
    params(("id" = i64, Path, description = "Service id"), WaitQuery),
    responses(
        (status = 202, description = "Accepted: poll the operation", body = Accepted),
        (status = 200, description = "Stopped (?wait=true)", body = ServiceView),
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
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    let started = state.manager.stop(id).await?;
    respond(&state, started, q.wait, id, StatusCode::OK).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    pub docker_image: String,
}

#[utoipa::path(
    post,
    path = "/external-services/{id}/upgrade",
    tag = "services",
    summary = "Swap the image within the same major version, keeping the volume",
    params(("id" = i64, Path, description = "Service id"), WaitQuery),
    request_body = UpgradeRequest,
    responses(
        (status = 202, description = "Accepted: poll the operation", body = Accepted),
        (status = 200, description = "Upgraded (?wait=true)", body = ServiceView),
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
    Query(q): Query<WaitQuery>,
    JsonBody(request): JsonBody<UpgradeRequest>,
) -> ApiResult<Response> {
    let started = state.manager.upgrade(id, request.docker_image).await?;
    respond(&state, started, q.wait, id, StatusCode::OK).await
}

/// The explicit way out of `data_missing`: starts the service again with EMPTY data, its
/// recorded credentials and every tenant that still has a login provisioned again.
#[utoipa::path(
    post,
    path = "/external-services/{id}/recreate",
    tag = "services",
    summary = "Recreate a service whose data volume is missing (starts with EMPTY data)",
    params(("id" = i64, Path, description = "Service id"), WaitQuery),
    responses(
        (status = 202, description = "Accepted: poll the operation", body = Accepted),
        (status = 200, description = "Running again with empty data (?wait=true)", body = ServiceView),
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
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    let started = state.manager.recreate(id).await?;
    respond(&state, started, q.wait, id, StatusCode::OK).await
}

#[utoipa::path(
    get,
    path = "/external-services/{id}/health",
    tag = "services",
    summary = "Container state and a real client round-trip",
    params(("id" = i64, Path, description = "Service id")),
    responses(
        (status = 200, body = HealthReport),
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn health(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<HealthReport>> {
    Ok(Json(state.manager.health(id).await?))
}
