//! The checks that keep Berth trustworthy as it grows: the auth matrix over every documented
//! route, metrics, graceful shutdown, and crash injection at every named crash point with a
//! convergence check (every labelled container has a row and every row its container, no
//! operation left running, no port booked twice).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Every (method, path template) in the OpenAPI document.
async fn documented_templates(berth: &Berth) -> Vec<(Method, String)> {
    let (status, doc) = berth.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push((
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                path.clone(),
            ));
        }
    }
    routes
}

/// Every (method, concrete path) in the OpenAPI document, path parameters filled in.
async fn documented_routes(berth: &Berth) -> Vec<(Method, String)> {
    documented_templates(berth)
        .await
        .into_iter()
        .map(|(method, path)| {
            let concrete = path
                .replace("{id}", "1")
                .replace("{project_id}", "1")
                .replace("{environment}", "production");
            (method, concrete)
        })
        .collect()
}

#[tokio::test]
async fn auth_matrix_covers_every_documented_route() {
    let berth = Berth::start().await;
    let routes = documented_routes(&berth).await;
    assert!(
        routes.len() >= 29,
        "all routes are documented: {}",
        routes.len()
    );
    let (_, created) = berth
        .call(
            Method::POST,
            "/api/tokens",
            Some(json!({"name": "soon-revoked"})),
        )
        .await;
    let revoked = created["token"].as_str().unwrap().to_string();
    let (status, _) = berth
        .call(
            Method::DELETE,
            &format!("/api/tokens/{}", created["id"]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let http = reqwest::Client::new();
    let bad_auth: Vec<Option<String>> = vec![
        None,
        Some("Bearer".into()),
        Some("Bearer not-a-token".into()),
        Some(format!("Basic {}", berth.token)),
        Some(format!("Bearer {}x", berth.token)),
        Some(format!("Bearer {revoked}")),
    ];
    let mut checked = 0;
    for (method, path) in routes
        .iter()
        .chain([(Method::GET, "/api/openapi.json".to_string())].iter())
    {
        for auth in &bad_auth {
            let mut req = http
                .request(method.clone(), berth.url(path))
                .json(&json!({}));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {auth:?}"
            );
            assert_eq!(resp.headers()["content-type"], "application/problem+json");
            checked += 1;
        }
    }
    assert_eq!(checked, (routes.len() + 1) * bad_auth.len());
    eprintln!(
        "auth matrix: {} routes x {} credentials = {checked} checks, 100% of documented routes",
        routes.len() + 1,
        bad_auth.len()
    );
}

/// The routes a project token may call, for its own project only. Written out here rather than
/// read from the server: the test states the contract, the server's policy must meet it.
const PROJECT_TOKEN_ROUTES: &[&str] = &[
    "GET /api/projects/{id}",
    "GET /api/projects/{id}/environments/{environment}/variables",
    "GET /api/external-services/projects/{project_id}",
    "GET /api/external-services/projects/{project_id}/environment",
    "GET /api/external-services/{id}/projects/{project_id}/environment",
    "GET /api/external-services/{id}/projects/{project_id}/environment/{var_name}",
];

/// The KV data routes a project token may call for its own project, which they take from the
/// body (`project_id`, implied by a project token), each with a body it accepts.
const PROJECT_TOKEN_KV_ROUTES: &[(&str, &str)] = &[
    ("POST /api/kv/get", r#"{"key": "k"}"#),
    ("POST /api/kv/set", r#"{"key": "k", "value": 1}"#),
    ("POST /api/kv/del", r#"{"keys": ["k"]}"#),
    ("POST /api/kv/incr", r#"{"key": "k"}"#),
    ("POST /api/kv/expire", r#"{"key": "k", "seconds": 1}"#),
    ("POST /api/kv/ttl", r#"{"key": "k"}"#),
    ("POST /api/kv/keys", r#"{"pattern": "*"}"#),
];

/// Blob's data routes, open to a project token for its own project (the project from the
/// query or body, or the path for a download). Blob is not enabled here, so an allowed call is
/// past the policy but not a success: the test checks it is not refused for its scope, and
/// refused for another project.
const BLOB_DATA_ROUTES: &[&str] = &[
    "POST /api/blob",
    "GET /api/blob",
    "DELETE /api/blob",
    "POST /api/blob/copy",
    "GET /api/blob/{project_id}/{path}",
    "HEAD /api/blob/{project_id}/{path}",
];

/// A body each Blob data route accepts (its project added where the test names one).
fn blob_body(route: &str) -> Option<Value> {
    match route {
        "DELETE /api/blob" => Some(json!({"pathnames": ["docs/readme.txt"]})),
        "POST /api/blob/copy" => {
            Some(json!({"from_url": "docs/a.txt", "to_pathname": "docs/b.txt"}))
        }
        _ => None,
    }
}

/// The reads that answer with credentials in clear: refused to read-only tokens.
const CREDENTIAL_ROUTES: &[&str] = &[
    "GET /api/external-services/{id}/reveal",
    "GET /api/projects/{id}/environments/{environment}/variables",
    "GET /api/external-services/projects/{project_id}/environment",
    "GET /api/external-services/{id}/projects/{project_id}/environment",
    "GET /api/external-services/{id}/projects/{project_id}/environment/{var_name}",
];

/// Real ids to fill path templates with, so an allowed call can succeed and a refused one is
/// refused for its scope, not because the resource is missing.
struct Fill {
    service: i64,
    slug: String,
    operation: i64,
    token: i64,
    destination: i64,
    backup: i64,
    restore_run: i64,
    schedule: i64,
}

impl Fill {
    /// `template` with `project` as the project id (`{project_id}`, or `{id}` under
    /// `/api/projects`) and real ids everywhere else.
    fn path(&self, template: &str, project: i64) -> String {
        let id = if template.starts_with("/api/projects/") {
            project
        } else if template.starts_with("/api/operations/") {
            self.operation
        } else if template.starts_with("/api/tokens/") {
            self.token
        } else if template.starts_with("/api/backups/s3-sources/") {
            self.destination
        } else if template.starts_with("/api/backups/schedules/") {
            self.schedule
        } else if template.starts_with("/api/backups/") {
            self.backup
        } else if template.starts_with("/api/restore-runs/") {
            self.restore_run
        } else {
            self.service
        };
        let path = template
            .replace("{id}", &id.to_string())
            .replace("{project_id}", &project.to_string())
            .replace("{environment}", "production")
            .replace("{var_name}", "REDIS_URL")
            .replace("{slug}", &self.slug)
            .replace("{service_type}", "redis")
            .replace("{path}", "docs/readme.txt");
        assert!(!path.contains('{'), "unfilled parameter in {path}");
        path
    }
}

/// A refusal for the token's scope: 403 problem+json saying so.
fn assert_forbidden(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
    what: &str,
) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "{what}"
    );
    assert_eq!(body["status"], 403, "{what}: {body}");
    assert_eq!(body["title"], "Forbidden", "{what}: {body}");
    assert!(body["type"].is_string(), "{what}: {body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("scope"),
        "{what}: the detail names the token's scope: {body}"
    );
}

/// Scoped tokens over every documented route: a project token is refused (403) everywhere but
/// the reads and the KV of its own project, and refused there for another project's id, even
/// one that exists and is linked to the same service; a read-only token may call every GET but those
/// showing credentials, no other method, and never sees a password. Refused calls change nothing.
#[tokio::test]
async fn scoped_tokens_matrix_covers_every_documented_route() {
    let berth = Berth::start().await;
    let service = berth.create("redis", &unique("scoped"), json!({})).await;
    let service_id = service["id"].as_i64().unwrap();
    let admin_password = berth.password(service_id).await;
    let own = create_project(&berth, &unique("own"), &["production"]).await;
    let other = create_project(&berth, &unique("other"), &["production"]).await;
    for project in [own, other] {
        let (status, body) = link_project(&berth, service_id, project).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let project_token = create_token(
        &berth,
        json!({"name": "deploy", "scope": "project", "project_id": own}),
    )
    .await;
    assert_eq!(project_token["scope"], "project", "{project_token}");
    assert_eq!(project_token["project_id"], own, "{project_token}");
    let project_token = project_token["token"].as_str().unwrap().to_string();
    let read_only = create_token(&berth, json!({"name": "audit", "scope": "read_only"})).await;
    assert_eq!(read_only["scope"], "read_only", "{read_only}");
    assert!(read_only["project_id"].is_null(), "{read_only}");
    let read_only = read_only["token"].as_str().unwrap().to_string();
    // The token `/api/tokens/{id}` names: a refused DELETE must leave it live.
    let bystander = create_token(&berth, json!({"name": "bystander"})).await;
    // A destination, a backup of the service, a restore run and a schedule, for the backup
    // routes' ids.
    let s3 = berth.create("s3", &unique("scoped-s3"), json!({})).await;
    let (status, destination) = berth
        .call(
            Method::POST,
            "/api/backups/s3-sources",
            Some(json!({"name": "scoped", "bucket_name": "scoped", "service_id": s3["id"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{destination}");
    let (status, backup) = berth
        .call(
            Method::POST,
            &format!("/api/backups/external-services/{service_id}/run"),
            Some(json!({"s3_source_id": destination["id"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{backup}");
    let (status, restore_run) = berth
        .call(
            Method::POST,
            &format!("/api/backups/{}/restore", backup["id"]),
            Some(json!({"mode": "new_service", "name": unique("scoped-back")})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{restore_run}");
    let (status, schedule) = berth
        .call(
            Method::POST,
            "/api/backups/schedules",
            Some(json!({
                "name": "scoped-nightly",
                "s3_source_id": destination["id"],
                "schedule_expression": "0 3 * * *",
                "service_id": service_id,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{schedule}");
    let (_, operations) = berth.get("/api/operations").await;
    let fill = Fill {
        service: service_id,
        slug: service["name"].as_str().unwrap().to_string(),
        operation: operations[0]["id"].as_i64().unwrap(),
        token: bystander["id"].as_i64().unwrap(),
        destination: destination["id"].as_i64().unwrap(),
        backup: backup["id"].as_i64().unwrap(),
        restore_run: restore_run["id"].as_i64().unwrap(),
        schedule: schedule["id"].as_i64().unwrap(),
    };

    let routes = documented_templates(&berth).await;
    let (mut refused, mut allowed, mut reads) = (0, 0, 0);
    for (method, template) in &routes {
        let route = format!("{method} {template}");
        let path = fill.path(template, own);
        let body = (method != Method::GET).then(|| json!({}));
        let kv_body = PROJECT_TOKEN_KV_ROUTES
            .iter()
            .find(|(r, _)| *r == route)
            .map(|(_, body)| serde_json::from_str::<Value>(body).unwrap());
        let (status, headers, answer) = berth
            .call_as(
                &project_token,
                method.clone(),
                &path,
                kv_body.clone().or(body.clone()),
            )
            .await;
        if let Some(mut kv_body) = kv_body {
            // Its own project: past the policy (KV is not enabled here, so 404 says so).
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "project token, {method} {path}: {answer}"
            );
            kv_body["project_id"] = json!(other);
            let (status, headers, answer) = berth
                .call_as(&project_token, method.clone(), &path, Some(kv_body))
                .await;
            assert_forbidden(
                status,
                &headers,
                &answer,
                &format!("project token, {method} {path} naming another project"),
            );
            allowed += 1;
        } else if BLOB_DATA_ROUTES.contains(&route.as_str()) {
            // Its own project: past the policy (Blob is not enabled here).
            assert_ne!(
                status,
                StatusCode::FORBIDDEN,
                "project token, {method} {path}: {answer}"
            );
            let pathname = if route == "POST /api/blob" {
                "pathname=docs/readme.txt&"
            } else {
                ""
            };
            let elsewhere = format!(
                "{}?{pathname}project_id={other}",
                fill.path(template, other)
            );
            let other_body = blob_body(&route).map(|mut b| {
                b["project_id"] = json!(other);
                b
            });
            let (status, headers, answer) = berth
                .call_as(&project_token, method.clone(), &elsewhere, other_body)
                .await;
            if method == Method::HEAD {
                // A HEAD answer has no body to carry the problem.
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "project token, HEAD {elsewhere}"
                );
            } else {
                assert_forbidden(
                    status,
                    &headers,
                    &answer,
                    &format!("project token, {method} {elsewhere}"),
                );
            }
            allowed += 1;
        } else if PROJECT_TOKEN_ROUTES.contains(&route.as_str()) {
            assert!(
                status.is_success(),
                "project token, {method} {path}: {status} {answer}"
            );
            let elsewhere = fill.path(template, other);
            let (status, headers, answer) = berth
                .call_as(&project_token, method.clone(), &elsewhere, None)
                .await;
            assert_forbidden(
                status,
                &headers,
                &answer,
                &format!("project token, {method} {elsewhere}"),
            );
            allowed += 1;
        } else {
            assert_forbidden(
                status,
                &headers,
                &answer,
                &format!("project token, {method} {path}"),
            );
            refused += 1;
        }

        let (status, headers, answer) =
            berth.call_as(&read_only, method.clone(), &path, body).await;
        let is_read = method == Method::GET || method == Method::HEAD;
        if is_read && BLOB_DATA_ROUTES.contains(&route.as_str()) {
            // A read: past the policy (Blob is not enabled, and a read-only token names no
            // project of its own).
            assert_ne!(
                status,
                StatusCode::FORBIDDEN,
                "read-only token, GET {path}: {answer}"
            );
            reads += 1;
        } else if method == Method::GET && !CREDENTIAL_ROUTES.contains(&route.as_str()) {
            assert!(
                status.is_success(),
                "read-only token, GET {path}: {status} {answer}"
            );
            assert!(
                !answer.to_string().contains(&admin_password),
                "read-only token, GET {path} shows the admin password: {answer}"
            );
            reads += 1;
        } else {
            assert_forbidden(
                status,
                &headers,
                &answer,
                &format!("read-only token, {method} {path}"),
            );
            refused += 1;
        }
    }
    assert_eq!(
        allowed,
        PROJECT_TOKEN_ROUTES.len() + PROJECT_TOKEN_KV_ROUTES.len() + BLOB_DATA_ROUTES.len(),
        "every allowed route is documented"
    );
    // HEAD is a read, decided as GET.
    let http = reqwest::Client::new();
    for (project, expected) in [(own, StatusCode::OK), (other, StatusCode::FORBIDDEN)] {
        let head = http
            .head(berth.url(&format!("/api/projects/{project}")))
            .bearer_auth(&project_token)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), expected, "HEAD /api/projects/{project}");
    }
    let (status, headers, answer) = berth
        .call_as(&project_token, Method::GET, "/api/openapi.json", None)
        .await;
    assert_forbidden(
        status,
        &headers,
        &answer,
        "project token, the OpenAPI document",
    );

    // Nothing a refused call named was touched.
    let (status, after) = berth
        .get(&format!("/api/external-services/{service_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["service"]["status"], "running", "{after}");
    let (_, links) = berth
        .get(&format!("/api/external-services/{service_id}/projects"))
        .await;
    assert_eq!(links.as_array().unwrap().len(), 2, "{links}");
    let (_, projects) = berth.get("/api/projects").await;
    assert_eq!(projects.as_array().unwrap().len(), 2, "{projects}");
    let (_, tokens) = berth.get("/api/tokens").await;
    let tokens = tokens.as_array().unwrap();
    assert_eq!(tokens.len(), 4, "no token created: {tokens:?}");
    assert!(
        tokens.iter().all(|t| t["revoked_at"].is_null()),
        "no token revoked: {tokens:?}"
    );
    eprintln!(
        "scope matrix: {} routes, {allowed} allowed to the project token (and refused for \
         another project), {refused} refusals, {reads} reads by the read-only token",
        routes.len()
    );
}

async fn scrape(berth: &Berth) -> String {
    let response = reqwest::get(berth.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_report_services_operations_and_health() {
    // Service gauges come from the reconciler's last pass: pass every second.
    let berth = Berth::start_with(vec![("BERTH_RECONCILE_INTERVAL", "1")], vec![]).await;
    let svc = berth.create("redis", &unique("met"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    berth
        .get(&format!("/api/external-services/{id}/health?detail=true"))
        .await;
    let needles = [
        "berth_services{service_type=\"redis\",status=\"running\"} 1",
        "berth_operations_total{kind=\"create\",status=\"succeeded\"} 1",
        "berth_health_checks_total{service_type=\"redis\",result=\"healthy\"}",
        "berth_health_check_duration_seconds_count",
        "berth_docker_reachable 1",
        "berth_gauges_timestamp_seconds",
        "berth_reconciler_passes_total",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(&berth).await;
        let missing: Vec<&str> = needles
            .iter()
            .copied()
            .filter(|n| !text.contains(n))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing {missing:?} in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    berth.delete_service(id).await;
}

/// A Unix-socket relay to the real Docker engine that counts the bytes Berth sends through it.
struct DockerRelay {
    socket: std::path::PathBuf,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    _dir: tempfile::TempDir,
}

impl DockerRelay {
    fn start() -> Self {
        use std::sync::atomic::Ordering;
        let engine = std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
            .unwrap_or_else(|| "/var/run/docker.sock".into());
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let engine = engine.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(mut upstream) = tokio::net::UnixStream::connect(&engine).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.split();
                    let (mut up_read, mut up_write) = upstream.split();
                    let requests = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            use tokio::io::{AsyncReadExt, AsyncWriteExt};
                            let n = match client_read.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            counter.fetch_add(n as u64, Ordering::SeqCst);
                            if up_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = tokio::io::AsyncWriteExt::shutdown(&mut up_write).await;
                    };
                    let answers = tokio::io::copy(&mut up_read, &mut client_write);
                    let _ = tokio::join!(requests, answers);
                });
            }
        });
        Self {
            socket,
            sent,
            _dir: dir,
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// `/metrics` is served from the reconciler's last pass: scraping sends nothing to Docker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrapes_do_not_call_docker() {
    let relay = DockerRelay::start();
    let docker_host = format!("unix://{}", relay.socket.display());
    let berth = Berth::start_with(
        vec![
            ("DOCKER_HOST", docker_host.as_str()),
            ("BERTH_RECONCILE_INTERVAL", "3600"),
        ],
        vec![],
    )
    .await;
    // Wait for the startup pass (the only one in this test) to finish.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !scrape(&berth)
        .await
        .contains("berth_reconciler_passes_total 1")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no reconciler pass; log:\n{}",
            berth.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(relay.sent() > 0, "Berth reaches Docker through the relay");
    let before = relay.sent();
    for _ in 0..20 {
        let text = scrape(&berth).await;
        assert!(text.contains("berth_docker_reachable 1"), "{text}");
    }
    assert_eq!(
        relay.sent() - before,
        0,
        "20 scrapes sent {} bytes to Docker",
        relay.sent() - before
    );
}

/// Rows and labelled containers agree; nothing is stuck; ports are unique.
async fn assert_converged(berth: &Berth) {
    let instance = std::fs::read_to_string(berth.data_dir.join("instance-id")).unwrap();
    let (_, names) = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=berth.instance={}", instance.trim()),
        "--format",
        "{{.Names}}",
    ]);
    let containers: HashSet<String> = names.lines().map(str::to_string).collect();
    let (_, services) = berth.get("/api/external-services").await;
    let services = services.as_array().unwrap();
    let rows: HashSet<String> = services
        .iter()
        .map(|s| s["container_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(containers, rows, "labelled containers and rows agree");
    let mut ports = HashMap::new();
    for s in services {
        assert!(
            ["running", "stopped"].contains(&s["status"].as_str().unwrap()),
            "no service left in a transitional state: {s}"
        );
        let port = s["parameters"]["port"].as_str().unwrap().to_string();
        assert!(
            ports.insert(port.clone(), s["id"].clone()).is_none(),
            "port {port} booked twice"
        );
        let (_, ops) = berth
            .get(&format!("/api/external-services/{}/operations", s["id"]))
            .await;
        for op in ops.as_array().unwrap() {
            assert_ne!(op["status"], "running", "operation left running: {op}");
        }
    }
}

async fn wait_resolved(berth: &Berth, op: i64) -> Value {
    berth.wait_operation(op, Duration::from_secs(180)).await
}

#[tokio::test]
async fn crash_injection_at_every_point_converges() {
    let mut berth = Berth::start().await;
    let project_slug = unique("crashproj");
    let (_, project) = berth
        .call(
            Method::POST,
            "/api/projects",
            Some(json!({"name": project_slug})),
        )
        .await;
    let project_id = project["id"].as_i64().unwrap();
    // A service the operations below act on.
    let base = berth.create("postgres", &unique("cbase"), json!({})).await;
    let base_id = base["id"].as_i64().unwrap();
    let mut points = Vec::new();

    // create
    let body = berth
        .crash_at(
            "create.after_container",
            Method::POST,
            "/api/external-services",
            Some(json!({"name": unique("cnew"), "service_type": "redis"})),
        )
        .await;
    wait_resolved(&berth, body["operation"]["id"].as_i64().unwrap()).await;
    assert_converged(&berth).await;
    points.push("create.after_container");

    // update and upgrade share the container replacement
    for (point, method, path, payload) in [
        (
            "reconfigure.after_remove",
            Method::PUT,
            format!("/api/external-services/{base_id}"),
            json!({"parameters": {"max_connections": "55"}}),
        ),
        (
            "reconfigure.after_remove",
            Method::POST,
            format!("/api/external-services/{base_id}/upgrade"),
            json!({"docker_image": "berth/postgres:17"}),
        ),
    ] {
        let body = berth.crash_at(point, method, &path, Some(payload)).await;
        let op = wait_resolved(&berth, body["operation"]["id"].as_i64().unwrap()).await;
        assert_eq!(op["status"], "rolled_back", "{op}");
        assert_converged(&berth).await;
        let (_, health) = berth
            .get(&format!(
                "/api/external-services/{base_id}/health?detail=true"
            ))
            .await;
        assert_eq!(health["status"], "healthy", "{health}");
        points.push(point);
    }

    // link: both points leave no link; a later link gives working credentials
    for point in ["link.after_tenants_recorded", "link.before_link_row"] {
        berth.kill9();
        berth.spawn_with_env(&[("BERTH_CRASHPOINT", point)]).await;
        let http = reqwest::Client::new();
        let _ = http
            .post(berth.url(&format!("/api/external-services/{base_id}/projects")))
            .bearer_auth(&berth.token)
            .json(&json!({"project_id": project_id}))
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        assert!(berth.wait_exit(Duration::from_secs(60)));
        berth.spawn().await;
        let (_, vars) = berth
            .get(&format!(
                "/api/projects/{project_id}/environments/production/variables"
            ))
            .await;
        assert_eq!(vars, json!({}), "an interrupted link injects nothing");
        assert_converged(&berth).await;
        points.push(point);
    }
    let (status, link) = berth
        .call(
            Method::POST,
            &format!("/api/external-services/{base_id}/projects"),
            Some(json!({"project_id": project_id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let (_, vars) = berth
        .get(&format!(
            "/api/projects/{project_id}/environments/production/variables?address=host"
        ))
        .await;
    pg_connect(
        vars["PGPORT"].as_str().unwrap().parse().unwrap(),
        vars["PGUSER"].as_str().unwrap(),
        vars["PGPASSWORD"].as_str().unwrap(),
        vars["PGDATABASE"].as_str().unwrap(),
    )
    .await
    .unwrap();

    // delete
    let path = format!("/api/external-services/{base_id}?force=true");
    let body = berth
        .crash_at("delete.after_container", Method::DELETE, &path, None)
        .await;
    let op = wait_resolved(&berth, body["operation"]["id"].as_i64().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_converged(&berth).await;
    points.push("delete.after_container");
    eprintln!("crash points injected and converged: {points:?}");
}

#[tokio::test]
async fn sigterm_finishes_in_flight_create_and_leaves_nothing_half_made() {
    let mut berth = Berth::start().await;
    let (status, body) = berth
        .call_async(
            Method::POST,
            "/api/external-services",
            Some(json!({"name": unique("term"), "service_type": "postgres"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let op = body["operation"]["id"].as_i64().unwrap();
    let id = body["service"]["id"].as_i64().unwrap();
    berth.sigterm();
    // Once the shutdown has begun, Berth keeps answering while the create drains, and
    // refuses new operations with 503.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !berth.log().contains("new operations are refused") {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGTERM did not start a shutdown:\n{}",
            berth.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let late = unique("late");
    let (status, refused) = berth
        .call(
            Method::POST,
            "/api/external-services",
            Some(json!({"name": late, "service_type": "redis"})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{refused}"
    );
    let (status, polled) = berth.get(&format!("/api/operations/{op}")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the operation can be polled while draining: {polled}"
    );
    assert!(
        berth.wait_exit(Duration::from_secs(90)),
        "exits within the shutdown deadline"
    );
    assert!(berth.log().contains("shut down cleanly"), "{}", berth.log());
    berth.spawn().await;
    let resolved = berth.wait_operation(op, Duration::from_secs(60)).await;
    assert_eq!(
        resolved["status"], "succeeded",
        "the create finished before exit: {resolved}"
    );
    let (_, health) = berth
        .get(&format!("/api/external-services/{id}/health?detail=true"))
        .await;
    assert_eq!(health["status"], "healthy");
    let (_, services) = berth.get("/api/external-services").await;
    assert!(
        services
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != late.as_str()),
        "the refused create left a row: {services}"
    );
    assert_converged(&berth).await;
}

/// A 500 tells the client only a correlation id; the database's own words go to the server
/// log under that id. Provoked for real: the state database loses its `services` table.
#[tokio::test]
async fn internal_errors_send_a_correlation_id_not_database_text() {
    use sqlx::Connection;
    let berth = Berth::start().await;
    let db = berth.data_dir.join("berth.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("ALTER TABLE services RENAME TO services_moved_away")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let (status, body) = berth
        .call(
            Method::POST,
            "/api/external-services",
            Some(json!({"name": unique("int"), "service_type": "redis"})),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let text = body.to_string();
    for driver_words in ["no such table", "services", "database", "sqlite"] {
        assert!(
            !text.to_lowercase().contains(driver_words),
            "{driver_words:?} sent to the client: {text}"
        );
    }
    let id = body["correlation_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no correlation id: {body}"));
    assert!(body["detail"].as_str().unwrap().contains(id), "{body}");
    let log = berth.log();
    let line = log
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("no log line with {id}"));
    assert!(line.contains("no such table"), "{line}");
}
