//! What the routes of features kept in a backing service (KV's Redis, Blob's S3) share: the
//! ordinary service routes' refusal to touch one, and waiting for an enable/update/disable.

use axum::response::Response;

use super::AppState;
use super::extract::Wait;
use super::problem::{ApiError, ApiResult};
use super::services::accepted;
use crate::manager::Started;

/// 409 when service `id` backs a feature: the ordinary routes may not delete it (the feature's
/// data would go with it unannounced) or link it (its data is every project's).
pub async fn refuse(state: &AppState, id: i64, action: &str) -> ApiResult<()> {
    match state.manager.backing_refusal(id, action).await? {
        None => Ok(()),
        Some(reason) => Err(ApiError::conflict(reason)),
    }
}

/// Waits for the operation as the service routes do (`services::respond`): `None` once it has
/// succeeded, its error if it failed, or the 202 answer when the client asked for one or the
/// bound passed (the operation keeps running).
pub async fn settle(state: &AppState, started: Started, wait: Wait) -> ApiResult<Option<Response>> {
    let Started {
        operation, done, ..
    } = started;
    let (op_id, service_id) = (operation.id, operation.service_id.unwrap_or_default());
    if wait.respond_async {
        return accepted(state, operation, None, service_id, wait.preference_applied)
            .await
            .map(Some);
    }
    let mut bound = std::time::Duration::from_secs(state.manager.config.sync_wait_secs);
    if let Some(secs) = wait.prefer_wait_secs {
        bound = bound.min(std::time::Duration::from_secs(secs));
    }
    match tokio::time::timeout(bound, done).await {
        Ok(joined) => {
            let outcome =
                joined.map_err(|e| ApiError::internal(format!("operation task failed: {e}")))?;
            outcome.map_err(|e| {
                let mut err = ApiError::from(e);
                err.operation_id = Some(op_id);
                err
            })?;
            Ok(None)
        }
        Err(_) => {
            let operation = state.store.operation(op_id).await?.unwrap_or(operation);
            accepted(state, operation, None, service_id, false)
                .await
                .map(Some)
        }
    }
}
