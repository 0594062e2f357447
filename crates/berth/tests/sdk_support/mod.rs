//! What the SDK tests share: a Berth with KV (and Blob) enabled on uniquely named services,
//! and a project with a project token, the credential an app would be given.
#![allow(dead_code)]

pub mod node;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

/// A server with KV enabled on a service of its own (unique name, free port).
pub async fn berth_with_kv() -> Berth {
    let name = unique("sdkkv");
    let berth = Berth::start_with(vec![], vec!["--kv-service-name", &name]).await;
    enable(&berth, "/api/kv/enable", json!({"port": free_port()})).await;
    berth
}

/// A server with Blob enabled on a service of its own (unique name, free port).
pub async fn berth_with_blob() -> Berth {
    let name = unique("sdkblob");
    let berth = Berth::start_with(vec![], vec!["--blob-service-name", &name]).await;
    enable(&berth, "/api/blob/enable", json!({"port": free_port()})).await;
    berth
}

/// Enables KV or Blob; panics unless 200.
pub async fn enable(berth: &Berth, path: &str, body: Value) {
    let (status, answer) = berth.call(Method::POST, path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{path}: {answer}\n{}", berth.log());
    assert_eq!(answer["status"]["enabled"], true, "{answer}");
}

/// A new project and a project token for it: `(project id, token)`.
pub async fn project_with_token(berth: &Berth) -> (i64, String) {
    let project = create_project(berth, &unique("sdkapp"), &["production"]).await;
    let created = create_token(
        berth,
        json!({"name": unique("sdk"), "scope": "project", "project_id": project}),
    )
    .await;
    (project, created["token"].as_str().unwrap().to_string())
}
