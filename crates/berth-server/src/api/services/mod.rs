//! `/api/external-services`: the seed's routes. `crud` holds create/list/get/update/delete,
//! `lifecycle` start/stop/upgrade/health. Long operations answer 202 with a pollable operation
//! (`?wait=true` blocks until done instead).

pub mod catalog;
pub mod crud;
pub mod lifecycle;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::Parameters;
use berth_core::mask::MASK;
use serde::Serialize;

use super::AppState;
use super::problem::{ApiError, ApiResult};
use crate::manager::Started;
use crate::store::{Operation, Service};

/// A service as the API shows it: secret parameters masked unless revealed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceView {
    pub id: i64,
    pub name: String,
    pub service_type: String,
    pub status: String,
    pub desired_state: String,
    pub parameters: Parameters,
    /// Hostname on the Docker network (the container name).
    pub host: String,
    pub container_name: String,
    pub volume_name: String,
    pub created_at: String,
    pub updated_at: String,
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
        Self {
            id: service.id,
            name: service.name.clone(),
            service_type: service.service_type.clone(),
            status: service.status.clone(),
            desired_state: service.desired_state.clone(),
            parameters,
            host: service.container_name.clone(),
            container_name: service.container_name.clone(),
            volume_name: service.volume_name.clone(),
            created_at: service.created_at.clone(),
            updated_at: service.updated_at.clone(),
            warnings: Vec::new(),
        }
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

/// What a forced delete did to linked projects.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeleteNote {
    pub note: String,
}

/// Answers for a started operation: 202 + `Location: /api/operations/{id}` at once, or, with
/// `wait`, the outcome (`done_status` with the service, or the operation's error).
pub async fn respond(
    state: &AppState,
    started: Started,
    wait: bool,
    service_id: i64,
    done_status: StatusCode,
) -> ApiResult<Response> {
    let op_id = started.operation.id;
    let note = started.note.clone();
    if !wait {
        let service = state.store.service(service_id).await?;
        let body = Accepted {
            operation: started.operation,
            service: service.as_ref().map(ServiceView::masked),
            note: started.note,
        };
        let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
        response.headers_mut().insert(
            header::LOCATION,
            HeaderValue::from_str(&format!("/api/operations/{op_id}")).expect("ascii"),
        );
        return Ok(response);
    }
    let outcome = started
        .done
        .await
        .map_err(|e| ApiError::internal(format!("operation task failed: {e}")))?;
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
    Ok((done_status, Json(ServiceView::masked(&service))).into_response())
}
