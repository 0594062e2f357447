//! Temps' `GET` and `HEAD /blob/{project_id}/{path}`: one blob, streamed from S3 as it comes
//! (one byte range honoured: 206 with Content-Range; see `range`), its content type, ETag and Last-Modified
//! passed on. The policy checks a project token against `project_id` in the path.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::project_blob;
use super::range::single_byte_range;
use crate::api::AppState;
use crate::api::policy::Principal;
use crate::api::problem::responses as errors;
use crate::api::problem::{ApiError, ApiResult};

/// S3's answer headers a download passes on.
const PASSED_ON: &[header::HeaderName] = &[
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::ETAG,
    header::LAST_MODIFIED,
    header::ACCEPT_RANGES,
];

type BlobPath = Result<Path<(i64, String)>, axum::extract::rejection::PathRejection>;

fn blob_path(path: BlobPath) -> ApiResult<(i64, String)> {
    let Path((project_id, pathname)) =
        path.map_err(|e| ApiError::bad_request(format!("bad blob path: {}", e.body_text())))?;
    Ok((project_id, pathname))
}

#[utoipa::path(
    get,
    path = "/blob/{project_id}/{*path}",
    tag = "blob",
    summary = "Download a blob (streamed; Range gives 206)",
    params(
        ("project_id" = i64, Path, description = "The blob's project"),
        ("path" = String, Path, description = "The blob's pathname (segments percent-encoded)"),
        ("Range" = Option<String>, Header, description = "One byte range (bytes=first-last, bytes=first-, bytes=-suffix); any other value is ignored and the whole blob sent")
    ),
    responses(
        (status = 200, description = "The blob's bytes, with its Content-Type", content_type = "application/octet-stream"),
        (status = 206, description = "The requested range, with Content-Range", content_type = "application/octet-stream"),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::BlobUnavailable
    )
)]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    path: BlobPath,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (project_id, pathname) = blob_path(path)?;
    let blob = project_blob(&state, principal, Some(project_id)).await?;
    // A Range that is not one byte range (or not text) is ignored: the whole blob is sent.
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(single_byte_range);
    let upstream = blob.get(&pathname, range.as_deref()).await?;
    let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::OK);
    let mut response = Response::builder().status(status);
    for name in PASSED_ON {
        if let Some(value) = upstream.headers().get(name.as_str())
            && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
        {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from_stream(upstream.bytes_stream()))
        .map_err(ApiError::internal)
}

#[utoipa::path(
    head,
    path = "/blob/{project_id}/{*path}",
    tag = "blob",
    summary = "A blob's metadata in headers",
    params(
        ("project_id" = i64, Path, description = "The blob's project"),
        ("path" = String, Path, description = "The blob's pathname (segments percent-encoded)")
    ),
    responses(
        (status = 200, description = "Content-Type, Content-Length, ETag, Last-Modified"),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::BlobUnavailable
    )
)]
pub async fn head(
    State(state): State<AppState>,
    principal: Principal,
    path: BlobPath,
) -> ApiResult<Response> {
    let (project_id, pathname) = blob_path(path)?;
    let blob = project_blob(&state, principal, Some(project_id)).await?;
    let info = blob.head(&pathname).await?;
    let mut headers = HeaderMap::new();
    let mut put = |name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put(header::CONTENT_TYPE, &info.content_type);
    put(header::CONTENT_LENGTH, &info.size.to_string());
    put(header::ACCEPT_RANGES, "bytes");
    if let Some(etag) = &info.etag {
        put(header::ETAG, etag);
    }
    if let Some(modified) = &info.last_modified {
        put(header::LAST_MODIFIED, modified);
    }
    Ok((StatusCode::OK, headers).into_response())
}
