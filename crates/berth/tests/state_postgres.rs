//! `--database-url postgres://...`: Berth keeps its state in PostgreSQL instead of SQLite.
//! The state server is itself a PostgreSQL container made from Berth's image.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

struct StateDb {
    name: String,
}

impl Drop for StateDb {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }
}

#[tokio::test]
async fn postgres_state_backend_round_trips() {
    let port = free_port();
    let db = StateDb {
        name: unique("berth-state-pg"),
    };
    let (ok, out) = docker(&[
        "run",
        "-d",
        "--name",
        &db.name,
        "-e",
        "POSTGRES_PASSWORD=statepw123",
        "-e",
        "POSTGRES_DB=berth",
        "-p",
        &format!("127.0.0.1:{port}:5432"),
        "berth/postgres:15",
    ]);
    assert!(ok, "starting the state database: {out}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while pg_connect(port, "postgres", "statepw123", "berth")
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "state database never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("postgres://postgres:statepw123@127.0.0.1:{port}/berth");
    let kv_name = unique("kv");
    let mut berth = Berth::start_with(
        vec![],
        vec!["--database-url", &url, "--kv-service-name", &kv_name],
    )
    .await;
    let svc = berth.create("redis", &unique("pgstate"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let password = berth.password(id).await;

    // The rows live in PostgreSQL, with the password encrypted.
    let mut conn = pg_connect(port, "postgres", "statepw123", "berth")
        .await
        .unwrap();
    let (params, secrets): (String, String) =
        sqlx::query_as("SELECT parameters, secrets FROM services WHERE id = $1")
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(params.contains("\"port\""));
    assert!(!secrets.contains(&password) && secrets.starts_with("v1:"));
    drop(conn);
    assert!(
        !berth.data_dir.join("berth.db").exists(),
        "no SQLite file when a URL is given"
    );

    berth.kill9();
    berth.spawn().await;
    let (_, health) = berth
        .get(&format!("/api/external-services/{id}/health?detail=true"))
        .await;
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(berth.password(id).await, password);
    berth.delete_service(id).await;

    // Scoped tokens on this backend: bound only to a project that exists, refused elsewhere,
    // revoked with their project.
    let project = create_project(&berth, &unique("pgproj"), &["production"]).await;
    let (status, body) = berth
        .call(
            Method::POST,
            "/api/tokens",
            Some(json!({"name": "p", "scope": "project", "project_id": project + 1000})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let token = create_token(
        &berth,
        json!({"name": "p", "scope": "project", "project_id": project}),
    )
    .await;
    let token = token["token"].as_str().unwrap();
    let own = format!("/api/projects/{project}");
    let (status, _, body) = berth.call_as(token, Method::GET, &own, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = berth
        .call_as(token, Method::GET, "/api/projects", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = berth.call(Method::DELETE, &own, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _, body) = berth.call_as(token, Method::GET, &own, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // KV on this backend: its record (migration 0005) survives a restart and goes with its
    // service.
    let (status, body) = berth
        .call(
            Method::POST,
            "/api/kv/enable",
            Some(json!({"port": free_port()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let project = create_project(&berth, &unique("pgkv"), &["production"]).await;
    let set = json!({"key": "k", "value": {"n": 1}, "project_id": project});
    let (status, body) = berth.call(Method::POST, "/api/kv/set", Some(set)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    berth.kill9();
    berth.spawn().await;
    let get = json!({"key": "k", "project_id": project});
    let (status, body) = berth.call(Method::POST, "/api/kv/get", Some(get)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], json!({"n": 1}), "{body}");
    let mut conn = pg_connect(port, "postgres", "statepw123", "berth")
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM backing_services WHERE feature = 'kv' AND enabled = 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows, 1);
    let (status, body) = berth
        .call(Method::DELETE, "/api/kv/disable?delete_data=true", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM backing_services WHERE feature = 'kv'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows, 0, "the record went with the service");
}
