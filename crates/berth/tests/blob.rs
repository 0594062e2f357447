//! Blob through Berth against a real S3 server (Blob's own backing service, made by
//! `/api/blob/enable`): every route with Temps' bodies, two projects' isolation (admin tokens
//! naming `project_id`, project tokens), escape attempts on every route, the size limit (413,
//! nothing stored), a chunked upload larger than one multipart part, Range, and 503 once the
//! backing service is stopped.
//!
//! One test walks it all on one backing service, since each S3 service takes a while to
//! start; its server has a unique Blob service name so parallel runs never share a container.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The size limit this server runs with: small, so the oversize case is cheap.
const MAX_BYTES: u64 = 32 << 20;

struct Caller<'a> {
    berth: &'a Berth,
    token: String,
    /// `project_id` to name (admin tokens).
    project: Option<i64>,
}

impl Caller<'_> {
    fn with_project(&self, query: &str) -> String {
        match self.project {
            Some(p) if query.is_empty() => format!("?project_id={p}"),
            Some(p) => format!("?{query}&project_id={p}"),
            None if query.is_empty() => String::new(),
            None => format!("?{query}"),
        }
    }

    async fn put(&self, query: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let url = self
            .berth
            .url(&format!("/api/blob{}", self.with_project(query)));
        let response = reqwest::Client::new()
            .post(url)
            .bearer_auth(&self.token)
            .body(body)
            .send()
            .await
            .expect("put");
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        mut body: Option<Value>,
    ) -> (StatusCode, Value) {
        if let (Some(p), Some(b)) = (self.project, body.as_mut()) {
            b["project_id"] = json!(p);
        }
        let (status, _, value) = self.berth.call_as(&self.token, method, path, body).await;
        (status, value)
    }

    async fn list(&self, query: &str) -> (StatusCode, Value) {
        let path = format!("/api/blob{}", self.with_project(query));
        self.json(Method::GET, &path, None).await
    }

    async fn pathnames(&self) -> Vec<String> {
        let (status, listed) = self.list("").await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        listed["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["pathname"].as_str().unwrap().to_string())
            .collect()
    }

    async fn download(
        &self,
        method: Method,
        path: &str,
        range: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let mut request = reqwest::Client::new()
            .request(method, self.berth.url(path))
            .bearer_auth(&self.token);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        let response = request.send().await.expect("download");
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.bytes().await.unwrap().to_vec())
    }
}

#[tokio::test]
async fn blob_end_to_end() {
    let name = unique("blob");
    let max = MAX_BYTES.to_string();
    let berth = Berth::start_with(
        vec![],
        vec!["--blob-service-name", &name, "--blob-max-bytes", &max],
    )
    .await;
    let p1 = create_project(&berth, &unique("one"), &["production"]).await;
    let p2 = create_project(&berth, &unique("two"), &["production"]).await;
    let admin1 = Caller {
        berth: &berth,
        token: berth.token.clone(),
        project: Some(p1),
    };

    // Before enable: status says so, data routes answer 404 (as KV, and Temps' "not
    // configured": Blob is off, not out of order) saying how to enable.
    let (status, answer) = berth.get("/api/blob/status").await;
    assert_eq!(
        (status, answer["enabled"].clone()),
        (StatusCode::OK, json!(false)),
        "{answer}"
    );
    let (status, answer) = admin1.put("pathname=a.txt", "x").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("/api/blob/enable"),
        "{answer}"
    );

    let (status, enabled) = berth
        .call(
            Method::POST,
            "/api/blob/enable",
            Some(json!({"port": free_port()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "enable: {enabled}\n{}", berth.log());
    assert_eq!(enabled["status"]["enabled"], true, "{enabled}");
    assert_eq!(enabled["status"]["healthy"], true, "{enabled}");
    assert_eq!(
        enabled["status"]["service_name"],
        name.as_str(),
        "{enabled}"
    );
    let service_id = enabled["status"]["service_id"].as_i64().unwrap();
    let (status, again) = berth
        .call(Method::POST, "/api/blob/enable", Some(json!({})))
        .await;
    assert_eq!(
        (status, again["message"].clone()),
        (StatusCode::OK, json!("Blob was already enabled"))
    );
    // The ordinary routes may not delete or link it.
    let (status, _) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{service_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = link_project(&berth, service_id, p1).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Put: both spellings, content type kept, url encoded.
    let (status, put) = admin1
        .put(
            "pathname=docs/h%C3%A9llo%20w.txt&content_type=text/plain",
            "hello world",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{put}");
    assert_eq!(put["pathname"], "docs/héllo w.txt");
    assert_eq!(put["size"], 11);
    assert_eq!(put["content_type"], "text/plain");
    assert_eq!(put["contentType"], "text/plain");
    assert!(
        put["uploaded_at"].is_string() && put["uploadedAt"] == put["uploaded_at"],
        "{put}"
    );
    let url = format!("/api/blob/{p1}/docs/h%C3%A9llo%20w.txt");
    assert_eq!(put["url"], url.as_str());

    // Get, head, Range.
    let (status, headers, bytes) = admin1.download(Method::GET, &url, None).await;
    assert_eq!(
        (status, bytes.as_slice()),
        (StatusCode::OK, b"hello world".as_slice())
    );
    assert_eq!(headers["content-type"], "text/plain");
    assert!(
        headers.contains_key("etag") && headers.contains_key("last-modified"),
        "{headers:?}"
    );
    let (status, headers, bytes) = admin1.download(Method::GET, &url, Some("bytes=6-10")).await;
    assert_eq!(
        (status, bytes.as_slice()),
        (StatusCode::PARTIAL_CONTENT, b"world".as_slice())
    );
    assert_eq!(headers["content-range"], "bytes 6-10/11");
    let (status, _, bytes) = admin1.download(Method::GET, &url, Some("bytes=-5")).await;
    assert_eq!(
        (status, bytes.as_slice()),
        (StatusCode::PARTIAL_CONTENT, b"world".as_slice())
    );
    // A Range that is not one byte range is ignored, as S3 does: the whole blob, never a 5xx.
    for odd in ["null", "bytes=0-1,4-5", "bytes=9-3", "lines=1-2"] {
        let (status, _, bytes) = admin1.download(Method::GET, &url, Some(odd)).await;
        assert_eq!(
            (status, bytes.as_slice()),
            (StatusCode::OK, b"hello world".as_slice()),
            "Range: {odd}"
        );
    }
    let (status, headers, _) = admin1.download(Method::HEAD, &url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            headers["content-length"].to_str().unwrap(),
            headers["content-type"].to_str().unwrap()
        ),
        ("11", "text/plain")
    );

    // Random suffix.
    let (status, suffixed) = admin1
        .put(
            "pathname=img/a.png&add_random_suffix=true&content_type=image/png",
            "png",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{suffixed}");
    let suffixed_name = suffixed["pathname"].as_str().unwrap().to_string();
    assert!(
        suffixed_name.starts_with("img/a-")
            && suffixed_name.ends_with(".png")
            && suffixed_name != "img/a.png",
        "{suffixed}"
    );

    // A chunked upload (no Content-Length) larger than one 8 MiB part: multipart, streamed.
    let chunk = vec![7u8; 1 << 20];
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..20).map(|_| Ok(chunk.clone())).collect();
    let stream = futures_util::stream::iter(chunks);
    let (status, big) = admin1
        .put("pathname=big.bin", reqwest::Body::wrap_stream(stream))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{big}\n{}", berth.log());
    assert_eq!(big["size"], 20 << 20);
    let (status, _, bytes) = admin1
        .download(
            Method::GET,
            &format!("/api/blob/{p1}/big.bin"),
            Some("bytes=20971510-"),
        )
        .await;
    assert_eq!((status, bytes.len()), (StatusCode::PARTIAL_CONTENT, 10));

    // Oversize: 413 and nothing listed.
    let oversize: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..33).map(|_| Ok(chunk.clone())).collect();
    let (status, answer) = admin1
        .put(
            "pathname=huge.bin",
            reqwest::Body::wrap_stream(futures_util::stream::iter(oversize)),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(!admin1.pathnames().await.contains(&"huge.bin".to_string()));

    // List: prefix, limit + cursor, both spellings of has_more.
    let (status, listed) = admin1.list("prefix=docs/").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["blobs"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["blobs"][0]["contentType"], "text/plain", "{listed}");
    let (_, page1) = admin1.list("limit=2").await;
    assert_eq!(
        (page1["has_more"].clone(), page1["hasMore"].clone()),
        (json!(true), json!(true)),
        "{page1}"
    );
    let cursor = page1["cursor"].as_str().unwrap();
    let (status, page2) = admin1
        .list(&format!("limit=2&cursor={}", urlencode(cursor)))
        .await;
    assert_eq!(status, StatusCode::OK, "{page2}");
    assert_eq!(page2["has_more"], false, "{page2}");
    assert_eq!(
        page1["blobs"].as_array().unwrap().len() + page2["blobs"].as_array().unwrap().len(),
        3
    );

    // Copy (Temps' camelCase and snake_case), type kept.
    let (status, copied) = admin1
        .json(
            Method::POST,
            "/api/blob/copy",
            Some(json!({"from_url": url, "to_pathname": "copy.txt"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{copied}");
    assert_eq!(
        (
            copied["pathname"].clone(),
            copied["content_type"].clone(),
            copied["size"].clone()
        ),
        (json!("copy.txt"), json!("text/plain"), json!(11))
    );
    let (status, copied) = admin1
        .json(
            Method::POST,
            "/api/blob/copy",
            Some(json!({"fromUrl": "copy.txt", "toPathname": "copy2.txt"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{copied}");

    // Project two sees none of it, and cannot reach it.
    let admin2 = Caller {
        berth: &berth,
        token: berth.token.clone(),
        project: Some(p2),
    };
    assert!(admin2.pathnames().await.is_empty());
    let token2 = create_token(
        &berth,
        json!({"name": unique("t2"), "scope": "project", "project_id": p2}),
    )
    .await;
    let tok2 = Caller {
        berth: &berth,
        token: token2["token"].as_str().unwrap().to_string(),
        project: None,
    };
    let (status, mine) = tok2.put("pathname=docs/h%C3%A9llo%20w.txt", "two's").await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    assert_eq!(tok2.pathnames().await, vec!["docs/héllo w.txt".to_string()]);
    let (status, _, bytes) = admin1.download(Method::GET, &url, None).await;
    assert_eq!(
        (status, bytes.as_slice()),
        (StatusCode::OK, b"hello world".as_slice()),
        "two's put must not touch one's"
    );
    // 403: another project's download, head, put, list, delete, copy source.
    for method in [Method::GET, Method::HEAD] {
        let (status, _, _) = tok2.download(method, &url, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _) = tok2.put(&format!("pathname=x&project_id={p1}"), "x").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = tok2.list(&format!("project_id={p1}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = tok2
        .json(
            Method::DELETE,
            "/api/blob",
            Some(json!({"pathnames": ["copy.txt"], "project_id": p1})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = tok2
        .json(
            Method::POST,
            "/api/blob/copy",
            Some(json!({"from_url": url, "to_pathname": "stolen.txt"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = admin2
        .json(
            Method::POST,
            "/api/blob/copy",
            Some(json!({"from_url": url, "to_pathname": "stolen.txt"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(tok2.pathnames().await.len(), 1);

    // Escape attempts: refused (400) on every route, nothing stored or read outside.
    let long = "a".repeat(2048);
    let bad_queries = [
        "pathname=..%2Fx",
        "pathname=a%2F..%2F..%2Fp1%2Fcopy.txt",
        "pathname=%2Fabs",
        "pathname=a%00b",
        "pathname=a%5Cb",
        "pathname=.",
        "pathname=a%2F%2Fb",
    ];
    for query in bad_queries {
        let (status, answer) = tok2.put(query, "evil").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {answer}");
    }
    let (status, _) = tok2.put(&format!("pathname={long}"), "x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for path in [
        format!("/api/blob/{p2}/%2e%2e/p{p1}/copy.txt"),
        format!("/api/blob/{p2}/a/%2e%2e/%2e%2e/x"),
        format!("/api/blob/{p2}/..%2F..%2Fp{p1}%2Fcopy.txt"),
        format!("/api/blob/{p2}/a%00b"),
        format!("/api/blob/{p2}/a%5Cb"),
        format!("/api/blob/{p2}/%2Fetc"),
    ] {
        // reqwest's URL parser folds `%2e%2e` segments before sending (to a path naming no
        // project, 403, or no route, 404); the rest reach Berth and are refused as pathnames
        // (400). Either way nothing of project one comes back.
        for method in [Method::GET, Method::HEAD] {
            let (status, _, bytes) = tok2.download(method.clone(), &path, None).await;
            assert!(
                [
                    StatusCode::BAD_REQUEST,
                    StatusCode::FORBIDDEN,
                    StatusCode::NOT_FOUND
                ]
                .contains(&status),
                "{method} {path}: {status}"
            );
            assert!(!bytes.starts_with(b"hello"), "{method} {path}");
        }
    }
    for bad in ["../p1/copy.txt", "/copy.txt", "a\0b", "a\\b", "x/../../y"] {
        let (status, _) = tok2
            .json(
                Method::DELETE,
                "/api/blob",
                Some(json!({"pathnames": [bad]})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "delete {bad:?}");
        let (status, _) = tok2
            .json(
                Method::POST,
                "/api/blob/copy",
                Some(json!({"from_url": bad, "to_pathname": "x"})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "copy from {bad:?}");
        let (status, _) = tok2
            .json(
                Method::POST,
                "/api/blob/copy",
                Some(json!({"from_url": "docs/héllo w.txt", "to_pathname": bad})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "copy to {bad:?}");
    }
    let (status, _) = tok2.list("prefix=..%2F").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Unicode is a name like any other.
    let (status, uni) = tok2
        .put("pathname=%E6%97%A5%E6%9C%AC/%F0%9F%93%A6.bin", "u")
        .await;
    assert_eq!(
        (status, uni["pathname"].clone()),
        (StatusCode::CREATED, json!("日本/📦.bin")),
        "{uni}"
    );
    let (_, _, bytes) = tok2
        .download(Method::GET, uni["url"].as_str().unwrap(), None)
        .await;
    assert_eq!(bytes, b"u");
    assert_eq!(admin1.pathnames().await.len(), 5, "one's blobs untouched");

    // Delete: counts what existed; 404 on a deleted blob.
    let (status, deleted) = admin1
        .json(
            Method::DELETE,
            "/api/blob",
            Some(json!({"pathnames": ["copy.txt", "copy2.txt", "never.txt"]})),
        )
        .await;
    assert_eq!(
        (status, deleted["deleted"].clone()),
        (StatusCode::OK, json!(2)),
        "{deleted}"
    );
    let (status, _, _) = admin1
        .download(Method::GET, &format!("/api/blob/{p1}/copy.txt"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The CLI: put a file, list, get it back, delete.
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("in.bin"), dir.path().join("out.bin"));
    std::fs::write(&src, vec![42u8; 3 << 20]).unwrap();
    let project = p1.to_string();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(["--api-url", &berth.url(""), "--token", &berth.token, "blob"])
            .args(args)
            .args(["--project", &project])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let put = cli(&["put", src.to_str().unwrap(), "cli/in.bin"]);
    assert!(put.contains("\"size\": 3145728"), "{put}");
    assert!(cli(&["ls", "--prefix", "cli/"]).contains("cli/in.bin"));
    cli(&["get", "cli/in.bin", dst.to_str().unwrap()]);
    assert_eq!(std::fs::read(&dst).unwrap(), std::fs::read(&src).unwrap());
    assert!(cli(&["rm", "cli/in.bin"]).contains("\"deleted\": 1"));

    // Backing service stopped: 503 with a message saying what to do; enable brings it back.
    let (status, answer) = berth
        .post_wait(&format!("/api/external-services/{service_id}/stop"), None)
        .await;
    assert!(status.is_success(), "{answer}");
    let (status, answer) = admin1.list("").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let detail = answer["detail"].as_str().unwrap();
    assert!(
        detail.contains("stopped") && detail.contains(&name),
        "{detail}"
    );
    let (status, _, _) = admin1.download(Method::GET, &url, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, answer) = berth
        .call(Method::POST, "/api/blob/enable", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, _, bytes) = admin1.download(Method::GET, &url, None).await;
    assert_eq!(bytes, b"hello world", "data kept across stop/start");

    // Disable keeps the data (404 meanwhile: off, as KV), enable again serves it.
    let (status, answer) = berth.call(Method::DELETE, "/api/blob/disable", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = admin1.list("").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("disabled"),
        "{answer}"
    );
    let (status, _) = berth
        .call(Method::POST, "/api/blob/enable", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, bytes) = admin1.download(Method::GET, &url, None).await;
    assert_eq!(bytes, b"hello world");
}
