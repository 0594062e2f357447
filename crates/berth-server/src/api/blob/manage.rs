//! The management routes, Temps' `GET /blob/status`, `POST /blob/enable`, `PATCH /blob/update` and
//! `DELETE /blob/disable` (admin tokens; the status also to read-only ones). Enable, update and
//! disable run the backing service's ordinary operations and answer when they are done, like
//! the service routes (202 with the operation on `Prefer: respond-async`, `?wait=false`, or
//! past the synchronous bound).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::json::{BlobChangeResponse, DisableQuery, DisableResponse};
use crate::api::AppState;
use crate::api::backing::settle;
use crate::api::extract::{JsonBody, Query, Wait, WaitParams};
use crate::api::problem::ApiResult;
use crate::api::problem::responses as errors;
use crate::api::services::AcceptedResponse;
use crate::api::services::crud::UpdateRequest;
use crate::manager::backing::BackingChange as BlobChange;
use crate::manager::blob::{BlobStatus, EnableRequest};

#[utoipa::path(
    get,
    path = "/blob/status",
    tag = "blob",
    summary = "Whether Blob is enabled and healthy, and the S3 service keeping its data",
    responses(
        (status = 200, body = BlobStatus),
        errors::Unauthorized,
        errors::BlobUnavailable
    )
)]
pub async fn status(State(state): State<AppState>) -> ApiResult<Json<BlobStatus>> {
    Ok(Json(state.manager.blob_status().await?))
}

#[utoipa::path(
    post,
    path = "/blob/enable",
    tag = "blob",
    summary = "Enable Blob: create its S3 service (or start it again); idempotent",
    params(WaitParams),
    request_body = EnableRequest,
    responses(
        AcceptedResponse,
        (status = 200, description = "Enabled (the default: once its S3 service answers)", body = BlobChangeResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::NotStarted,
        errors::OperationFailed,
        errors::BlobUnavailable
    )
)]
pub async fn enable(
    State(state): State<AppState>,
    wait: Wait,
    JsonBody(request): JsonBody<EnableRequest>,
) -> ApiResult<Response> {
    let change = state.manager.blob_enable(request).await?;
    answer(&state, change, wait).await
}

#[utoipa::path(
    patch,
    path = "/blob/update",
    tag = "blob",
    summary = "Change Blob's S3 service (image, port); keeps the data",
    params(WaitParams),
    request_body = UpdateRequest,
    responses(
        AcceptedResponse,
        (status = 200, description = "Updated (the default)", body = BlobChangeResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::NotStarted,
        errors::OperationFailed,
        errors::BlobUnavailable
    )
)]
pub async fn update(
    State(state): State<AppState>,
    wait: Wait,
    JsonBody(request): JsonBody<UpdateRequest>,
) -> ApiResult<Response> {
    let change = state
        .manager
        .blob_update(request.into_parameters()?)
        .await?;
    answer(&state, change, wait).await
}

#[utoipa::path(
    delete,
    path = "/blob/disable",
    tag = "blob",
    summary = "Disable Blob: stop its S3 service, keeping the data (?delete_data=true deletes it)",
    params(DisableQuery, WaitParams),
    responses(
        AcceptedResponse,
        (status = 200, description = "Disabled (the default)", body = DisableResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::OperationFailed,
        errors::BlobUnavailable
    )
)]
pub async fn disable(
    State(state): State<AppState>,
    Query(query): Query<DisableQuery>,
    wait: Wait,
) -> ApiResult<Response> {
    let BlobChange { started, message } = state.manager.blob_disable(query.delete_data).await?;
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
async fn answer(state: &AppState, change: BlobChange, wait: Wait) -> ApiResult<Response> {
    let BlobChange { started, message } = change;
    if let Some(started) = started
        && let Some(accepted) = settle(state, started, wait).await?
    {
        return Ok(accepted);
    }
    let status = state.manager.blob_status().await?;
    Ok(Json(BlobChangeResponse {
        success: true,
        message,
        status,
    })
    .into_response())
}
