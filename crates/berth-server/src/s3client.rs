//! A small S3 client over reqwest, with requests signed by rusty-s3 (SigV4 query signing):
//! what Berth itself needs of an S3 server — buckets for tenants, Blob's streamed objects, and
//! backups. Bodies are streamed both ways; an upload holds at most two parts in memory (one
//! being sent, the next being read).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use rusty_s3::actions::{
    AbortMultipartUpload, CompleteMultipartUpload, CreateBucket, CreateMultipartUpload,
    DeleteObject, GetObject, HeadBucket, HeadObject, ListObjectsV2, PutObject, UploadPart,
};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

/// How long a signed URL stays valid: it is used at once.
const SIGNED_FOR: Duration = Duration::from_secs(300);
/// Bodies up to this size go in one PUT; larger ones in parts of this size (S3's minimum part
/// is 5 MiB; 8 MiB keeps the per-upload memory small and the part count low).
pub const PART_SIZE: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The server answered with an S3 error (status and the `<Code>` of its XML body).
    #[error("S3 {status}: {code}: {message}")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    #[error("S3 server unreachable: {0}")]
    Unreachable(String),
    /// The body was larger than allowed; nothing was stored.
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// Reading the body to upload failed (the client went away); nothing was stored.
    #[error("reading the upload: {0}")]
    Body(String),
    #[error("{0}")]
    Other(String),
}

impl S3Error {
    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            S3Error::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

pub type S3Result<T> = Result<T, S3Error>;

/// Where and as whom to talk S3.
#[derive(Clone)]
pub struct S3Endpoint {
    /// `http://127.0.0.1:9000`
    pub url: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for S3Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Endpoint")
            .field("url", &self.url)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// An object's metadata.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub last_modified: Option<String>,
    pub etag: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Listing {
    pub objects: Vec<ObjectInfo>,
    pub next_token: Option<String>,
}

#[derive(Clone)]
pub struct S3Client {
    endpoint: S3Endpoint,
    credentials: Credentials,
    http: reqwest::Client,
    url_style: UrlStyle,
}

impl S3Client {
    pub fn new(endpoint: S3Endpoint) -> Self {
        let credentials = Credentials::new(&endpoint.access_key, &endpoint.secret_key);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("reqwest client");
        Self {
            endpoint,
            credentials,
            http,
            url_style: UrlStyle::Path,
        }
    }

    /// Addresses buckets as `https://bucket.host/` (virtual-hosted style, AWS's default)
    /// instead of `https://host/bucket/` (path style: Berth's own S3 and most self-hosted
    /// servers).
    pub fn virtual_hosted(mut self) -> Self {
        self.url_style = UrlStyle::VirtualHost;
        self
    }

    fn bucket(&self, name: &str) -> S3Result<Bucket> {
        let url = self
            .endpoint
            .url
            .parse()
            .map_err(|e| S3Error::Other(format!("endpoint {}: {e}", self.endpoint.url)))?;
        Bucket::new(
            url,
            self.url_style,
            name.to_string(),
            self.endpoint.region.clone(),
        )
        .map_err(|e| S3Error::Other(format!("bucket {name}: {e}")))
    }

    /// Sends a signed request; an error status becomes [`S3Error::Server`].
    async fn send<'a>(
        &self,
        action: &impl S3Action<'a>,
        method: reqwest::Method,
        headers: &[(&str, &str)],
        body: Option<reqwest::Body>,
    ) -> S3Result<reqwest::Response> {
        self.send_signed(action.sign(SIGNED_FOR), method, headers, body)
            .await
    }

    async fn send_signed(
        &self,
        url: url::Url,
        method: reqwest::Method,
        headers: &[(&str, &str)],
        body: Option<reqwest::Body>,
    ) -> S3Result<reqwest::Response> {
        let mut request = self.http.request(method, url.as_str());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        // An empty PUT/POST still needs its Content-Length (s3s refuses one without it).
        request = match body {
            Some(body) => request.body(body),
            None => request.header(reqwest::header::CONTENT_LENGTH, "0"),
        };
        let response = request
            .send()
            .await
            .map_err(|e| S3Error::Unreachable(e.without_url().to_string()))?;
        if response.status().is_success() || response.status().as_u16() == 206 {
            return Ok(response);
        }
        Err(server_error(response).await)
    }

    /// The names of the buckets these credentials may see (ListBuckets; rusty-s3 has no action
    /// for it, so the request is signed with its `sign` directly).
    pub async fn list_buckets(&self) -> S3Result<Vec<String>> {
        let root: url::Url = format!("{}/", self.endpoint.url.trim_end_matches('/'))
            .parse()
            .map_err(|e| S3Error::Other(format!("endpoint {}: {e}", self.endpoint.url)))?;
        let url = rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            rusty_s3::Method::Get,
            root,
            &self.endpoint.access_key,
            &self.endpoint.secret_key,
            None,
            &self.endpoint.region,
            SIGNED_FOR.as_secs(),
            std::iter::empty(),
            std::iter::empty(),
        );
        let response = self
            .send_signed(url, reqwest::Method::GET, &[], None)
            .await?;
        let text = response
            .text()
            .await
            .map_err(|e| S3Error::Unreachable(e.to_string()))?;
        Ok(xml_values(&text, "Name"))
    }

    pub async fn create_bucket(&self, name: &str) -> S3Result<()> {
        let bucket = self.bucket(name)?;
        let action = CreateBucket::new(&bucket, &self.credentials);
        match self.send(&action, reqwest::Method::PUT, &[], None).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether the bucket exists (and these credentials may see it).
    pub async fn bucket_exists(&self, name: &str) -> S3Result<bool> {
        let bucket = self.bucket(name)?;
        let action = HeadBucket::new(&bucket, Some(&self.credentials));
        match self.send(&action, reqwest::Method::HEAD, &[], None).await {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn head_object(&self, bucket: &str, key: &str) -> S3Result<Option<ObjectInfo>> {
        let b = self.bucket(bucket)?;
        let action = HeadObject::new(&b, Some(&self.credentials), key);
        match self.send(&action, reqwest::Method::HEAD, &[], None).await {
            Ok(response) => Ok(Some(object_info(key, &response))),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Starts a download; `range` is an HTTP `Range` header value. The response's body is
    /// streamed by the caller; status 200 or 206.
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<&str>,
    ) -> S3Result<Option<reqwest::Response>> {
        let b = self.bucket(bucket)?;
        let action = GetObject::new(&b, Some(&self.credentials), key);
        let headers: Vec<(&str, &str)> = range.map(|r| ("range", r)).into_iter().collect();
        match self
            .send(&action, reqwest::Method::GET, &headers, None)
            .await
        {
            Ok(response) => Ok(Some(response)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn delete_object(&self, bucket: &str, key: &str) -> S3Result<()> {
        let b = self.bucket(bucket)?;
        let action = DeleteObject::new(&b, Some(&self.credentials), key);
        match self.send(&action, reqwest::Method::DELETE, &[], None).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Server-side copy within the server (`x-amz-copy-source`, signed).
    pub async fn copy_object(&self, bucket: &str, from_key: &str, to_key: &str) -> S3Result<()> {
        let b = self.bucket(bucket)?;
        let source = format!("/{bucket}/{}", encode_key(from_key));
        let mut action = PutObject::new(&b, Some(&self.credentials), to_key);
        action
            .headers_mut()
            .insert("x-amz-copy-source", source.clone());
        self.send(
            &action,
            reqwest::Method::PUT,
            &[("x-amz-copy-source", &source)],
            None,
        )
        .await?;
        Ok(())
    }

    /// One page of keys under `prefix`, at most `max_keys`, after `token`.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        token: Option<&str>,
        max_keys: usize,
    ) -> S3Result<Listing> {
        let b = self.bucket(bucket)?;
        let mut action = ListObjectsV2::new(&b, Some(&self.credentials));
        // rusty-s3 asks for URL-encoded keys and decodes them (`+` as a space); s3s-fs (Berth's
        // S3) says it encoded them but sends them as they are, so `a+b` came back as `a b` and
        // could not be read. Plain (XML-escaped) keys mean the same on every server.
        action.query_mut().remove("encoding-type");
        if !prefix.is_empty() {
            action.with_prefix(prefix);
        }
        if let Some(token) = token {
            action.with_continuation_token(token);
        }
        action.with_max_keys(max_keys);
        let response = self.send(&action, reqwest::Method::GET, &[], None).await?;
        let text = response
            .text()
            .await
            .map_err(|e| S3Error::Unreachable(e.to_string()))?;
        let parsed = ListObjectsV2::parse_response(&text)
            .map_err(|e| S3Error::Other(format!("unreadable listing: {e}")))?;
        Ok(Listing {
            objects: parsed
                .contents
                .into_iter()
                .map(|c| ObjectInfo {
                    key: c.key,
                    size: c.size.unwrap_or(0),
                    content_type: None,
                    last_modified: c.last_modified,
                    etag: c.etag,
                })
                .collect(),
            next_token: parsed.next_continuation_token,
        })
    }

    /// Every object under `prefix`, following continuation tokens.
    pub async fn list_all(&self, bucket: &str, prefix: &str) -> S3Result<Vec<ObjectInfo>> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.list(bucket, prefix, token.as_deref(), 1000).await?;
            objects.extend(page.objects);
            match page.next_token {
                Some(next) => token = Some(next),
                None => return Ok(objects),
            }
        }
    }

    /// Reads an object through and returns its size and SHA-256 (lowercase hex), holding one
    /// chunk at a time; `None` if it does not exist.
    pub async fn sha256_of(&self, bucket: &str, key: &str) -> S3Result<Option<(u64, String)>> {
        use sha2::Digest;
        let Some(response) = self.get_object(bucket, key, None).await? else {
            return Ok(None);
        };
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| S3Error::Unreachable(e.to_string()))?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(Some((size, hex::encode(hasher.finalize()))))
    }

    /// Uploads a streamed body: one PUT if it fits in one part, else a multipart upload with
    /// parts of [`PART_SIZE`] — at most two parts are held in memory (one being sent, the
    /// next being read). A body longer than
    /// `limit` is refused as soon as the limit is crossed, and an interrupted upload is
    /// aborted, so either the whole object is stored or nothing is. Returns the size.
    pub async fn put_stream<S, E>(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
        body: S,
        limit: u64,
    ) -> S3Result<u64>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.put_stream_recorded(bucket, key, content_type, body, limit, |_| async {})
            .await
            .map(|uploaded| uploaded.size)
    }

    /// [`Self::put_stream`], telling `record` the id of a multipart upload as soon as it
    /// exists, before any part is sent: a caller that may be killed mid-upload records it
    /// durably, so whoever cleans up later can abort it (not every S3 server can list
    /// unfinished uploads; s3s-fs cannot). Returns what was sent and the ETag the object
    /// should now have (see [`Uploaded`]).
    pub async fn put_stream_recorded<S, E, R, Fut>(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
        mut body: S,
        limit: u64,
        record: R,
    ) -> S3Result<Uploaded>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
        R: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut parts = PartReader::new(&mut body, limit);
        let first = parts.next_part().await?;
        if first.bytes.len() < PART_SIZE {
            let b = self.bucket(bucket)?;
            let mut action = PutObject::new(&b, Some(&self.credentials), key);
            action
                .headers_mut()
                .insert("content-type", content_type.to_string());
            let length = first.bytes.len().to_string();
            let response = self
                .send(
                    &action,
                    reqwest::Method::PUT,
                    &[("content-type", content_type), ("content-length", &length)],
                    Some(reqwest::Body::from(first.bytes.freeze())),
                )
                .await?;
            let md5 = hex::encode(first.md5);
            return Ok(Uploaded {
                size: parts.total,
                server_etags_are_md5: etag_of(&response).as_deref() == Some(md5.as_str()),
                etag: md5,
            });
        }
        let upload_id = self.create_multipart(bucket, key, content_type).await?;
        record(upload_id.clone()).await;
        let result = self
            .upload_parts(bucket, key, &upload_id, first, &mut parts)
            .await;
        match result {
            Ok((etag, server_etags_are_md5)) => Ok(Uploaded {
                size: parts.total,
                etag,
                server_etags_are_md5,
            }),
            Err(e) => {
                if let Err(abort) = self.abort_multipart(bucket, key, &upload_id).await {
                    tracing::warn!(%bucket, %key, "aborting a failed multipart upload: {abort}");
                }
                Err(e)
            }
        }
    }

    async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
    ) -> S3Result<String> {
        let b = self.bucket(bucket)?;
        let mut action = CreateMultipartUpload::new(&b, Some(&self.credentials), key);
        action
            .headers_mut()
            .insert("content-type", content_type.to_string());
        let response = self
            .send(
                &action,
                reqwest::Method::POST,
                &[("content-type", content_type)],
                None,
            )
            .await?;
        let text = response
            .text()
            .await
            .map_err(|e| S3Error::Unreachable(e.to_string()))?;
        let parsed = CreateMultipartUpload::parse_response(&text)
            .map_err(|e| S3Error::Other(format!("unreadable multipart answer: {e}")))?;
        Ok(parsed.upload_id().to_string())
    }

    /// Sends the parts and completes the upload; returns the ETag the object should have
    /// (MD5 of the parts' MD5s, `-N`) and whether every part's ETag was its MD5.
    async fn upload_parts<S, E>(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        first: Part,
        parts: &mut PartReader<'_, S>,
    ) -> S3Result<(String, bool)>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let b = self.bucket(bucket)?;
        let mut etags = Vec::new();
        let mut md5s = Vec::new();
        let mut server_etags_are_md5 = true;
        let mut part = first;
        loop {
            let number = u16::try_from(etags.len() + 1)
                .map_err(|_| S3Error::Other("more than 65535 parts".into()))?;
            let action = UploadPart::new(&b, Some(&self.credentials), key, number, upload_id);
            let length = part.bytes.len().to_string();
            md5s.push(part.md5);
            let upload = async {
                let response = self
                    .send(
                        &action,
                        reqwest::Method::PUT,
                        &[("content-length", &length)],
                        Some(reqwest::Body::from(part.bytes.freeze())),
                    )
                    .await?;
                let quoted = response
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| S3Error::Other("part uploaded without an ETag".into()))?;
                Ok::<_, S3Error>((etag_of(&response), quoted))
            };
            // The next part is read while this one uploads, so the producer (a dump tool)
            // never waits for the network: two parts in memory at most.
            let (etag, next) = tokio::join!(upload, parts.next_part());
            let (unquoted, quoted) = etag?;
            let sent = md5s.last().map(hex::encode);
            server_etags_are_md5 &= unquoted.is_some() && unquoted == sent;
            etags.push(quoted);
            part = next?;
            if part.bytes.is_empty() {
                break;
            }
        }
        let action = CompleteMultipartUpload::new(
            &b,
            Some(&self.credentials),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGNED_FOR);
        let xml = action.body();
        let length = xml.len().to_string();
        self.send_signed(
            url,
            reqwest::Method::POST,
            &[("content-length", &length)],
            Some(reqwest::Body::from(xml)),
        )
        .await?;
        Ok((multipart_etag(&md5s), server_etags_are_md5))
    }

    /// Aborts a multipart upload, dropping its parts; an unknown upload id is not an error
    /// (it was completed or aborted already).
    pub async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<()> {
        let b = self.bucket(bucket)?;
        let action = AbortMultipartUpload::new(&b, Some(&self.credentials), key, upload_id);
        match self.send(&action, reqwest::Method::DELETE, &[], None).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// What an upload sent, and how the destination can prove it holds it without being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Bytes read from the body (and stored).
    pub size: u64,
    /// The ETag S3 gives an object stored this way, computed from the bytes sent: the MD5 of
    /// the body for one PUT; for a multipart upload the MD5 of its parts' MD5s followed by
    /// `-` and the number of parts (lowercase hex, unquoted).
    pub etag: String,
    /// Whether every ETag the server answered while the object was stored (the PUT's, or
    /// each part's) was the MD5 of what was sent: such a server computes ETags from what it
    /// received, so the object's ETag speaks for its bytes. Not so with SSE-KMS or SSE-C on
    /// AWS, or a server whose ETags are no MD5s; then only reading the object back proves it.
    pub server_etags_are_md5: bool,
}

/// A multipart object's S3 ETag from its parts' MD5s: `hex(MD5(md5_1 ‖ … ‖ md5_n))-n`.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    use md5::Digest;
    let mut all = md5::Md5::new();
    for part in part_md5s {
        all.update(part);
    }
    format!("{}-{}", hex::encode(all.finalize()), part_md5s.len())
}

/// A response's ETag, unquoted and lowercase (`W/` weak ones are no digest: `None`).
fn etag_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .and_then(unquote_etag)
}

/// `"abc…"` -> `abc…` (lowercase); a weak ETag (`W/"…"`) is `None`.
pub fn unquote_etag(value: &str) -> Option<String> {
    let value = value.trim();
    if value.starts_with("W/") {
        return None;
    }
    Some(value.trim_matches('"').to_ascii_lowercase())
}

/// One part as cut: its bytes and their MD5 (computed as the chunks arrive, while they are
/// still in cache).
struct Part {
    bytes: BytesMut,
    md5: [u8; 16],
}

/// Cuts a body into parts of exactly [`PART_SIZE`] bytes (the last one shorter). A chunk that
/// crosses a part's end is split and its rest starts the next part: a part's buffer, grown
/// from 1 MiB by doubling, then ends at exactly PART_SIZE, where a part overshooting it by
/// part of a chunk would double its allocation to twice PART_SIZE (and hold both while
/// copying).
struct PartReader<'a, S> {
    body: &'a mut S,
    /// The rest of a chunk that crossed the previous part's end.
    carry: Option<Bytes>,
    /// Bytes read from the body so far.
    total: u64,
    limit: u64,
}

impl<'a, S, E> PartReader<'a, S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    fn new(body: &'a mut S, limit: u64) -> Self {
        Self {
            body,
            carry: None,
            total: 0,
            limit,
        }
    }

    /// The next part: PART_SIZE bytes, fewer only at the body's end (empty once it ended).
    async fn next_part(&mut self) -> S3Result<Part> {
        use md5::Digest;
        let mut md5 = md5::Md5::new();
        let mut part = BytesMut::with_capacity(1 << 20);
        while part.len() < PART_SIZE {
            let mut chunk = match self.carry.take() {
                Some(rest) => rest,
                None => {
                    let Some(chunk) = self.body.next().await else {
                        break;
                    };
                    let chunk = chunk.map_err(|e| S3Error::Body(e.to_string()))?;
                    self.total += chunk.len() as u64;
                    if self.total > self.limit {
                        return Err(S3Error::TooLarge { limit: self.limit });
                    }
                    chunk
                }
            };
            let room = PART_SIZE - part.len();
            if chunk.len() > room {
                self.carry = Some(chunk.split_off(room));
            }
            md5.update(&chunk);
            part.extend_from_slice(&chunk);
        }
        Ok(Part {
            bytes: part,
            md5: md5.finalize().into(),
        })
    }
}

fn object_info(key: &str, response: &reqwest::Response) -> ObjectInfo {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    ObjectInfo {
        key: key.to_string(),
        size: header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        content_type: header("content-type"),
        last_modified: header("last-modified"),
        etag: header("etag"),
    }
}

/// Percent-encodes a key for `x-amz-copy-source`, keeping `/`.
fn encode_key(key: &str) -> String {
    key.split('/')
        .map(crate::engines::tenancy::url_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// Every `<tag>value</tag>` in a small XML answer, in order (S3 bucket names need no
/// unescaping: they are `[a-z0-9.-]`).
fn xml_values(text: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(&close) else { break };
        out.push(rest[..j].to_string());
        rest = &rest[j + close.len()..];
    }
    out
}

async fn server_error(response: reqwest::Response) -> S3Error {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let tag = |name: &str| {
        xml_values(&text, name)
            .into_iter()
            .next()
            .unwrap_or_default()
    };
    S3Error::Server {
        status,
        code: tag("Code"),
        message: tag("Message"),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use md5::Digest;

    use super::{PART_SIZE, PartReader, S3Error, multipart_etag, unquote_etag};

    /// Chunks of an odd size, so chunks cross every part's end.
    fn body(len: usize) -> (Vec<u8>, Vec<Result<Bytes, String>>) {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let chunks = data
            .chunks(300_007)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        (data, chunks)
    }

    #[tokio::test]
    async fn parts_are_cut_exactly_and_never_outgrow_a_part() {
        let (data, chunks) = body(PART_SIZE * 5 / 2);
        let mut stream = futures_util::stream::iter(chunks);
        let mut parts = PartReader::new(&mut stream, u64::MAX);
        let mut sizes = Vec::new();
        let mut joined = Vec::new();
        let mut md5s = Vec::new();
        loop {
            let part = parts.next_part().await.unwrap();
            assert!(
                part.bytes.capacity() <= PART_SIZE,
                "{}",
                part.bytes.capacity()
            );
            if part.bytes.is_empty() {
                break;
            }
            assert_eq!(part.md5, <[u8; 16]>::from(md5::Md5::digest(&part.bytes)));
            md5s.push(part.md5);
            sizes.push(part.bytes.len());
            joined.extend_from_slice(&part.bytes);
        }
        assert_eq!(sizes, vec![PART_SIZE, PART_SIZE, PART_SIZE / 2]);
        assert!(joined == data, "the parts put together are the body");
        assert_eq!(parts.total, data.len() as u64);
        // What S3 answers for these three parts: MD5 of the three digests, then "-3".
        let mut concatenated = Vec::new();
        for (i, range) in [
            0..PART_SIZE,
            PART_SIZE..2 * PART_SIZE,
            2 * PART_SIZE..data.len(),
        ]
        .into_iter()
        .enumerate()
        {
            let digest = md5::Md5::digest(&data[range]);
            assert_eq!(md5s[i], <[u8; 16]>::from(digest));
            concatenated.extend_from_slice(&digest);
        }
        assert_eq!(
            multipart_etag(&md5s),
            format!("{}-3", hex::encode(md5::Md5::digest(&concatenated)))
        );
    }

    #[test]
    fn multipart_etags_are_the_md5_of_the_part_md5s() {
        // The example AWS documents and every S3 client reproduces: two parts.
        let a: [u8; 16] = md5::Md5::digest(b"hello ").into();
        let b: [u8; 16] = md5::Md5::digest(b"world").into();
        let mut joined = a.to_vec();
        joined.extend_from_slice(&b);
        let expected = format!("{}-2", hex::encode(md5::Md5::digest(&joined)));
        assert_eq!(multipart_etag(&[a, b]), expected);
        // One part still counts as multipart: "-1", not the part's own MD5.
        assert!(multipart_etag(&[a]).ends_with("-1"));
        assert_ne!(multipart_etag(&[a]), hex::encode(a));
    }

    #[test]
    fn etags_are_unquoted_and_weak_ones_are_no_digest() {
        assert_eq!(
            unquote_etag("\"5D41402ABC4B2A76B9719D911017C592\"").as_deref(),
            Some("5d41402abc4b2a76b9719d911017c592")
        );
        assert_eq!(unquote_etag("abc-3").as_deref(), Some("abc-3"));
        assert_eq!(unquote_etag("W/\"abc\""), None);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let (_, chunks) = body(1_000_000);
        let mut stream = futures_util::stream::iter(chunks);
        let mut parts = PartReader::new(&mut stream, 999_999);
        assert!(matches!(
            parts.next_part().await,
            Err(S3Error::TooLarge { limit: 999_999 })
        ));
    }
}
