//! Backups of Berth's own state, as a user rebuilding a server would use them: a passphrase
//! set (only its public key kept), the state sealed and stored on a destination, then opened
//! offline by `berth state restore` into a new data directory from which `berth serve` comes
//! back with the same services, credentials and destinations. Wrong passphrases, an existing
//! state and damaged archives are refused without writing anything.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::backups::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSPHRASE: &str = "a long and private passphrase";

async fn set_key(berth: &Berth) -> Value {
    let (status, key) = berth
        .call(
            Method::PUT,
            "/api/backups/state/key",
            Some(json!({ "passphrase": PASSPHRASE })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{key}");
    key
}

async fn run_state_backup(berth: &Berth, destination: i64) -> Value {
    let (status, backup) = berth
        .call(
            Method::POST,
            "/api/backups/state/run",
            Some(json!({ "s3_source_id": destination })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{backup}");
    assert_eq!(backup["state"], "succeeded", "{backup}");
    backup
}

/// `berth state restore` with these arguments: success, and stderr.
fn restore_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["state", "restore"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn a_sealed_state_backup_rebuilds_the_server_from_the_passphrase_alone() {
    let scratch = tempfile::tempdir().unwrap();
    let mut berth = berth().await;
    let (s3, s3_client, _) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "state-backups").await;
    let redis = berth.create("redis", &unique("st-redis"), json!({})).await;
    let redis_id = redis["id"].as_i64().unwrap();
    let password = berth.password(redis_id).await;

    // Without a key nothing is backed up; a short passphrase is refused.
    let (status, refused) = berth
        .call(
            Method::POST,
            "/api/backups/state/run",
            Some(json!({ "s3_source_id": destination })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("passphrase"));
    let (status, weak) = berth
        .call(
            Method::PUT,
            "/api/backups/state/key",
            Some(json!({ "passphrase": "short" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{weak}");

    let key = set_key(&berth).await;
    assert_eq!(key["configured"], true);
    let (_, shown) = berth.get("/api/backups/state/key").await;
    assert_eq!(shown["fingerprint"], key["fingerprint"]);
    assert!(!shown.to_string().contains(PASSPHRASE), "{shown}");

    let backup = run_state_backup(&berth, destination).await;
    assert_eq!(backup["service_id"], Value::Null, "{backup}");
    let (_, listed) = berth.get("/api/backups/state").await;
    assert_eq!(listed[0]["id"], backup["id"], "{listed}");
    // The server cannot open it, so it does not pretend to restore or verify it.
    let id = backup["id"].as_i64().unwrap();
    let (status, body) = berth
        .call(Method::POST, &format!("/api/backups/{id}/verify"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("berth state restore")
    );

    // The stored archive: secret.key is not in it in clear.
    let (_, full) = berth.get(&format!("/api/backups/{id}")).await;
    let (bucket, _) = location(&full);
    let keys = stored_keys(&s3_client, &full).await;
    let archive_key = keys
        .iter()
        .find(|k| k.ends_with("state.berthstate"))
        .unwrap_or_else(|| panic!("no archive in {keys:?}"));
    let archive = s3_client
        .get_object(&bucket, archive_key, None)
        .await
        .unwrap()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let secret_key = std::fs::read(berth.data_dir.join("secret.key")).unwrap();
    assert!(!archive.windows(secret_key.len()).any(|w| w == secret_key));
    let archive_path = write_file(scratch.path(), "state.berthstate", &archive);

    // Wrong passphrase: refused as such, nothing written.
    let restored = scratch.path().join("restored");
    let restored_arg = restored.display().to_string();
    let wrong = write_file(scratch.path(), "wrong", b"another long passphrase\n");
    let right = write_file(
        scratch.path(),
        "right",
        format!("{PASSPHRASE}\n").as_bytes(),
    );
    let (ok, err) = restore_cli(&[
        &archive_path,
        "--passphrase-file",
        &wrong,
        "--data-dir",
        &restored_arg,
    ]);
    assert!(!ok);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert!(!restored.join("berth.db").exists());

    // A damaged archive: refused, nothing written.
    let mut damaged = archive.to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x55;
    let damaged = write_file(scratch.path(), "damaged", &damaged);
    let (ok, err) = restore_cli(&[
        &damaged,
        "--passphrase-file",
        &right,
        "--data-dir",
        &restored_arg,
    ]);
    assert!(!ok);
    assert!(err.contains("damaged"), "{err}");
    assert!(!restored.join("berth.db").exists());

    // --check opens and counts without writing; then the real restore.
    let (ok, err) = restore_cli(&[
        &archive_path,
        "--passphrase-file",
        &right,
        "--data-dir",
        &restored_arg,
        "--check",
    ]);
    assert!(ok, "{err}");
    assert!(!restored.join("berth.db").exists());
    let (ok, err) = restore_cli(&[
        &archive_path,
        "--passphrase-file",
        &right,
        "--data-dir",
        &restored_arg,
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(restored.join("secret.key")).unwrap(),
        secret_key
    );
    // An existing state is never replaced without --force.
    let (ok, err) = restore_cli(&[
        &archive_path,
        "--passphrase-file",
        &right,
        "--data-dir",
        &restored_arg,
    ]);
    assert!(!ok);
    assert!(err.contains("--force"), "{err}");

    // The old server is gone; a new one on the restored state has everything back: the
    // service with its credentials, and the destination's keys decrypt (it can probe it).
    berth.kill9();
    berth.data_dir = restored.clone();
    berth.spawn().await;
    let (status, svc) = berth
        .get(&format!("/api/external-services/{redis_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{svc}");
    assert_eq!(berth.password(redis_id).await, password);
    let (status, probed) = berth
        .call(
            Method::POST,
            &format!("/api/backups/s3-sources/{destination}/test"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{probed}");
    assert_eq!(probed["success"], true, "{probed}");
    let mut conn = redis_conn(port_of(&svc["service"]), &password).await;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn state_schedules_seal_the_state_and_keep_only_their_own_retention() {
    let berth = berth().await;
    let (s3, _, _) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "state-schedule").await;
    let schedule = |extra: Value| {
        let mut body = json!({
            "name": unique("state"),
            "s3_source_id": destination,
            "schedule_expression": "0 3 * * *",
            "target": "berth_state",
            "keep_last": 1,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    // Before a key is set, a state schedule is refused (it could never succeed).
    let (status, body) = berth
        .call(
            Method::POST,
            "/api/backups/schedules",
            Some(schedule(json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    set_key(&berth).await;
    for extra in [json!({"service_id": s3}), json!({"verify": true})] {
        let (status, body) = berth
            .call(
                Method::POST,
                "/api/backups/schedules",
                Some(schedule(extra)),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (status, created) = berth
        .call(
            Method::POST,
            "/api/backups/schedules",
            Some(schedule(json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["target"], "berth_state");
    let id = created["id"].as_i64().unwrap();

    let mut made = Vec::new();
    for run in 0..2 {
        if run > 0 {
            // Backup ids (and so "newest") have one-second resolution.
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        let (status, started) = berth
            .call(
                Method::POST,
                &format!("/api/backups/schedules/{id}/run"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{started}");
        let backup = started["backups"][0]["id"].as_i64().unwrap();
        let done = wait_backup_done(&berth, backup).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(done["service_type"], "berth-state", "{done}");
        made.push(backup);
    }
    // keep_last 1: the older state backup goes, the newer stays.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let first = backup(&berth, made[0]).await;
        if first["state"] == "deleted" {
            break;
        }
        assert!(Instant::now() < deadline, "never pruned: {first}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(backup(&berth, made[1]).await["state"], "succeeded");

    // Its last success is a gauge an alert can watch, like a service's.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::get(berth.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(
            "berth_backup_last_success_timestamp_seconds{service_id=\"0\",service_name=\"berth\"}",
        ) {
            break;
        }
        assert!(Instant::now() < deadline, "no state gauge in:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The CLI against this server (its admin token from the data directory).
fn cli(berth: &Berth, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("BERTH_API_URL", berth.url(""))
        .env("BERTH_DATA_DIR", &berth.data_dir)
        .env_remove("BERTH_TOKEN")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

#[tokio::test]
async fn the_cli_seals_the_state_and_restores_the_newest_from_an_s3_prefix() {
    let scratch = tempfile::tempdir().unwrap();
    let berth = berth().await;
    let (s3, _, _) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "cli-state").await;
    let dest = destination.to_string();
    let passphrase = write_file(scratch.path(), "pass", format!("{PASSPHRASE}\n").as_bytes());

    // No terminal and no file: a one-line error, not a hang.
    let out = cli(&berth, &["state", "key", "set"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--passphrase-file"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(
        &berth,
        &["state", "key", "set", "--passphrase-file", &passphrase],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(PASSPHRASE) && !text(&out.stderr).contains(PASSPHRASE));
    let out = cli(&berth, &["state", "key", "show"]);
    assert!(
        text(&out.stdout).contains("argon2id"),
        "{}",
        text(&out.stdout)
    );

    let out = cli(&berth, &["state", "backup", "--to", &dest]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The newer one holds a service the older one does not.
    let redis = berth.create("redis", &unique("st-cli"), json!({})).await;
    let out = cli(&berth, &["state", "backup", "--to", &dest]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = cli(&berth, &["--json", "state", "list"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let out = cli(
        &berth,
        &[
            "backup", "schedule", "add", "st", "--state", "--to", &dest, "--cron", "@daily",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Restore from the destination's prefix, with its keys: the newest backup is taken.
    let (_, s3_svc) = berth.get(&format!("/api/external-services/{s3}")).await;
    let (_, revealed) = berth
        .get(&format!("/api/external-services/{s3}/reveal"))
        .await;
    let restored = scratch.path().join("restored");
    let out = Command::new(BIN)
        .args(["--json", "state", "restore", "s3://cli-state/nightly"])
        .args([
            "--endpoint",
            &format!("http://127.0.0.1:{}", port_of(&s3_svc["service"])),
        ])
        .args(["--passphrase-file", &passphrase, "--data-dir"])
        .arg(&restored)
        .env(
            "AWS_ACCESS_KEY_ID",
            revealed["parameters"]["access_key"].as_str().unwrap(),
        )
        .env(
            "AWS_SECRET_ACCESS_KEY",
            revealed["parameters"]["secret_key"].as_str().unwrap(),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["table_rows"]["services"], 2, "{report}");
    let restored_db = restored.join("berth.db");
    assert!(restored_db.exists());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}?mode=ro",
        restored_db.display()
    ))
    .await
    .unwrap();
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM services")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(
        names.contains(&redis["name"].as_str().unwrap().to_string()),
        "{names:?}"
    );
}
