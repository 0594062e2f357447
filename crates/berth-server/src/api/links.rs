//! Linking: `/external-services/{id}/projects` (link, list, unlink), a project's links and
//! variables (`/external-services/projects/{project_id}[/environment]`), the seed's environment
//! previews, one variable, and the deploy-time contract `/projects/{id}/environments/{env}/variables`.
//! Links are shown as Temps' `ProjectServiceInfo` (`{id, project, service}`) plus Berth's fields.

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
use super::services::ServiceView;
use crate::manager::{AddressKind, LinkInfo, RevokedTenant, TenantView};

/// The project of a link, as Temps shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectRef {
    pub id: i64,
    pub slug: String,
    pub created_at: String,
}

/// A link between a service and a project: Temps' `ProjectServiceInfo` (`id` is the link's
/// id, `project`, `service`), plus Berth's own fields (ids and names flat, when it was linked,
/// and each environment's tenant).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectServiceView {
    /// The link's id.
    pub id: i64,
    pub project: ProjectRef,
    pub service: ServiceView,
    pub service_id: i64,
    pub service_name: String,
    pub service_type: String,
    pub project_id: i64,
    pub project_slug: String,
    pub linked_at: String,
    /// One entry per project environment with a tenant in the service.
    pub environments: Vec<TenantView>,
}

impl From<LinkInfo> for ProjectServiceView {
    fn from(info: LinkInfo) -> Self {
        Self {
            id: info.link.id,
            project: ProjectRef {
                id: info.project.id,
                slug: info.project.slug.clone(),
                created_at: info.project.created_at.clone(),
            },
            service: ServiceView::masked(&info.service),
            service_id: info.service.id,
            service_name: info.service.name,
            service_type: info.service.service_type,
            project_id: info.project.id,
            project_slug: info.project.slug,
            linked_at: info.link.created_at,
            environments: info.environments,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    #[schema(minimum = 1)]
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
        (status = 201, description = "Linked", body = ProjectServiceView),
        (status = 200, description = "Already linked", body = ProjectServiceView),
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
) -> ApiResult<(StatusCode, Json<ProjectServiceView>)> {
    if body.project_id <= 0 {
        return Err(ApiError::not_found(format!(
            "project {} does not exist",
            body.project_id
        )));
    }
    crate::api::backing::refuse(&state, id, "linked to projects").await?;
    let (view, created) = state.manager.link(id, body.project_id).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view.into())))
}

#[utoipa::path(
    get,
    path = "/external-services/{id}/projects",
    tag = "links",
    summary = "Projects a service is linked to",
    params(("id" = i64, Path, description = "Service id")),
    responses(
        (status = 200, body = Vec<ProjectServiceView>),
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn list(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<Vec<ProjectServiceView>>> {
    let links = state.manager.links(id).await?;
    Ok(Json(links.into_iter().map(Into::into).collect()))
}

/// Temps' route for the services a project is linked to.
#[utoipa::path(
    get,
    path = "/external-services/projects/{project_id}",
    tag = "links",
    summary = "Services linked to a project",
    params(("project_id" = i64, Path, description = "Project id")),
    responses(
        (status = 200, body = Vec<ProjectServiceView>),
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
pub async fn project_links(
    State(state): State<AppState>,
    axum::extract::Path(project): axum::extract::Path<String>,
) -> ApiResult<Json<Vec<ProjectServiceView>>> {
    let project_id = parse_id(&project)?;
    let links = state.manager.project_links(project_id).await?;
    Ok(Json(links.into_iter().map(Into::into).collect()))
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
     service is deleted (to drop it now, connect with the service's admin credentials — \
     `berth service reveal` — and remove the resource named in `resource_name`: its database, \
     Redis database number or bucket); linking the project again turns the logins back on"
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

/// One variable a link injects: Temps' `EnvironmentVariableInfo`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VariableView {
    pub name: String,
    pub value: String,
    /// Whether the value is a secret (a password, or a URL carrying one).
    pub sensitive: bool,
}

/// Variable names are upper-case shell names; anything else cannot be one (404).
fn check_var_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no variable named {name:?} (variable names are upper-case letters, digits and '_')"
        )))
    }
}

/// One variable of one linked project environment, in clear.
#[utoipa::path(
    get,
    path = "/external-services/{id}/projects/{project_id}/environment/{var_name}",
    tag = "links",
    summary = "One variable of a linked project environment",
    params(
        ("id" = i64, Path, description = "Service id"),
        ("project_id" = i64, Path, description = "Project id"),
        ("var_name" = String, Path, description = "Variable name, e.g. POSTGRES_URL", pattern = "^[A-Z_][A-Z0-9_]*$", max_length = 128),
        EnvironmentQuery
    ),
    responses(
        (status = 200, body = VariableView),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::Unavailable
    )
)]
pub async fn variable(
    State(state): State<AppState>,
    axum::extract::Path((id, project_id, name)): axum::extract::Path<(String, String, String)>,
    Query(q): Query<EnvironmentQuery>,
) -> ApiResult<Json<VariableView>> {
    let (id, project_id) = (parse_id(&id)?, parse_id(&project_id)?);
    check_var_name(&name)?;
    let kind = address_kind(q.address.as_deref())?;
    let vars = state
        .manager
        .tenant_environment(id, project_id, q.environment.as_deref(), kind)
        .await?;
    let value = vars
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "service {id} injects no variable {name:?} (see /api/external-services/{id}/preview-environment-names)"
            ))
        })?;
    let sensitive =
        berth_core::mask::is_secret_name(&name) || berth_core::mask::mask_url(&value) != value;
    Ok(Json(VariableView {
        name,
        value,
        sensitive,
    }))
}

/// Temps' map of everything a project's linked services inject, by service id.
#[utoipa::path(
    get,
    path = "/external-services/projects/{project_id}/environment",
    tag = "links",
    summary = "Variables of every service linked to a project, by service id",
    params(("project_id" = i64, Path, description = "Project id"), EnvironmentQuery),
    responses(
        (status = 200, description = "Service id (as a string key) -> variable name -> value", body = BTreeMap<String, BTreeMap<String, String>>),
        errors::BadRequest,
        errors::Unauthorized,
        errors::NotFound,
        errors::Conflict,
        errors::Unavailable
    )
)]
pub async fn project_environment(
    State(state): State<AppState>,
    axum::extract::Path(project): axum::extract::Path<String>,
    Query(q): Query<EnvironmentQuery>,
) -> ApiResult<Json<BTreeMap<String, BTreeMap<String, String>>>> {
    let project_id = parse_id(&project)?;
    let kind = address_kind(q.address.as_deref())?;
    let by_service = state
        .manager
        .project_service_environments(project_id, q.environment.as_deref(), kind)
        .await?;
    Ok(Json(
        by_service
            .into_iter()
            .map(|(id, vars)| (id.to_string(), vars))
            .collect(),
    ))
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
