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
    /// `image_swap` (the default): recreate the container with the new image on the same
    /// volume, same major only. `dump_restore` (PostgreSQL): a newer major, by dump and restore
    /// into a new volume, switched to once verified; the old volume is kept until
    /// `upgrade/finalize` (`upgrade/rollback` goes back to it).
    #[serde(default)]
    pub mode: Option<UpgradeMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpgradeMode {
    ImageSwap,
    DumpRestore,
}

#[utoipa::path(
    post,
    path = "/external-services/{id}/upgrade",
    tag = "services",
    summary = "Swap the image within the same major version, keeping the volume; or, with mode dump_restore, move to a newer major",
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
    let submitted = state.manager.submit(async move {
        match request.mode {
            Some(UpgradeMode::DumpRestore) => manager.upgrade_major(id, request.docker_image).await,
            _ => manager.upgrade(id, request.docker_image).await,
        }
    });
    respond_submitted(&state, submitted, wait, id, StatusCode::OK).await
}

#[utoipa::path(
    post,
    path = "/external-services/{id}/upgrade/rollback",
    tag = "services",
    summary = "Go back to the version before the last major upgrade (its volume was kept); writes made since stay in the newer volume, which is kept",
    params(("id" = i64, Path, description = "Service id"), WaitParams),
    responses(
        AcceptedResponse,
        (status = 200, description = "Back on the previous version (the default)", body = ServiceView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::NotStarted,
        errors::OperationFailed,
        errors::Unavailable
    )
)]
pub async fn upgrade_rollback(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    wait: Wait,
) -> ApiResult<Response> {
    let manager = state.manager.clone();
    let submitted = state
        .manager
        .submit(async move { manager.rollback_major_upgrade(id).await });
    respond_submitted(&state, submitted, wait, id, StatusCode::OK).await
}

#[utoipa::path(
    post,
    path = "/external-services/{id}/upgrade/finalize",
    tag = "services",
    summary = "Keep the last major upgrade: the previous version's volume is removed",
    params(("id" = i64, Path, description = "Service id")),
    responses(
        (status = 200, description = "Finalized", body = ServiceView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::Unavailable
    )
)]
pub async fn upgrade_finalize(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<ServiceView>> {
    let message = state.manager.finalize_major_upgrade(id).await?;
    tracing::info!(service_id = id, "{message}");
    let service = state.manager.service(id).await?;
    Ok(Json(
        ServiceView::masked_with_version(&state.manager, &service).await,
    ))
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
