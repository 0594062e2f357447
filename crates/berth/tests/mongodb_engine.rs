//! The MongoDB engine through the API, against Berth's stand-in image (SecantusDB; see the
//! README for what that does and does not prove): create with the seed's parameters and the
//! stand-in warning, linking with a database and readWrite user per project environment,
//! isolation between projects, revocation, and data across a port change.

mod common;

use std::collections::BTreeMap;

use berth_server::engines::mongodb::admin;
use common::*;
use mongodb::bson::{Document, doc};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// The project's client through the published port, as its variables say to log in.
fn tenant(port: u16, vars: &BTreeMap<String, String>) -> mongodb::Client {
    admin::client(
        port,
        &vars["MONGODB_USERNAME"],
        &vars["MONGODB_PASSWORD"],
        &vars["MONGODB_DATABASE"],
    )
    .unwrap()
}

fn code<T: std::fmt::Debug>(result: Result<T, mongodb::error::Error>) -> i32 {
    match result {
        Ok(v) => panic!("expected a server error, got {v:?}"),
        Err(e) => admin::error_code(&e).unwrap_or_else(|| panic!("no server code in {e}")),
    }
}

#[tokio::test]
async fn mongodb_services_link_projects_to_their_own_database_only() {
    let berth = Berth::start().await;
    let service = berth.create("mongodb", &unique("docs"), json!({})).await;
    let id = service["id"].as_i64().unwrap();
    assert!(
        service["warnings"].to_string().contains("stand-in"),
        "the create response does not flag the stand-in: {service}"
    );
    let (_, view) = berth.get(&format!("/api/external-services/{id}")).await;
    let params = &view["current_parameters"];
    assert_eq!(params["database"], "admin", "{view}");
    assert_eq!(params["username"], "admin", "{view}");
    assert_eq!(params["password"], berth_core::mask::MASK, "{view}");
    assert!(view["service"]["warnings"].to_string().contains("stand-in"));
    // Read-only parameters stay as they are.
    let (status, body) = berth
        .call(
            Method::PUT,
            &format!("/api/external-services/{id}"),
            Some(json!({ "parameters": { "username": "root" } })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let a = create_project(&berth, &unique("shop"), &["production"]).await;
    let b = create_project(&berth, &unique("blog"), &["production"]).await;
    for project in [a, b] {
        let (status, body) = link_project(&berth, id, project).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (va, vb) = (
        project_env(&berth, id, a, "production").await,
        project_env(&berth, id, b, "production").await,
    );
    for name in [
        "MONGODB_URL",
        "MONGODB_HOST",
        "MONGODB_PORT",
        "MONGODB_DATABASE",
        "MONGODB_USERNAME",
        "MONGODB_PASSWORD",
    ] {
        assert!(va.contains_key(name), "{name} missing: {va:?}");
    }
    assert!(
        va["MONGODB_URL"].ends_with(&format!("authSource={}", va["MONGODB_DATABASE"])),
        "{}",
        va["MONGODB_URL"]
    );
    assert_ne!(va["MONGODB_DATABASE"], vb["MONGODB_DATABASE"]);

    let port = port_of(&service);
    let (ca, cb) = (tenant(port, &va), tenant(port, &vb));
    let own = ca.database(&va["MONGODB_DATABASE"]);
    own.collection::<Document>("orders")
        .insert_one(doc! { "n": 1 })
        .await
        .unwrap();
    cb.database(&vb["MONGODB_DATABASE"])
        .collection::<Document>("posts")
        .insert_one(doc! { "t": "b" })
        .await
        .unwrap();
    // A's user is refused (13, Unauthorized) on B's database for reads, writes and drops.
    let other = ca.database(&vb["MONGODB_DATABASE"]);
    let posts = other.collection::<Document>("posts");
    assert_eq!(code(posts.find_one(doc! {}).await), 13);
    assert_eq!(code(posts.insert_one(doc! { "planted": true }).await), 13);
    assert_eq!(code(other.drop().await), 13);
    assert_eq!(code(ca.list_database_names().await), 13);

    // Unlink with revoke: A's login stops working; its data stays for the admin.
    let (status, body) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{id}/projects/{a}?revoke=true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let relogin = tenant(port, &va);
    assert_eq!(
        code(
            relogin
                .database(&va["MONGODB_DATABASE"])
                .run_command(doc! { "ping": 1 })
                .await
        ),
        18
    );
    let root = admin::client(port, "admin", &berth.password(id).await, "admin").unwrap();
    let kept = root
        .database(&va["MONGODB_DATABASE"])
        .collection::<Document>("orders")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(kept, 1);

    // A port change recreates the container on the same volume: B's data and login stay.
    let new_port = free_port();
    let (status, body) = berth
        .call(
            Method::PUT,
            &format!("/api/external-services/{id}"),
            Some(json!({ "parameters": { "port": new_port.to_string() } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cb = tenant(new_port, &vb);
    let found = cb
        .database(&vb["MONGODB_DATABASE"])
        .collection::<Document>("posts")
        .find_one(doc! {})
        .await
        .unwrap();
    assert_eq!(found.unwrap().get_str("t").unwrap(), "b");
}
