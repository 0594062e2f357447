//! Linking: `/external-services/{id}/projects` (link, list, unlink), the seed's environment
//! previews, and the deploy-time contract `/projects/{id}/environments/{env}/variables`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::{IdPair, IdPath, JsonBody, Query, parse_id};
use super::problem::responses as errors;
use super::problem::{ApiError, ApiResult};
use crate::manager::{AddressKind, LinkView, RevokedTenant};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    pub project_id: i64,
}

/// 201 with the link when new, 200 when it already existed (linking is idempotent).
#[utoipa::path(
    post,
    path = "/external-services/{id}/projects",
    tag = "links",
    summary = "Link a service to a project (each environment gets its own tenant)",
    params(("id" = i64, Path, description = "Service id")),
    request_body = LinkRequest,
    responses(
        (status = 201, description = "Linked", body = LinkView),
        (status = 200, description = "Already linked", body = LinkView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::NotStarted,
        errors::OperationFailed,
        errors::Unavailable
    )
)]
pub async fn link(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<LinkRequest>,
) -> ApiResult<(StatusCode, Json<LinkView>)> {
    if body.project_id <= 0 {
        return Err(ApiError::not_found(format!(
            "project {} does not exist",
            body.project_id
        )));
    }
    let (view, created) = state.manager.link(id, body.project_id).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

#[utoipa::path(
    get,
    path = "/external-services/{id}/projects",
    tag = "links",
    summary = "Projects a service is linked to",
    params(("id" = i64, Path, description = "Service id")),
    responses(
        (status = 200, body = Vec<LinkView>),
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn list(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<Vec<LinkView>>> {
    Ok(Json(state.manager.links(id).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnlinkQuery {
    /// Also turn the project's logins off at once (running applications lose access). Without
    /// it, unlinking only stops injecting variables: running applications keep working until
    /// redeployed. Data stays either way; re-linking turns the logins back on.
    #[serde(default)]
    pub revoke: bool,
}

/// What an unlink with `?revoke=true` turned off.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Revoked {
    pub revoked: Vec<RevokedTenant>,
    pub note: String,
}

#[utoipa::path(
    delete,
    path = "/external-services/{id}/projects/{project_id}",
    tag = "links",
    summary = "Unlink (stops injecting; drops nothing; ?revoke=true also turns the logins off)",
    params(("id" = i64, Path, description = "Service id"), ("project_id" = i64, Path, description = "Project id"), UnlinkQuery),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 200, description = "Unlinked and logins turned off (?revoke=true)", body = Revoked),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn unlink(
    State(state): State<AppState>,
    IdPair(id, project_id): IdPair,
    Query(q): Query<UnlinkQuery>,
) -> ApiResult<Response> {
    let revoked = state.manager.unlink(id, project_id, q.revoke).await?;
    if !q.revoke {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let note = revoked_note(&revoked);
    Ok((StatusCode::OK, Json(Revoked { revoked, note })).into_response())
}

/// Tells what happened to revoked tenants' data and how to drop it.
pub fn revoked_note(revoked: &[RevokedTenant]) -> String {
    if revoked.is_empty() {
        return "no logins to turn off".into();
    }
    "logins turned off and their sessions ended; the data stays in each service until the \
     service is deleted (to drop it now, connect as the service's admin user — \
     `berth service reveal` — and drop the database/role, or FLUSHDB the Redis database and \
     ACL DELUSER the user); linking the project again turns the logins back on"
        .into()
}

#[utoipa::path(
    get,
    path = "/external-services/{id}/preview-environment-names",
    tag = "links",
    summary = "Names of the variables a link injects",
    params(("id" = i64, Path, description = "Service id")),
    responses(
        (status = 200, body = Vec<String>),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn preview_names(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<Vec<String>>> {
    let vars = state.manager.preview_environment(id).await?;
    Ok(Json(vars.into_iter().map(|(k, _)| k).collect()))
}

#[utoipa::path(
    get,
    path = "/external-services/{id}/preview-environment-masked",
    tag = "links",
    summary = "The variables with masked values",
    params(("id" = i64, Path, description = "Service id")),
    responses(
        (status = 200, body = BTreeMap<String, String>),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn preview_masked(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    Ok(Json(
        state
            .manager
            .preview_environment(id)
            .await?
            .into_iter()
            .collect(),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EnvironmentQuery {
    /// Environment slug; default `production`.
    pub environment: Option<String>,
    /// `network` (default: container name, internal port) or `host` (127.0.0.1, published port).
    pub address: Option<String>,
}

fn address_kind(raw: Option<&str>) -> ApiResult<AddressKind> {
    match raw {
        None | Some("network") => Ok(AddressKind::Network),
        Some("host") => Ok(AddressKind::Host),
        Some(other) => Err(ApiError::bad_request(format!(
            "address must be `network` or `host`, not {other:?}"
        ))),
    }
}

/// The real values for one project environment. Secrets in clear: this is what deploys use.
#[utoipa::path(
    get,
    path = "/external-services/{id}/projects/{project_id}/environment",
    tag = "links",
    summary = "Real values for one linked project environment",
    params(("id" = i64, Path, description = "Service id"), ("project_id" = i64, Path, description = "Project id"), EnvironmentQuery),
    responses(
        (status = 200, body = BTreeMap<String, String>),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::Unavailable
    )
)]
pub async fn environment(
    State(state): State<AppState>,
    IdPair(id, project_id): IdPair,
    Query(q): Query<EnvironmentQuery>,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    let kind = address_kind(q.address.as_deref())?;
    let vars = state
        .manager
        .tenant_environment(id, project_id, q.environment.as_deref(), kind)
        .await?;
    Ok(Json(vars.into_iter().collect()))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VariablesQuery {
    /// `network` (default) or `host`.
    pub address: Option<String>,
    /// `json` (default) or `dotenv`.
    pub format: Option<String>,
}

/// Everything all linked services inject into one project environment.
#[utoipa::path(
    get,
    path = "/projects/{id}/environments/{environment}/variables",
    tag = "links",
    summary = "Everything linked services inject into a project environment",
    params(("id" = i64, Path, description = "Project id"), ("environment" = String, Path, description = "Environment slug"), VariablesQuery),
    responses(
        (status = 200, description = "Variables (JSON object, or dotenv text with ?format=dotenv)", body = BTreeMap<String, String>),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::Unavailable
    )
)]
pub async fn project_variables(
    State(state): State<AppState>,
    axum::extract::Path((project, environment)): axum::extract::Path<(String, String)>,
    Query(q): Query<VariablesQuery>,
) -> ApiResult<Response> {
    let project_id = parse_id(&project)?;
    let kind = address_kind(q.address.as_deref())?;
    let vars = state
        .manager
        .project_variables(project_id, &environment, kind)
        .await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(vars).into_response()),
        Some("dotenv") => {
            let body: String = vars
                .iter()
                .map(|(k, v)| format!("{k}={}\n", dotenv_quote(v)))
                .collect();
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "format must be `json` or `dotenv`, not {other:?}"
        ))),
    }
}

/// Double-quoted dotenv value with `\`, `"`, `$` and newlines escaped.
pub fn dotenv_quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
