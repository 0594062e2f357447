//! Crash safety: `berth serve` is SIGKILLed (or aborts at a named crash point) in the middle of
//! multi-step operations; after a restart the reconciler converges: a healthy service with its
//! row, or neither, and no operation left running.

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// The invariant after recovery of an interrupted create.
async fn assert_all_or_nothing(berth: &Berth, id: i64, container: &str, volume: &str) {
    let (status, svc) = berth.get(&format!("/api/external-services/{id}")).await;
    if status == StatusCode::OK {
        assert_eq!(svc["service"]["status"], "running", "{svc}");
        let (_, health) = berth
            .get(&format!("/api/external-services/{id}/health?detail=true"))
            .await;
        assert_eq!(health["status"], "healthy", "{health}");
        assert!(container_exists(container));
        berth.delete_service(id).await;
    } else {
        assert_eq!(status, StatusCode::NOT_FOUND, "{svc}");
        assert!(!container_exists(container), "no container without a row");
        assert!(!volume_exists(volume), "no volume without a row");
    }
}

async fn start_create(berth: &Berth, service_type: &str, name: &str) -> (i64, i64, String, String) {
    let (status, body) = berth
        .call_async(
            Method::POST,
            "/api/external-services",
            Some(json!({ "name": name, "service_type": service_type, "parameters": {} })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    (
        body["service"]["id"].as_i64().unwrap(),
        body["operation"]["id"].as_i64().unwrap(),
        body["service"]["container_name"]
            .as_str()
            .unwrap()
            .to_string(),
        body["service"]["volume_name"].as_str().unwrap().to_string(),
    )
}

/// Every operation of the service (which must still exist) has finished.
async fn no_operation_running(berth: &Berth, id: i64) {
    let (status, ops) = berth
        .get(&format!("/api/external-services/{id}/operations"))
        .await;
    assert_eq!(status, StatusCode::OK, "{ops}");
    let ops = ops.as_array().expect("a list of operations");
    assert!(!ops.is_empty(), "the service has its create operation");
    assert!(ops.iter().all(|op| op["status"] != "running"), "{ops:?}");
}

/// How many interrupted operations this server process resolved at startup.
async fn resolved_at_startup(berth: &Berth) -> i64 {
    let (status, body) = berth.get("/api/system/status").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["reconciler"]["resolved_operations"].as_i64().unwrap()
}

#[tokio::test]
async fn kill9_during_create_converges() {
    let mut berth = Berth::start().await;
    let name = unique("crash");
    let (id, op, container, volume) = start_create(&berth, "postgres", &name).await;
    // Kill the server while the create waits for PostgreSQL to initialise (seconds): the
    // create must still be running when it is killed, or no crash is tested.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (_, o) = berth.get(&format!("/api/operations/{op}")).await;
        assert_eq!(o["status"], "running", "finished before the kill: {o}");
        if o["step"] == "waiting for readiness" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reached readiness: {o}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    berth.kill9();
    berth.spawn().await;
    let resolved = berth.wait_operation(op, Duration::from_secs(180)).await;
    assert_eq!(
        resolved_at_startup(&berth).await,
        1,
        "the restart found the create interrupted"
    );
    // The container existed, so the create is rolled forward.
    assert_eq!(resolved["status"], "succeeded", "{resolved}");
    no_operation_running(&berth, id).await;
    assert_all_or_nothing(&berth, id, &container, &volume).await;
}

#[tokio::test]
async fn crash_point_after_container_created_converges() {
    let mut berth = Berth::start().await;
    berth.kill9();
    berth
        .spawn_with_env(&[("BERTH_CRASHPOINT", "create.after_container")])
        .await;
    let name = unique("cp");
    let (id, op, container, volume) = start_create(&berth, "redis", &name).await;
    assert!(
        berth.wait_exit(Duration::from_secs(120)),
        "crash point should abort the server"
    );
    assert!(
        container_exists(&container),
        "the crash left a container behind"
    );
    berth.spawn().await;
    let resolved = berth.wait_operation(op, Duration::from_secs(120)).await;
    assert_eq!(resolved_at_startup(&berth).await, 1);
    // The container was made, so the create is rolled forward to a running service.
    assert_eq!(resolved["status"], "succeeded", "{resolved}");
    let (status, svc) = berth.get(&format!("/api/external-services/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{svc}");
    no_operation_running(&berth, id).await;
    assert_all_or_nothing(&berth, id, &container, &volume).await;
}

#[tokio::test]
async fn crash_during_delete_finishes_the_delete() {
    let mut berth = Berth::start().await;
    let svc = berth.create("redis", &unique("del"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    berth.kill9();
    berth
        .spawn_with_env(&[("BERTH_CRASHPOINT", "delete.after_container")])
        .await;
    let (status, body) = berth
        .call_async(
            Method::DELETE,
            &format!("/api/external-services/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(berth.wait_exit(Duration::from_secs(60)));
    berth.spawn().await;
    let op = body["operation"]["id"].as_i64().unwrap();
    let resolved = berth.wait_operation(op, Duration::from_secs(60)).await;
    assert_eq!(resolved["status"], "succeeded", "{resolved}");
    let (status, _) = berth.get(&format!("/api/external-services/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!container_exists(svc["container_name"].as_str().unwrap()));
    assert!(!volume_exists(svc["volume_name"].as_str().unwrap()));
}

#[tokio::test]
async fn crash_during_update_rolls_back_to_previous_configuration() {
    let mut berth = Berth::start().await;
    let svc = berth
        .create(
            "postgres",
            &unique("upd"),
            json!({ "max_connections": "120" }),
        )
        .await;
    let id = svc["id"].as_i64().unwrap();
    let password = berth.password(id).await;
    let port = port_of(&svc);
    let mut conn = pg_connect(port, "postgres", &password, "postgres")
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (v int)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES (7)")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);

    berth.kill9();
    berth
        .spawn_with_env(&[("BERTH_CRASHPOINT", "reconfigure.after_remove")])
        .await;
    let (status, body) = berth
        .call_async(
            Method::PUT,
            &format!("/api/external-services/{id}"),
            Some(json!({ "parameters": { "max_connections": "90" } })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(berth.wait_exit(Duration::from_secs(60)));
    assert!(
        !container_exists(svc["container_name"].as_str().unwrap()),
        "crashed with the container removed"
    );
    berth.spawn().await;
    let op = body["operation"]["id"].as_i64().unwrap();
    let resolved = berth.wait_operation(op, Duration::from_secs(120)).await;
    assert_eq!(resolved["status"], "rolled_back", "{resolved}");
    let (_, now) = berth.get(&format!("/api/external-services/{id}")).await;
    assert_eq!(now["current_parameters"]["max_connections"], "120", "{now}");
    assert_eq!(now["service"]["status"], "running", "{now}");
    let mut conn = pg_connect(port, "postgres", &password, "postgres")
        .await
        .unwrap();
    let (v,): (i32,) = sqlx::query_as("SELECT v FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, 7);
    drop(conn);
    berth.delete_service(id).await;
}
