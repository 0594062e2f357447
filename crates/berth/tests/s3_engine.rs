//! The S3 engine through the API against Berth's own S3 image: create, stand-in warning,
//! linking with a bucket and a key per project environment, isolation between projects,
//! revocation, names that normalise alike, and data across restarts.

mod common;

use std::collections::BTreeMap;

use berth_server::s3client::{S3Client, S3Endpoint};
use common::*;
use futures_util::stream;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A client for a linked project, through the published port (the variables name the
/// container, which only the Docker network resolves).
fn tenant_client(port: u16, vars: &BTreeMap<String, String>) -> S3Client {
    S3Client::new(S3Endpoint {
        url: format!("http://127.0.0.1:{port}"),
        region: vars["S3_REGION"].clone(),
        access_key: vars["S3_ACCESS_KEY"].clone(),
        secret_key: vars["S3_SECRET_KEY"].clone(),
    })
}

async fn admin_client(berth: &Berth, id: i64, port: u16) -> S3Client {
    let (status, revealed) = berth
        .get(&format!("/api/external-services/{id}/reveal"))
        .await;
    assert_eq!(status, StatusCode::OK, "{revealed}");
    let params = &revealed["parameters"];
    S3Client::new(S3Endpoint {
        url: format!("http://127.0.0.1:{port}"),
        region: "us-east-1".into(),
        access_key: params["access_key"].as_str().unwrap().into(),
        secret_key: params["secret_key"].as_str().unwrap().into(),
    })
}

async fn put(
    client: &S3Client,
    bucket: &str,
    key: &str,
    body: &'static [u8],
) -> Result<u64, String> {
    let chunks = stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(body))]);
    client
        .put_stream(bucket, key, "text/plain", chunks, u64::MAX)
        .await
        .map_err(|e| e.to_string())
}

async fn get(client: &S3Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let response = client.get_object(bucket, key, None).await.unwrap()?;
    Some(response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn an_s3_service_runs_and_says_it_is_a_stand_in() {
    let berth = Berth::start().await;
    let service = berth.create("s3", &unique("objects"), json!({})).await;
    let id = service["id"].as_i64().unwrap();
    assert_eq!(service["status"], "running", "{service}");
    let warnings = service["warnings"].to_string();
    assert!(
        warnings.contains("not proven for production"),
        "the create response does not flag the stand-in: {service}"
    );
    let (_, view) = berth.get(&format!("/api/external-services/{id}")).await;
    assert!(
        view["service"]["warnings"]
            .to_string()
            .contains("not proven for production"),
        "{view}"
    );
    assert_eq!(
        view["current_parameters"]["secret_key"],
        berth_core::mask::MASK,
        "{view}"
    );
    let port = port_of(&service);
    let console: u16 = view["current_parameters"]["console_port"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(console, port);
    let page = reqwest::get(format!("http://127.0.0.1:{console}/status"))
        .await
        .unwrap();
    assert!(page.status().is_success());

    let admin = admin_client(&berth, id, port).await;
    admin.create_bucket("scratch").await.unwrap();
    put(&admin, "scratch", "a.txt", b"hello").await.unwrap();
    assert_eq!(get(&admin, "scratch", "a.txt").await.unwrap(), b"hello");

    // Data survives a stop/start and a port change (a new container on the same volume).
    let (status, body) = berth
        .post_wait(&format!("/api/external-services/{id}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = berth
        .post_wait(&format!("/api/external-services/{id}/start"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_port = free_port();
    let (status, body) = berth
        .call(
            Method::PUT,
            &format!("/api/external-services/{id}"),
            Some(json!({ "parameters": { "port": new_port.to_string() } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let admin = admin_client(&berth, id, new_port).await;
    assert_eq!(get(&admin, "scratch", "a.txt").await.unwrap(), b"hello");
    berth.delete_service(id).await;
}

#[tokio::test]
async fn each_linked_project_gets_its_own_bucket_and_key() {
    let berth = Berth::start().await;
    let service = berth.create("s3", &unique("shared"), json!({})).await;
    let id = service["id"].as_i64().unwrap();
    let port = port_of(&service);
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
        "S3_ENDPOINT",
        "S3_HOST",
        "S3_PORT",
        "S3_BUCKET",
        "S3_REGION",
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
    ] {
        assert!(va.contains_key(name), "{name} missing: {va:?}");
    }
    let bucket = &va["S3_BUCKET"];
    assert!(
        (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
        "{bucket} is not a DNS-safe bucket name"
    );
    assert_ne!(va["S3_BUCKET"], vb["S3_BUCKET"]);
    assert_ne!(va["S3_ACCESS_KEY"], vb["S3_ACCESS_KEY"]);
    assert_eq!(va["AWS_ACCESS_KEY_ID"], va["S3_ACCESS_KEY"]);

    let (ca, cb) = (tenant_client(port, &va), tenant_client(port, &vb));
    put(&ca, &va["S3_BUCKET"], "orders.csv", b"a's data")
        .await
        .unwrap();
    put(&cb, &vb["S3_BUCKET"], "posts.md", b"b's data")
        .await
        .unwrap();
    assert_eq!(
        get(&ca, &va["S3_BUCKET"], "orders.csv").await.unwrap(),
        b"a's data"
    );

    // A's key reaches nothing of B's: no read, no write, no listing, no bucket of its own making.
    let read = ca.get_object(&vb["S3_BUCKET"], "posts.md", None).await;
    assert_eq!(read.err().and_then(|e| e.status()), Some(403));
    let write = put(&ca, &vb["S3_BUCKET"], "planted", b"x").await;
    assert!(write.unwrap_err().contains("403"));
    assert_eq!(
        ca.list_buckets().await.unwrap(),
        vec![va["S3_BUCKET"].clone()]
    );
    let listing = ca.list(&vb["S3_BUCKET"], "", None, 10).await;
    assert_eq!(listing.err().and_then(|e| e.status()), Some(403));
    let created = ca.create_bucket("a-made-this").await;
    assert_eq!(created.err().and_then(|e| e.status()), Some(403));

    // Unlink with revoke: A's key stops working at once; its objects stay.
    let (status, body) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{id}/projects/{a}?revoke=true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"][0]["enforced_now"], true, "{body}");
    let refused = ca.get_object(&va["S3_BUCKET"], "orders.csv", None).await;
    assert_eq!(refused.err().and_then(|e| e.status()), Some(403));
    let admin = admin_client(&berth, id, port).await;
    assert_eq!(
        get(&admin, &va["S3_BUCKET"], "orders.csv").await.unwrap(),
        b"a's data"
    );
    // B is untouched.
    assert_eq!(
        get(&cb, &vb["S3_BUCKET"], "posts.md").await.unwrap(),
        b"b's data"
    );
}

#[tokio::test]
async fn bucket_names_that_normalise_alike_stay_distinct_and_existing_buckets_are_never_taken() {
    let berth = Berth::start().await;
    let service = berth.create("s3", &unique("names"), json!({})).await;
    let id = service["id"].as_i64().unwrap();
    let port = port_of(&service);
    let tag = unique("n");
    // `{tag}-a` + `b-c` and `{tag}-a-b` + `c` both normalise to `{tag}-a-b-c`.
    let first = create_project(&berth, &format!("{tag}-a"), &["b-c"]).await;
    let second = create_project(&berth, &format!("{tag}-a-b"), &["c"]).await;
    // A bucket made by hand with the name a third project would get.
    let admin = admin_client(&berth, id, port).await;
    let third_slug = format!("{tag}-x");
    admin
        .create_bucket(&format!("{third_slug}-production"))
        .await
        .unwrap();
    put(
        &admin,
        &format!("{third_slug}-production"),
        "mine",
        b"hand-made",
    )
    .await
    .unwrap();
    let third = create_project(&berth, &third_slug, &["production"]).await;

    let mut buckets = Vec::new();
    for (project, environment) in [(first, "b-c"), (second, "c"), (third, "production")] {
        let (status, body) = link_project(&berth, id, project).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, vars) = berth
            .get(&format!(
                "/api/external-services/{id}/projects/{project}/environment?environment={environment}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{vars}");
        buckets.push(vars["S3_BUCKET"].as_str().unwrap().to_string());
    }
    assert_ne!(buckets[0], buckets[1], "two projects share a bucket");
    assert_ne!(
        buckets[2],
        format!("{third_slug}-production"),
        "the hand-made bucket was handed to a project"
    );
    assert_eq!(
        get(&admin, &format!("{third_slug}-production"), "mine")
            .await
            .unwrap(),
        b"hand-made"
    );
}
