//! Helpers for the backup and restore tests: an S3 service with its admin client, a
//! destination in it, and running and following backups through the API.

use std::time::{Duration, Instant};

use berth_server::s3client::{S3Client, S3Endpoint};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;

/// Berth with a fast reconciler (gauges and cleanup retries every 2 s).
pub async fn berth() -> Berth {
    Berth::start_with(vec![("BERTH_RECONCILE_INTERVAL", "2")], vec![]).await
}

/// An S3 service and a client holding its admin keys.
pub async fn s3_service(berth: &Berth) -> (i64, S3Client, String) {
    let svc = berth.create("s3", &unique("bk-s3"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let (_, revealed) = berth
        .get(&format!("/api/external-services/{id}/reveal"))
        .await;
    let params = &revealed["parameters"];
    let client = S3Client::new(S3Endpoint {
        url: format!("http://127.0.0.1:{}", port_of(&svc)),
        region: "us-east-1".into(),
        access_key: params["access_key"].as_str().unwrap().into(),
        secret_key: params["secret_key"].as_str().unwrap().into(),
    });
    (id, client, str_of(&svc, "container_name").to_string())
}

pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// A destination in a Berth-managed S3 service (Berth creates its bucket).
pub async fn managed_destination(berth: &Berth, s3: i64, bucket: &str) -> i64 {
    let (status, body) = berth
        .call(
            Method::POST,
            "/api/backups/s3-sources",
            Some(json!({
                "name": unique("dest"),
                "bucket_name": bucket,
                "bucket_path": "nightly/",
                "service_id": s3,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

/// Runs a backup synchronously; the answer as is.
pub async fn run_backup(berth: &Berth, service: i64, destination: i64) -> (StatusCode, Value) {
    berth
        .call(
            Method::POST,
            &format!("/api/backups/external-services/{service}/run"),
            Some(json!({ "s3_source_id": destination })),
        )
        .await
}

/// Starts a backup asynchronously and returns its id.
pub async fn start_backup(berth: &Berth, service: i64, destination: i64) -> i64 {
    let (status, body) = berth
        .call_async(
            Method::POST,
            &format!("/api/backups/external-services/{service}/run"),
            Some(json!({ "s3_source_id": destination })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["state"], "running", "{body}");
    body["id"].as_i64().unwrap()
}

pub async fn backup(berth: &Berth, id: i64) -> Value {
    let (status, body) = berth.get(&format!("/api/backups/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

pub async fn wait_backup_done(berth: &Berth, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let b = backup(berth, id).await;
        if b["state"] != "running" {
            return b;
        }
        assert!(Instant::now() < deadline, "backup {id} never ended: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until a running backup has sent more than `bytes` of a database dump.
pub async fn wait_uploading(berth: &Berth, id: i64, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let b = backup(berth, id).await;
        assert_eq!(b["state"], "running", "it ended before the fault: {b}");
        let sent = b["progress_bytes"].as_u64().unwrap_or(0);
        if str_of(&b, "step").starts_with("dumping db-") && sent > bytes {
            return;
        }
        assert!(Instant::now() < deadline, "never got that far: {b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The bucket and folder of a backup's `s3_location` (`s3://bucket/folder/`).
pub fn location(b: &Value) -> (String, String) {
    let rest = str_of(b, "s3_location").strip_prefix("s3://").unwrap();
    let (bucket, folder) = rest.split_once('/').unwrap();
    (bucket.to_string(), folder.to_string())
}

/// Keys under a backup's folder on the destination.
pub async fn stored_keys(client: &S3Client, b: &Value) -> Vec<String> {
    let (bucket, folder) = location(b);
    client
        .list_all(&bucket, &folder)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

/// Verifies a backup by restore (`POST /api/backups/{id}/verify`): it passes and the
/// throwaway service is gone.
pub async fn verify_passes(berth: &Berth, backup_id: i64) {
    let (status, verified) = berth
        .call(
            Method::POST,
            &format!("/api/backups/{backup_id}/verify"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{verified}\n{}", berth.log());
    assert_eq!(
        verified["metadata"]["verify"]["state"], "succeeded",
        "{verified}"
    );
    let (_, services) = berth.get("/api/external-services").await;
    assert!(
        !services.to_string().contains("verify-"),
        "the throwaway service is gone: {services}"
    );
}
