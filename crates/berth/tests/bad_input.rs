//! Bad input: every case answers RFC 7807 problem+json with the right status and leaves
//! nothing half-created.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn create_raw(berth: &Berth, body: Value) -> (StatusCode, Value) {
    berth
        .call(Method::POST, "/api/external-services?wait=true", Some(body))
        .await
}

fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode, mentions: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    assert!(
        body["title"].is_string() && body["type"].is_string(),
        "{body}"
    );
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(mentions),
        "detail {detail:?} should mention {mentions:?}"
    );
}

async fn service_count(berth: &Berth) -> usize {
    berth
        .get("/api/external-services")
        .await
        .1
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn invalid_creates_are_refused_and_leave_nothing() {
    let berth = Berth::start().await;
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"name": "x1", "service_type": "mysql"}),
            StatusCode::BAD_REQUEST,
            "service_type",
        ),
        (
            json!({"name": "", "service_type": "postgres"}),
            StatusCode::BAD_REQUEST,
            "empty",
        ),
        (
            json!({"name": "UPPER", "service_type": "postgres"}),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            json!({"name": "has space", "service_type": "postgres"}),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            json!({"name": "a".repeat(200), "service_type": "postgres"}),
            StatusCode::BAD_REQUEST,
            "200",
        ),
        (
            // Fuzz finding: a 63-character name passed validation, then Docker refused the
            // 75-character hostname and the create answered 500.
            json!({"name": "a".repeat(63), "service_type": "redis"}),
            StatusCode::BAD_REQUEST,
            "DNS label",
        ),
        (
            json!({"name": "x;rm -rf /", "service_type": "redis"}),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            json!({"name": "x'); DROP TABLE services;--", "service_type": "redis"}),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            json!({"name": "$(touch /tmp/pwned)", "service_type": "redis"}),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"bogus": "1"}}),
            StatusCode::BAD_REQUEST,
            "bogus",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"port": "abc"}}),
            StatusCode::BAD_REQUEST,
            "port",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"port": "0"}}),
            StatusCode::BAD_REQUEST,
            "port",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"port": "65536"}}),
            StatusCode::BAD_REQUEST,
            "port",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"port": "-1"}}),
            StatusCode::BAD_REQUEST,
            "port",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"max_connections": "0"}}),
            StatusCode::BAD_REQUEST,
            "max_connections",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"ssl_mode": "sometimes"}}),
            StatusCode::BAD_REQUEST,
            "ssl_mode",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"database": "x; DROP"}}),
            StatusCode::BAD_REQUEST,
            "database",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"docker_image": "bad image"}}),
            StatusCode::BAD_REQUEST,
            "docker_image",
        ),
        // Fuzz finding: Docker rejects uppercase repositories; so do we, before calling it.
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"docker_image": "COM1"}}),
            StatusCode::BAD_REQUEST,
            "docker_image",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "unknown_field": 1}),
            StatusCode::BAD_REQUEST,
            "unknown_field",
        ),
        (
            json!({"service_type": "postgres"}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        // Numbers and booleans stand for their text (Temps' clients send `"port": 5432`);
        // structures and null do not, and numbers are validated like strings.
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"port": null}}),
            StatusCode::BAD_REQUEST,
            "\"port\" must be a string, a number or a boolean",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"max_connections": [5]}}),
            StatusCode::BAD_REQUEST,
            "max_connections",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"ssl_mode": {"a": 1}}}),
            StatusCode::BAD_REQUEST,
            "ssl_mode",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"port": 70000}}),
            StatusCode::BAD_REQUEST,
            "port",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"max_connections": 1.5}}),
            StatusCode::BAD_REQUEST,
            "max_connections",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "parameters": {"max_connections": true}}),
            StatusCode::BAD_REQUEST,
            "max_connections",
        ),
        // `version` picks an image Berth has; others are refused with the list.
        (
            json!({"name": "ok-name", "service_type": "postgres", "version": "16"}),
            StatusCode::BAD_REQUEST,
            "available versions: 17 (berth/postgres:17), 15 (berth/postgres:15)",
        ),
        (
            json!({"name": "ok-name", "service_type": "redis", "version": "7.2"}),
            StatusCode::BAD_REQUEST,
            "8 (berth/redis:8), 7 (berth/redis:7)",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "version": "15",
                   "parameters": {"docker_image": "postgres:16"}}),
            StatusCode::BAD_REQUEST,
            "does not match docker_image",
        ),
        (
            json!({"name": "ok-name", "service_type": "postgres", "version": 15}),
            StatusCode::BAD_REQUEST,
            "version",
        ),
    ];
    for (body, status, mentions) in cases {
        let (got, problem) = create_raw(&berth, body.clone()).await;
        assert_problem(got, &problem, status, mentions);
    }
    assert_eq!(service_count(&berth).await, 0, "nothing was created");
    let (ok, stray) = docker(&["ps", "-a", "--filter", "name=berth-postgres-ok-name", "-q"]);
    assert!(ok && stray.is_empty(), "no container was made");
}

#[tokio::test]
async fn duplicate_name_and_taken_port_conflict() {
    let berth = Berth::start().await;
    let name = unique("dup");
    let svc = berth.create("redis", &name, json!({})).await;
    let (status, body) = create_raw(&berth, json!({"name": name, "service_type": "redis"})).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "already exists");
    // The port of the first service is taken.
    let port = port_of(&svc).to_string();
    let (status, body) = create_raw(
        &berth,
        json!({"name": unique("dup2"), "service_type": "redis", "parameters": {"port": port}}),
    )
    .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "taken");
    // A port some other process listens on is taken too.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = listener.local_addr().unwrap().port().to_string();
    let (status, body) = create_raw(
        &berth,
        json!({"name": unique("dup3"), "service_type": "redis", "parameters": {"port": busy}}),
    )
    .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "taken");
    assert_eq!(service_count(&berth).await, 1);
    berth.delete_service(svc["id"].as_i64().unwrap()).await;
}

#[tokio::test]
async fn missing_ids_malformed_json_and_auth() {
    let berth = Berth::start().await;
    for (method, path) in [
        (Method::GET, "/api/external-services/999"),
        (Method::DELETE, "/api/external-services/999"),
        (Method::POST, "/api/external-services/999/start"),
        (Method::POST, "/api/external-services/999/stop"),
        (Method::GET, "/api/external-services/999/health"),
        (Method::GET, "/api/external-services/999/reveal"),
        (Method::GET, "/api/external-services/not-a-number"),
        (Method::GET, "/api/projects/999"),
        (Method::GET, "/api/operations/999"),
    ] {
        let (status, body) = berth.call(method.clone(), path, None).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "");
    }
    let (status, body) = berth
        .call(
            Method::PUT,
            "/api/external-services/999",
            Some(json!({"parameters": {"max_connections": "5"}})),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "999");
    let (status, body) = berth
        .call(
            Method::POST,
            "/api/external-services/999/upgrade",
            Some(json!({"docker_image": "berth/postgres:15"})),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "999");

    let http = reqwest::Client::new();
    let resp = http
        .post(berth.url("/api/external-services"))
        .bearer_auth(&berth.token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let resp = http
        .post(berth.url("/api/external-services"))
        .bearer_auth(&berth.token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let resp = http
        .post(berth.url("/api/external-services"))
        .bearer_auth(&berth.token)
        .header("content-type", "application/json")
        .body(format!("{{\"name\": \"{}\"}}", "x".repeat(100_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Auth: missing, malformed and revoked tokens are 401 on every /api route.
    for auth in [
        None,
        Some("Bearer nope"),
        Some("Basic abc"),
        Some("Bearer "),
    ] {
        let mut req = http.get(berth.url("/api/external-services"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
    let (status, created) = berth
        .call(Method::POST, "/api/tokens", Some(json!({"name": "ci"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = created["token"].as_str().unwrap();
    let ok = http
        .get(berth.url("/api/projects"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let (status, _) = berth
        .call(
            Method::DELETE,
            &format!("/api/tokens/{}", created["id"]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let revoked = http
        .get(berth.url("/api/projects"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
    let (_, tokens) = berth.get("/api/tokens").await;
    assert!(
        !tokens.to_string().contains(token),
        "token list never shows tokens"
    );
}

#[tokio::test]
async fn docker_unreachable_is_503_with_a_clear_message() {
    let berth = Berth::start_with(
        vec![("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        vec![],
    )
    .await;
    let (status, body) = create_raw(
        &berth,
        json!({"name": "nodocker", "service_type": "postgres"}),
    )
    .await;
    assert_problem(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "Docker engine is unreachable",
    );
    assert_eq!(service_count(&berth).await, 0, "nothing half-created");
    let (_, status_body) = berth.get("/api/system/status").await;
    assert_eq!(status_body["docker_reachable"], false);
}

#[tokio::test]
async fn projects_have_environments_and_validate_slugs() {
    let berth = Berth::start().await;
    let (status, p) = berth
        .call(
            Method::POST,
            "/api/projects",
            Some(json!({"name": "My Shop"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["slug"], "my-shop");
    assert_eq!(p["environments"][0]["slug"], "production");
    let id = p["id"].as_i64().unwrap();
    let (status, p2) = berth
        .call(
            Method::POST,
            &format!("/api/projects/{id}/environments"),
            Some(json!({"name": "Staging"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p2}");
    assert_eq!(p2["environments"][1]["slug"], "staging");
    let (status, body) = berth
        .call(
            Method::POST,
            &format!("/api/projects/{id}/environments"),
            Some(json!({"name": "staging"})),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "staging");
    let (status, body) = berth
        .call(
            Method::POST,
            "/api/projects",
            Some(json!({"name": "My Shop"})),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "my-shop");
    let (status, body) = berth
        .call(
            Method::POST,
            "/api/projects",
            Some(json!({"name": "x", "slug": "Bad Slug"})),
        )
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "slug");
    let (status, _) = berth
        .call(Method::DELETE, &format!("/api/projects/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = berth.get(&format!("/api/projects/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Fuzz finding: deleting with `?keep_data=true` then creating the same name adopted the old
/// volume, whose data had other credentials, and the create hung until the readiness timeout.
#[tokio::test]
async fn kept_volume_blocks_a_new_service_of_the_same_name() {
    let berth = Berth::start().await;
    let name = unique("kept");
    let svc = berth.create("redis", &name, json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let (status, _) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{id}?keep_data=true&wait=true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let volume = svc["volume_name"].as_str().unwrap();
    assert!(volume_exists(volume), "keep_data keeps the volume");
    let (status, body) = create_raw(&berth, json!({"name": name, "service_type": "redis"})).await;
    assert_problem(status, &body, StatusCode::CONFLICT, volume);
    assert_eq!(service_count(&berth).await, 0);
    docker(&["volume", "rm", volume]);
    berth.create("redis", &name, json!({})).await;
}

/// The fuzzer's edge cases, pinned: nesting, content types, unicode and NUL, numeric strings.
#[tokio::test]
async fn hostile_bodies_get_problem_json() {
    let berth = Berth::start().await;
    let http = reqwest::Client::new();
    let post = |body: String, content_type: &'static str| {
        http.post(berth.url("/api/external-services"))
            .bearer_auth(&berth.token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    for (body, content_type, expected) in [
        (nested, "application/json", StatusCode::BAD_REQUEST),
        (
            "{\"name\":\"x\"}".to_string(),
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "name=x".to_string(),
            "application/x-www-form-urlencoded",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ("".to_string(), "application/json", StatusCode::BAD_REQUEST),
        (
            "null".to_string(),
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let resp = post(body, content_type).await.unwrap();
        assert_eq!(resp.status(), expected);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
    for name in [
        "caf\u{e9}",
        "nul\u{0}byte",
        "\u{1F600}",
        "tab\there",
        "x\u{202e}y",
    ] {
        let (status, body) =
            create_raw(&berth, json!({"name": name, "service_type": "redis"})).await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST, "invalid");
    }
    for password in ["has\u{0}nul-char", "short", "with space inside"] {
        let (status, body) = create_raw(
            &berth,
            json!({"name": "pw-edge", "service_type": "redis", "parameters": {"password": password}}),
        )
        .await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST, "password");
    }
    for port in [
        "0",
        "65536",
        "-1",
        "01",
        "1e3",
        "0x10",
        " 80",
        "99999999999999999999",
    ] {
        let (status, body) = create_raw(
            &berth,
            json!({"name": "port-edge", "service_type": "redis", "parameters": {"port": port}}),
        )
        .await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST, "port");
    }
    for (path, body) in [
        ("/api/projects", json!({"name": "p\u{0}"})),
        ("/api/tokens", json!({"name": "t\u{0}"})),
        (
            "/api/projects",
            json!({"name": "ok", "environments": ["bad\u{0}env"]}),
        ),
    ] {
        let (status, problem) = berth.call(Method::POST, path, Some(body)).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "");
    }
    // Fuzz finding: an unparsable `wait` is a documented 400 on every long operation.
    for path in [
        "/api/external-services/1/start?wait=0.4",
        "/api/external-services/1/stop?wait=x",
    ] {
        let (status, problem) = berth.call(Method::POST, path, None).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "wait");
    }
    let (status, problem) = berth
        .call(Method::DELETE, "/api/external-services/1?wait=-2", None)
        .await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, "wait");
    assert_eq!(service_count(&berth).await, 0);
}

/// The longest accepted name starts a real server for every type (its container name is the
/// hostname and the DNS name applications use, one 63-character label at most).
#[tokio::test]
async fn the_longest_service_name_runs_for_every_type() {
    let berth = Berth::start().await;
    let name = format!("{}-{}", unique("long"), "a".repeat(48))
        .chars()
        .take(48)
        .collect::<String>();
    for service_type in ["postgres", "redis", "mongodb", "s3"] {
        let svc = berth.create(service_type, &name, json!({})).await;
        assert_eq!(svc["status"], "running", "{svc}");
        berth.delete_service(svc["id"].as_i64().unwrap()).await;
    }
}
