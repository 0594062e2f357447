//! The "console" port: a read-only status page, not RustFS' web console. It shows the server
//! version and how many buckets exist — nothing secret, so it needs no login — as HTML on `/`
//! and JSON on `/status`. It gives the seed's `console_port` a meaning and Berth a cheap
//! readiness probe that does not need a signed request.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};

pub const VERSION: &str = concat!("berth-s3d ", env!("CARGO_PKG_VERSION"), " (s3s-fs 0.14.1)");

pub struct Console {
    buckets_dir: PathBuf,
}

impl Console {
    pub fn new(buckets_dir: PathBuf) -> Arc<Self> {
        Arc::new(Self { buckets_dir })
    }

    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Ok(reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "GET only\n".into(),
            ));
        }
        let buckets = match self.bucket_count().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("console: cannot count buckets: {e}");
                return Ok(reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "storage unreadable\n".into(),
                ));
            }
        };
        Ok(match req.uri().path() {
            "/" => reply(StatusCode::OK, "text/html; charset=utf-8", page(buckets)),
            "/status" => reply(
                StatusCode::OK,
                "application/json",
                serde_json::json!({ "version": VERSION, "buckets": buckets }).to_string(),
            ),
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
        })
    }

    /// Counted like ListBuckets counts them: directories with valid bucket names.
    async fn bucket_count(&self) -> std::io::Result<usize> {
        let mut dir = tokio::fs::read_dir(&self.buckets_dir).await?;
        let mut count = 0;
        while let Some(entry) = dir.next_entry().await? {
            if entry.file_type().await?.is_dir()
                && entry
                    .file_name()
                    .to_str()
                    .is_some_and(s3s::path::check_bucket_name)
            {
                count += 1;
            }
        }
        Ok(count)
    }
}

fn page(buckets: usize) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Berth S3</title></head>\n\
         <body><h1>Berth S3</h1>\n<p>Server: {VERSION}</p>\n<p>Buckets: {buckets}</p>\n\
         <p>This is a status page. Use an S3 client on the S3 port (HTTP) or the TLS port \
         (HTTPS) with an access key.</p></body></html>\n"
    )
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
