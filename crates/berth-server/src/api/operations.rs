//! `/api/operations/{id}`: poll a long operation (create, start, stop, update, upgrade, delete).

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::extract::IdPath;
use super::problem::{ApiError, ApiResult};
use crate::store::Operation;

pub async fn get(State(state): State<AppState>, IdPath(id): IdPath) -> ApiResult<Json<Operation>> {
    state
        .store
        .operation(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("operation {id} does not exist")))
}

/// The last 100 operations of one service, newest first.
pub async fn list_for_service(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<Vec<Operation>>> {
    state.manager.service(id).await?;
    Ok(Json(state.store.list_operations(Some(id)).await?))
}
