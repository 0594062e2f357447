//! Create, list, get, update, delete, reveal, and the list of service types.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::Parameters;
use serde::{Deserialize, Serialize};

use super::{AcceptedResponse, DeleteNote, ServiceView, respond};
use crate::api::AppState;
use crate::api::extract::{IdPath, JsonBody, Query, Wait, WaitParams};
use crate::api::problem::ApiResult;
use crate::api::problem::responses as errors;
use crate::engines;
use crate::manager::CreateRequest;

#[utoipa::path(
    post,
    path = "/external-services",
    tag = "services",
    summary = "Create a service (201 once it accepts connections; Prefer: respond-async for 202 + operation)",
    params(WaitParams),
    request_body = CreateRequest,
    responses(
        AcceptedResponse,
        (status = 201, description = "Created and accepting connections (the default)", body = ServiceView),
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
pub async fn create(
    State(state): State<AppState>,
    wait: Wait,
    JsonBody(request): JsonBody<CreateRequest>,
) -> ApiResult<Response> {
    let (service, started) = state.manager.create(request).await?;
    respond(&state, started, wait, service.id, StatusCode::CREATED).await
}

#[utoipa::path(
    get,
    path = "/external-services",
    tag = "services",
    summary = "List services (secrets masked)",
    responses(
        (status = 200, body = Vec<ServiceView>),
        errors::Unauthorized,
        errors::Unavailable
    )
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<ServiceView>>> {
    let services = state.store.list_services().await?;
    Ok(Json(services.iter().map(ServiceView::masked).collect()))
}

#[utoipa::path(
    get,
    path = "/external-services/{id}",
    tag = "services",
    summary = "Get a service (secrets masked)",
    params(("id" = i64, Path, description = "Service id")),
    responses(
        (status = 200, body = ServiceView),
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn get(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<ServiceView>> {
    let service = state.manager.service(id).await?;
    let mut view = ServiceView::masked(&service);
    view.warnings = state.manager.warnings(&service).await;
    Ok(Json(view))
}

/// The one place secrets are returned in clear: an explicit, authenticated request.
#[utoipa::path(
    get,
    path = "/external-services/{id}/reveal",
    tag = "services",
    summary = "Get a service with its credentials in clear",
    params(("id" = i64, Path, description = "Service id")),
    responses(
        (status = 200, body = ServiceView),
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn reveal(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<ServiceView>> {
    let service = state.manager.service(id).await?;
    tracing::info!(service_id = id, "credentials revealed");
    Ok(Json(ServiceView::revealed(&service)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    pub parameters: Parameters,
}

#[utoipa::path(
    put,
    path = "/external-services/{id}",
    tag = "services",
    summary = "Change editable parameters (recreates the container, keeps data)",
    params(("id" = i64, Path, description = "Service id"), WaitParams),
    request_body = UpdateRequest,
    responses(
        AcceptedResponse,
        (status = 200, description = "Updated (the default)", body = ServiceView),
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
    IdPath(id): IdPath,
    wait: Wait,
    JsonBody(request): JsonBody<UpdateRequest>,
) -> ApiResult<Response> {
    let started = state.manager.update(id, request.parameters).await?;
    respond(&state, started, wait, id, StatusCode::OK).await
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Keep the data volume (default: removed with the container).
    #[serde(default)]
    pub keep_data: bool,
    /// Delete even if linked to projects (unlinks them first).
    #[serde(default)]
    pub force: bool,
}

#[utoipa::path(
    delete,
    path = "/external-services/{id}",
    tag = "services",
    summary = "Delete a service (refused while linked unless ?force=true)",
    params(("id" = i64, Path, description = "Service id"), DeleteQuery, WaitParams),
    responses(
        AcceptedResponse,
        (status = 204, description = "Deleted (the default)"),
        (status = 200, description = "Deleted (the default, with ?force=true), with what was unlinked", body = DeleteNote),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::NotStarted,
        errors::OperationFailed,
        errors::Unavailable
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Query(query): Query<DeleteQuery>,
    wait: Wait,
) -> ApiResult<Response> {
    let started = state
        .manager
        .delete(id, query.keep_data, query.force)
        .await?;
    respond(&state, started, wait, id, StatusCode::NO_CONTENT).await
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ParamView {
    name: &'static str,
    description: &'static str,
    default: Option<String>,
    editable: bool,
    secret: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TypeView {
    service_type: &'static str,
    default_image: String,
    parameters: Vec<ParamView>,
}

/// The service types and their parameters (the seed's tables, from the engines' specs).
#[utoipa::path(
    get,
    path = "/external-services/types",
    tag = "services",
    summary = "Service types and their parameters",
    responses(
        (status = 200, body = Vec<TypeView>),
        errors::Unauthorized
    )
)]
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
