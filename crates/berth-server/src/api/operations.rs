//! `/api/operations/{id}`: poll a long operation (create, start, stop, update, upgrade, delete).

use axum::Json;
use axum::extract::State;

use serde::Deserialize;

use super::AppState;
use super::extract::{IdPath, Query};
use super::problem::responses as errors;
use super::problem::{ApiError, ApiResult};
use crate::store::{OpStatus, Operation};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only operations in this status (`running` lists every unfinished one, however old).
    pub status: Option<OpStatus>,
}

/// The newest 100 operations of every service, newest first; `?status=running` for every
/// operation still in flight (or parked by a shutdown, until the next start resolves it).
#[utoipa::path(
    get,
    path = "/operations",
    tag = "operations",
    summary = "List operations (newest 100; ?status= filters)",
    params(ListQuery),
    responses(
        (status = 200, body = Vec<Operation>),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Unavailable
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<Operation>>> {
    let operations = match query.status {
        Some(OpStatus::Running) => {
            let mut running = state.store.running_operations().await?;
            running.reverse();
            running
        }
        Some(status) => state
            .store
            .list_operations(None)
            .await?
            .into_iter()
            .filter(|op| op.status == status)
            .collect(),
        None => state.store.list_operations(None).await?,
    };
    Ok(Json(operations))
}

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
