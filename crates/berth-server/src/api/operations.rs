//! `/api/operations/{id}`: poll a long operation (create, start, stop, update, upgrade, delete).

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::extract::IdPath;
use super::problem::responses as errors;
use super::problem::{ApiError, ApiResult};
use crate::store::Operation;

#[utoipa::path(
    get,
    path = "/operations/{id}",
    tag = "operations",
    summary = "Poll an operation",
    params(("id" = i64, Path, description = "Operation id")),
    responses(
        (status = 200, body = Operation),
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn get(State(state): State<AppState>, IdPath(id): IdPath) -> ApiResult<Json<Operation>> {
    state
        .store
        .operation(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("operation {id} does not exist")))
}

/// The last 100 operations of one service, newest first.
#[utoipa::path(
    get,
    path = "/external-services/{id}/operations",
    tag = "operations",
    summary = "Last 100 operations of a service",
    params(("id" = i64, Path, description = "Service id")),
    responses(
        (status = 200, body = Vec<Operation>),
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn list_for_service(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<Vec<Operation>>> {
    state.manager.service(id).await?;
    Ok(Json(state.store.list_operations(Some(id)).await?))
}
