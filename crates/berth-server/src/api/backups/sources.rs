//! Temps' `/backups/s3-sources`: backup destinations, CRUD plus `POST .../test` (write, read
//! back and delete a probe object). Admin tokens; reads also to read-only ones (the secret
//! key is always masked).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::json::{S3SourceRequest, S3SourceTest, S3SourceView, SourceBackups};
use crate::api::AppState;
use crate::api::extract::{IdPath, JsonBody};
use crate::api::problem::ApiResult;
use crate::api::problem::responses as errors;
use crate::store::BackupFilter;

#[utoipa::path(
    get,
    path = "/backups/s3-sources",
    tag = "backups",
    summary = "List backup destinations (secret keys masked)",
    responses((status = 200, body = Vec<S3SourceView>), errors::Unauthorized)
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<S3SourceView>>> {
    let destinations = state.store.list_destinations().await?;
    Ok(Json(destinations.iter().map(S3SourceView::from).collect()))
}

#[utoipa::path(
    post,
    path = "/backups/s3-sources",
    tag = "backups",
    summary = "Add a backup destination: any S3-compatible endpoint, or a Berth-managed S3 service",
    request_body = S3SourceRequest,
    responses(
        (status = 201, body = S3SourceView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::NotJson,
        errors::Unavailable
    )
)]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<S3SourceRequest>,
) -> ApiResult<(StatusCode, Json<S3SourceView>)> {
    let created = state.manager.create_destination(request.into()).await?;
    Ok((StatusCode::CREATED, Json(S3SourceView::from(&created))))
}

#[utoipa::path(
    get,
    path = "/backups/s3-sources/{id}",
    tag = "backups",
    summary = "One backup destination (secret key masked)",
    params(("id" = i64, Path, description = "Destination id")),
    responses((status = 200, body = S3SourceView), errors::Unauthorized, errors::NotFound)
)]
pub async fn get(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<S3SourceView>> {
    let destination = state.manager.destination(id).await?;
    Ok(Json(S3SourceView::from(&destination)))
}

#[utoipa::path(
    patch,
    path = "/backups/s3-sources/{id}",
    tag = "backups",
    summary = "Change a backup destination (fields left out keep their value)",
    params(("id" = i64, Path, description = "Destination id")),
    request_body = S3SourceRequest,
    responses(
        (status = 200, body = S3SourceView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::NotJson
    )
)]
pub async fn update(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    JsonBody(request): JsonBody<S3SourceRequest>,
) -> ApiResult<Json<S3SourceView>> {
    let updated = state.manager.update_destination(id, request.into()).await?;
    Ok(Json(S3SourceView::from(&updated)))
}

#[utoipa::path(
    delete,
    path = "/backups/s3-sources/{id}",
    tag = "backups",
    summary = "Delete a backup destination no backup record points at",
    params(("id" = i64, Path, description = "Destination id")),
    responses(
        (status = 204, description = "Deleted"),
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict
    )
)]
pub async fn delete(State(state): State<AppState>, IdPath(id): IdPath) -> ApiResult<StatusCode> {
    state.manager.delete_destination(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/backups/s3-sources/{id}/test",
    tag = "backups",
    summary = "Check a destination: write a probe object, read it back, delete it",
    params(("id" = i64, Path, description = "Destination id")),
    responses(
        (status = 200, body = S3SourceTest),
        (status = 400, description = "A step failed; the detail says which and why", content_type = "application/problem+json"),
        errors::Unauthorized,
        errors::NotFound
    )
)]
pub async fn test(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<S3SourceTest>> {
    let message = state.manager.test_destination(id).await?;
    Ok(Json(S3SourceTest {
        success: true,
        message,
    }))
}

#[utoipa::path(
    get,
    path = "/backups/s3-sources/{id}/backups",
    tag = "backups",
    summary = "Backups recorded in a destination, newest first",
    params(("id" = i64, Path, description = "Destination id")),
    responses((status = 200, body = SourceBackups), errors::Unauthorized, errors::NotFound)
)]
pub async fn backups(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<SourceBackups>> {
    state.manager.destination(id).await?;
    let filter = BackupFilter {
        destination_id: Some(id),
        ..Default::default()
    };
    let backups = super::backup_views(&state, filter).await?;
    // The newest start or end among them, as Temps shows it.
    let last_updated = backups
        .iter()
        .filter_map(|b| b.completed_at.or(Some(b.started_at)))
        .max();
    Ok(Json(SourceBackups {
        backups,
        last_updated,
    }))
}
