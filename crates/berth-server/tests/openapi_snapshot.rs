//! The OpenAPI document is checked in (`docs/openapi.json`) so every API change shows up in
//! review. The test passes only when the document equals the file. To accept a change, run
//! `UPDATE_SNAPSHOTS=1 cargo test -p berth-server --test openapi_snapshot`: it rewrites the file
//! and still fails ("snapshot updated"); review `git diff docs/openapi.json` and rerun.

use std::path::PathBuf;

#[test]
fn openapi_document_matches_the_snapshot() {
    let current = berth_server::api::openapi_document()
        .to_pretty_json()
        .expect("serialises");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let snapshot = std::fs::read_to_string(&path).unwrap_or_default();
    if snapshot.trim_end() == current.trim_end() {
        return;
    }
    let difference = first_difference(&snapshot, &current);
    if std::env::var("UPDATE_SNAPSHOTS").is_ok() {
        std::fs::write(&path, format!("{current}\n")).unwrap();
        panic!(
            "snapshot updated ({}): review `git diff docs/openapi.json` and rerun without \
             UPDATE_SNAPSHOTS\n{difference}",
            path.display()
        );
    }
    panic!(
        "the OpenAPI document changed; review it and run with UPDATE_SNAPSHOTS=1 to accept:\n\
         {difference}"
    );
}

#[test]
fn every_route_documents_auth_and_problem_errors() {
    let doc: serde_json::Value =
        serde_json::from_str(&berth_server::api::openapi_document().to_json().unwrap()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with("/api/"), "{path}");
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("401"),
                "{method} {path} documents 401"
            );
            assert!(
                responses.contains_key("403"),
                "{method} {path} documents 403 (a scope that does not allow it)"
            );
            let scopes = op["x-token-scopes"].as_array().unwrap_or_else(|| {
                panic!("{method} {path} lists the token scopes that may call it")
            });
            assert_eq!(
                scopes[0], "admin",
                "{method} {path}: admin may call every route"
            );
            for (code, response) in responses {
                if code.starts_with('4') || code.starts_with('5') {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {code} is problem+json"
                    );
                }
            }
        }
    }
}

fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: snapshot {x:?} vs current {y:?}", i + 1);
        }
    }
    format!(
        "lengths differ: {} vs {} lines",
        a.lines().count(),
        b.lines().count()
    )
}
