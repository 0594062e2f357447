//! `/api/tokens`: create (the token is shown once), list (never the token), revoke.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use berth_core::secrets;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::{IdPath, JsonBody};
use super::problem::{ApiError, ApiResult};
use crate::store::ApiToken;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
}

#[derive(Serialize)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token_info: ApiToken,
    /// The token itself, shown only in this response.
    pub token: String,
}

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

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<ApiToken>>> {
    Ok(Json(state.store.list_tokens().await?))
}

pub async fn revoke(State(state): State<AppState>, IdPath(id): IdPath) -> ApiResult<StatusCode> {
    if state.store.revoke_token(id).await? {
        tracing::info!(token_id = id, "API token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no live token with id {id}")))
    }
}
