//! Redis end to end against real Docker: SET before stop, GET after start, 127.0.0.1 only.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn redis_set_stop_start_get_delete() {
    let berth = Berth::start().await;
    let name = unique("cache");
    let svc = berth.create("redis", &name, json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let port = port_of(&svc);
    assert!(port >= 6379);
    assert_eq!(svc["parameters"]["password"], "********");
    let password = berth.password(id).await;
    assert!(password.len() >= 16);

    let mut conn = redis_conn(port, &password).await;
    let _: () = redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query_async(&mut conn)
        .await
        .unwrap();
    drop(conn);

    // Without the password Redis refuses commands.
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).unwrap();
    let mut anon = client.get_multiplexed_async_connection().await.unwrap();
    let denied: Result<String, _> = redis::cmd("GET")
        .arg("greeting")
        .query_async(&mut anon)
        .await;
    assert!(denied.is_err(), "unauthenticated GET must fail");
    drop(anon);

    let container = svc["container_name"].as_str().unwrap();
    let (_, bindings) = docker(&[
        "inspect",
        "--format",
        "{{json .HostConfig.PortBindings}}",
        container,
    ]);
    assert!(
        bindings.contains("\"HostIp\":\"127.0.0.1\"") && !bindings.contains("0.0.0.0"),
        "{bindings}"
    );

    let (status, body) = berth
        .post_wait(&format!("/api/external-services/{id}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = berth
        .post_wait(&format!("/api/external-services/{id}/start"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut conn = redis_conn(port, &password).await;
    let value: String = redis::cmd("GET")
        .arg("greeting")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        value, "hello",
        "data survives stop/start (append-only file in the volume)"
    );
    drop(conn);

    let (_, health) = berth
        .get(&format!("/api/external-services/{id}/health?detail=true"))
        .await;
    assert_eq!(health["status"], "healthy", "{health}");

    let volume = svc["volume_name"].as_str().unwrap().to_string();
    berth.delete_service(id).await;
    assert!(!container_exists(container));
    assert!(!volume_exists(&volume));
}
