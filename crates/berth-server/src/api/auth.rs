//! Bearer-token authentication for every `/api` route.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_core::secrets;

use super::AppState;
use super::problem::ApiError;

/// The token a request authenticated with (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct AuthenticatedToken(pub i64);

pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let Some(token) = presented.filter(|t| !t.is_empty()) else {
        return ApiError::unauthorized("missing bearer token: send Authorization: Bearer <token>")
            .into_response();
    };
    match state
        .store
        .authenticate_token(&secrets::hash_token(&token))
        .await
    {
        Ok(Some(id)) => {
            request.extensions_mut().insert(AuthenticatedToken(id));
            next.run(request).await
        }
        Ok(None) => ApiError::unauthorized("invalid or revoked token").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
