//! `/api/tokens`: create (the token is shown once), list (never the token), revoke.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use berth_core::secrets;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::{IdPath, JsonBody};
use super::problem::responses as errors;
use super::problem::{ApiError, ApiResult, Problem};
use crate::store::ApiToken;

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
    let token = secrets::generate_token();
    let info = state
        .store
        .insert_token(name, &secrets::hash_token(&token))
        .await?;
    tracing::info!(token_id = info.id, "API token created");
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
    axum::Extension(current): axum::Extension<super::auth::AuthenticatedToken>,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    if current.0 == id {
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
