//! Backups of Berth's own state: the key they are sealed to (set from a passphrase; only its
//! public half is kept), a run now, and the list. Scheduling is an ordinary schedule with
//! `"target": "berth_state"`. Restoring is offline (`berth state restore`): the server cannot
//! open what it sealed.

use axum::Json;
use axum::extract::State;
use axum::response::Response;

use super::json::{BackupView, RunStateBackupRequest, StateKeyRequest, StateKeyView};
use crate::api::AppState;
use crate::api::extract::{JsonBody, Wait, WaitParams};
use crate::api::policy::Principal;
use crate::api::problem::ApiResult;
use crate::api::problem::responses as errors;
use crate::manager::backup::StateBackupRequest;
use crate::store::{BackupFilter, STATE_SERVICE_TYPE};

#[utoipa::path(
    get,
    path = "/backups/state/key",
    tag = "backups",
    summary = "The key Berth's state backups are sealed to (its public half and fingerprint)",
    responses((status = 200, body = StateKeyView), errors::Unauthorized)
)]
pub async fn get_key(State(state): State<AppState>) -> ApiResult<Json<StateKeyView>> {
    let key = state.manager.state_backup_key().await?;
    Ok(Json(StateKeyView::from(key.as_ref())))
}

#[utoipa::path(
    put,
    path = "/backups/state/key",
    tag = "backups",
    summary = "Set the passphrase state backups are sealed for (only the derived public key is kept)",
    request_body = StateKeyRequest,
    responses(
        (status = 200, body = StateKeyView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotJson
    )
)]
pub async fn set_key(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<StateKeyRequest>,
) -> ApiResult<Json<StateKeyView>> {
    let key = state
        .manager
        .set_state_backup_key(request.passphrase)
        .await?;
    Ok(Json(StateKeyView::from(Some(&key))))
}

#[utoipa::path(
    post,
    path = "/backups/state/run",
    tag = "backups",
    summary = "Back up Berth's own state now (state database, secret key, instance id), sealed to the state backup key",
    params(WaitParams),
    request_body = RunStateBackupRequest,
    responses(
        (status = 200, description = "Succeeded: the sealed archive and the manifest read back and matched", body = super::json::ExternalServiceBackup),
        (status = 202, description = "Running; poll `Location`", body = super::json::ExternalServiceBackup),
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
    principal: Principal,
    wait: Wait,
    JsonBody(request): JsonBody<RunStateBackupRequest>,
) -> ApiResult<Response> {
    let started = state
        .manager
        .start_state_backup(StateBackupRequest {
            destination_id: request.s3_source_id,
            created_by: format!("token:{}", principal.token_id),
            schedule_id: None,
            tags: request.tags,
            expires_at: None,
        })
        .await?;
    super::runs::answer_run(&state, started, wait).await
}

#[utoipa::path(
    get,
    path = "/backups/state",
    tag = "backups",
    summary = "Backups of Berth's own state, newest first",
    responses((status = 200, body = Vec<BackupView>), errors::Unauthorized)
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<BackupView>>> {
    let filter = BackupFilter {
        service_type: Some(STATE_SERVICE_TYPE),
        ..Default::default()
    };
    Ok(Json(super::backup_views(&state, filter).await?))
}
