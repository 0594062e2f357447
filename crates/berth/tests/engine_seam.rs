//! What the engine seam promises every engine, checked through a real service: every path an
//! image declares as a VOLUME gets a named volume beside the data volume (no anonymous volume
//! leaks on recreate), and all of them go away with the service.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// An image like Berth's Redis but declaring more VOLUMEs: one beside the data path (as the
/// official mongo image declares /data/configdb beside /data/db) and one below it.
fn image_with_two_volumes() -> String {
    let tag = "berth-test/redis-more-volumes:1";
    let dir = std::env::temp_dir().join(unique("two-volumes"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM berth/redis:7\nVOLUME /extra /data/nested\n",
    )
    .unwrap();
    let (ok, out) = docker(&["build", "-q", "-t", tag, dir.to_str().unwrap()]);
    assert!(ok, "building the test image: {out}");
    tag.to_string()
}

/// Volumes mounted into a container: (name, destination, is it a named volume Berth made).
fn mounts(container: &str) -> Vec<(String, String)> {
    let (ok, out) = docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Name}} {{.Destination}}\n{{end}}",
        container,
    ]);
    assert!(ok, "{out}");
    let mut mounts: Vec<(String, String)> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, dest) = l.split_once(' ').unwrap();
            (name.to_string(), dest.to_string())
        })
        .collect();
    // Docker lists mounts in no fixed order.
    mounts.sort();
    mounts
}

#[tokio::test]
async fn image_declared_volumes_are_named_kept_across_recreates_and_removed_with_the_service() {
    let image = image_with_two_volumes();
    let berth = Berth::start().await;
    let name = unique("twovol");
    let service = berth
        .create("redis", &name, json!({ "docker_image": image }))
        .await;
    let id = service["id"].as_i64().unwrap();
    let container = service["container_name"].as_str().unwrap().to_string();
    let data = service["volume_name"].as_str().unwrap().to_string();
    let extra = format!("{data}.extra");
    let nested = format!("{data}.data-nested");

    let before = mounts(&container);
    assert!(
        before.contains(&(extra.clone(), "/extra".to_string())),
        "the declared /extra is not the named volume {extra}: {before:?}"
    );
    assert!(
        before.contains(&(nested.clone(), "/data/nested".to_string())),
        "the declared /data/nested is not the named volume {nested}: {before:?}"
    );
    assert_eq!(before.len(), 3, "{before:?}");

    // A port change recreates the container: the same two named volumes come back, nothing
    // anonymous is left behind.
    let (status, body) = berth
        .call(
            reqwest::Method::PUT,
            &format!("/api/external-services/{id}"),
            Some(json!({ "parameters": { "port": free_port().to_string() } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(mounts(&container), before);

    berth.delete_service(id).await;
    assert!(!volume_exists(&data), "{data} left behind");
    assert!(!volume_exists(&extra), "{extra} left behind");
    assert!(!volume_exists(&nested), "{nested} left behind");
}
