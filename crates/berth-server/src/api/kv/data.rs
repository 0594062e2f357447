//! The data routes, Temps' `POST /kv/{get,set,del,incr,expire,ttl,keys}`. The project is the
//! token's (project tokens) or `project_id` from the body (admin tokens); the policy lets
//! project tokens call these routes and `Principal::acting_project` keeps them to their own.

use axum::Json;
use axum::extract::State;

use super::json::*;
use super::project_kv;
use crate::api::AppState;
use crate::api::extract::JsonBody;
use crate::api::policy::Principal;
use crate::api::problem::ApiResult;
use crate::api::problem::responses as errors;
use crate::manager::kv::SetOptions;

#[utoipa::path(
    post,
    path = "/kv/get",
    tag = "kv",
    summary = "Get a key's value (null if absent)",
    request_body = GetRequest,
    responses(
        (status = 200, body = GetResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::KvNotFound,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::KvUnavailable
    )
)]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<GetRequest>,
) -> ApiResult<Json<GetResponse>> {
    let kv = project_kv(&state, principal, request.project_id).await?;
    let value = kv.get(&request.key).await?;
    Ok(Json(GetResponse { value }))
}

#[utoipa::path(
    post,
    path = "/kv/set",
    tag = "kv",
    summary = "Set a key to a JSON value (ex/px expiry, nx/xx conditions)",
    request_body = SetRequest,
    responses(
        (status = 200, body = SetResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::KvNotFound,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::KvUnavailable
    )
)]
pub async fn set(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<SetRequest>,
) -> ApiResult<Json<SetResponse>> {
    let kv = project_kv(&state, principal, request.project_id).await?;
    let options = SetOptions {
        ex: request.ex,
        px: request.px,
        nx: request.nx,
        xx: request.xx,
    };
    let written = kv.set(&request.key, &request.value, options).await?;
    Ok(Json(SetResponse {
        result: written.then(|| "OK".to_string()),
    }))
}

#[utoipa::path(
    post,
    path = "/kv/del",
    tag = "kv",
    summary = "Delete keys",
    request_body = DelRequest,
    responses(
        (status = 200, body = DelResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::KvNotFound,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::KvUnavailable
    )
)]
pub async fn del(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<DelRequest>,
) -> ApiResult<Json<DelResponse>> {
    let kv = project_kv(&state, principal, request.project_id).await?;
    let deleted = kv.del(&request.keys).await?;
    Ok(Json(DelResponse { deleted }))
}

#[utoipa::path(
    post,
    path = "/kv/incr",
    tag = "kv",
    summary = "Add to an integer value (absent: from 0)",
    request_body = IncrRequest,
    responses(
        (status = 200, body = IncrResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::KvNotFound,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::KvUnavailable
    )
)]
pub async fn incr(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<IncrRequest>,
) -> ApiResult<Json<IncrResponse>> {
    let kv = project_kv(&state, principal, request.project_id).await?;
    let value = kv.incr(&request.key, request.amount.unwrap_or(1)).await?;
    Ok(Json(IncrResponse { value }))
}

#[utoipa::path(
    post,
    path = "/kv/expire",
    tag = "kv",
    summary = "Set a key's time to live in seconds",
    request_body = ExpireRequest,
    responses(
        (status = 200, body = ExpireResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::KvNotFound,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::KvUnavailable
    )
)]
pub async fn expire(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<ExpireRequest>,
) -> ApiResult<Json<ExpireResponse>> {
    let kv = project_kv(&state, principal, request.project_id).await?;
    let success = kv.expire(&request.key, request.seconds).await?;
    Ok(Json(ExpireResponse {
        success,
        result: success.into(),
    }))
}

#[utoipa::path(
    post,
    path = "/kv/ttl",
    tag = "kv",
    summary = "A key's time to live in seconds (-1: none, -2: no such key)",
    request_body = TtlRequest,
    responses(
        (status = 200, body = TtlResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::KvNotFound,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::KvUnavailable
    )
)]
pub async fn ttl(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<TtlRequest>,
) -> ApiResult<Json<TtlResponse>> {
    let kv = project_kv(&state, principal, request.project_id).await?;
    let ttl = kv.ttl(&request.key).await?;
    Ok(Json(TtlResponse { ttl }))
}

#[utoipa::path(
    post,
    path = "/kv/keys",
    tag = "kv",
    summary = "The project's keys matching a glob pattern",
    request_body = KeysRequest,
    responses(
        (status = 200, body = KeysResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::KvNotFound,
        errors::Conflict,
        errors::TooLarge,
        errors::NotJson,
        errors::KvUnavailable
    )
)]
pub async fn keys(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<KeysRequest>,
) -> ApiResult<Json<KeysResponse>> {
    let kv = project_kv(&state, principal, request.project_id).await?;
    let keys = kv.keys(&request.pattern).await?;
    Ok(Json(KeysResponse { keys }))
}
