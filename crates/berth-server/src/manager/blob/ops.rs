//! One project's blobs. Every pathname is checked (`blob_path::validate`) before it becomes a
//! key under the project's prefix, so nothing a client sends reaches another project's keys.

use std::sync::Arc;

use berth_core::blob_path::{self, PathError};
use bytes::Bytes;
use futures_util::Stream;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::BUCKET;
use crate::manager::{ManagerError, ManagerResult};
use crate::s3client::{ObjectInfo, S3Client, S3Error};

/// Length of the random suffix `add_random_suffix` inserts (alphanumeric, from a CSPRNG).
const SUFFIX_LEN: usize = 12;
/// What a blob's type is when its upload named none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// Page size of a listing without `limit`, and the largest one allowed (S3's own maximum).
pub const DEFAULT_LIST_LIMIT: usize = 100;
pub const MAX_LIST_LIMIT: usize = 1000;
/// Most pathnames one delete takes.
pub const MAX_DELETE: usize = 1000;

/// Characters percent-encoded in a URL path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// A blob as the API describes it.
#[derive(Debug, Clone)]
pub struct BlobInfo {
    pub url: String,
    pub pathname: String,
    pub content_type: String,
    pub size: u64,
    /// RFC 3339.
    pub uploaded_at: String,
    /// As S3 gave them (HEAD answers pass them on).
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

pub struct BlobListing {
    pub blobs: Vec<BlobInfo>,
    pub cursor: Option<String>,
}

/// The blobs of one project, through the backing's admin client.
pub struct ProjectBlob {
    client: Arc<S3Client>,
    project_id: i64,
    max_bytes: u64,
}

impl ProjectBlob {
    pub(super) fn new(client: Arc<S3Client>, project_id: i64, max_bytes: u64) -> Self {
        Self {
            client,
            project_id,
            max_bytes,
        }
    }

    pub fn project_id(&self) -> i64 {
        self.project_id
    }

    /// `/api/blob/{project_id}/{pathname}`, each segment percent-encoded.
    pub fn url(&self, pathname: &str) -> String {
        let segments: Vec<String> = pathname
            .split('/')
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect();
        format!("/api/blob/{}/{}", self.project_id, segments.join("/"))
    }

    fn key(&self, pathname: &str) -> ManagerResult<String> {
        blob_path::validate(pathname).map_err(bad_path)?;
        Ok(blob_path::object_key(self.project_id, pathname))
    }

    /// Streams `body` into the bucket (multipart beyond one part; at most one part in memory).
    /// Over the size limit: 413, nothing stored.
    pub async fn put<S, E>(
        &self,
        pathname: &str,
        content_type: Option<&str>,
        add_random_suffix: bool,
        body: S,
    ) -> ManagerResult<BlobInfo>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        blob_path::validate(pathname).map_err(bad_path)?;
        let pathname = if add_random_suffix {
            let suffix = berth_core::secrets::generate_password(SUFFIX_LEN).to_lowercase();
            blob_path::with_suffix(pathname, &suffix)
        } else {
            pathname.to_string()
        };
        let key = self.key(&pathname)?;
        let content_type = match content_type {
            Some(t) if !t.is_empty() => {
                validate_content_type(t)?;
                t
            }
            _ => DEFAULT_CONTENT_TYPE,
        };
        let size = self
            .client
            .put_stream(BUCKET, &key, content_type, body, self.max_bytes)
            .await
            .map_err(|e| s3_error(e, self.max_bytes))?;
        Ok(BlobInfo {
            url: self.url(&pathname),
            pathname,
            content_type: content_type.to_string(),
            size,
            uploaded_at: jiff::Timestamp::now().to_string(),
            etag: None,
            last_modified: None,
        })
    }

    /// The blob's metadata; 404 if there is none.
    pub async fn head(&self, pathname: &str) -> ManagerResult<BlobInfo> {
        let key = self.key(pathname)?;
        let info = self
            .client
            .head_object(BUCKET, &key)
            .await
            .map_err(|e| s3_error(e, self.max_bytes))?
            .ok_or_else(|| not_found(pathname))?;
        Ok(self.info(pathname, &info))
    }

    /// Starts a download (`range`: an HTTP `Range` value); the caller streams the body.
    pub async fn get(
        &self,
        pathname: &str,
        range: Option<&str>,
    ) -> ManagerResult<reqwest::Response> {
        let key = self.key(pathname)?;
        match self.client.get_object(BUCKET, &key, range).await {
            Ok(Some(response)) => Ok(response),
            Ok(None) => Err(not_found(pathname)),
            Err(S3Error::Server { status: 416, .. }) => Err(ManagerError::BadRequest(
                "the Range is not satisfiable for this blob".into(),
            )),
            Err(e) => Err(s3_error(e, self.max_bytes)),
        }
    }

    /// One page of the project's blobs under `prefix`; the cursor is the S3 continuation
    /// token, passed through opaque.
    pub async fn list(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> ManagerResult<BlobListing> {
        blob_path::validate_prefix(prefix).map_err(bad_path)?;
        let full = format!("{}{prefix}", blob_path::project_prefix(self.project_id));
        let page = self
            .client
            .list(BUCKET, &full, cursor, limit.clamp(1, MAX_LIST_LIMIT))
            .await
            .map_err(|e| match e {
                S3Error::Server { status: 400, .. } => {
                    ManagerError::BadRequest("the cursor is not one this listing gave".into())
                }
                e => s3_error(e, self.max_bytes),
            })?;
        let mut blobs = Vec::with_capacity(page.objects.len());
        for object in &page.objects {
            let Some(pathname) = blob_path::pathname_of(self.project_id, &object.key) else {
                continue;
            };
            // A listing carries no content type: ask for each (a page is at most 1000).
            let content_type = match self.client.head_object(BUCKET, &object.key).await {
                Ok(Some(head)) => head.content_type,
                _ => None,
            };
            let mut info = self.info(pathname, object);
            if let Some(t) = content_type {
                info.content_type = t;
            }
            blobs.push(info);
        }
        Ok(BlobListing {
            blobs,
            cursor: page.next_token,
        })
    }

    /// Deletes the blobs named (missing ones are not counted); every pathname is checked
    /// before any is deleted.
    pub async fn delete(&self, pathnames: &[String]) -> ManagerResult<u64> {
        if pathnames.len() > MAX_DELETE {
            return Err(ManagerError::BadRequest(format!(
                "at most {MAX_DELETE} pathnames per delete"
            )));
        }
        let keys = pathnames
            .iter()
            .map(|p| self.key(p))
            .collect::<ManagerResult<Vec<_>>>()?;
        let mut deleted = 0;
        for key in keys {
            let exists = self
                .client
                .head_object(BUCKET, &key)
                .await
                .map_err(|e| s3_error(e, self.max_bytes))?
                .is_some();
            if exists {
                self.client
                    .delete_object(BUCKET, &key)
                    .await
                    .map_err(|e| s3_error(e, self.max_bytes))?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Server-side copy of this project's `from` to `to` (content type kept).
    pub async fn copy(&self, from: &str, to: &str) -> ManagerResult<BlobInfo> {
        let from_key = self.key(from)?;
        let to_key = self.key(to)?;
        if self
            .client
            .head_object(BUCKET, &from_key)
            .await
            .map_err(|e| s3_error(e, self.max_bytes))?
            .is_none()
        {
            return Err(not_found(from));
        }
        self.client
            .copy_object(BUCKET, &from_key, &to_key)
            .await
            .map_err(|e| s3_error(e, self.max_bytes))?;
        self.head(to).await
    }

    fn info(&self, pathname: &str, object: &ObjectInfo) -> BlobInfo {
        BlobInfo {
            url: self.url(pathname),
            pathname: pathname.to_string(),
            content_type: object
                .content_type
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
            size: object.size,
            uploaded_at: object
                .last_modified
                .as_deref()
                .map(rfc3339)
                .unwrap_or_default(),
            etag: object.etag.clone(),
            last_modified: object.last_modified.clone(),
        }
    }
}

/// S3 dates come as RFC 3339 (listings) or HTTP dates (HEAD); the API gives RFC 3339.
fn rfc3339(date: &str) -> String {
    if let Ok(ts) = date.parse::<jiff::Timestamp>() {
        return ts.to_string();
    }
    jiff::fmt::rfc2822::parse(date)
        .map(|zoned| zoned.timestamp().to_string())
        .unwrap_or_else(|_| date.to_string())
}

/// A content type goes into an S3 header: printable ASCII only, bounded.
fn validate_content_type(t: &str) -> ManagerResult<()> {
    if t.len() > 255 || !t.bytes().all(|b| (0x20..0x7f).contains(&b)) || !t.contains('/') {
        return Err(ManagerError::BadRequest(
            "content_type must be a MIME type (type/subtype, printable ASCII, at most 255 bytes)"
                .into(),
        ));
    }
    Ok(())
}

fn bad_path(e: PathError) -> ManagerError {
    ManagerError::BadRequest(e.to_string())
}

fn not_found(pathname: &str) -> ManagerError {
    ManagerError::NotFound(format!("no blob {pathname:?} in this project"))
}

fn s3_error(e: S3Error, max_bytes: u64) -> ManagerError {
    match e {
        S3Error::TooLarge { .. } => ManagerError::TooLarge(format!(
            "the blob is larger than this server's limit of {max_bytes} bytes (blob_max_bytes); \
             nothing was stored"
        )),
        S3Error::Body(m) => ManagerError::BadRequest(format!(
            "reading the upload failed ({m}); nothing was stored"
        )),
        S3Error::Unreachable(m) => ManagerError::Unavailable(format!(
            "Blob's S3 service does not answer ({m}); see GET /api/blob/status"
        )),
        e => ManagerError::Internal(format!("Blob's S3 service: {e}")),
    }
}
