//! Running and reading backups: Temps' `POST /backups/external-services/{id}/run` and
//! `GET /backups/{id}`, plus `GET /external-services/{id}/backups`. A run answers when it has
//! ended (as Temps does): 200 with the verified backup, or the failure as problem+json naming
//! the backup. With `Prefer: respond-async`, `?wait=false`, or past the synchronous bound:
//! 202 with the running backup and `Location: /api/backups/{id}` to poll.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::json::{BackupView, ExternalServiceBackup, RunBackupRequest};
use crate::api::AppState;
use crate::api::extract::{IdPath, JsonBody, Wait, WaitParams};
use crate::api::policy::Principal;
use crate::api::problem::responses as errors;
use crate::api::problem::{ApiError, ApiResult};
use crate::manager::backup::{BackupRequest, StartedBackup};
use crate::store::{BackupFilter, BackupRecord};

#[utoipa::path(
    post,
    path = "/backups/external-services/{id}/run",
    tag = "backups",
    summary = "Back a service up now to a destination (200 once verified on the destination)",
    params(("id" = i64, Path, description = "Service id"), WaitParams),
    request_body = RunBackupRequest,
    responses(
        (status = 200, description = "Succeeded: every object and the manifest checked on the destination and matched", body = ExternalServiceBackup),
        (status = 202, description = "Running (`Prefer: respond-async`, `?wait=false`, or past the synchronous bound); poll `Location`", body = ExternalServiceBackup),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::NotJson,
        errors::OperationFailed,
        errors::Unavailable
    )
)]
pub async fn run(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    principal: Principal,
    wait: Wait,
    JsonBody(request): JsonBody<RunBackupRequest>,
) -> ApiResult<Response> {
    let started = state
        .manager
        .start_backup(BackupRequest {
            service_id: id,
            destination_id: request.s3_source_id,
            backup_type: request.backup_type,
            created_by: format!("token:{}", principal.token_id),
            schedule_id: None,
            tags: request.tags,
            expires_at: None,
        })
        .await?;
    answer_run(&state, started, wait).await
}

/// A started run's answer: 200 with the verified backup once it ended, the failure as
/// problem+json naming the backup, or 202 to poll (asked for, or past the synchronous bound).
pub(super) async fn answer_run(
    state: &AppState,
    started: StartedBackup,
    wait: Wait,
) -> ApiResult<Response> {
    if wait.respond_async {
        return Ok(accepted(&started.record, wait.preference_applied));
    }
    let bound = wait.bound(state.manager.config.sync_wait_secs);
    match tokio::time::timeout(bound, started.done).await {
        Err(_) => {
            let now = state.store.backup(started.record.id).await?;
            Ok(accepted(now.as_ref().unwrap_or(&started.record), false))
        }
        Ok(joined) => {
            let (record, error) =
                joined.map_err(|e| ApiError::internal(format!("backup task failed: {e}")))?;
            match error {
                None => Ok(Json(ExternalServiceBackup::from(&record)).into_response()),
                Some(e) => {
                    let mut err = ApiError::from(e);
                    err.detail = format!("backup {} failed: {}", record.id, err.detail);
                    Err(err)
                }
            }
        }
    }
}

fn accepted(record: &BackupRecord, preference_applied: bool) -> Response {
    super::accepted(
        ExternalServiceBackup::from(record),
        &format!("/api/backups/{}", record.id),
        preference_applied,
    )
}

#[utoipa::path(
    get,
    path = "/backups/{id}",
    tag = "backups",
    summary = "One backup: its state, step and progress while it runs, its manifest once done",
    params(("id" = i64, Path, description = "Backup id")),
    responses((status = 200, body = BackupView), errors::Unauthorized, errors::NotFound)
)]
pub async fn get(State(state): State<AppState>, IdPath(id): IdPath) -> ApiResult<Json<BackupView>> {
    let record = state
        .store
        .backup(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("backup {id} does not exist")))?;
    Ok(Json(BackupView::new(
        &record,
        state.manager.backup_runs.bytes_done(record.id),
    )))
}

#[utoipa::path(
    get,
    path = "/external-services/{id}/backups",
    tag = "backups",
    summary = "A service's backups, newest first",
    params(("id" = i64, Path, description = "Service id")),
    responses((status = 200, body = Vec<BackupView>), errors::Unauthorized, errors::NotFound)
)]
pub async fn for_service(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<Vec<BackupView>>> {
    state.manager.service(id).await?;
    let filter = BackupFilter {
        service_id: Some(id),
        ..Default::default()
    };
    Ok(Json(super::backup_views(&state, filter).await?))
}

#[utoipa::path(
    post,
    path = "/backups/{id}/verify",
    tag = "backups",
    summary = "Verify a backup by restoring it into a throwaway service and comparing counts (200 when done)",
    params(("id" = i64, Path, description = "Backup id"), WaitParams),
    responses(
        (status = 200, description = "Verified: `metadata.verify.state` is `succeeded`", body = BackupView),
        (status = 202, description = "Verifying (`Prefer: respond-async`, or past the synchronous bound); poll `Location`", body = BackupView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    wait: Wait,
) -> ApiResult<Response> {
    let started = state.manager.start_verify(id).await?;
    let view = |record: &BackupRecord| BackupView::new(record, None);
    let accepted = |record: &BackupRecord, applied: bool| {
        super::accepted(
            view(record),
            &format!("/api/backups/{}", record.id),
            applied,
        )
    };
    if wait.respond_async {
        return Ok(accepted(&started.record, wait.preference_applied));
    }
    let bound = wait.bound(state.manager.config.sync_wait_secs);
    match tokio::time::timeout(bound, started.done).await {
        Err(_) => Ok(accepted(&started.record, false)),
        Ok(joined) => {
            let (record, error) =
                joined.map_err(|e| ApiError::internal(format!("verify task failed: {e}")))?;
            match error {
                None => Ok(Json(view(&record)).into_response()),
                Some(e) => {
                    let mut err = ApiError::from(e);
                    err.detail = format!("backup {} did not verify: {}", record.id, err.detail);
                    Err(err)
                }
            }
        }
    }
}
