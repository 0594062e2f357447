//! Create, list, get (by id or by name, as Temps' `ExternalServiceDetails`), update, delete,
//! reveal.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::Parameters;
use berth_core::params::DOCKER_IMAGE;
use serde::{Deserialize, Serialize};

use super::{AcceptedResponse, DeleteNote, ServiceView, respond, respond_submitted};
use crate::api::AppState;
use crate::api::extract::{IdPath, JsonBody, Query, Wait, WaitParams};
use crate::api::problem::responses as errors;
use crate::api::problem::{ApiError, ApiResult};
use crate::manager::DeleteOptions;
use crate::manager::{CreateRequest, ParamValue};
use crate::store::Service;

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
    let mut views = Vec::with_capacity(services.len());
    for service in &services {
        views.push(ServiceView::masked_with_version(&state.manager, service).await);
    }
    Ok(Json(views))
}

/// Temps' `ExternalServiceDetails`: the service (with `warnings` about its data inside
/// `service`), its parameters with secrets masked, and the JSON Schema of its type's parameters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceDetails {
    pub service: ServiceView,
    /// The parameters, secrets masked (`reveal` shows them).
    pub current_parameters: Parameters,
    /// JSON Schema of the service type's parameters (as `/types/{service_type}/parameters`).
    #[schema(value_type = Object)]
    pub parameter_schema: serde_json::Value,
}

async fn details(state: &AppState, service: &Service) -> ApiResult<ServiceDetails> {
    let engine = crate::manager::ServiceManager::engine_for(service)?;
    let mut view = ServiceView::masked_with_version(&state.manager, service).await;
    view.warnings = state.manager.warnings(service).await;
    Ok(ServiceDetails {
        current_parameters: view.parameters.clone(),
        service: view,
        parameter_schema: super::catalog::parameter_schema(state, engine),
    })
}

#[utoipa::path(
    get,
    path = "/external-services/{id}",
    tag = "services",
    summary = "Get a service with its parameters (secrets masked) and their schema",
    params(("id" = i64, Path, description = "Service id")),
    responses(
        (status = 200, body = ServiceDetails),
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn get(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<ServiceDetails>> {
    let service = state.manager.service(id).await?;
    Ok(Json(details(&state, &service).await?))
}

/// Temps' lookup by slug; a Berth service's slug is its name.
#[utoipa::path(
    get,
    path = "/external-services/by-slug/{slug}",
    tag = "services",
    summary = "Get a service by its slug (its name)",
    params(("slug" = String, Path, description = "Service name", pattern = "^[a-z]([a-z0-9-]*[a-z0-9])?$", min_length = 1, max_length = 63)),
    responses(
        (status = 200, body = ServiceDetails),
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn by_slug(
    State(state): State<AppState>,
    axum::extract::Path(slug): axum::extract::Path<String>,
) -> ApiResult<Json<ServiceDetails>> {
    let not_found = || ApiError::not_found(format!("no service named {slug:?}"));
    berth_core::names::validate_name(&slug).map_err(|_| not_found())?;
    let service = state
        .store
        .list_services()
        .await?
        .into_iter()
        .find(|s| s.name == slug)
        .ok_or_else(not_found)?;
    Ok(Json(details(&state, &service).await?))
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
    /// Editable parameters to change; values as strings, or JSON numbers and booleans.
    #[serde(default, deserialize_with = "berth_core::params::deserialize_loose")]
    #[schema(value_type = std::collections::BTreeMap<String, ParamValue>)]
    pub parameters: Parameters,
    /// Temps' field: the same as the `docker_image` parameter.
    #[serde(default)]
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$",
        min_length = 1,
        max_length = 255
    )]
    pub docker_image: Option<String>,
}

impl UpdateRequest {
    /// The parameters to change, with `docker_image` folded in (400 if both disagree).
    pub(crate) fn into_parameters(self) -> ApiResult<Parameters> {
        let mut parameters = self.parameters;
        if let Some(image) = self.docker_image {
            match parameters.get(DOCKER_IMAGE) {
                Some(other) if *other != image => {
                    return Err(ApiError::bad_request(format!(
                        "docker_image {image:?} and parameters.docker_image {other:?} disagree; give one"
                    )));
                }
                _ => {
                    parameters.insert(DOCKER_IMAGE.into(), image);
                }
            }
        }
        Ok(parameters)
    }
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
    let changes = request.into_parameters()?;
    let manager = state.manager.clone();
    let submitted = state
        .manager
        .submit(async move { manager.update(id, changes).await });
    respond_submitted(&state, submitted, wait, id, StatusCode::OK).await
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
    /// For an imported service: also stop and remove the container it was imported from
    /// (default: Berth forgets the service and leaves the container running). Its volumes are
    /// never removed.
    #[serde(default)]
    pub remove_container: bool,
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
    crate::api::backing::refuse(&state, id, "deleted through this route").await?;
    let manager = state.manager.clone();
    let options = DeleteOptions {
        keep_data: query.keep_data,
        force: query.force,
        remove_container: query.remove_container,
    };
    let submitted = state
        .manager
        .submit(async move { manager.delete(id, options).await });
    respond_submitted(&state, submitted, wait, id, StatusCode::NO_CONTENT).await
}
