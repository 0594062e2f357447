//! The management routes, Temps' `GET /kv/status`, `POST /kv/enable`, `PATCH /kv/update` and
//! `DELETE /kv/disable` (admin tokens; the status also to read-only ones). Enable, update and
//! disable run the backing service's ordinary operations and answer when they are done, like
//! the service routes (202 with the operation on `Prefer: respond-async`, `?wait=false`, or
//! past the synchronous bound).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::json::{DisableQuery, DisableResponse, KvChangeResponse};
use crate::api::AppState;
use crate::api::backing::settle;
use crate::api::extract::{JsonBody, Query, Wait, WaitParams};
use crate::api::problem::ApiResult;
use crate::api::problem::responses as errors;
use crate::api::services::AcceptedResponse;
use crate::api::services::crud::UpdateRequest;
use crate::manager::kv::{EnableRequest, KvChange, KvStatus};

#[utoipa::path(
    get,
    path = "/kv/status",
    tag = "kv",
    summary = "Whether KV is enabled and healthy, and the Redis service keeping its data",
    responses(
        (status = 200, body = KvStatus),
        errors::Unauthorized,
        errors::Unavailable
    )
)]
pub async fn status(State(state): State<AppState>) -> ApiResult<Json<KvStatus>> {
    Ok(Json(state.manager.kv_status().await?))
}

#[utoipa::path(
    post,
    path = "/kv/enable",
    tag = "kv",
    summary = "Enable KV: create its Redis service (or start it again); idempotent",
    params(WaitParams),
    request_body = EnableRequest,
    responses(
        AcceptedResponse,
        (status = 200, description = "Enabled (the default: once its Redis accepts connections)", body = KvChangeResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::NotStarted,
        errors::OperationFailed,
        errors::Unavailable
    )
)]
pub async fn enable(
    State(state): State<AppState>,
    wait: Wait,
    JsonBody(request): JsonBody<EnableRequest>,
) -> ApiResult<Response> {
    let change = state.manager.kv_enable(request).await?;
    answer(&state, change, wait).await
}

#[utoipa::path(
    patch,
    path = "/kv/update",
    tag = "kv",
    summary = "Change KV's Redis service (image, port); keeps the data",
    params(WaitParams),
    request_body = UpdateRequest,
    responses(
        AcceptedResponse,
        (status = 200, description = "Updated (the default)", body = KvChangeResponse),
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
pub async fn update(
    State(state): State<AppState>,
    wait: Wait,
    JsonBody(request): JsonBody<UpdateRequest>,
) -> ApiResult<Response> {
    let change = state.manager.kv_update(request.into_parameters()?).await?;
    answer(&state, change, wait).await
}

#[utoipa::path(
    delete,
    path = "/kv/disable",
    tag = "kv",
    summary = "Disable KV: stop its Redis service, keeping the data (?delete_data=true deletes it)",
    params(DisableQuery, WaitParams),
    responses(
        AcceptedResponse,
        (status = 200, description = "Disabled (the default)", body = DisableResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::OperationFailed,
        errors::Unavailable
    )
)]
pub async fn disable(
    State(state): State<AppState>,
    Query(query): Query<DisableQuery>,
    wait: Wait,
) -> ApiResult<Response> {
    let KvChange { started, message } = state.manager.kv_disable(query.delete_data).await?;
    if let Some(started) = started
        && let Some(accepted) = settle(&state, started, wait).await?
    {
        return Ok(accepted);
    }
    Ok(Json(DisableResponse {
        success: true,
        message,
    })
    .into_response())
}

/// Temps' answer to enable and update: the message and the status after the change.
async fn answer(state: &AppState, change: KvChange, wait: Wait) -> ApiResult<Response> {
    let KvChange { started, message } = change;
    if let Some(started) = started
        && let Some(accepted) = settle(state, started, wait).await?
    {
        return Ok(accepted);
    }
    let status = state.manager.kv_status().await?;
    Ok(Json(KvChangeResponse {
        success: true,
        message,
        status,
    })
    .into_response())
}
