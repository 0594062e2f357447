//! `/api/external-services`: the seed's routes. `crud` holds create/list/get/update/delete,
//! `lifecycle` start/stop/upgrade/health. Long operations run as pollable operations; the
//! request waits for the outcome (as Temps answers), unless it asks for `202` with
//! `Prefer: respond-async` or `?wait=false` — see [`respond`].

pub mod catalog;
pub mod crud;
pub mod import;
pub mod lifecycle;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::Parameters;
use berth_core::mask::MASK;
use berth_core::params::DOCKER_IMAGE;
use serde::Serialize;

use super::AppState;
use super::extract::Wait;
use super::problem::{ApiError, ApiResult};
use crate::engines;
use crate::manager::{ManagerResult, ServiceManager, Started, Submitted};
use crate::store::{Operation, Service};

/// A service as the API shows it: Temps' `ExternalServiceInfo` fields (`id`, `name`,
/// `service_type`, `status`, `version`, `connection_info`, `created_at`, `updated_at`) plus
/// Berth's own; secret parameters masked unless revealed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceView {
    pub id: i64,
    pub name: String,
    pub service_type: String,
    pub status: String,
    /// The engine version the image carries (major, e.g. "15" for `berth/postgres:15`): from
    /// the image tag, else from the image's `PG_MAJOR`/`REDIS_VERSION`; null if unknown.
    pub version: Option<String>,
    /// Where the service answers on the Docker network, password masked
    /// (`postgres://postgres:***@berth-postgres-db:5432/postgres`). Never a secret.
    pub connection_info: Option<String>,
    pub desired_state: String,
    pub parameters: Parameters,
    /// Hostname on the Docker network (the container name).
    pub host: String,
    pub container_name: String,
    pub volume_name: String,
    pub created_at: String,
    pub updated_at: String,
    /// `berth` (Berth made its container) or `imported` (the user's own container, imported:
    /// never recreated or removed by Berth unless a delete asks with `?remove_container=true`).
    pub origin: String,
    /// What the user should know about the service's data (volume missing, keys in Redis
    /// database 0 ...). Filled in by the single-service view; empty in lists.
    pub warnings: Vec<String>,
}

impl ServiceView {
    pub fn masked(service: &Service) -> Self {
        Self::build(service, false)
    }

    pub fn revealed(service: &Service) -> Self {
        Self::build(service, true)
    }

    fn build(service: &Service, reveal: bool) -> Self {
        let mut parameters = service.parameters.clone();
        for (name, value) in &service.secrets {
            let shown = if reveal {
                value.clone()
            } else {
                MASK.to_string()
            };
            parameters.insert(name.clone(), shown);
        }
        let engine = engines::engine(&service.service_type);
        // Public parameters only: neither field may ever carry a secret.
        let all = &service.parameters;
        let version = engine.and_then(|engine| {
            let image = all.get(DOCKER_IMAGE)?;
            Some(engines::image_major(engine, image, None)?.to_string())
        });
        let connection_info =
            engine.and_then(|engine| engine.connection_info(&service.container_name, all));
        let warnings = engine
            .zip(all.get(DOCKER_IMAGE))
            .and_then(|(engine, image)| engine.image_notice(image))
            .into_iter()
            .collect();
        Self {
            id: service.id,
            name: service.name.clone(),
            service_type: service.service_type.clone(),
            status: service.status.clone(),
            version,
            connection_info,
            desired_state: service.desired_state.clone(),
            parameters,
            host: service.container_name.clone(),
            container_name: service.container_name.clone(),
            volume_name: service.volume_name.clone(),
            created_at: service.created_at.clone(),
            updated_at: service.updated_at.clone(),
            origin: service.origin.as_str().to_string(),
            warnings,
        }
    }

    /// The masked view, with `version` read from the image's environment when its tag does
    /// not say (`postgres:latest`). Costs a local image inspect only in that case.
    pub async fn masked_with_version(manager: &ServiceManager, service: &Service) -> Self {
        let mut view = Self::masked(service);
        if view.version.is_none() {
            view.version = manager.image_version(service).await;
        }
        view
    }
}

/// The answer to a long operation: poll `/api/operations/{operation.id}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub operation: Operation,
    pub service: Option<ServiceView>,
    /// What the caller should know (e.g. what a forced delete unlinked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The 202 answer of a long operation, as the OpenAPI document describes it.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 202,
    description = "Accepted: `Prefer: respond-async`, `?wait=false`, or still running when the \
                   synchronous wait ended; poll the operation",
    headers(
        ("Location" = String, description = "The operation to poll: /api/operations/{id}"),
        ("Preference-Applied" = String, description = "`respond-async` when the Prefer header was honoured")
    )
)]
#[allow(dead_code)] // only read by the OpenAPI derive
pub struct AcceptedResponse(pub Accepted);

/// What a forced delete did to linked projects.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeleteNote {
    pub note: String,
}

/// Answers for a request submitted with [`ServiceManager::submit`]: as [`respond`] once its
/// operation starts. A request that must wait behind earlier ones on its service is queued,
/// not refused: an asynchronous caller gets 202 with the queued operation at once, and a
/// synchronous one waits within the same bound as for the operation itself (past it: 202).
pub async fn respond_submitted(
    state: &AppState,
    submitted: Submitted,
    wait: Wait,
    service_id: i64,
    done_status: StatusCode,
) -> ApiResult<Response> {
    let deadline = tokio::time::Instant::now() + sync_bound(state, &wait);
    let Submitted {
        mut queued,
        mut task,
    } = submitted;
    let joined = tokio::select! {
        biased;
        joined = &mut task => joined,
        _ = queued.changed() => {
            let Some(operation) = queued.borrow().clone() else {
                // The request ended without queueing; its outcome is in the task.
                return respond_within(state, started(task.await)?, &wait, deadline, service_id, done_status).await;
            };
            if wait.respond_async {
                return accepted(state, operation, None, service_id, wait.preference_applied).await;
            }
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(joined) => joined,
                Err(_) => {
                    // Still waiting for its turn: the task keeps its place and the caller
                    // polls the operation.
                    let operation = state.store.operation(operation.id).await?.unwrap_or(operation);
                    return accepted(state, operation, None, service_id, false).await;
                }
            }
        }
    };
    respond_within(
        state,
        started(joined)?,
        &wait,
        deadline,
        service_id,
        done_status,
    )
    .await
}

fn started(joined: Result<ManagerResult<Started>, tokio::task::JoinError>) -> ApiResult<Started> {
    Ok(joined.map_err(|e| ApiError::internal(format!("request task failed: {e}")))??)
}

fn sync_bound(state: &AppState, wait: &Wait) -> std::time::Duration {
    wait.bound(state.manager.config.sync_wait_secs)
}

/// Answers for a started operation. Synchronous (the default, as Temps): waits for the
/// operation and answers `done_status` with the service (204 for delete; 200 with a note for
/// a forced delete), or the operation's error as problem+json. The wait is bounded
/// (`sync_wait_secs`, 120 s, or less with `Prefer: wait=N`): past it the answer is 202 with the
/// operation, which keeps running, so nothing is lost. Asynchronous (`Prefer: respond-async`
/// or `?wait=false`): 202 + `Location: /api/operations/{id}` at once, with
/// `Preference-Applied: respond-async` when the header asked for it.
pub async fn respond(
    state: &AppState,
    started: Started,
    wait: Wait,
    service_id: i64,
    done_status: StatusCode,
) -> ApiResult<Response> {
    let deadline = tokio::time::Instant::now() + sync_bound(state, &wait);
    respond_within(state, started, &wait, deadline, service_id, done_status).await
}

async fn respond_within(
    state: &AppState,
    started: Started,
    wait: &Wait,
    deadline: tokio::time::Instant,
    service_id: i64,
    done_status: StatusCode,
) -> ApiResult<Response> {
    let Started {
        operation,
        done,
        note,
    } = started;
    let op_id = operation.id;
    if wait.respond_async {
        return accepted(state, operation, note, service_id, wait.preference_applied).await;
    }
    let outcome = match tokio::time::timeout_at(deadline, done).await {
        Ok(joined) => {
            joined.map_err(|e| ApiError::internal(format!("operation task failed: {e}")))?
        }
        Err(_) => {
            // Still running: dropping the handle detaches the task, which finishes and records
            // its outcome; the caller polls it like an asynchronous answer.
            let operation = state.store.operation(op_id).await?.unwrap_or(operation);
            return accepted(state, operation, note, service_id, false).await;
        }
    };
    if let Err(e) = outcome {
        let mut err = ApiError::from(e);
        err.operation_id = Some(op_id);
        return Err(err);
    }
    if done_status == StatusCode::NO_CONTENT {
        return Ok(match note {
            Some(note) => (StatusCode::OK, Json(DeleteNote { note })).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        });
    }
    let service = state
        .store
        .service(service_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("service {service_id} no longer exists")))?;
    let view = ServiceView::masked_with_version(&state.manager, &service).await;
    Ok((done_status, Json(view)).into_response())
}

/// 202 with `{operation, service}` and `Location: /api/operations/{id}`.
pub(crate) async fn accepted(
    state: &AppState,
    operation: Operation,
    note: Option<String>,
    service_id: i64,
    preference_applied: bool,
) -> ApiResult<Response> {
    let op_id = operation.id;
    let service = match state.store.service(service_id).await? {
        Some(service) => Some(ServiceView::masked_with_version(&state.manager, &service).await),
        None => None,
    };
    let body = Accepted {
        operation,
        service,
        note,
    };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/api/operations/{op_id}")).expect("ascii"),
    );
    if preference_applied {
        headers.insert(
            "preference-applied",
            HeaderValue::from_static("respond-async"),
        );
    }
    Ok(response)
}
