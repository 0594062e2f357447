//! What the blob calls take and give. Berth answers each field in both spellings
//! (`contentType` and `content_type`, ...), Temps in camelCase only: both are read.

use bytes::Bytes;
use futures_util::Stream;
use serde::Deserialize;

use crate::error::Result;

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Where to download it: `/api/blob/{project_id}/{pathname}` on the server.
    pub url: String,
    /// Its path within the project (with the random suffix, if one was added).
    pub pathname: String,
    /// Its media type.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was written (RFC 3339 from put/list/copy; the `Last-Modified` header from head).
    pub uploaded_at: String,
}

/// The wire form of a blob: both spellings, either may be missing.
#[derive(Deserialize)]
pub(super) struct WireBlob {
    url: String,
    pathname: String,
    #[serde(rename = "contentType")]
    content_type_camel: Option<String>,
    content_type: Option<String>,
    size: u64,
    #[serde(rename = "uploadedAt")]
    uploaded_at_camel: Option<String>,
    uploaded_at: Option<String>,
}

impl From<WireBlob> for BlobInfo {
    fn from(wire: WireBlob) -> Self {
        BlobInfo {
            url: wire.url,
            pathname: wire.pathname,
            content_type: wire
                .content_type_camel
                .or(wire.content_type)
                .unwrap_or_default(),
            size: wire.size,
            uploaded_at: wire
                .uploaded_at_camel
                .or(wire.uploaded_at)
                .unwrap_or_default(),
        }
    }
}

/// One page of [`super::Blob::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// The blobs of this page.
    pub blobs: Vec<BlobInfo>,
    /// Pass this as [`ListOptions::cursor`] for the next page.
    pub cursor: Option<String>,
    /// Whether there is a next page.
    pub has_more: bool,
}

#[derive(Deserialize)]
pub(super) struct WirePage {
    blobs: Vec<WireBlob>,
    cursor: Option<String>,
    #[serde(rename = "hasMore")]
    has_more_camel: Option<bool>,
    has_more: Option<bool>,
}

impl From<WirePage> for ListPage {
    fn from(wire: WirePage) -> Self {
        ListPage {
            blobs: wire.blobs.into_iter().map(BlobInfo::from).collect(),
            cursor: wire.cursor,
            has_more: wire.has_more_camel.or(wire.has_more).unwrap_or(false),
        }
    }
}

/// Options of [`super::Blob::put`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// The media type (default: the server guesses from the extension).
    pub content_type: Option<String>,
    /// Add a random suffix to the pathname, so uploads never replace each other.
    pub add_random_suffix: bool,
}

/// Options of [`super::Blob::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only pathnames starting with this.
    pub prefix: Option<String>,
    /// At most this many per page (the server's default and bound apply).
    pub limit: Option<u32>,
    /// Where the previous page ended ([`ListPage::cursor`]).
    pub cursor: Option<String>,
}

/// A download in progress: the headers are here, the body is read on demand.
#[derive(Debug)]
pub struct BlobDownload {
    response: reqwest::Response,
}

impl BlobDownload {
    pub(super) fn new(response: reqwest::Response) -> Self {
        BlobDownload { response }
    }

    /// 200, or 206 for a range.
    pub fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    /// The blob's media type.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// The length of this body (of the range, for a range).
    pub fn content_length(&self) -> Option<u64> {
        self.response.content_length()
    }

    /// Any answer header (`content-range`, `etag`, `last-modified`, ...).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response.headers().get(name)?.to_str().ok()
    }

    /// The whole body in memory.
    pub async fn bytes(self) -> Result<Bytes> {
        Ok(self.response.bytes().await?)
    }

    /// The body chunk by chunk, as it arrives.
    pub fn bytes_stream(self) -> impl Stream<Item = Result<Bytes>> {
        use futures_util::TryStreamExt;
        self.response.bytes_stream().map_err(crate::Error::from)
    }

    /// The underlying response.
    pub fn into_response(self) -> reqwest::Response {
        self.response
    }
}
