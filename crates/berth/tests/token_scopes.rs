//! Scoped API tokens through the API: what `POST /api/tokens` accepts, what the list shows, and
//! that a project token dies with a revoke or with its project. (Which routes each scope may
//! call is the scope matrix in hardening.rs.)

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn token_scopes_are_validated_and_listed() {
    let berth = Berth::start().await;
    let project = create_project(&berth, &unique("scopes"), &["production"]).await;
    for (body, why) in [
        (
            json!({"name": "p", "scope": "project"}),
            "project scope without project_id",
        ),
        (
            json!({"name": "p", "scope": "project", "project_id": project + 1000}),
            "a project that does not exist",
        ),
        (
            json!({"name": "p", "scope": "project", "project_id": 0}),
            "a project id that cannot exist",
        ),
        (
            json!({"name": "p", "scope": "project", "project_id": "x"}),
            "a project id that is not a number",
        ),
        (
            json!({"name": "p", "scope": "admin", "project_id": project}),
            "an admin token bound to a project",
        ),
        (
            json!({"name": "p", "scope": "read_only", "project_id": project}),
            "a read-only token bound to a project",
        ),
        (
            json!({"name": "p", "project_id": project}),
            "project_id without scope",
        ),
        (json!({"name": "p", "scope": "root"}), "an unknown scope"),
    ] {
        let (status, answer) = berth.call(Method::POST, "/api/tokens", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {answer}");
    }

    let admin = create_token(&berth, json!({"name": "plain"})).await;
    assert_eq!(admin["scope"], "admin", "the default scope: {admin}");
    assert!(admin["project_id"].is_null(), "{admin}");
    let read_only = create_token(&berth, json!({"name": "ro", "scope": "read_only"})).await;
    let bound = create_token(
        &berth,
        json!({"name": "bound", "scope": "project", "project_id": project}),
    )
    .await;
    assert_eq!(bound["project_id"], project, "{bound}");

    let (status, list) = berth.get("/api/tokens").await;
    assert_eq!(status, StatusCode::OK);
    let seen: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["scope"].as_str().unwrap().to_string(),
                t["project_id"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("admin".into(), "admin".into(), None),
            ("plain".into(), "admin".into(), None),
            ("ro".into(), "read_only".into(), None),
            ("bound".into(), "project".into(), Some(project)),
        ],
        "the bootstrap token stays admin; each token shows its scope"
    );

    // The read-only and project tokens may not mint tokens, not even ones narrower than theirs.
    for created in [&read_only, &bound] {
        let token = created["token"].as_str().unwrap();
        let (status, _, answer) = berth
            .call_as(
                token,
                Method::POST,
                "/api/tokens",
                Some(json!({"name": "x", "scope": "project", "project_id": project})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    }
}

/// A project token answers 401 once revoked, and once its project is deleted (the delete
/// revokes it in the same transaction, so the list shows it revoked).
#[tokio::test]
async fn project_tokens_die_with_a_revoke_and_with_their_project() {
    let berth = Berth::start().await;
    let project = create_project(&berth, &unique("doomed"), &["production"]).await;
    let kept = create_project(&berth, &unique("kept"), &["production"]).await;
    let doomed = create_token(
        &berth,
        json!({"name": "doomed", "scope": "project", "project_id": project}),
    )
    .await;
    let revoked = create_token(
        &berth,
        json!({"name": "revoked", "scope": "project", "project_id": kept}),
    )
    .await;
    let survivor = create_token(
        &berth,
        json!({"name": "survivor", "scope": "project", "project_id": kept}),
    )
    .await;
    let secret = |t: &serde_json::Value| t["token"].as_str().unwrap().to_string();
    for (token, id) in [(&doomed, project), (&revoked, kept), (&survivor, kept)] {
        let (status, _, answer) = berth
            .call_as(
                &secret(token),
                Method::GET,
                &format!("/api/projects/{id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "the token works first: {answer}");
    }

    let (status, answer) = berth
        .call(
            Method::DELETE,
            &format!("/api/tokens/{}", revoked["id"]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let (status, answer) = berth
        .call(Method::DELETE, &format!("/api/projects/{project}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");

    for (token, id) in [(&doomed, project), (&revoked, kept)] {
        let (status, headers, answer) = berth
            .call_as(
                &secret(token),
                Method::GET,
                &format!("/api/projects/{id}"),
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{}: {answer}",
            token["name"]
        );
        assert_eq!(headers["content-type"], "application/problem+json");
    }
    let (status, _, answer) = berth
        .call_as(
            &secret(&survivor),
            Method::GET,
            &format!("/api/projects/{kept}"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another project's token lives on: {answer}"
    );

    let (_, list) = berth.get("/api/tokens").await;
    let doomed_row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == doomed["id"])
        .unwrap_or_else(|| panic!("the revoked token is still listed: {list}"));
    assert!(doomed_row["revoked_at"].is_string(), "{doomed_row}");
    assert_eq!(doomed_row["project_id"], project, "{doomed_row}");
}
