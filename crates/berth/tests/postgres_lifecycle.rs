//! PostgreSQL end to end against real Docker: create via the API, connect from the host with
//! the generated password, stop/start keeping data, update, upgrade, delete.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Row;

#[tokio::test]
async fn postgres_create_connect_stop_start_update_upgrade_delete() {
    let berth = Berth::start().await;
    let name = unique("pg");
    let svc = berth
        .create("postgres", &name, json!({ "max_connections": "150" }))
        .await;
    let id = svc["id"].as_i64().unwrap();
    let port = port_of(&svc);
    assert!(port >= 5432, "ports are assigned from 5432 up");
    assert_eq!(svc["status"], "running");
    assert_eq!(
        svc["parameters"]["password"], "********",
        "masked by default"
    );
    assert_eq!(svc["parameters"]["database"], "postgres");
    assert_eq!(svc["parameters"]["username"], "postgres");
    assert_eq!(svc["parameters"]["ssl_mode"], "disable");
    let password = berth.password(id).await;
    assert_eq!(password.len(), 16);

    // Connect from the host with the generated password; write a row.
    let mut conn = pg_connect(port, "postgres", &password, "postgres")
        .await
        .unwrap();
    sqlx::query("CREATE TABLE kept (v text)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO kept VALUES ('still here')")
        .execute(&mut conn)
        .await
        .unwrap();
    let max: String = sqlx::query("SHOW max_connections")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(max, "150");
    drop(conn);
    assert!(
        pg_connect(port, "postgres", "wrong-password", "postgres")
            .await
            .is_err()
    );

    // Published on 127.0.0.1 only.
    let container = svc["container_name"].as_str().unwrap();
    let (_, bindings) = docker(&[
        "inspect",
        "--format",
        "{{json .HostConfig.PortBindings}}",
        container,
    ]);
    let bindings: serde_json::Value = serde_json::from_str(&bindings).unwrap();
    for binding in bindings["5432/tcp"].as_array().unwrap() {
        assert_eq!(binding["HostIp"], "127.0.0.1", "{bindings}");
    }
    let (_, network) = docker(&[
        "inspect",
        "--format",
        "{{json .NetworkSettings.Networks}}",
        container,
    ]);
    assert!(
        network.contains("\"berth\""),
        "on the berth network: {network}"
    );

    // Stop keeps data; the service refuses connections while stopped.
    let (status, body) = berth
        .post_wait(&format!("/api/external-services/{id}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "stopped");
    let (_, health) = berth
        .get(&format!("/api/external-services/{id}/health?detail=true"))
        .await;
    assert_eq!(health["status"], "stopped");
    assert!(
        pg_connect(port, "postgres", &password, "postgres")
            .await
            .is_err()
    );
    let (status, body) = berth
        .post_wait(&format!("/api/external-services/{id}/start"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        query_text(port, &password, "SELECT v FROM kept").await,
        "still here"
    );
    let (_, health) = berth
        .get(&format!("/api/external-services/{id}/health?detail=true"))
        .await;
    assert_eq!(health["status"], "healthy", "{health}");
    assert!(health["latency_ms"].as_f64().unwrap() > 0.0);

    // Update an editable parameter: the container is recreated with it, data kept.
    let (status, body) = berth
        .call(
            Method::PUT,
            &format!("/api/external-services/{id}?wait=true"),
            Some(json!({ "parameters": { "max_connections": "77" } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["parameters"]["max_connections"], "77");
    assert_eq!(
        query_text(port, &password, "SHOW max_connections").await,
        "77"
    );

    // Read-only parameters are refused by name.
    let (status, body) = berth
        .call(
            Method::PUT,
            &format!("/api/external-services/{id}"),
            Some(json!({ "parameters": { "username": "root" } })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("\"username\""),
        "{body}"
    );

    // Upgrade: a same-major image (another tag of the same build) keeps the volume.
    let alias = "berth/postgres:17-upgrade-test";
    assert!(docker(&["tag", "berth/postgres:17", alias]).0);
    let (status, body) = berth
        .post_wait(
            &format!("/api/external-services/{id}/upgrade"),
            Some(json!({ "docker_image": alias })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["parameters"]["docker_image"], alias);
    let (_, image) = docker(&["inspect", "--format", "{{.Config.Image}}", container]);
    assert_eq!(image, alias);
    assert_eq!(
        query_text(port, &password, "SELECT v FROM kept").await,
        "still here"
    );

    // A different major version is refused before anything is touched.
    let (status, body) = berth
        .call(
            Method::POST,
            &format!("/api/external-services/{id}/upgrade"),
            Some(json!({ "docker_image": "postgres:16" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("major"), "{body}");

    // An image that cannot start rolls back to the previous one.
    let (status, body) = berth
        .post_wait(
            &format!("/api/external-services/{id}/upgrade"),
            Some(json!({ "docker_image": "berth/redis:7" })),
        )
        .await;
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{status} {body}"
    );
    let (_, svc_now) = berth.get(&format!("/api/external-services/{id}")).await;
    assert_eq!(
        svc_now["service"]["parameters"]["docker_image"], alias,
        "rolled back: {svc_now}"
    );
    assert_eq!(
        query_text(port, &password, "SELECT v FROM kept").await,
        "still here"
    );

    // Delete removes container, volume and row.
    let volume = svc["volume_name"].as_str().unwrap().to_string();
    berth.delete_service(id).await;
    assert!(!container_exists(container));
    assert!(!volume_exists(&volume));
    let (status, _) = berth.get(&format!("/api/external-services/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _ = docker(&["rmi", alias]);
}

/// Connects as the superuser and returns the first column of the first row.
async fn query_text(port: u16, password: &str, sql: &'static str) -> String {
    let mut conn = pg_connect(port, "postgres", password, "postgres")
        .await
        .unwrap();
    sqlx::query(sql).fetch_one(&mut conn).await.unwrap().get(0)
}
