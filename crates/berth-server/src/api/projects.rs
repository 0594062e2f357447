//! `/api/projects`: projects and their environments (what services get linked to).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_core::names;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::{IdPath, JsonBody};
use super::problem::responses as errors;
use super::problem::{ApiError, ApiResult};
use crate::manager::RevokedTenant;
use crate::store::{self, Project};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// 1 to 100 printable characters (surrounding whitespace is trimmed). Without `slug`, its
    /// slugified form must be a valid slug.
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 100
    )]
    pub name: String,
    /// Defaults to the slugified name. Lowercase letters, digits and `-`, starting with a letter
    /// and not ending with `-`, at most 63 characters.
    #[schema(
        pattern = "^[a-z]([a-z0-9-]*[a-z0-9])?$",
        min_length = 1,
        max_length = 63
    )]
    pub slug: Option<String>,
    /// Environment names (see `AddEnvironment.name`), distinct; defaults to `["production"]`.
    #[schema(min_items = 1)]
    pub environments: Option<Vec<String>>,
}

fn checked_slug(kind: &str, value: &str) -> ApiResult<String> {
    names::validate_name(value)
        .map_err(|e| ApiError::bad_request(format!("invalid {kind} slug: {e}")))?;
    Ok(value.to_string())
}

fn environment(name: &str) -> ApiResult<(String, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 63 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "environment names must be 1 to 63 printable characters",
        ));
    }
    let slug = checked_slug("environment", &names::slugify(name))?;
    Ok((name.to_string(), slug))
}

#[utoipa::path(
    post,
    path = "/projects",
    tag = "projects",
    summary = "Create a project with environments (default production)",
    request_body = CreateProject,
    responses(
        (status = 201, body = Project),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::Unavailable
    )
)]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "project names must be 1 to 100 printable characters",
        ));
    }
    let slug = checked_slug(
        "project",
        &body.slug.clone().unwrap_or_else(|| names::slugify(name)),
    )?;
    let env_names = body
        .environments
        .unwrap_or_else(|| vec!["production".into()]);
    if env_names.is_empty() {
        return Err(ApiError::bad_request(
            "a project needs at least one environment",
        ));
    }
    let mut envs = Vec::new();
    for env in &env_names {
        let (env_name, env_slug) = environment(env)?;
        if envs.iter().any(|(_, s)| s == &env_slug) {
            return Err(ApiError::bad_request(format!(
                "environment {env_slug:?} is listed twice"
            )));
        }
        envs.push((env_name, env_slug));
    }
    let project = state
        .store
        .insert_project(name, &slug, &envs)
        .await
        .map_err(|e| {
            if store::is_unique_violation(&e) {
                ApiError::conflict(format!("a project with slug {slug:?} already exists"))
            } else {
                e.into()
            }
        })?;
    Ok((StatusCode::CREATED, Json(project)))
}

#[utoipa::path(
    get,
    path = "/projects",
    tag = "projects",
    summary = "List projects",
    responses(
        (status = 200, body = Vec<Project>),
        errors::Unauthorized,
        errors::Unavailable
    )
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Project>>> {
    Ok(Json(state.store.list_projects().await?))
}

async fn load(state: &AppState, id: i64) -> ApiResult<Project> {
    Ok(state.manager.project(id).await?)
}

#[utoipa::path(
    get,
    path = "/projects/{id}",
    tag = "projects",
    summary = "Get a project",
    params(("id" = i64, Path, description = "Project id")),
    responses(
        (status = 200, body = Project),
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn get(State(state): State<AppState>, IdPath(id): IdPath) -> ApiResult<Json<Project>> {
    Ok(Json(load(&state, id).await?))
}

/// What deleting a project or an environment turned off.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedWithRevocations {
    pub revoked: Vec<RevokedTenant>,
    pub note: String,
}

/// Answers a delete: 204 when no login had to be turned off, else 200 saying which were and
/// what happens to their data.
fn deleted(revoked: Vec<RevokedTenant>) -> Response {
    if revoked.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let note = super::links::revoked_note(&revoked);
    (
        StatusCode::OK,
        Json(DeletedWithRevocations { revoked, note }),
    )
        .into_response()
}

/// Refused while services are linked: unlinking is an explicit decision about their data. The
/// logins the project kept in services it was unlinked from are turned off; their data stays.
#[utoipa::path(
    delete,
    path = "/projects/{id}",
    tag = "projects",
    summary = "Delete a project (refused while services are linked; turns its logins off)",
    params(("id" = i64, Path, description = "Project id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 200, description = "Deleted; these logins were turned off", body = DeletedWithRevocations),
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::Unavailable
    )
)]
pub async fn delete(State(state): State<AppState>, IdPath(id): IdPath) -> ApiResult<Response> {
    load(&state, id).await?;
    let links = state.store.links_of_project(id).await?;
    if !links.is_empty() {
        let ids: Vec<String> = links.iter().map(|l| l.service_id.to_string()).collect();
        return Err(ApiError::conflict(format!(
            "project {id} is linked to service(s) {}; unlink them first",
            ids.join(", ")
        )));
    }
    // Logins first: if this fails the project is still there and the delete can be retried.
    let revoked = state.manager.revoke_project(id, None).await?;
    if state.store.delete_project(id).await? {
        state.manager.kv_forget_project(id).await;
        Ok(deleted(revoked))
    } else {
        Err(ApiError::not_found(format!("project {id} does not exist")))
    }
}

/// Removes one environment: its logins in every service are turned off (data kept).
#[utoipa::path(
    delete,
    path = "/projects/{id}/environments/{environment}",
    tag = "projects",
    summary = "Delete an environment (turns its logins off; data kept)",
    params(("id" = i64, Path, description = "Project id"), ("environment" = String, Path, description = "Environment slug")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 200, description = "Deleted; these logins were turned off", body = DeletedWithRevocations),
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::Unavailable
    )
)]
pub async fn delete_environment(
    State(state): State<AppState>,
    Path((id, environment)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = super::extract::parse_id(&id)?;
    let project = load(&state, id).await?;
    let env = project
        .environments
        .iter()
        .find(|e| e.slug == environment)
        .ok_or_else(|| {
            ApiError::not_found(format!("project {id} has no environment {environment:?}"))
        })?;
    if project.environments.len() == 1 {
        return Err(ApiError::conflict(format!(
            "{environment:?} is the only environment of project {id}; delete the project instead"
        )));
    }
    let revoked = state.manager.revoke_project(id, Some(env.id)).await?;
    state.store.delete_environment(id, env.id).await?;
    Ok(deleted(revoked))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddEnvironment {
    /// 1 to 63 printable characters whose first ASCII letter or digit is a letter (the slug,
    /// `Staging 2` -> `staging-2`, must start with a letter).
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9fA-Za-z0-9]*[A-Za-z][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 63
    )]
    pub name: String,
}

#[utoipa::path(
    post,
    path = "/projects/{id}/environments",
    tag = "projects",
    summary = "Add an environment (provisioned in linked services)",
    params(("id" = i64, Path, description = "Project id")),
    request_body = AddEnvironment,
    responses(
        (status = 201, body = Project),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::Unavailable
    )
)]
pub async fn add_environment(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<AddEnvironment>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    let project = load(&state, id).await?;
    let (name, slug) = environment(&body.name)?;
    if project.environments.iter().any(|e| e.slug == slug) {
        return Err(ApiError::conflict(format!(
            "project {id} already has environment {slug:?}"
        )));
    }
    state
        .store
        .add_environment(id, &name, &slug)
        .await
        .map_err(|e| {
            if store::is_unique_violation(&e) {
                ApiError::conflict(format!("project {id} already has environment {slug:?}"))
            } else {
                e.into()
            }
        })?;
    state.manager.environment_added(id).await;
    Ok((StatusCode::CREATED, Json(load(&state, id).await?)))
}
