//! `/api/blob*`: Temps' blob store. Uploads and downloads are streamed; nothing here holds a
//! whole blob in memory unless asked to ([`BlobDownload::bytes`]).

mod location;
mod types;

use futures_util::{Stream, TryStreamExt, stream};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncRead;

pub use types::{BlobDownload, BlobInfo, ListOptions, ListPage, PutOptions};

use crate::Client;
use crate::error::{Error, Result, check, json as read_json};

/// The blob store of one project (see [`Client::blob`]).
#[derive(Debug, Clone, Copy)]
pub struct Blob<'a> {
    client: &'a Client,
}

impl<'a> Blob<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Blob { client }
    }

    /// Uploads `body` (bytes, a `String`, a `Vec<u8>`, or any `reqwest::Body`, streams
    /// included) to `pathname`.
    pub async fn put(
        &self,
        pathname: &str,
        body: impl Into<reqwest::Body>,
        options: PutOptions,
    ) -> Result<BlobInfo> {
        let mut query = vec![("pathname", pathname.to_string())];
        if let Some(content_type) = &options.content_type {
            query.push(("content_type", content_type.clone()));
        }
        if options.add_random_suffix {
            query.push(("add_random_suffix", "true".into()));
        }
        if let Some(project) = self.client.project_id() {
            query.push(("project_id", project.to_string()));
        }
        let mut request = self
            .client
            .request(Method::POST, self.client.url("/api/blob"))
            .query(&query)
            .body(body);
        if let Some(content_type) = &options.content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        let wire: types::WireBlob = read_json(request.send().await?).await?;
        Ok(wire.into())
    }

    /// Uploads what `reader` yields, chunk by chunk, without reading it whole first.
    pub async fn put_reader<R>(
        &self,
        pathname: &str,
        reader: R,
        options: PutOptions,
    ) -> Result<BlobInfo>
    where
        R: AsyncRead + Send + Sync + 'static,
    {
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(reader));
        self.put(pathname, body, options).await
    }

    /// Starts downloading `blob` (its url, or a pathname when the client names a project).
    pub async fn get(&self, blob: &str) -> Result<BlobDownload> {
        self.download(blob, None).await
    }

    /// Downloads bytes `start..=end` of `blob` (`end`: `None` for the rest); 206 answer.
    pub async fn get_range(
        &self,
        blob: &str,
        start: u64,
        end: Option<u64>,
    ) -> Result<BlobDownload> {
        let range = match end {
            Some(end) => format!("bytes={start}-{end}"),
            None => format!("bytes={start}-"),
        };
        self.download(blob, Some(range)).await
    }

    async fn download(&self, blob: &str, range: Option<String>) -> Result<BlobDownload> {
        let url = location::download_url(self.client, blob)?;
        let mut request = self.client.request(Method::GET, url);
        if let Some(range) = range {
            request = request.header(reqwest::header::RANGE, range);
        }
        Ok(BlobDownload::new(check(request.send().await?).await?))
    }

    /// A blob's metadata, from the headers of a HEAD request.
    pub async fn head(&self, blob: &str) -> Result<BlobInfo> {
        let url = location::download_url(self.client, blob)?;
        let response = check(
            self.client
                .request(Method::HEAD, url.clone())
                .send()
                .await?,
        )
        .await?;
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(BlobInfo {
            url: url.path().to_string(),
            pathname: location::pathname(url.path()),
            content_type: header(reqwest::header::CONTENT_TYPE).unwrap_or_default(),
            size: header(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            uploaded_at: header(reqwest::header::LAST_MODIFIED).unwrap_or_default(),
        })
    }

    /// One page of the project's blobs.
    pub async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(prefix) = &options.prefix {
            query.push(("prefix", prefix.clone()));
        }
        if let Some(limit) = options.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &options.cursor {
            query.push(("cursor", cursor.clone()));
        }
        if let Some(project) = self.client.project_id() {
            query.push(("project_id", project.to_string()));
        }
        let response = self
            .client
            .request(Method::GET, self.client.url("/api/blob"))
            .query(&query)
            .send()
            .await?;
        let wire: types::WirePage = read_json(response).await?;
        Ok(wire.into())
    }

    /// Every blob from `options` on, fetching page after page as the stream is read.
    pub fn list_all(&self, options: ListOptions) -> impl Stream<Item = Result<BlobInfo>> + 'a {
        let blob = *self;
        let pages = stream::try_unfold(Some(options), move |next| async move {
            let Some(options) = next else {
                return Ok(None);
            };
            let page = blob.list(&options).await?;
            let next = match (&page.cursor, page.has_more) {
                (Some(cursor), true) => Some(ListOptions {
                    cursor: Some(cursor.clone()),
                    ..options
                }),
                _ => None,
            };
            Ok::<_, Error>(Some((stream::iter(page.blobs.into_iter().map(Ok)), next)))
        });
        pages.try_flatten()
    }

    /// Deletes blobs (urls or pathnames); how many existed.
    pub async fn delete<S: AsRef<str>>(&self, blobs: &[S]) -> Result<i64> {
        let pathnames: Vec<String> = blobs
            .iter()
            .map(|b| location::pathname(b.as_ref()))
            .collect();
        let answer: Value = self
            .send_json(
                Method::DELETE,
                "/api/blob",
                json!({ "pathnames": pathnames }),
            )
            .await?;
        answer
            .get("deleted")
            .and_then(Value::as_i64)
            .ok_or_else(|| Error::Decode(format!("no \"deleted\" in {answer}")))
    }

    /// Copies `from` (a url or pathname) to `to_pathname` in the same project.
    pub async fn copy(&self, from: &str, to_pathname: &str) -> Result<BlobInfo> {
        let wire: types::WireBlob = self
            .send_json(
                Method::POST,
                "/api/blob/copy",
                json!({ "fromUrl": from, "toPathname": to_pathname }),
            )
            .await?;
        Ok(wire.into())
    }

    /// A JSON request; bodies use Temps' camelCase (`projectId`), as its server reads them.
    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        mut body: Value,
    ) -> Result<T> {
        if let Some(project) = self.client.project_id() {
            body["projectId"] = project.into();
        }
        let response = self
            .client
            .request(method, self.client.url(path))
            .json(&body)
            .send()
            .await?;
        read_json(response).await
    }
}
