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
    let mut secrets = Vec::new();
    for svc in [&pg, &rd] {
        let id = svc["id"].as_i64().unwrap();
        secrets.push(berth.password(id).await);
        // Exercise lifecycle paths that log.
        berth
            .get(&format!("/api/external-services/{id}/health"))
            .await;
        berth
            .post_wait(&format!("/api/external-services/{id}/stop"), None)
            .await;
        berth
            .post_wait(&format!("/api/external-services/{id}/start"), None)
            .await;
    }
    secrets.push(berth.token.clone());

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
    for secret in &secrets[..2] {
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
    for svc in [&pg, &rd] {
        berth.delete_service(svc["id"].as_i64().unwrap()).await;
    }
}
