//! Create, list, get, update, delete, reveal, and the list of service types.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::Parameters;
use serde::{Deserialize, Serialize};

use super::{ServiceView, respond};
use crate::api::AppState;
use crate::api::extract::{IdPath, JsonBody, Query, WaitQuery};
use crate::api::problem::ApiResult;
use crate::engines;
use crate::manager::CreateRequest;

pub async fn create(
    State(state): State<AppState>,
    Query(query): Query<WaitQuery>,
    JsonBody(request): JsonBody<CreateRequest>,
) -> ApiResult<Response> {
    let (service, started) = state.manager.create(request).await?;
    respond(&state, started, query.wait, service.id, StatusCode::CREATED).await
}

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<ServiceView>>> {
    let services = state.store.list_services().await?;
    Ok(Json(services.iter().map(ServiceView::masked).collect()))
}

pub async fn get(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<ServiceView>> {
    let service = state.manager.service(id).await?;
    Ok(Json(ServiceView::masked(&service)))
}

/// The one place secrets are returned in clear: an explicit, authenticated request.
pub async fn reveal(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<ServiceView>> {
    let service = state.manager.service(id).await?;
    tracing::info!(service_id = id, "credentials revealed");
    Ok(Json(ServiceView::revealed(&service)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    pub parameters: Parameters,
}

pub async fn update(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Query(query): Query<WaitQuery>,
    JsonBody(request): JsonBody<UpdateRequest>,
) -> ApiResult<Response> {
    let started = state.manager.update(id, request.parameters).await?;
    respond(&state, started, query.wait, id, StatusCode::OK).await
}

#[derive(Debug, Default, Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    pub wait: bool,
    /// Keep the data volume (default: removed with the container).
    #[serde(default)]
    pub keep_data: bool,
    /// Delete even if linked to projects (unlinks them first).
    #[serde(default)]
    pub force: bool,
}

pub async fn delete(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Query(query): Query<DeleteQuery>,
) -> ApiResult<Response> {
    let started = state
        .manager
        .delete(id, query.keep_data, query.force)
        .await?;
    respond(&state, started, query.wait, id, StatusCode::NO_CONTENT).await
}

#[derive(Serialize)]
pub struct ParamView {
    name: &'static str,
    description: &'static str,
    default: Option<String>,
    editable: bool,
    secret: bool,
}

#[derive(Serialize)]
pub struct TypeView {
    service_type: &'static str,
    default_image: String,
    parameters: Vec<ParamView>,
}

/// The service types and their parameters (the seed's tables, from the engines' specs).
pub async fn types(State(state): State<AppState>) -> Json<Vec<TypeView>> {
    Json(
        engines::registry()
            .iter()
            .map(|engine| TypeView {
                service_type: engine.service_type(),
                default_image: state.manager.default_image(*engine),
                parameters: engine
                    .params()
                    .iter()
                    .map(|p| ParamView {
                        name: p.name,
                        description: p.doc,
                        default: p.default.map(str::to_string),
                        editable: p.editable,
                        secret: p.is_secret(),
                    })
                    .collect(),
            })
            .collect(),
    )
}
