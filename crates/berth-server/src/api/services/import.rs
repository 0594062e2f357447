//! Temps' import routes: the containers Berth could take over, and taking one over
//! (`manager/import.rs` says what Berth then does and never does to it).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{AcceptedResponse, ServiceView, respond_submitted};
use crate::api::AppState;
use crate::api::extract::{IdPath, JsonBody, Wait, WaitParams};
use crate::api::problem::ApiResult;
use crate::api::problem::responses as errors;
use crate::manager::{AvailableContainer, ImportRequest};

#[utoipa::path(
    get,
    path = "/external-services/available-containers",
    tag = "services",
    summary = "Containers Berth did not make that run a server it knows (recognised by what they run, not their image name)",
    responses(
        (status = 200, body = Vec<AvailableContainer>),
        errors::Unauthorized,
        errors::Unavailable
    )
)]
pub async fn available_containers(
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<AvailableContainer>>> {
    Ok(Json(state.manager.available_containers().await?))
}

#[utoipa::path(
    post,
    path = "/external-services/import",
    tag = "services",
    summary = "Import a running container as a service, after verifying its credentials by connecting (its container and volumes stay the user's)",
    request_body = ImportRequest,
    responses(
        (status = 201, description = "Imported", body = ServiceView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::Unavailable
    )
)]
pub async fn import(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<ImportRequest>,
) -> ApiResult<(StatusCode, Json<ServiceView>)> {
    let service = state.manager.import(request).await?;
    Ok((
        StatusCode::CREATED,
        Json(ServiceView::masked_with_version(&state.manager, &service).await),
    ))
}

#[utoipa::path(
    post,
    path = "/external-services/{id}/adopt",
    tag = "services",
    summary = "Hand an imported service over to Berth: its container is stopped and kept (renamed `<name>-before-berth`), and Berth runs its own on the same volume",
    params(("id" = i64, Path, description = "Service id"), WaitParams),
    responses(
        AcceptedResponse,
        (status = 200, description = "Running in Berth's own container (the default)", body = ServiceView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::NotStarted,
        errors::OperationFailed,
        errors::Unavailable
    )
)]
pub async fn adopt(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    wait: Wait,
) -> ApiResult<Response> {
    let manager = state.manager.clone();
    let submitted = state.manager.submit(async move { manager.adopt(id).await });
    respond_submitted(&state, submitted, wait, id, StatusCode::OK).await
}
