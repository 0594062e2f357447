//! Berth's retention routes: `GET /backups/retention` shows what retention would delete (a
//! dry run: nothing changes), `POST /backups/retention` deletes it now; both for one
//! destination (`s3_source_id`) or every one, one service (`service_id`) or every one with
//! backups there. Both read the destinations' own listings and apply the retention of the
//! schedules writing there (`manager/backup/retention.rs`). The scheduler prunes a service's
//! backups after each of its scheduled runs; these routes are for looking and for catching up.

use axum::Json;
use axum::extract::State;

use super::json::{DestinationRetention, PruneRequest, RetentionQuery, RetentionView};
use crate::api::AppState;
use crate::api::extract::{JsonBody, Query};
use crate::api::problem::responses as errors;
use crate::api::problem::{ApiError, ApiResult};

#[utoipa::path(
    get,
    path = "/backups/retention",
    tag = "backups",
    summary = "Dry run: what retention would keep and delete on the destinations, and why",
    params(RetentionQuery),
    responses(
        (status = 200, body = RetentionView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        (status = 503, description = "The destination named did not answer", content_type = "application/problem+json")
    )
)]
pub async fn plan(
    State(state): State<AppState>,
    Query(query): Query<RetentionQuery>,
) -> ApiResult<Json<RetentionView>> {
    let request = PruneRequest {
        s3_source_id: query.s3_source_id,
        service_id: query.service_id,
    };
    retention(&state, request, false).await
}

#[utoipa::path(
    post,
    path = "/backups/retention",
    tag = "backups",
    summary = "Apply retention now: delete what the dry run lists",
    request_body = PruneRequest,
    responses(
        (status = 200, description = "What was kept and deleted; each service's `errors` lists what could not be deleted (retried by the next prune)", body = RetentionView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::NotJson,
        (status = 503, description = "The destination named did not answer", content_type = "application/problem+json")
    )
)]
pub async fn prune(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<PruneRequest>,
) -> ApiResult<Json<RetentionView>> {
    retention(&state, request, true).await
}

async fn retention(
    state: &AppState,
    request: PruneRequest,
    apply: bool,
) -> ApiResult<Json<RetentionView>> {
    let manager = &state.manager;
    if let Some(id) = request.service_id {
        manager.service(id).await?;
    }
    let run = |id| async move {
        match apply {
            true => manager.prune(id, request.service_id).await,
            false => manager.retention_plan(id, request.service_id).await,
        }
    };
    let mut destinations = Vec::new();
    match request.s3_source_id {
        Some(id) => destinations.push(DestinationRetention {
            s3_source_id: id,
            services: run(id).await?,
            error: None,
        }),
        None => {
            for destination in state.store.list_destinations().await? {
                let (services, error) = match run(destination.id).await {
                    Ok(services) => (services, None),
                    // As a problem's detail: a 500's text stays in the log.
                    Err(e) => (Vec::new(), Some(ApiError::from(e).detail)),
                };
                destinations.push(DestinationRetention {
                    s3_source_id: destination.id,
                    services,
                    error,
                });
            }
        }
    }
    Ok(Json(RetentionView {
        dry_run: !apply,
        destinations,
    }))
}
