//! Blob's request and response bodies. Temps serialises its blob and listing in camelCase
//! (`contentType`, `uploadedAt`, `hasMore`) while its API description says snake_case: Berth
//! answers with both spellings, and accepts both in request bodies.

use serde::{Deserialize, Serialize};

use crate::manager::blob::{BlobInfo, BlobStatus};

/// One blob (Temps' `BlobResponse`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlobResponse {
    /// `/api/blob/{project_id}/{pathname}`, segments percent-encoded.
    #[schema(example = "/api/blob/1/images/avatar-x1y2z3.png")]
    pub url: String,
    #[schema(example = "images/avatar-x1y2z3.png")]
    pub pathname: String,
    #[schema(example = "image/png")]
    pub content_type: String,
    /// `content_type`, as Temps spells it.
    #[serde(rename = "contentType")]
    pub content_type_camel: String,
    pub size: u64,
    /// RFC 3339.
    pub uploaded_at: String,
    /// `uploaded_at`, as Temps spells it.
    #[serde(rename = "uploadedAt")]
    pub uploaded_at_camel: String,
}

impl From<BlobInfo> for BlobResponse {
    fn from(info: BlobInfo) -> Self {
        Self {
            url: info.url,
            pathname: info.pathname,
            content_type_camel: info.content_type.clone(),
            content_type: info.content_type,
            size: info.size,
            uploaded_at_camel: info.uploaded_at.clone(),
            uploaded_at: info.uploaded_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PutQuery {
    /// Where the blob goes, within the project (no `..`, `.`, empty segments, leading `/`,
    /// backslash or control characters; at most 1000 bytes).
    pub pathname: Option<String>,
    /// Kept and served back (default `application/octet-stream`).
    pub content_type: Option<String>,
    /// Insert a random suffix before the extension (`a.png` -> `a-k3j2....png`).
    #[serde(default)]
    pub add_random_suffix: bool,
    /// The project (admin tokens; a project token acts for its own).
    pub project_id: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only pathnames starting with this.
    pub prefix: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<usize>,
    /// The `cursor` of the previous page.
    pub cursor: Option<String>,
    pub project_id: Option<i64>,
}

/// Temps' `ListBlobsResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListResponse {
    pub blobs: Vec<BlobResponse>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub cursor: Option<String>,
    pub has_more: bool,
    /// `has_more`, as Temps spells it.
    #[serde(rename = "hasMore")]
    pub has_more_camel: bool,
}

/// `project_id` in the query, for the routes that also take it in the body (as Temps does).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectQuery {
    pub project_id: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// At most 1000; missing blobs are not counted.
    pub pathnames: Vec<String>,
    #[serde(alias = "projectId")]
    pub project_id: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeleteResponse {
    /// How many of the named blobs existed and were deleted.
    pub deleted: u64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    /// The source: a `url` this API gave (`/api/blob/{project_id}/{pathname}`, absolute or
    /// not) of the same project, or a pathname.
    #[serde(alias = "fromUrl")]
    pub from_url: String,
    #[serde(alias = "toPathname")]
    pub to_pathname: String,
    #[serde(alias = "projectId")]
    pub project_id: Option<i64>,
}

/// Temps' `EnableBlobResponse` and `UpdateBlobResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlobChangeResponse {
    pub success: bool,
    pub message: String,
    pub status: BlobStatus,
}

/// Temps' `DisableBlobResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DisableResponse {
    pub success: bool,
    pub message: String,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DisableQuery {
    /// Also delete the backing S3 service with every project's blobs (default: keep it,
    /// stopped, for a later enable).
    #[serde(default)]
    pub delete_data: bool,
}
