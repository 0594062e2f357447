//! Bearer-token authentication and authorization for every `/api` route: the token is looked
//! up, the caller becomes a [`Principal`] request extension, and the policy
//! (`api/policy.rs`) decides from its scope and the matched route whether it may go on.

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_core::secrets;

use super::AppState;
use super::policy::{self, Principal};
use super::problem::ApiError;

pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
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
    let token = match state
        .store
        .authenticate_token(&secrets::hash_token(&token))
        .await
    {
        Ok(Some(token)) => token,
        Ok(None) => return ApiError::unauthorized("invalid or revoked token").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let principal = Principal {
        token_id: token.id,
        scope: token.scope,
    };
    let (mut parts, body) = request.into_parts();
    // Every route this middleware runs for is matched; without a match nothing is allowed
    // but what a scope allows everywhere.
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    // Parameters that are not UTF-8 name no project: project tokens are refused.
    let params = <RawPathParams as FromRequestParts<()>>::from_request_parts(&mut parts, &())
        .await
        .ok();
    let params: Vec<(&str, &str)> = params.iter().flat_map(RawPathParams::iter).collect();
    if let Err(why) = policy::authorize(principal.scope, &parts.method, &route, &params) {
        return ApiError::forbidden(why).into_response();
    }
    parts.extensions.insert(principal);
    next.run(Request::from_parts(parts, body)).await
}
