//! Start, stop, upgrade and health.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::respond;
use crate::api::AppState;
use crate::api::extract::{IdPath, JsonBody, Query, WaitQuery};
use crate::api::problem::ApiResult;
use crate::manager::HealthReport;

pub async fn start(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    let started = state.manager.start(id).await?;
    respond(&state, started, q.wait, id, StatusCode::OK).await
}

pub async fn stop(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    let started = state.manager.stop(id).await?;
    respond(&state, started, q.wait, id, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    pub docker_image: String,
}

pub async fn upgrade(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Query(q): Query<WaitQuery>,
    JsonBody(request): JsonBody<UpgradeRequest>,
) -> ApiResult<Response> {
    let started = state.manager.upgrade(id, request.docker_image).await?;
    respond(&state, started, q.wait, id, StatusCode::OK).await
}

pub async fn health(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<HealthReport>> {
    Ok(Json(state.manager.health(id).await?))
}
