//! Temps' import routes: the containers Berth could take over, and taking one over
//! (`manager/import.rs` says what Berth then does and never does to it).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::ServiceView;
use crate::api::AppState;
use crate::api::extract::JsonBody;
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
