//! Temps' restore framework: `POST /external-services/{id}/restore` answers 202 with a restore
//! run at once; `GET /restore-runs/{id}` follows it, `POST .../cancel` stops it,
//! `GET /external-services/{id}/restore-runs` lists them, and `.../restore-capabilities` says
//! what the engine can do. Admin tokens (reads also to read-only ones).

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use berth_core::Parameters;
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::api::extract::{IdPath, JsonBody};
use crate::api::problem::responses as errors;
use crate::api::problem::{ApiError, ApiResult};
use crate::manager::backup::{RestoreMode, RestoreRequest};
use crate::store::RestoreRun;

/// `{backup_id, mode, ...}`: `mode` is `in_place` (over this service; a backup of another
/// service needs `confirm_cross_service: true`), `new_service` (with `name` and optional
/// `parameter_overrides`), or `pitr` (clusters only: refused for these logical backups).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// The backup to restore (the route `/backups/{id}/restore` names it in the path instead).
    pub backup_id: Option<i64>,
    #[schema(example = "new_service")]
    pub mode: String,
    #[serde(default)]
    pub confirm_cross_service: bool,
    /// `new_service`: the new service's name.
    pub name: Option<String>,
    /// `new_service`: parameters that differ from the backed-up service's (port, ...).
    #[serde(default, deserialize_with = "berth_core::params::deserialize_loose")]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub parameter_overrides: Parameters,
    /// Berth: restore only this database of the backup (one project's), not all of it.
    pub database: Option<String>,
    /// `pitr` fields (Temps): accepted so the refusal can say why.
    #[allow(dead_code)]
    pub to_new_service: Option<bool>,
    #[allow(dead_code)]
    pub new_service_name: Option<String>,
    #[allow(dead_code)]
    #[schema(value_type = Object)]
    pub target: Option<serde_json::Value>,
}

/// Temps' RestoreRun, plus Berth's `database` and `safety_backup_id`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RestoreRunView {
    pub id: i64,
    pub source_backup_id: i64,
    pub source_service_id: Option<i64>,
    pub target_service_id: Option<i64>,
    pub target_service_name: Option<String>,
    /// `in_place` or `new_service`.
    pub mode: String,
    /// `running`, `succeeded`, `failed`, `cancelled`.
    pub status: String,
    pub phase: String,
    pub recovery_target: Option<String>,
    pub error_message: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub created_at: String,
    /// The one database restored, if not all of the backup.
    pub database: Option<String>,
    /// `in_place`: the backup taken of the service just before it was overwritten.
    pub safety_backup_id: Option<i64>,
}

impl From<&RestoreRun> for RestoreRunView {
    fn from(r: &RestoreRun) -> Self {
        Self {
            id: r.id,
            source_backup_id: r.source_backup_id,
            source_service_id: r.source_service_id,
            target_service_id: r.target_service_id,
            target_service_name: r.target_service_name.clone(),
            mode: r.mode.clone(),
            status: r.status.clone(),
            phase: r.phase.clone(),
            recovery_target: r.recovery_target.clone(),
            error_message: r.error_message.clone(),
            started_at: r.started_at.clone(),
            finished_at: r.finished_at.clone(),
            created_at: r.created_at.clone(),
            database: r.database.clone(),
            safety_backup_id: r.safety_backup_id,
        }
    }
}

/// What the service's engine can restore.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RestoreCapabilities {
    pub service_type: String,
    /// Modes `POST .../restore` accepts for this service.
    pub modes: Vec<String>,
    /// Whether one database of a backup can be restored alone (`database`).
    pub single_database: bool,
    pub pitr: PitrCapability,
    pub suggested_new_service_name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PitrCapability {
    pub supported: bool,
    pub target_kinds: Vec<String>,
    pub reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/external-services/{id}/restore",
    tag = "backups",
    summary = "Restore a verified backup into this service (in_place) or into a new one; 202 with the run",
    params(("id" = i64, Path, description = "Service id")),
    request_body = RestoreBody,
    responses(
        (status = 202, description = "Started; poll `Location`", body = RestoreRunView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        (status = 409, description = "`restore-already-active`, or a backup of another service without confirm_cross_service", content_type = "application/problem+json"),
        errors::NotJson
    )
)]
pub async fn start(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<RestoreBody>,
) -> ApiResult<Response> {
    let backup_id = body
        .backup_id
        .ok_or_else(|| ApiError::bad_request("`backup_id` is required"))?;
    restore(&state, Some(id), backup_id, body).await
}

#[utoipa::path(
    post,
    path = "/backups/{id}/restore",
    tag = "backups",
    summary = "Restore a backup into a new service (also when its own service is gone); 202 with the run",
    params(("id" = i64, Path, description = "Backup id")),
    request_body = RestoreBody,
    responses(
        (status = 202, description = "Started; poll `Location`", body = RestoreRunView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::NotJson
    )
)]
pub async fn start_from_backup(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<RestoreBody>,
) -> ApiResult<Response> {
    if body.mode != "new_service" {
        return Err(ApiError::bad_request(
            "this route restores into a new service (mode new_service); to restore over a \
             service, use POST /api/external-services/{id}/restore",
        ));
    }
    if body.backup_id.is_some_and(|b| b != id) {
        return Err(ApiError::bad_request(
            "backup_id differs from the backup in the path",
        ));
    }
    restore(&state, None, id, body).await
}

async fn restore(
    state: &AppState,
    service_id: Option<i64>,
    backup_id: i64,
    body: RestoreBody,
) -> ApiResult<Response> {
    let mode = match body.mode.as_str() {
        "in_place" => RestoreMode::InPlace {
            confirm_cross_service: body.confirm_cross_service,
        },
        "new_service" => RestoreMode::NewService {
            name: body.name.clone().ok_or_else(|| {
                ApiError::bad_request("mode new_service needs `name`, the new service's name")
            })?,
            parameter_overrides: body.parameter_overrides.clone(),
        },
        "pitr" => {
            return Err(ApiError::bad_request(format!(
                "mode pitr needs a PostgreSQL cluster backup with continuous WAL archiving; \
                 backup {} is a logical dump, which restores to the moment it was taken: use \
                 in_place or new_service",
                backup_id
            )));
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "mode {other:?} is not one of in_place, new_service, pitr"
            )));
        }
    };
    let run = state
        .manager
        .start_restore(RestoreRequest {
            service_id,
            backup_id,
            mode,
            database: body.database,
        })
        .await?;
    Ok(super::accepted(
        RestoreRunView::from(&run),
        &format!("/api/restore-runs/{}", run.id),
        false,
    ))
}

#[utoipa::path(
    get,
    path = "/restore-runs/{id}",
    tag = "backups",
    summary = "One restore run: status and phase",
    params(("id" = i64, Path, description = "Restore run id")),
    responses((status = 200, body = RestoreRunView), errors::Unauthorized, errors::NotFound)
)]
pub async fn get(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<RestoreRunView>> {
    let run = state
        .store
        .restore_run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("restore run {id} does not exist")))?;
    Ok(Json(RestoreRunView::from(&run)))
}

#[utoipa::path(
    post,
    path = "/restore-runs/{id}/cancel",
    tag = "backups",
    summary = "Cancel a running restore (what was restored until then stays)",
    params(("id" = i64, Path, description = "Restore run id")),
    responses(
        (status = 200, body = RestoreRunView),
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<RestoreRunView>> {
    let run = state.manager.cancel_restore(id).await?;
    Ok(Json(RestoreRunView::from(&run)))
}

#[utoipa::path(
    get,
    path = "/external-services/{id}/restore-runs",
    tag = "backups",
    summary = "Restore runs onto or from a service, newest first",
    params(("id" = i64, Path, description = "Service id")),
    responses((status = 200, body = Vec<RestoreRunView>), errors::Unauthorized, errors::NotFound)
)]
pub async fn for_service(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<Vec<RestoreRunView>>> {
    state.manager.service(id).await?;
    let runs = state.store.restore_runs_of_service(id).await?;
    Ok(Json(runs.iter().map(RestoreRunView::from).collect()))
}

#[utoipa::path(
    get,
    path = "/external-services/{id}/restore-capabilities",
    tag = "backups",
    summary = "What can be restored into this service, and a free name for a new one",
    params(("id" = i64, Path, description = "Service id")),
    responses((status = 200, body = RestoreCapabilities), errors::Unauthorized, errors::NotFound)
)]
pub async fn capabilities(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<RestoreCapabilities>> {
    let service = state.manager.service(id).await?;
    let engine = crate::manager::ServiceManager::engine_for(&service)?;
    let can = engine.backup().is_some();
    let taken: std::collections::HashSet<String> = state
        .store
        .list_services()
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let base: String = format!("{}-restored", service.name)
        .chars()
        .take(44)
        .collect();
    let suggested = std::iter::once(base.clone())
        .chain((2..).map(|n| format!("{base}-{n}")))
        .find(|name| !taken.contains(name))
        .expect("an unused name exists");
    Ok(Json(RestoreCapabilities {
        service_type: service.service_type.clone(),
        modes: if can {
            vec!["in_place".into(), "new_service".into()]
        } else {
            Vec::new()
        },
        single_database: can && service.service_type == "postgres",
        pitr: PitrCapability {
            supported: false,
            target_kinds: Vec::new(),
            reason: Some(
                "point-in-time recovery needs a PostgreSQL cluster with WAL archiving; this \
                 service's backups are logical dumps"
                    .into(),
            ),
        },
        suggested_new_service_name: suggested,
    }))
}
