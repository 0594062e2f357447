//! `/api/tokens`: create (the token is shown once, with a scope), list (never the token),
//! revoke. Only admin tokens reach create and revoke (`api/policy.rs`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use berth_core::secrets;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::{IdPath, JsonBody};
use super::policy::Principal;
use super::problem::responses as errors;
use super::problem::{ApiError, ApiResult, Problem};
use crate::store::{ApiToken, Scope, ScopeKind};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// 1 to 100 printable characters (surrounding whitespace is trimmed).
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 100
    )]
    pub name: String,
    /// `admin` (the default): every route. `read_only`: every GET, nothing else. `project`:
    /// only the reads of project `project_id` (the project and its variables).
    pub scope: Option<ScopeKind>,
    /// The project a `project` token is bound to (required then, and it must exist); refused
    /// with any other scope.
    #[schema(minimum = 1)]
    pub project_id: Option<i64>,
}

/// The scope a create asks for, checked against `project_id` (not yet against the store).
fn requested_scope(kind: ScopeKind, project_id: Option<i64>) -> ApiResult<Scope> {
    match (kind, project_id) {
        (ScopeKind::Admin, None) => Ok(Scope::Admin),
        (ScopeKind::ReadOnly, None) => Ok(Scope::ReadOnly),
        (ScopeKind::Project, Some(id)) if id > 0 => Ok(Scope::Project(id)),
        (ScopeKind::Project, Some(id)) => Err(no_project(id)),
        (ScopeKind::Project, None) => Err(ApiError::bad_request(
            "a project token needs project_id, the project it is bound to",
        )),
        (ScopeKind::Admin | ScopeKind::ReadOnly, Some(_)) => Err(ApiError::bad_request(
            "project_id is only for tokens with scope `project`",
        )),
    }
}

fn no_project(id: i64) -> ApiError {
    ApiError::bad_request(format!("project {id} does not exist"))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token_info: ApiToken,
    /// The token itself, shown only in this response.
    pub token: String,
}

#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    summary = "Create an API token (shown once)",
    request_body = CreateToken,
    responses(
        (status = 201, body = CreatedToken),
        errors::BadRequest,
        errors::Unauthorized,
        errors::TooLarge,
        errors::NotJson,
        errors::Unavailable
    )
)]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "token names must be 1 to 100 printable characters",
        ));
    }
    let scope = requested_scope(body.scope.unwrap_or_default(), body.project_id)?;
    let token = secrets::generate_token();
    let info = state
        .store
        .insert_token(name, &secrets::hash_token(&token), scope)
        .await?
        .ok_or_else(|| no_project(body.project_id.unwrap_or_default()))?;
    tracing::info!(
        token_id = info.id,
        scope = info.scope.as_str(),
        project_id = info.project_id,
        "API token created"
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token_info: info,
            token,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    summary = "List API tokens (never their values)",
    responses(
        (status = 200, body = Vec<ApiToken>),
        errors::Unauthorized,
        errors::Unavailable
    )
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<ApiToken>>> {
    Ok(Json(state.store.list_tokens().await?))
}

#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    tag = "tokens",
    summary = "Revoke an API token",
    params(("id" = i64, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 409, description = "The token authenticating this request", body = Problem, content_type = "application/problem+json"),
        errors::Unauthorized,
        errors::NotFound,
        errors::Unavailable
    )
)]
/// Revoking the token the request itself uses is refused: it would lock the caller out
/// (revoke it with another token).
pub async fn revoke(
    State(state): State<AppState>,
    current: Principal,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    if current.token_id == id {
        return Err(ApiError::conflict(
            "this is the token authenticating the request; revoke it with another token",
        ));
    }
    if state.store.revoke_token(id).await? {
        tracing::info!(token_id = id, "API token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no live token with id {id}")))
    }
}
