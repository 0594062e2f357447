//! Temps' `POST /blob` (put), `GET /blob` (list), `DELETE /blob` and `POST /blob/copy`. The
//! project is the token's (project tokens) or `project_id` from the query or the body (admin
//! tokens); the policy lets project tokens call these routes and `Principal::acting_project`
//! keeps them to their own. The put's body is streamed into S3 as it arrives: the API's JSON
//! body limit does not apply to it (a raw `Body` is never buffered), `blob_max_bytes` does.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;

use super::json::*;
use super::project_blob;
use crate::api::AppState;
use crate::api::extract::{JsonBody, Query};
use crate::api::policy::Principal;
use crate::api::problem::responses as errors;
use crate::api::problem::{ApiError, ApiResult};
use crate::manager::blob::ops_limits::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};

#[utoipa::path(
    post,
    path = "/blob",
    tag = "blob",
    summary = "Upload a blob (raw body, streamed to S3; 413 over the size limit, nothing stored)",
    params(PutQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, body = BlobResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::TooLarge,
        errors::BlobUnavailable
    )
)]
pub async fn put(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<PutQuery>,
    body: Body,
) -> ApiResult<(StatusCode, Json<BlobResponse>)> {
    let pathname = query
        .pathname
        .ok_or_else(|| ApiError::bad_request("pathname is required (?pathname=)"))?;
    let blob = project_blob(&state, principal, query.project_id).await?;
    let info = blob
        .put(
            &pathname,
            query.content_type.as_deref(),
            query.add_random_suffix,
            body.into_data_stream(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(info.into())))
}

#[utoipa::path(
    get,
    path = "/blob",
    tag = "blob",
    summary = "List the project's blobs (prefix, cursor, limit)",
    params(ListQuery),
    responses(
        (status = 200, body = ListResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::BlobUnavailable
    )
)]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<ListResponse>> {
    let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIST_LIMIT}"
        )));
    }
    let blob = project_blob(&state, principal, query.project_id).await?;
    let page = blob
        .list(
            query.prefix.as_deref().unwrap_or_default(),
            limit,
            query.cursor.as_deref(),
        )
        .await?;
    let has_more = page.cursor.is_some();
    Ok(Json(ListResponse {
        blobs: page.blobs.into_iter().map(Into::into).collect(),
        cursor: page.cursor,
        has_more,
        has_more_camel: has_more,
    }))
}

#[utoipa::path(
    delete,
    path = "/blob",
    tag = "blob",
    summary = "Delete blobs by pathname",
    params(ProjectQuery),
    request_body = DeleteRequest,
    responses(
        (status = 200, body = DeleteResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::TooLarge,
        errors::NotJson,
        errors::BlobUnavailable
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ProjectQuery>,
    JsonBody(request): JsonBody<DeleteRequest>,
) -> ApiResult<Json<DeleteResponse>> {
    let blob = project_blob(&state, principal, request.project_id.or(query.project_id)).await?;
    let deleted = blob.delete(&request.pathnames).await?;
    Ok(Json(DeleteResponse { deleted }))
}

#[utoipa::path(
    post,
    path = "/blob/copy",
    tag = "blob",
    summary = "Copy a blob of the project to another pathname (server-side; type kept)",
    params(ProjectQuery),
    request_body = CopyRequest,
    responses(
        (status = 200, body = BlobResponse),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::TooLarge,
        errors::NotJson,
        errors::BlobUnavailable
    )
)]
pub async fn copy(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ProjectQuery>,
    JsonBody(request): JsonBody<CopyRequest>,
) -> ApiResult<Json<BlobResponse>> {
    let blob = project_blob(&state, principal, request.project_id.or(query.project_id)).await?;
    let from = source_pathname(&request.from_url, blob.project_id())?;
    let info = blob.copy(&from, &request.to_pathname).await?;
    Ok(Json(info.into()))
}

/// The pathname a `from_url` names, which must be in `project_id`: a URL this API gave
/// (`[scheme://host]/api/blob/{project_id}/{encoded pathname}`) or a bare pathname. Naming
/// another project's blob is 403, never a copy across projects.
fn source_pathname(from_url: &str, project_id: i64) -> ApiResult<String> {
    const API: &str = "/api/blob/";
    let Some(at) = from_url.find(API) else {
        return Ok(from_url.to_string());
    };
    let rest = &from_url[at + API.len()..];
    let (owner, encoded) = rest.split_once('/').ok_or_else(|| {
        ApiError::bad_request("from_url must be /api/blob/{project_id}/{pathname}")
    })?;
    let owner: i64 = owner
        .parse()
        .map_err(|_| ApiError::bad_request("from_url must be /api/blob/{project_id}/{pathname}"))?;
    if owner != project_id {
        return Err(ApiError::forbidden(format!(
            "from_url names a blob of project {owner}; a copy stays within project {project_id}"
        )));
    }
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map(|p| p.into_owned())
        .map_err(|_| ApiError::bad_request("from_url's pathname is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::source_pathname;

    #[test]
    fn from_url_stays_in_its_project() {
        assert_eq!(
            source_pathname("/api/blob/3/a%20b/c.png", 3).unwrap(),
            "a b/c.png"
        );
        assert_eq!(source_pathname("http://h:1/api/blob/3/x", 3).unwrap(), "x");
        assert_eq!(source_pathname("plain/name", 3).unwrap(), "plain/name");
        assert_eq!(
            source_pathname("/api/blob/4/x", 3)
                .unwrap_err()
                .status
                .as_u16(),
            403
        );
        assert_eq!(
            source_pathname("/api/blob/x", 3)
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
    }
}
