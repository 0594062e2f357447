//! Requests on one service queue behind each other, and queueing never makes a caller hang:
//! behind a long operation, an asynchronous request is answered 202 at once with a `queued`
//! operation, a synchronous one within its bound, and the queued operation runs in its turn
//! (or records why it could not).

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// An image of Berth's Redis (same major, so the upgrade is allowed) whose server never
/// starts: the container runs, the readiness probe never succeeds, and the upgrade holds its
/// service for the whole readiness timeout, then rolls back.
fn never_ready_redis() -> String {
    let tag = "berth-test/redis-never-ready:8";
    let dir = std::env::temp_dir().join(unique("never-ready"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        // A shell that ignores the arguments Berth passes (its start script), so the container
        // stays up without ever serving: `sleep` given them would exit, and a crash loop is
        // refused at once, not held for the readiness timeout.
        "FROM berth/redis:8\nENTRYPOINT [\"sh\", \"-c\", \"exec sleep infinity\", \"never-ready\"]\n",
    )
    .unwrap();
    let (ok, out) = docker(&["build", "-q", "-t", tag, dir.to_str().unwrap()]);
    assert!(ok, "building the test image: {out}");
    tag.to_string()
}

/// A Berth whose readiness timeout is long enough for requests to pile up behind an upgrade.
async fn berth_with_slow_readiness() -> Berth {
    let dir = std::env::temp_dir().join(unique("queue-config"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, "readiness_timeout_secs = 20\n").unwrap();
    Berth::start_with(vec![("BERTH_CONFIG", config.to_str().unwrap())], vec![]).await
}

/// Starts the never-ready upgrade of service `id` and returns its operation id.
async fn hold_service(berth: &Berth, id: i64) -> i64 {
    let (status, body) = berth
        .call_async(
            Method::POST,
            &format!("/api/external-services/{id}/upgrade"),
            Some(json!({ "docker_image": never_ready_redis() })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["operation"]["id"].as_i64().unwrap()
}

async fn operation(berth: &Berth, id: i64) -> Value {
    berth.get(&format!("/api/operations/{id}")).await.1
}

#[tokio::test]
async fn requests_behind_a_long_operation_are_answered_at_once_and_run_in_their_turn() {
    let berth = berth_with_slow_readiness().await;
    let svc = berth.create("redis", &unique("queue"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let upgrade = hold_service(&berth, id).await;

    // Asynchronous: 202 with the queued operation, while the upgrade still holds the service.
    let (status, stop) = berth
        .call_async(
            Method::POST,
            &format!("/api/external-services/{id}/stop"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{stop}");
    assert_eq!(stop["operation"]["status"], "queued", "{stop}");
    assert_eq!(stop["operation"]["kind"], "stop", "{stop}");
    assert_eq!(operation(&berth, upgrade).await["status"], "running");

    // Synchronous with a 2 s bound: answered 202 past the bound, still queued.
    let (status, _, start) = berth
        .call_with_headers(
            Method::POST,
            &format!("/api/external-services/{id}/start"),
            None,
            &[("Prefer", "wait=2")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{start}");
    assert_eq!(start["operation"]["status"], "queued", "{start}");
    assert_eq!(operation(&berth, upgrade).await["status"], "running");

    // In their turn: the upgrade fails and rolls back, then the stop runs, then the start.
    let timeout = Duration::from_secs(120);
    let upgraded = berth.wait_operation(upgrade, timeout).await;
    assert_eq!(upgraded["status"], "failed", "{upgraded}");
    let stop_id = stop["operation"]["id"].as_i64().unwrap();
    let stopped = berth.wait_operation(stop_id, timeout).await;
    assert_eq!(stopped["status"], "succeeded", "{stopped}");
    let start_id = start["operation"]["id"].as_i64().unwrap();
    let started = berth.wait_operation(start_id, timeout).await;
    assert_eq!(started["status"], "succeeded", "{started}");
    let (_, now) = berth.get(&format!("/api/external-services/{id}")).await;
    assert_eq!(
        now["service"]["status"], "running",
        "the start ran after the stop: {now}"
    );
}

#[tokio::test]
async fn a_queued_request_refused_in_its_turn_records_why() {
    let berth = berth_with_slow_readiness().await;
    let svc = berth
        .create("redis", &unique("queue-refused"), json!({}))
        .await;
    let id = svc["id"].as_i64().unwrap();
    let upgrade = hold_service(&berth, id).await;

    // A major change is refused under the claim, so only once its turn has come.
    let (status, queued) = berth
        .call_async(
            Method::POST,
            &format!("/api/external-services/{id}/upgrade"),
            Some(json!({ "docker_image": "berth/redis:6" })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["operation"]["status"], "queued", "{queued}");
    berth
        .wait_operation(upgrade, Duration::from_secs(120))
        .await;
    let refused = berth
        .wait_operation(
            queued["operation"]["id"].as_i64().unwrap(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(refused["status"], "failed", "{refused}");
    assert!(
        refused["error"].as_str().unwrap_or("").contains("major"),
        "the reason is recorded: {refused}"
    );
}

#[tokio::test]
async fn queued_requests_of_a_stopped_berth_are_failed_not_left_waiting() {
    let mut berth = berth_with_slow_readiness().await;
    let svc = berth
        .create("redis", &unique("queue-crash"), json!({}))
        .await;
    let id = svc["id"].as_i64().unwrap();
    hold_service(&berth, id).await;
    let (status, queued) = berth
        .call_async(
            Method::POST,
            &format!("/api/external-services/{id}/stop"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["operation"]["status"], "queued", "{queued}");

    berth.kill9();
    berth.spawn().await;
    let op = operation(&berth, queued["operation"]["id"].as_i64().unwrap()).await;
    assert_eq!(op["status"], "failed", "{op}");
    assert!(
        op["error"].as_str().unwrap_or("").contains("send it again"),
        "{op}"
    );
}
