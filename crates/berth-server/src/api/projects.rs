//! `/api/projects`: projects and their environments (what services get linked to).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use berth_core::names;
use serde::Deserialize;

use super::AppState;
use super::extract::{IdPath, JsonBody};
use super::problem::responses as errors;
use super::problem::{ApiError, ApiResult};
use crate::store::{self, Project};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
    /// Defaults to the slugified name.
    pub slug: Option<String>,
    /// Environment names; defaults to `["production"]`.
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

/// Refused while services are linked: unlinking is an explicit decision about their data.
#[utoipa::path(
    delete,
    path = "/projects/{id}",
    tag = "projects",
    summary = "Delete a project (refused while services are linked)",
    params(("id" = i64, Path, description = "Project id")),
    responses(
        (status = 204, description = "Deleted"),
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::Unavailable
    )
)]
pub async fn delete(State(state): State<AppState>, IdPath(id): IdPath) -> ApiResult<StatusCode> {
    let links = state.store.links_of_project(id).await?;
    if !links.is_empty() {
        let ids: Vec<String> = links.iter().map(|l| l.service_id.to_string()).collect();
        return Err(ApiError::conflict(format!(
            "project {id} is linked to service(s) {}; unlink them first",
            ids.join(", ")
        )));
    }
    if state.store.delete_project(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("project {id} does not exist")))
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddEnvironment {
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
