//! `berth/s3` end to end: the image built by Berth's image builder, run as a container, driven
//! by a real S3 client (rusty-s3 signing, reqwest) over HTTP and, through stunnel, HTTPS.

mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use rusty_s3::actions::S3Action;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::s3::Client;
use support::{ADMIN_KEY, ADMIN_SECRET, Container, docker, docker_ok, ensure_image, unique};

const TENANT_KEY: &str = "webprod1";
const TENANT_SECRET: &str = "tenant-secret-abcdef";
const TENANT_FILE: &str = "/data/keys.d/webprod1.json";

fn tenant_file(buckets: &[&str]) -> Vec<u8> {
    serde_json::json!({
        "access_key": TENANT_KEY,
        "secret_key": TENANT_SECRET,
        "buckets": buckets,
    })
    .to_string()
    .into_bytes()
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

#[tokio::test]
async fn tenant_keys_are_picked_up_and_confined_to_their_buckets() {
    let c = Container::start().await;
    let endpoint = format!("http://127.0.0.1:{}", c.port(9000));
    let admin = Client::new(&endpoint, ADMIN_KEY, ADMIN_SECRET);
    admin.create_bucket("web-production").await.assert_ok();
    admin.create_bucket("shop-production").await.assert_ok();
    admin
        .put("shop-production", "secret.txt", b"shop data")
        .await
        .assert_ok();
    assert_eq!(
        admin
            .get("shop-production", "secret.txt")
            .await
            .assert_ok()
            .body,
        b"shop data"
    );

    // Unknown until its file appears in the running server; no restart in between.
    let tenant = Client::new(&endpoint, TENANT_KEY, TENANT_SECRET);
    let early = tenant.put("web-production", "a.txt", b"x").await;
    assert_eq!(early.status, StatusCode::FORBIDDEN, "{}", early.text());
    assert_eq!(early.code().as_deref(), Some("InvalidAccessKeyId"));
    c.write(TENANT_FILE, &tenant_file(&["web-production"]), 0o644)
        .await;

    // Its own bucket: put, get, list.
    tenant
        .put("web-production", "hello.txt", b"hello")
        .await
        .assert_ok();
    assert_eq!(
        tenant
            .get("web-production", "hello.txt")
            .await
            .assert_ok()
            .body,
        b"hello"
    );
    assert_eq!(tenant.list("web-production").await.unwrap(), ["hello.txt"]);
    assert_eq!(tenant.list_buckets().await.unwrap(), ["web-production"]);
    assert_eq!(
        sorted(admin.list_buckets().await.unwrap()),
        ["shop-production", "web-production"]
    );

    // Another bucket: no read, write, list or copy out of it.
    tenant
        .get("shop-production", "secret.txt")
        .await
        .assert_denied();
    tenant
        .put("shop-production", "planted.txt", b"x")
        .await
        .assert_denied();
    tenant
        .list("shop-production")
        .await
        .unwrap_err()
        .assert_denied();
    tenant
        .copy(
            "shop-production",
            "secret.txt",
            "web-production",
            "stolen.txt",
        )
        .await
        .assert_denied();
    // Nor by walking out of its own bucket with a `..` key: s3s decodes %2F into the key, and
    // s3s-fs would resolve web-production/../shop-production/plans+2027.txt. (The unencoded `+`
    // makes s3s check the signature over the raw path, the only form the url crate lets
    // rusty-s3 sign with a `..` in it.)
    admin
        .put("shop-production", "plans+2027.txt", b"shop plans")
        .await
        .assert_ok();
    let url = format!("{endpoint}/web-production/..%2Fshop-production%2Fplans+2027.txt");
    let url = tenant.sign_raw(Method::GET, url.parse().unwrap(), &[]);
    tenant
        .send(Method::GET, url, &[], Vec::new())
        .await
        .assert_denied();

    // No bucket creation or deletion.
    tenant.create_bucket("tenant-made").await.assert_denied();
    let url = tenant.sign_raw(
        Method::DELETE,
        format!("{endpoint}/web-production").parse().unwrap(),
        &[],
    );
    tenant
        .send(Method::DELETE, url, &[], Vec::new())
        .await
        .assert_denied();
    // Nothing planted or copied by the tenant (rusty-s3 reads `+` in listed keys as a space).
    assert_eq!(
        sorted(admin.list("shop-production").await.unwrap()),
        ["plans 2027.txt", "secret.txt"]
    );
    assert_eq!(admin.list("web-production").await.unwrap(), ["hello.txt"]);
    assert_eq!(
        sorted(admin.list_buckets().await.unwrap()),
        ["shop-production", "web-production"]
    );

    // The right key with a wrong secret.
    let wrong = Client::new(&endpoint, TENANT_KEY, "not-the-right-secret");
    let reply = wrong.get("web-production", "hello.txt").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    assert_eq!(reply.code().as_deref(), Some("SignatureDoesNotMatch"));

    // A broken file disables the key and nothing else; its replacement is picked up.
    c.write(TENANT_FILE, b"{\"access_key\": \"webprod1\", \"secr", 0o644)
        .await;
    let reply = tenant.get("web-production", "hello.txt").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    admin.get("web-production", "hello.txt").await.assert_ok();
    assert!(c.logs().contains("ignoring key file"), "{}", c.logs());
    c.write(
        TENANT_FILE,
        &tenant_file(&["web-production", "shop-production"]),
        0o644,
    )
    .await;
    assert_eq!(
        tenant
            .get("shop-production", "secret.txt")
            .await
            .assert_ok()
            .body,
        b"shop data"
    );
    assert_eq!(
        sorted(tenant.list_buckets().await.unwrap()),
        ["shop-production", "web-production"]
    );

    // Removing the file revokes the key.
    c.exec(&["rm", TENANT_FILE]);
    let reply = tenant.get("web-production", "hello.txt").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());

    // The status page counts buckets and shows no secret.
    let console = format!("http://127.0.0.1:{}", c.port(9001));
    let status: serde_json::Value = reqwest::get(format!("{console}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["buckets"], 2, "{status}");
    assert!(
        status["version"]
            .as_str()
            .unwrap()
            .starts_with("berth-s3d ")
    );
    let page = reqwest::get(&console).await.unwrap().text().await.unwrap();
    assert!(page.contains("Buckets: 2"), "{page}");
    assert!(!page.contains(ADMIN_SECRET) && !page.contains(ADMIN_KEY));
}

#[tokio::test]
async fn multipart_upload_and_https_with_the_containers_own_ca() {
    let c = Container::start().await;
    let admin = Client::new(
        &format!("http://127.0.0.1:{}", c.port(9000)),
        ADMIN_KEY,
        ADMIN_SECRET,
    );
    admin.create_bucket("blobs").await.assert_ok();
    // 20 MiB of a pattern that differs at every part boundary, in 8 MiB parts.
    let body: Vec<u8> = (0..20u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    admin
        .multipart_put("blobs", "big.bin", &body, 8 * 1024 * 1024)
        .await;
    let got = admin.get("blobs", "big.bin").await;
    got.assert_ok();
    assert_eq!(got.body.len(), body.len());
    assert!(got.body == body, "downloaded bytes differ");

    // HTTPS on 9443 (stunnel), verified against the CA in the container's /data/tls only, for
    // the container's hostname and for localhost.
    let ca = reqwest::Certificate::from_pem(&c.read("/data/tls/ca.crt").await).unwrap();
    let port = c.port(9443);
    let https = |name: &str| {
        reqwest::Client::builder()
            .add_root_certificate(ca.clone())
            .resolve(name, ([127, 0, 0, 1], port).into())
            .build()
            .unwrap()
    };
    for name in [c.name.as_str(), "localhost"] {
        let endpoint = format!("https://{name}:{port}");
        let client = Client::with_http(https(name), &endpoint, ADMIN_KEY, ADMIN_SECRET);
        let got = client.get("blobs", "big.bin").await;
        got.assert_ok();
        assert!(got.body == body, "bytes over HTTPS via {name} differ");
    }
    // A name the certificate does not carry fails verification.
    let other = "not-in-the-certificate.test";
    let result = https(other)
        .get(format!("https://{other}:{port}/"))
        .send()
        .await;
    assert!(result.is_err(), "{result:?}");

    // Private keys belong to the server's user alone.
    let modes = c.exec(&[
        "stat",
        "-c",
        "%a %U",
        "/data/tls/ca.key",
        "/data/tls/server.key",
    ]);
    assert_eq!(modes, "600 s3\n600 s3\n");
}

#[tokio::test]
async fn refuses_to_start_without_an_admin_key() {
    let image = ensure_image().await;
    let name = unique("berth-s3d-nokey");
    let out = docker(&[
        "run",
        "--name",
        &name,
        "--label",
        "berth.test=s3img",
        &image,
    ]);
    let _ = docker(&["rm", "-f", "-v", &name]);
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "started without a key:\n{logs}");
    assert!(logs.contains("no admin key"), "{logs}");
}

/// Reads one HTTP response head (up to the blank line), byte by byte so nothing after it is
/// consumed.
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await.expect("reading a response head");
        head.push(byte);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish() {
    let c = Container::start().await;
    let port = c.port(9000);
    let admin = Client::new(&format!("http://127.0.0.1:{port}"), ADMIN_KEY, ADMIN_SECRET);
    admin.create_bucket("inflight").await.assert_ok();
    let ca_before = c.read("/data/tls/ca.crt").await;

    // Raw HTTP/1.1 with `Expect: 100-continue`: the server answers 100 only once the request
    // has passed authentication and reached the storage, so it is provably in flight.
    let body = vec![7u8; 1024 * 1024];
    let bucket = admin.bucket("inflight");
    let url = bucket
        .put_object(Some(&admin.credentials), "late.bin")
        .sign(Duration::from_secs(300));
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "PUT {}?{} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n\r\n",
        url.path(),
        url.query().unwrap(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let interim = read_head(&mut stream).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");

    docker_ok(&["kill", "--signal", "TERM", &c.name]);
    c.wait_for_log("stopping: finishing requests in flight")
        .await;
    stream.write_all(&body).await.unwrap();
    let reply = read_head(&mut stream).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}\n{}", c.logs());
    assert_eq!(c.wait_exit(), 0, "{}", c.logs());
    assert!(c.logs().contains("stopped"), "{}", c.logs());

    // After a restart the object is whole and the TLS identity is the same.
    c.start_and_wait().await;
    let admin = Client::new(
        &format!("http://127.0.0.1:{}", c.port(9000)),
        ADMIN_KEY,
        ADMIN_SECRET,
    );
    assert!(admin.get("inflight", "late.bin").await.assert_ok().body == body);
    assert_eq!(c.read("/data/tls/ca.crt").await, ca_before);
}

/// GET with curl's own SigV4 (an `Authorization` header, as pgBackRest and SDKs sign) rather
/// than rusty-s3's presigned URLs. Returns the status and the body.
fn curl_get(url: &str, key: &str, secret: &str) -> (u16, String) {
    // s3s wants the payload hash header, which curl does not add by itself: this is the hash
    // of an empty body.
    let empty_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-w",
            "\n%{http_code}",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
        ])
        .args(["--user", &format!("{key}:{secret}")])
        .args(["-H", &format!("x-amz-content-sha256: {empty_sha256}"), url])
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("curl output");
    (status.parse().unwrap(), body.to_string())
}

#[tokio::test]
async fn header_signed_requests_get_the_same_rules() {
    let c = Container::start().await;
    let endpoint = format!("http://127.0.0.1:{}", c.port(9000));
    let admin = Client::new(&endpoint, ADMIN_KEY, ADMIN_SECRET);
    for bucket in ["web-production", "shop-production"] {
        admin.create_bucket(bucket).await.assert_ok();
        admin
            .put(bucket, "note.txt", bucket.as_bytes())
            .await
            .assert_ok();
    }
    c.write(TENANT_FILE, &tenant_file(&["web-production"]), 0o644)
        .await;

    let own = format!("{endpoint}/web-production/note.txt");
    let other = format!("{endpoint}/shop-production/note.txt");
    assert_eq!(
        curl_get(&own, TENANT_KEY, TENANT_SECRET),
        (200, "web-production".into())
    );
    let (status, body) = curl_get(&other, TENANT_KEY, TENANT_SECRET);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    let (status, body) = curl_get(&own, TENANT_KEY, "a-wrong-secret");
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        curl_get(&other, ADMIN_KEY, ADMIN_SECRET),
        (200, "shop-production".into())
    );
}
