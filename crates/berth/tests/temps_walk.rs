//! A client written for Temps, against Berth: the seed's curl walk run back to back with no
//! waits (synchronous answers, Temps' codes and service fields), ten clients racing on one
//! service (answers in arrival order, nothing left running), and the asynchronous mode
//! (`Prefer: respond-async`, `?wait=false`, `Prefer: wait=N`).

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The fields a Temps client reads from a service (`ExternalServiceInfo`), with their JSON
/// types, plus what Berth can promise about their values.
fn assert_temps_service(svc: &Value, id: Option<i64>, name: &str, service_type: &str) {
    assert!(svc["id"].is_i64(), "id is an integer: {svc}");
    if let Some(id) = id {
        assert_eq!(svc["id"], id, "{svc}");
    }
    assert_eq!(svc["name"], name, "{svc}");
    assert_eq!(svc["service_type"], service_type, "{svc}");
    assert!(svc["status"].is_string(), "status is a string: {svc}");
    for field in ["created_at", "updated_at"] {
        let ts = svc[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field}: {svc}"));
        assert!(
            ts.len() >= 20 && ts.as_bytes()[4] == b'-' && ts.contains('T'),
            "{field} is an RFC 3339 time: {svc}"
        );
    }
    // Berth's own images carry their major in the tag: version is known.
    let version = match service_type {
        "postgres" => "17",
        _ => "8",
    };
    assert_eq!(svc["version"], version, "{svc}");
    let container = format!("berth-{service_type}-{name}");
    let info = match service_type {
        "postgres" => format!("postgres://postgres:***@{container}:5432/postgres"),
        _ => format!("redis://:***@{container}:6379"),
    };
    assert_eq!(svc["connection_info"], info.as_str(), "{svc}");
}

/// Whether something already listens on (or Docker publishes) 127.0.0.1:`port`.
fn port_busy(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
}

/// The seed's service name is fixed, and so are its container and volume names; another test
/// run on this Docker engine may hold them for a while. Wait for them to be free.
async fn wait_name_free(container: &str, volume: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while container_exists(container) || volume_exists(volume) {
        assert!(
            Instant::now() < deadline,
            "{container} / {volume} still exist (another run?); remove them to run this test"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn the_seed_walk_back_to_back_answers_like_temps() {
    let berth = Berth::start().await;
    wait_name_free(
        "berth-postgres-my-postgres",
        "berth-postgres-my-postgres-data",
    )
    .await;

    // The seed's body, byte for byte, except the port when 5432 is taken on this machine.
    let port = if port_busy(5432) {
        free_port().to_string()
    } else {
        "5432".to_string()
    };
    let body = json!({
        "name": "my-postgres",
        "service_type": "postgres",
        "parameters": { "port": port, "max_connections": "200" }
    });
    let (status, pg) = berth
        .call(Method::POST, "/api/external-services", Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pg}\n{}", berth.log());
    assert_temps_service(&pg, None, "my-postgres", "postgres");
    assert_eq!(
        pg["status"], "running",
        "synchronous: up when answered: {pg}"
    );
    let pg_id = pg["id"].as_i64().unwrap();
    // Accepting connections when answered: a real client logs in at once.
    let password = berth.password(pg_id).await;
    assert!(
        !pg["connection_info"]
            .as_str()
            .unwrap()
            .contains(password.as_str()),
        "connection_info carries no secret"
    );
    pg_connect(port.parse().unwrap(), "postgres", &password, "postgres")
        .await
        .expect("accepts connections when the create answers");

    let redis_name = unique("my-redis");
    let (status, rd) = berth
        .call(
            Method::POST,
            "/api/external-services",
            Some(json!({ "name": redis_name, "service_type": "redis", "parameters": {} })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rd}\n{}", berth.log());
    assert_temps_service(&rd, None, &redis_name, "redis");
    let rd_id = rd["id"].as_i64().unwrap();

    let (status, list) = berth.get("/api/external-services").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let list = list.as_array().expect("an array");
    for (id, name, kind) in [
        (pg_id, "my-postgres", "postgres"),
        (rd_id, redis_name.as_str(), "redis"),
    ] {
        let svc = list
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} listed"));
        assert_temps_service(svc, Some(id), name, kind);
    }

    let (status, project) = berth
        .call(
            Method::POST,
            "/api/projects",
            Some(json!({ "name": unique("web-shop") })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let pid = project["id"].as_i64().unwrap();

    // The seed's link body; no sleep since the create.
    for id in [pg_id, rd_id] {
        let (status, link) = berth
            .call(
                Method::POST,
                &format!("/api/external-services/{id}/projects"),
                Some(json!({ "project_id": pid })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "link {id}: {link}");
    }

    let (status, names) = berth
        .get(&format!(
            "/api/external-services/{pg_id}/preview-environment-names"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{names}");
    let names: Vec<&str> = names
        .as_array()
        .expect("an array of names")
        .iter()
        .map(|n| n.as_str().expect("names are strings"))
        .collect();
    for name in [
        "POSTGRES_URL",
        "POSTGRES_HOST",
        "POSTGRES_PORT",
        "POSTGRES_DATABASE",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }

    let (status, masked) = berth
        .get(&format!(
            "/api/external-services/{pg_id}/preview-environment-masked"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{masked}");
    let masked = masked.as_object().expect("an object name -> masked value");
    assert!(masked.values().all(Value::is_string), "{masked:?}");
    assert!(masked.contains_key("POSTGRES_PASSWORD"), "{masked:?}");

    let (status, vars) = berth
        .get(&format!(
            "/api/external-services/{pg_id}/projects/{pid}/environment"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{vars}");
    let vars = vars
        .as_object()
        .expect("an object name -> value (Temps' code)");
    assert_eq!(
        vars["POSTGRES_HOST"], "berth-postgres-my-postgres",
        "{vars:?}"
    );
    assert!(
        vars["POSTGRES_PASSWORD"]
            .as_str()
            .is_some_and(|p| !p.is_empty() && p != "********"),
        "the real value: {vars:?}"
    );
    let (status, rvars) = berth
        .get(&format!(
            "/api/external-services/{rd_id}/projects/{pid}/environment"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{rvars}");
    assert!(rvars["REDIS_URL"].is_string(), "{rvars}");

    // Stop and start answer with the service in its new state.
    let (status, stopped) = berth
        .call(
            Method::POST,
            &format!("/api/external-services/{pg_id}/stop"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_temps_service(&stopped, Some(pg_id), "my-postgres", "postgres");
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    let (status, health) = berth
        .get(&format!("/api/external-services/{pg_id}/health"))
        .await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health, false, "a stopped service is not healthy: {health}");

    let (status, started) = berth
        .call(
            Method::POST,
            &format!("/api/external-services/{pg_id}/start"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_temps_service(&started, Some(pg_id), "my-postgres", "postgres");
    assert_eq!(started["status"], "running", "{started}");

    let (status, health) = berth
        .get(&format!("/api/external-services/{pg_id}/health"))
        .await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health, true, "Temps' JSON boolean: {health}");
    let (status, detail) = berth
        .get(&format!(
            "/api/external-services/{pg_id}/health?detail=true"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["healthy"], true, "{detail}");
    assert!(detail["warnings"].is_array(), "{detail}");

    // The seed's upgrade body, to the image the service already runs.
    let (status, upgraded) = berth
        .call(
            Method::POST,
            &format!("/api/external-services/{pg_id}/upgrade"),
            Some(json!({ "docker_image": "berth/postgres:17" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{upgraded}");
    assert_temps_service(&upgraded, Some(pg_id), "my-postgres", "postgres");
    assert_eq!(upgraded["status"], "running", "{upgraded}");

    // PUT answers with the service too.
    let (status, updated) = berth
        .call(
            Method::PUT,
            &format!("/api/external-services/{pg_id}"),
            Some(json!({ "parameters": { "max_connections": "150" } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_temps_service(&updated, Some(pg_id), "my-postgres", "postgres");
    assert_eq!(updated["parameters"]["max_connections"], "150", "{updated}");

    for id in [pg_id, rd_id] {
        let (status, body) = berth
            .call(
                Method::DELETE,
                &format!("/api/external-services/{id}/projects/{pid}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "unlink {id}: {body}");
        assert_eq!(body, Value::Null, "204 has no body");
    }
    for id in [pg_id, rd_id] {
        let (status, body) = berth
            .call(
                Method::DELETE,
                &format!("/api/external-services/{id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "delete {id}: {body}");
        let (status, _) = berth.get(&format!("/api/external-services/{id}")).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "gone when the delete answers"
        );
    }
    assert!(!container_exists("berth-postgres-my-postgres"));
    assert!(!volume_exists("berth-postgres-my-postgres-data"));
    assert_nothing_running(&berth).await;
}

/// Every operation finished: `GET /api/operations` (all, and `?status=running`).
async fn assert_nothing_running(berth: &Berth) {
    let (status, running) = berth.get("/api/operations?status=running").await;
    assert_eq!(status, StatusCode::OK, "{running}");
    assert_eq!(running, json!([]), "operations left running");
    let (status, all) = berth.get("/api/operations").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let all = all.as_array().unwrap();
    assert!(!all.is_empty());
    assert!(
        all.iter().all(|op| op["status"] == "succeeded"),
        "every operation succeeded: {all:?}"
    );
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Action {
    Start,
    Stop,
    Update(u32),
}

#[tokio::test]
async fn ten_racing_clients_run_in_arrival_order() {
    let berth = Berth::start().await;
    let name = unique("race");
    let svc = berth.create("postgres", &name, json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let actions = [
        Action::Stop,
        Action::Update(101),
        Action::Start,
        Action::Update(102),
        Action::Stop,
        Action::Start,
        Action::Stop,
        Action::Update(103),
        Action::Start,
        Action::Stop,
    ];
    let berth = std::sync::Arc::new(berth);
    let mut handles = Vec::new();
    for (i, action) in actions.iter().copied().enumerate() {
        let berth = berth.clone();
        handles.push(tokio::spawn(async move {
            // All ten are in flight together; the stagger only fixes their arrival order.
            tokio::time::sleep(Duration::from_millis(150 * i as u64)).await;
            let (method, path, body) = match action {
                Action::Start => (
                    Method::POST,
                    format!("/api/external-services/{id}/start"),
                    None,
                ),
                Action::Stop => (
                    Method::POST,
                    format!("/api/external-services/{id}/stop"),
                    None,
                ),
                Action::Update(n) => (
                    Method::PUT,
                    format!("/api/external-services/{id}"),
                    Some(json!({ "parameters": { "max_connections": n.to_string() } })),
                ),
            };
            let (status, body) = berth.call(method, &path, body).await;
            (status, body)
        }));
    }
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    for (i, (status, body)) in answers.iter().enumerate() {
        assert_eq!(
            *status,
            StatusCode::OK,
            "request {i} ({:?}) answered with the service: {body}",
            actions[i]
        );
        assert_eq!(body["id"], id, "{body}");
    }
    // Each answer shows its own turn: an update's answer carries its own value (the next
    // update runs two turns later). When the answers reach the clients is not ordered (an
    // answer is written after its operation released the service, so a quick next
    // operation's answer can overtake it on a loaded machine); the operations' order is
    // checked below.
    for (i, (_, body)) in answers.iter().enumerate() {
        if let Action::Update(n) = actions[i] {
            assert_eq!(
                body["parameters"]["max_connections"],
                n.to_string(),
                "request {i}: {body}"
            );
        }
    }
    // The operations ran in arrival order too (ids are given as each one's turn comes).
    let (_, ops) = berth
        .get(&format!("/api/external-services/{id}/operations"))
        .await;
    let mut ops: Vec<Value> = ops.as_array().unwrap().clone();
    ops.retain(|op| op["kind"] != "create");
    ops.reverse();
    let kinds: Vec<String> = ops
        .iter()
        .map(|op| op["kind"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<&str> = actions
        .iter()
        .map(|a| match a {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Update(_) => "update",
        })
        .collect();
    assert_eq!(kinds, expected, "operations in arrival order: {ops:?}");

    // The service ends as the last request left it (stop), with the last update's value.
    let (_, list) = berth.get("/api/external-services").await;
    let svc = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(svc["status"], "stopped", "{svc}");
    assert_eq!(svc["desired_state"], "stopped", "{svc}");
    assert_eq!(svc["parameters"]["max_connections"], "103", "{svc}");
    assert_eq!(
        answers.last().unwrap().1["status"],
        "stopped",
        "the last answer shows the final state"
    );
    assert_nothing_running(&berth).await;
    berth.delete_service(id).await;
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn prefer_respond_async_answers_202_with_the_operation_to_poll() {
    let berth = Berth::start().await;
    let name = unique("async");
    let (status, headers, body) = berth
        .call_with_headers(
            Method::POST,
            "/api/external-services",
            Some(json!({ "name": name, "service_type": "redis" })),
            &[("Prefer", "respond-async")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let op = body["operation"]["id"].as_i64().expect("the operation");
    assert_eq!(
        header(&headers, "location"),
        Some(format!("/api/operations/{op}").as_str())
    );
    assert_eq!(
        header(&headers, "preference-applied"),
        Some("respond-async")
    );
    assert_eq!(body["operation"]["kind"], "create", "{body}");
    let id = body["service"]["id"].as_i64().expect("the service");
    let done = berth.wait_operation(op, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, health) = berth
        .get(&format!("/api/external-services/{id}/health"))
        .await;
    assert_eq!(health, true);

    // `?wait=false` still answers 202, without claiming a preference was applied.
    let (status, headers, body) = berth
        .call_with_headers(
            Method::POST,
            &format!("/api/external-services/{id}/stop?wait=false"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(header(&headers, "location").is_some());
    assert_eq!(header(&headers, "preference-applied"), None);
    let op = body["operation"]["id"].as_i64().unwrap();
    assert_eq!(
        berth.wait_operation(op, Duration::from_secs(60)).await["status"],
        "succeeded"
    );

    // An explicit `?wait=true` wins over the header.
    let (status, headers, body) = berth
        .call_with_headers(
            Method::POST,
            &format!("/api/external-services/{id}/start?wait=true"),
            None,
            &[("Prefer", "respond-async")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "running", "{body}");
    assert_eq!(header(&headers, "preference-applied"), None);

    // The synchronous wait is bounded (`Prefer: wait=0` here; 120 s by default): past it the
    // answer is 202 with the operation, which finishes anyway.
    let (status, headers, body) = berth
        .call_with_headers(
            Method::POST,
            &format!("/api/external-services/{id}/stop"),
            None,
            &[("Prefer", "wait=0")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(header(&headers, "preference-applied"), None);
    let op = body["operation"]["id"].as_i64().unwrap();
    assert_eq!(
        header(&headers, "location"),
        Some(format!("/api/operations/{op}").as_str())
    );
    assert_eq!(
        berth.wait_operation(op, Duration::from_secs(60)).await["status"],
        "succeeded"
    );

    // A delete with the header: 202, then the service is gone.
    let (status, headers, body) = berth
        .call_with_headers(
            Method::DELETE,
            &format!("/api/external-services/{id}"),
            None,
            &[("Prefer", "respond-async")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        header(&headers, "preference-applied"),
        Some("respond-async")
    );
    let op = body["operation"]["id"].as_i64().unwrap();
    assert_eq!(
        berth.wait_operation(op, Duration::from_secs(60)).await["status"],
        "succeeded"
    );
    let (status, _) = berth.get(&format!("/api/external-services/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_nothing_running(&berth).await;
}
