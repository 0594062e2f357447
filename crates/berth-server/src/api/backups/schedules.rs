//! Temps' `/backups/schedules`: backups on a cron schedule with retention, plus Berth's
//! `POST /backups/schedules/{id}/run` (run now; `next_run` stays). Admin tokens; reads also
//! to read-only ones.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::json::{
    BackupView, CreateScheduleRequest, ScheduleRunError, ScheduleRunView, ScheduleView,
};
use crate::api::AppState;
use crate::api::extract::{IdPath, JsonBody};
use crate::api::problem::ApiResult;
use crate::api::problem::responses as errors;
use crate::store::BackupFilter;

#[utoipa::path(
    get,
    path = "/backups/schedules",
    tag = "backups",
    summary = "List backup schedules",
    responses((status = 200, body = Vec<ScheduleView>), errors::Unauthorized)
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<ScheduleView>>> {
    let schedules = state.store.list_schedules().await?;
    Ok(Json(schedules.iter().map(ScheduleView::from).collect()))
}

#[utoipa::path(
    post,
    path = "/backups/schedules",
    tag = "backups",
    summary = "Add a backup schedule (cron in UTC, at most once a minute) with its retention",
    request_body = CreateScheduleRequest,
    responses(
        (status = 201, body = ScheduleView),
        (status = 400, description = "Bad input; for a cron expression, why it was refused", content_type = "application/problem+json"),
        errors::Unauthorized,
        (status = 404, description = "The destination or the service does not exist", content_type = "application/problem+json"),
        (status = 409, description = "A schedule of that name exists", content_type = "application/problem+json"),
        errors::NotJson
    )
)]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateScheduleRequest>,
) -> ApiResult<(StatusCode, Json<ScheduleView>)> {
    let created = state.manager.create_schedule(request.into()).await?;
    Ok((StatusCode::CREATED, Json(ScheduleView::from(&created))))
}

#[utoipa::path(
    get,
    path = "/backups/schedules/{id}",
    tag = "backups",
    summary = "One backup schedule",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleView), errors::Unauthorized, errors::NotFound)
)]
pub async fn get(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<ScheduleView>> {
    let schedule = state.manager.schedule(id).await?;
    Ok(Json(ScheduleView::from(&schedule)))
}

#[utoipa::path(
    delete,
    path = "/backups/schedules/{id}",
    tag = "backups",
    summary = "Delete a backup schedule (the backups it made stay)",
    params(("id" = i64, Path, description = "Schedule id")),
    responses(
        (status = 204, description = "Deleted"),
        errors::Unauthorized,
        errors::NotFound
    )
)]
pub async fn delete(State(state): State<AppState>, IdPath(id): IdPath) -> ApiResult<StatusCode> {
    state.manager.delete_schedule(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/backups/schedules/{id}/backups",
    tag = "backups",
    summary = "The backups a schedule made, newest first",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 200, body = Vec<BackupView>), errors::Unauthorized, errors::NotFound)
)]
pub async fn backups(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<Vec<BackupView>>> {
    state.manager.schedule(id).await?;
    let filter = BackupFilter {
        schedule_id: Some(id),
        ..Default::default()
    };
    Ok(Json(super::backup_views(&state, filter).await?))
}

#[utoipa::path(
    patch,
    path = "/backups/schedules/{id}/enable",
    tag = "backups",
    summary = "Enable a schedule: it runs from its next occurrence on (no catch-up)",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleView), errors::Unauthorized, errors::NotFound)
)]
pub async fn enable(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<ScheduleView>> {
    let schedule = state.manager.set_schedule_enabled(id, true).await?;
    Ok(Json(ScheduleView::from(&schedule)))
}

#[utoipa::path(
    patch,
    path = "/backups/schedules/{id}/disable",
    tag = "backups",
    summary = "Disable a schedule (backups already running finish)",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleView), errors::Unauthorized, errors::NotFound)
)]
pub async fn disable(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<ScheduleView>> {
    let schedule = state.manager.set_schedule_enabled(id, false).await?;
    Ok(Json(ScheduleView::from(&schedule)))
}

#[utoipa::path(
    post,
    path = "/backups/schedules/{id}/run",
    tag = "backups",
    summary = "Run a schedule now (enabled or not; its next_run stays): backups start, then retention",
    params(("id" = i64, Path, description = "Schedule id")),
    responses(
        (status = 202, description = "Backups started; poll each at `GET /backups/{id}`", body = ScheduleRunView),
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn run(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<(StatusCode, Json<ScheduleRunView>)> {
    let outcomes = state.manager.run_schedule_now(id).await?;
    let mut view = ScheduleRunView {
        schedule_id: id,
        backups: Vec::new(),
        errors: Vec::new(),
    };
    for outcome in outcomes {
        match (outcome.backup, outcome.error) {
            (Some(record), _) => view.backups.push(BackupView::new(&record, None)),
            (None, error) => view.errors.push(ScheduleRunError {
                service_id: outcome.service_id,
                error: error.unwrap_or_default(),
            }),
        }
    }
    Ok((StatusCode::ACCEPTED, Json(view)))
}
