//! Secrets: generated passwords never appear in clear in the state database, the server log
//! (at debug level), list/get responses or the CLI's default output.

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn passwords_stay_out_of_state_logs_and_default_output() {
    let berth = Berth::start().await;
    let pg = berth.create("postgres", &unique("sec-pg"), json!({})).await;
    let rd = berth.create("redis", &unique("sec-rd"), json!({})).await;
    let mg = berth.create("mongodb", &unique("sec-mg"), json!({})).await;
    let s3 = berth.create("s3", &unique("sec-s3"), json!({})).await;
    let services = [&pg, &rd, &mg, &s3];
    let mut secrets = Vec::new();
    for svc in services {
        let id = svc["id"].as_i64().unwrap();
        // The admin secret: `password`, or S3's `secret_key`.
        let (_, revealed) = berth
            .get(&format!("/api/external-services/{id}/reveal"))
            .await;
        let params = &revealed["parameters"];
        let admin_secret = params["password"]
            .as_str()
            .or(params["secret_key"].as_str())
            .unwrap();
        secrets.push(admin_secret.to_string());
        // Exercise lifecycle paths that log.
        berth
            .get(&format!("/api/external-services/{id}/health?detail=true"))
            .await;
        berth
            .post_wait(&format!("/api/external-services/{id}/stop"), None)
            .await;
        berth
            .post_wait(&format!("/api/external-services/{id}/start"), None)
            .await;
    }
    let admins = services.len();
    secrets.push(berth.token.clone());
    // Link all of them to a project: tenant passwords are secrets too.
    let (_, project) = berth
        .call(
            reqwest::Method::POST,
            "/api/projects",
            Some(json!({"name": unique("secproj"), "environments": ["production", "staging"]})),
        )
        .await;
    let project_id = project["id"].as_i64().unwrap();
    for svc in services {
        let (status, body) = berth
            .call(
                reqwest::Method::POST,
                &format!("/api/external-services/{}/projects", svc["id"]),
                Some(json!({"project_id": project_id})),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
        for env in ["production", "staging"] {
            let (_, vars) = berth
                .get(&format!(
                    "/api/external-services/{}/projects/{project_id}/environment?environment={env}",
                    svc["id"]
                ))
                .await;
            for (name, value) in vars.as_object().unwrap() {
                let value = value.as_str().unwrap().to_string();
                // POSTGRES_PASSWORD and PGPASSWORD carry the same secret, S3_SECRET_KEY and
                // AWS_SECRET_ACCESS_KEY too.
                let secret = name.ends_with("PASSWORD") || name.contains("SECRET");
                if secret && !secrets.contains(&value) {
                    secrets.push(value);
                }
            }
        }
    }
    assert_eq!(
        secrets.len(),
        admins + 1 + 2 * admins,
        "an admin secret per service, the token, a tenant secret per service and environment"
    );
    let mut previews = String::new();
    for svc in services {
        let (_, masked) = berth
            .get(&format!(
                "/api/external-services/{}/preview-environment-masked",
                svc["id"]
            ))
            .await;
        let (_, links) = berth
            .get(&format!("/api/external-services/{}/projects", svc["id"]))
            .await;
        previews.push_str(&masked.to_string());
        previews.push_str(&links.to_string());
    }

    let (_, list) = berth.get("/api/external-services").await;
    let (_, one) = berth
        .get(&format!("/api/external-services/{}", pg["id"]))
        .await;
    let cli = Command::new(BIN)
        .args(["service", "list"])
        .env("BERTH_API_URL", berth.url(""))
        .env("BERTH_DATA_DIR", &berth.data_dir)
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let cli_show = Command::new(BIN)
        .args(["service", "show", pg["name"].as_str().unwrap()])
        .env("BERTH_API_URL", berth.url(""))
        .env("BERTH_DATA_DIR", &berth.data_dir)
        .output()
        .unwrap();
    assert!(cli_show.status.success());

    let state = read_state_files(&berth.data_dir);
    let log = berth.log();
    for secret in &secrets {
        assert!(
            !contains(&state, secret),
            "a secret is in clear in the state files"
        );
        assert!(
            !log.contains(secret.as_str()),
            "a secret is in the debug log"
        );
    }
    let cli_links = Command::new(BIN)
        .args(["service", "links", pg["name"].as_str().unwrap()])
        .env("BERTH_API_URL", berth.url(""))
        .env("BERTH_DATA_DIR", &berth.data_dir)
        .output()
        .unwrap();
    assert!(cli_links.status.success());
    for (i, secret) in secrets.iter().enumerate() {
        if i == admins {
            continue; // the token: sent by the CLI, never printed
        }
        assert!(
            !previews.contains(secret.as_str()),
            "a preview or link listing leaks a password"
        );
        assert!(
            !contains(&cli_links.stdout, secret),
            "`service links` prints a password"
        );
        assert!(
            !list.to_string().contains(secret.as_str()),
            "list response leaks a password"
        );
    }
    for secret in &secrets[..admins] {
        assert!(
            !list.to_string().contains(secret.as_str()),
            "list response leaks a password"
        );
        assert!(
            !one.to_string().contains(secret.as_str()),
            "get response leaks a password"
        );
        assert!(!contains(&cli.stdout, secret) && !contains(&cli.stderr, secret));
        assert!(!contains(&cli_show.stdout, secret) && !contains(&cli_show.stderr, secret));
    }
    // Key and token files are private.
    use std::os::unix::fs::PermissionsExt;
    for file in ["secret.key", "admin-token"] {
        let mode = std::fs::metadata(berth.data_dir.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    // Whoever can read the container's configuration (`docker inspect`) or copy its data
    // directory (a physical backup) learns no admin password.
    for (svc, admin_password) in services.into_iter().zip(&secrets[..admins]) {
        let container = svc["container_name"].as_str().unwrap();
        let (ok, inspect) = docker(&["inspect", container]);
        assert!(ok);
        assert!(
            !inspect.contains(admin_password.as_str()),
            "`docker inspect {container}` shows the admin password"
        );
        let volume = format!("{}:/d:ro", svc["volume_name"].as_str().unwrap());
        let image = svc["parameters"]["docker_image"].as_str().unwrap();
        let grep = Command::new("docker")
            .args(["run", "--rm", "--entrypoint", "grep", "-v", &volume, image])
            .args(["-rqF", "--", admin_password, "/d"])
            .status()
            .unwrap();
        assert_eq!(
            grep.code(),
            Some(1),
            "the data volume of {container} holds the admin password in clear (or grep failed)"
        );
    }
    for svc in services {
        let path = format!("/api/external-services/{}?force=true&wait=true", svc["id"]);
        let (status, _) = berth.call(reqwest::Method::DELETE, &path, None).await;
        assert_eq!(status, reqwest::StatusCode::OK);
    }
}
