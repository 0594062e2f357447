//! A small S3 client for the tests: rusty-s3 signs (presigned URLs, SigV4), reqwest sends.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};

const REGION: &str = "us-east-1";
const EXPIRES: Duration = Duration::from_secs(300);

/// A status and the body, as text (S3 errors are XML).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The S3 error code of an error reply (`AccessDenied`, ...).
    pub fn code(&self) -> Option<String> {
        let text = self.text();
        let start = text.find("<Code>")? + "<Code>".len();
        let end = text[start..].find("</Code>")? + start;
        Some(text[start..end].to_string())
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert!(self.status.is_success(), "{}: {}", self.status, self.text());
        self
    }

    #[track_caller]
    pub fn assert_denied(&self) {
        assert_eq!(self.status, StatusCode::FORBIDDEN, "{}", self.text());
        assert_eq!(
            self.code().as_deref(),
            Some("AccessDenied"),
            "{}",
            self.text()
        );
    }
}

/// One signer (access key) against one endpoint.
pub struct Client {
    pub http: reqwest::Client,
    pub endpoint: Url,
    pub credentials: Credentials,
}

impl Client {
    pub fn new(endpoint: &str, key: &str, secret: &str) -> Self {
        Self::with_http(reqwest::Client::new(), endpoint, key, secret)
    }

    pub fn with_http(http: reqwest::Client, endpoint: &str, key: &str, secret: &str) -> Self {
        Self {
            http,
            endpoint: endpoint.parse().unwrap(),
            credentials: Credentials::new(key, secret),
        }
    }

    pub fn bucket(&self, name: &str) -> Bucket {
        Bucket::new(
            self.endpoint.clone(),
            UrlStyle::Path,
            name.to_string(),
            REGION,
        )
        .unwrap()
    }

    pub async fn send(
        &self,
        method: Method,
        url: Url,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut request = self.http.request(method, url);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        // S3 wants a length even on empty PUTs and POSTs.
        request = request.header("content-length", body.len().to_string());
        let response = request.body(body).send().await.expect("S3 request");
        let status = response.status();
        let body = response.bytes().await.expect("S3 reply body").to_vec();
        Reply { status, body }
    }

    pub async fn create_bucket(&self, bucket: &str) -> Reply {
        let bucket = self.bucket(bucket);
        let url = bucket.create_bucket(&self.credentials).sign(EXPIRES);
        self.send(Method::PUT, url, &[], Vec::new()).await
    }

    pub async fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Reply {
        let bucket = self.bucket(bucket);
        let url = bucket
            .put_object(Some(&self.credentials), key)
            .sign(EXPIRES);
        self.send(Method::PUT, url, &[], body.to_vec()).await
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Reply {
        let bucket = self.bucket(bucket);
        let url = bucket
            .get_object(Some(&self.credentials), key)
            .sign(EXPIRES);
        self.send(Method::GET, url, &[], Vec::new()).await
    }

    /// CopyObject: a PUT with a signed `x-amz-copy-source`.
    pub async fn copy(&self, from_bucket: &str, from_key: &str, bucket: &str, key: &str) -> Reply {
        let bucket = self.bucket(bucket);
        let source = format!("/{from_bucket}/{from_key}");
        let mut action = bucket.put_object(Some(&self.credentials), key);
        action
            .headers_mut()
            .insert("x-amz-copy-source", source.clone());
        let url = action.sign(EXPIRES);
        self.send(
            Method::PUT,
            url,
            &[("x-amz-copy-source", &source)],
            Vec::new(),
        )
        .await
    }

    /// Keys in `bucket` (ListObjectsV2), or the error reply.
    pub async fn list(&self, bucket: &str) -> Result<Vec<String>, Reply> {
        let bucket = self.bucket(bucket);
        let url = bucket
            .list_objects_v2(Some(&self.credentials))
            .sign(EXPIRES);
        let reply = self.send(Method::GET, url, &[], Vec::new()).await;
        if !reply.status.is_success() {
            return Err(reply);
        }
        let parsed = ListObjectsV2::parse_response(&reply.text()).expect("ListObjectsV2 XML");
        Ok(parsed.contents.into_iter().map(|o| o.key).collect())
    }

    /// Bucket names (ListBuckets: rusty-s3 has no action for it, so sign the root URL).
    pub async fn list_buckets(&self) -> Result<Vec<String>, Reply> {
        let url = self.sign_raw(Method::GET, self.endpoint.clone(), &[]);
        let reply = self.send(Method::GET, url, &[], Vec::new()).await;
        if !reply.status.is_success() {
            return Err(reply);
        }
        let text = reply.text();
        Ok(text
            .split("<Name>")
            .skip(1)
            .filter_map(|s| s.split_once("</Name>").map(|(n, _)| n.to_string()))
            .collect())
    }

    /// Presigns any URL, for requests rusty-s3 has no action for or would not build.
    pub fn sign_raw(&self, method: Method, url: Url, headers: &[(&str, &str)]) -> Url {
        let method = match method {
            Method::GET => rusty_s3::Method::Get,
            Method::PUT => rusty_s3::Method::Put,
            Method::POST => rusty_s3::Method::Post,
            Method::DELETE => rusty_s3::Method::Delete,
            Method::HEAD => rusty_s3::Method::Head,
            other => panic!("cannot sign {other}"),
        };
        rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            method,
            url,
            self.credentials.key(),
            self.credentials.secret(),
            None,
            REGION,
            EXPIRES.as_secs(),
            std::iter::empty(),
            headers.iter().copied(),
        )
    }

    /// Uploads `body` in parts of `part_size` bytes (CreateMultipartUpload, UploadPart,
    /// CompleteMultipartUpload).
    pub async fn multipart_put(&self, bucket: &str, key: &str, body: &[u8], part_size: usize) {
        let b = self.bucket(bucket);
        let url = b
            .create_multipart_upload(Some(&self.credentials), key)
            .sign(EXPIRES);
        let reply = self.send(Method::POST, url, &[], Vec::new()).await;
        reply.assert_ok();
        let created = CreateMultipartUpload::parse_response(&reply.text()).expect("upload XML");
        let upload_id = created.upload_id();
        let mut etags = Vec::new();
        for (i, part) in body.chunks(part_size).enumerate() {
            let number = u16::try_from(i + 1).unwrap();
            let url = b
                .upload_part(Some(&self.credentials), key, number, upload_id)
                .sign(EXPIRES);
            let response = self
                .http
                .put(url)
                .body(part.to_vec())
                .send()
                .await
                .expect("UploadPart");
            assert!(
                response.status().is_success(),
                "part {number}: {}",
                response.status()
            );
            let etag = response.headers()["etag"].to_str().unwrap().to_string();
            etags.push(etag);
        }
        let complete = b.complete_multipart_upload(
            Some(&self.credentials),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = complete.sign(EXPIRES);
        let body = complete.body();
        let reply = self.send(Method::POST, url, &[], body.into_bytes()).await;
        reply.assert_ok();
        // A failed completion can still answer 200, with an <Error> inside.
        let text = reply.text();
        assert!(
            text.contains("CompleteMultipartUploadResult") && !text.contains("<Error>"),
            "{text}"
        );
    }
}
