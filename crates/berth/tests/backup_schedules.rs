//! Backup schedules and retention through the API, against real PostgreSQL and Berth's S3
//! server in containers. Berth runs with schedules allowed every 5 s
//! (`BERTH_BACKUP_SCHEDULE_MIN_INTERVAL`) so a test sees several runs in seconds; the
//! databases are tiny, so a backup takes about a second.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use berth_core::backup::BackupId;
use berth_server::s3client::S3Client;
use common::backups::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const EVERY_5S: &str = "*/5 * * * * *";
/// Never fires during a test (New Year's midnight).
const YEARLY: &str = "0 0 1 1 *";

async fn berth() -> Berth {
    Berth::start_with(
        vec![
            ("BERTH_RECONCILE_INTERVAL", "2"),
            ("BERTH_BACKUP_SCHEDULE_MIN_INTERVAL", "5"),
        ],
        vec![],
    )
    .await
}

/// An S3 service with a destination in it, and a small PostgreSQL service.
async fn setup(berth: &Berth, bucket: &str) -> (S3Client, i64, i64) {
    let (s3, client, _) = s3_service(berth).await;
    let destination = managed_destination(berth, s3, bucket).await;
    let pg = berth
        .create("postgres", &unique("sched-pg"), json!({}))
        .await;
    (client, destination, pg["id"].as_i64().unwrap())
}

async fn create_schedule(berth: &Berth, body: Value) -> Value {
    let (status, created) = berth
        .call(Method::POST, "/api/backups/schedules", Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn schedule_backups(berth: &Berth, schedule: i64) -> Vec<Value> {
    let (status, list) = berth
        .get(&format!("/api/backups/schedules/{schedule}/backups"))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().unwrap().clone()
}

/// Waits until a schedule has made at least `n` backups, all ended; returns them.
async fn wait_schedule_backups(berth: &Berth, schedule: i64, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = schedule_backups(berth, schedule).await;
        if list.len() >= n && list.iter().all(|b| b["state"] != "running") {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "schedule {schedule} made {} backup(s), {n} expected: {list:?}\n{}",
            list.len(),
            berth.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Backups per run (`created_by` names the run), as counts.
fn per_run(backups: &[Value]) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    for b in backups {
        *runs
            .entry(b["created_by"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    runs
}

async fn set_enabled(berth: &Berth, schedule: i64, enabled: bool) -> Value {
    let action = if enabled { "enable" } else { "disable" };
    let (status, body) = berth
        .call(
            Method::PATCH,
            &format!("/api/backups/schedules/{schedule}/{action}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["enabled"], enabled, "{body}");
    body
}

/// Backup folders (`backup_id`s) under Berth's root on the destination, with whether each
/// has its manifest, read straight from S3.
async fn folders(client: &S3Client, bucket: &str) -> BTreeMap<String, bool> {
    let mut found = BTreeMap::new();
    for object in client.list_all(bucket, "nightly/berth/").await.unwrap() {
        // nightly/berth/{type}/{name}-{id}/{backup_id}/{object}
        let parts: Vec<&str> = object.key.splitn(6, '/').collect();
        *found.entry(parts[4].to_string()).or_default() |= parts[5] == "manifest.json";
    }
    found
}

async fn put(client: &S3Client, bucket: &str, key: &str) {
    let body = futures_util::stream::iter([Ok::<_, String>(bytes::Bytes::from_static(b"{}"))]);
    client
        .put_stream(bucket, key, "application/json", body, u64::MAX)
        .await
        .unwrap();
}

#[tokio::test]
async fn schedules_are_validated_listed_enabled_and_removed() {
    let berth = berth().await;
    let (s3, _, _) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "crud").await;
    let pg = berth
        .create("postgres", &unique("sched-pg"), json!({}))
        .await;
    let pg_id = pg["id"].as_i64().unwrap();
    let body = json!({
        "name": "nightly",
        "backup_type": "full",
        "retention_period": 7,
        "s3_source_id": destination,
        "schedule_expression": "30 3 * * *",
        "enabled": true,
        "tags": ["prod"],
        "description": "every night",
        "service_id": pg_id,
        "keep_last": 3,
        "max_runtime_secs": 600,
    });
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let created = create_schedule(&berth, body.clone()).await;
    let id = created["id"].as_i64().unwrap();
    for field in [
        "name",
        "backup_type",
        "retention_period",
        "s3_source_id",
        "schedule_expression",
        "enabled",
        "tags",
        "description",
        "service_id",
        "keep_last",
        "max_runtime_secs",
    ] {
        assert_eq!(created[field], body[field], "{field}: {created}");
    }
    // Temps' epoch milliseconds; armed at the next 03:30 UTC, never run yet.
    let next = created["next_run"].as_i64().unwrap();
    assert!(next > before && next - before <= 86_400_000, "{created}");
    assert_eq!(next % 86_400_000, (3 * 3600 + 30 * 60) * 1000, "{created}");
    assert!(created["last_run"].is_null());
    assert!(created["created_at"].as_i64().unwrap() >= before - 1000);

    let (_, listed) = berth.get("/api/backups/schedules").await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], id);
    let one = format!("/api/backups/schedules/{id}");
    let (status, got) = berth.get(&one).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, created);

    // Bad input: the reason, and nothing stored.
    let refused = |patch: Value| {
        let mut request = body.clone();
        request["name"] = json!(unique("bad"));
        for (k, v) in patch.as_object().unwrap() {
            request[k] = v.clone();
        }
        request
    };
    for (patch, status, why) in [
        (
            json!({"schedule_expression": "61 * * * *"}),
            StatusCode::BAD_REQUEST,
            "invalid cron expression \"61 * * * *\"",
        ),
        (
            json!({"schedule_expression": "* * * *"}),
            StatusCode::BAD_REQUEST,
            "has 4 fields",
        ),
        (
            json!({"schedule_expression": "*/2 * * * * *"}),
            StatusCode::BAD_REQUEST,
            "fires more often than once every 5 s",
        ),
        (
            json!({"schedule_expression": "0 0 31 2 *"}),
            StatusCode::BAD_REQUEST,
            "never fires",
        ),
        (
            json!({"backup_type": "incremental"}),
            StatusCode::BAD_REQUEST,
            "backup_type",
        ),
        (
            json!({"retention_period": -1}),
            StatusCode::BAD_REQUEST,
            "retention_period",
        ),
        (
            json!({"max_runtime_secs": 0}),
            StatusCode::BAD_REQUEST,
            "max_runtime_secs",
        ),
        (json!({"name": ""}), StatusCode::BAD_REQUEST, "name"),
        (
            json!({"s3_source_id": 9999}),
            StatusCode::NOT_FOUND,
            "destination",
        ),
        (
            json!({"service_id": 9999}),
            StatusCode::NOT_FOUND,
            "service",
        ),
        (
            json!({"service_id": s3}),
            StatusCode::BAD_REQUEST,
            "cannot be backed up",
        ),
    ] {
        let (got, problem) = berth
            .call(
                Method::POST,
                "/api/backups/schedules",
                Some(refused(patch.clone())),
            )
            .await;
        assert_eq!(got, status, "{patch}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(why),
            "{patch}: {problem}"
        );
    }
    let (status, problem) = berth
        .call(Method::POST, "/api/backups/schedules", Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "the name is taken: {problem}");
    let (_, listed) = berth.get("/api/backups/schedules").await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // Disabled: no next run; enabled again: the next occurrence, no catch-up.
    let disabled = set_enabled(&berth, id, false).await;
    assert!(disabled["next_run"].is_null(), "{disabled}");
    let enabled = set_enabled(&berth, id, true).await;
    assert_eq!(enabled["next_run"], created["next_run"], "{enabled}");

    // Reads are open to read-only tokens; changes are not.
    let reader = create_token(&berth, json!({"name": "reader", "scope": "read_only"})).await;
    let reader = reader["token"].as_str().unwrap();
    let (status, _, _) = berth.call_as(reader, Method::GET, &one, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = berth
        .call_as(reader, Method::PATCH, &format!("{one}/disable"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The destination cannot go while a schedule writes to it.
    let (status, problem) = berth
        .call(
            Method::DELETE,
            &format!("/api/backups/s3-sources/{destination}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    let (status, _) = berth.call(Method::DELETE, &one, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = berth.get(&one).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = berth.call(Method::DELETE, &one, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = berth.get(&format!("{one}/backups")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = berth
        .call(
            Method::DELETE,
            &format!("/api/backups/s3-sources/{destination}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_schedule_backs_up_on_time_and_stops_when_disabled() {
    let berth = berth().await;
    let (client, destination, pg) = setup(&berth, "on-time").await;
    let schedule = create_schedule(
        &berth,
        json!({
            "name": "often",
            "backup_type": "full",
            "retention_period": 7,
            "s3_source_id": destination,
            "schedule_expression": EVERY_5S,
            "enabled": true,
            "tags": ["every-5s"],
            "service_id": pg,
        }),
    )
    .await;
    let id = schedule["id"].as_i64().unwrap();

    let made = wait_schedule_backups(&berth, id, 2).await;
    for b in &made {
        assert_eq!(b["state"], "succeeded", "{b}");
        assert_eq!(b["schedule_id"], id, "{b}");
        assert_eq!(b["service_id"], pg, "{b}");
        assert_eq!(b["tags"], json!(["every-5s"]), "{b}");
        assert!(
            b["created_by"]
                .as_str()
                .unwrap()
                .starts_with(&format!("schedule:{id}/run:")),
            "{b}"
        );
        // expires_at = started + 7 days (to the second).
        let ttl = b["expires_at"].as_i64().unwrap() - b["started_at"].as_i64().unwrap();
        assert!((ttl - 7 * 86_400_000).abs() <= 2_000, "{b}");
        assert!(!stored_keys(&client, b).await.is_empty(), "{b}");
    }
    // Runs fire on their occurrences: 5 s apart, one backup each.
    let starts: Vec<i64> = made
        .iter()
        .map(|b| b["started_at"].as_i64().unwrap())
        .collect();
    assert!(starts[0] - starts[1] >= 4_000, "{starts:?}");
    assert!(per_run(&made).values().all(|n| *n == 1), "{made:?}");
    let (_, got) = berth.get(&format!("/api/backups/schedules/{id}")).await;
    assert!(
        got["last_run"].as_i64().unwrap() >= starts[0] - 1_000,
        "{got}"
    );
    assert!(got["next_run"].as_i64().unwrap() > got["last_run"].as_i64().unwrap());
    // Also listed with the service's backups.
    let (_, of_service) = berth
        .get(&format!("/api/external-services/{pg}/backups"))
        .await;
    assert!(
        of_service.as_array().unwrap().len() >= made.len(),
        "{of_service}"
    );

    // Disabled: what runs finishes, nothing new starts.
    set_enabled(&berth, id, false).await;
    let settled = wait_schedule_backups(&berth, id, 0).await.len();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let after = schedule_backups(&berth, id).await;
    assert_eq!(after.len(), settled, "a disabled schedule ran: {after:?}");
}

#[tokio::test]
async fn a_crash_around_a_due_run_neither_skips_nor_doubles_it() {
    let mut berth = berth().await;
    let (_, destination, pg) = setup(&berth, "crashes").await;
    let schedule = create_schedule(
        &berth,
        json!({
            "name": "crashy",
            "backup_type": "full",
            "retention_period": 0,
            "s3_source_id": destination,
            "schedule_expression": EVERY_5S,
            "enabled": false,
            "tags": [],
            "service_id": pg,
        }),
    )
    .await;
    let id = schedule["id"].as_i64().unwrap();

    // 1. Killed right after the due run was recorded (next_run moved), before any backup
    // started: the restarted Berth starts that run's backup, once.
    berth.kill9();
    berth
        .spawn_with_env(&[("BERTH_CRASHPOINT", "schedule.after_run_recorded")])
        .await;
    set_enabled(&berth, id, true).await;
    assert!(
        berth.wait_exit(Duration::from_secs(30)),
        "the run never became due:\n{}",
        berth.log()
    );
    berth.spawn().await;
    let first = wait_schedule_backups(&berth, id, 1).await;
    let first_run = first.last().unwrap()["created_by"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(first_run, format!("schedule:{id}/run:1"), "{first:?}");
    assert_eq!(first.last().unwrap()["state"], "succeeded", "{first:?}");

    // 2. Killed right after a backup of the run started, before the run was marked
    // dispatched: that backup is failed as interrupted, and not started a second time.
    set_enabled(&berth, id, false).await;
    let settled = wait_schedule_backups(&berth, id, 1).await;
    berth.kill9();
    berth
        .spawn_with_env(&[("BERTH_CRASHPOINT", "schedule.after_backup_started")])
        .await;
    set_enabled(&berth, id, true).await;
    assert!(
        berth.wait_exit(Duration::from_secs(30)),
        "no backup started:\n{}",
        berth.log()
    );
    berth.spawn().await;
    let cut = wait_schedule_backups(&berth, id, settled.len() + 1).await;
    let failed: Vec<&Value> = cut.iter().filter(|b| b["state"] != "succeeded").collect();
    assert_eq!(failed.len(), 1, "{cut:?}");
    let interrupted = failed[0];
    assert!(
        interrupted["error_message"]
            .as_str()
            .unwrap()
            .contains("berth stopped"),
        "{interrupted}"
    );
    let cut_run = interrupted["created_by"].as_str().unwrap().to_string();

    // The schedule goes on: later runs succeed; no run ever has two backups, and no
    // recorded run has none.
    let later = wait_schedule_backups(&berth, id, cut.len() + 1).await;
    set_enabled(&berth, id, false).await;
    let all = wait_schedule_backups(&berth, id, later.len()).await;
    let runs = per_run(&all);
    assert!(
        runs.values().all(|n| *n == 1),
        "a run was doubled: {runs:?}"
    );
    let numbers: Vec<i64> = runs.keys().map(|k| run_number(k)).collect();
    let max = *numbers.iter().max().unwrap();
    assert_eq!(
        numbers.len() as i64,
        max,
        "a recorded run was skipped: {runs:?}"
    );
    assert!(
        all.iter()
            .filter(|b| b["created_by"] != cut_run.as_str())
            .all(|b| b["state"] == "succeeded"),
        "{all:?}"
    );
}

fn run_number(created_by: &str) -> i64 {
    created_by.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_plain_kill_9_after_a_due_run_catches_up_once() {
    let mut berth = berth().await;
    let (_, destination, pg) = setup(&berth, "killed").await;
    let schedule = create_schedule(
        &berth,
        json!({
            "name": "killed",
            "backup_type": "full",
            "retention_period": 0,
            "s3_source_id": destination,
            "schedule_expression": EVERY_5S,
            "enabled": true,
            "tags": [],
            "service_id": pg,
        }),
    )
    .await;
    let id = schedule["id"].as_i64().unwrap();
    // Killed the moment a run has been recorded (last_run set), then down for three
    // occurrences.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, s) = berth.get(&format!("/api/backups/schedules/{id}")).await;
        if !s["last_run"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    berth.kill9();
    tokio::time::sleep(Duration::from_secs(16)).await;
    let restarted = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    berth.spawn().await;
    // The run recorded before the kill has exactly one backup (dispatched then, or after
    // the restart); the missed occurrences make one catch-up run, not three.
    let all = wait_schedule_backups(&berth, id, 2).await;
    set_enabled(&berth, id, false).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = wait_schedule_backups(&berth, id, all.len()).await;
    let runs = per_run(&all);
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
    assert!(
        runs.contains_key(&format!("schedule:{id}/run:1")),
        "{runs:?}"
    );
    // In the first 3 s after the restart: the one catch-up run, and at most one regular
    // occurrence (5 s apart); a catch-up per missed occurrence would make three or more.
    let run_1 = format!("schedule:{id}/run:1");
    let soon_after: Vec<&Value> = all
        .iter()
        .filter(|b| b["created_by"] != run_1.as_str())
        .filter(|b| {
            let at = b["started_at"].as_i64().unwrap();
            at >= restarted - 1_000 && at < restarted + 3_000
        })
        .collect();
    assert!(
        (1..=2).contains(&soon_after.len()),
        "one catch-up run expected: {soon_after:?}"
    );
    let numbers: Vec<i64> = runs.keys().map(|k| run_number(k)).collect();
    assert_eq!(
        numbers.len() as i64,
        *numbers.iter().max().unwrap(),
        "{runs:?}"
    );
}

#[tokio::test]
async fn retention_keeps_the_newest_and_prunes_only_what_it_should() {
    let berth = berth().await;
    let (client, destination, pg) = setup(&berth, "retained").await;
    let bucket = "retained";
    // Three manual backups, then things retention must not touch: another service's folder,
    // a key outside Berth's layout, and a folder of this service newer than any backup
    // without a manifest (a failure worth keeping for diagnosis); and one it may delete: an
    // old manifest-less folder of this service Berth has no record of.
    let mut manual = Vec::new();
    for _ in 0..3 {
        let (status, ran) = berth
            .call(
                Method::POST,
                &format!("/api/backups/external-services/{pg}/run"),
                Some(json!({"s3_source_id": destination})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{ran}");
        manual.push(ran["backup_id"].as_str().unwrap().to_string());
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let (_, first) = berth
        .get(&format!("/api/external-services/{pg}/backups"))
        .await;
    let (_, folder) = location(&first[0]);
    let service_folder = folder
        .trim_end_matches('/')
        .rsplit_once('/')
        .unwrap()
        .0
        .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let newer_failed = BackupId::new(now + 3_600_000, [1, 2, 3]).unwrap();
    let older_orphan = BackupId::new(now - 86_400_000, [4, 5, 6]).unwrap();
    let foreign = "nightly/berth/postgres/someone-else-4242/20200101T000000Z-000000/manifest.json";
    let outside = "nightly/notes.txt";
    put(
        &client,
        bucket,
        &format!("{service_folder}/{newer_failed}/db-x.dump"),
    )
    .await;
    put(
        &client,
        bucket,
        &format!("{service_folder}/{older_orphan}/db-x.dump"),
    )
    .await;
    put(&client, bucket, foreign).await;
    put(&client, bucket, outside).await;

    let schedule = create_schedule(
        &berth,
        json!({
            "name": "keep-two",
            "backup_type": "full",
            "retention_period": 0,
            "s3_source_id": destination,
            "schedule_expression": YEARLY,
            "enabled": true,
            "tags": [],
            "keep_last": 2,
        }),
    )
    .await;
    let id = schedule["id"].as_i64().unwrap();

    // Dry run: lists, with reasons, and deletes nothing.
    let before = folders(&client, bucket).await;
    let (status, plan) = berth
        .get(&format!(
            "/api/backups/retention?s3_source_id={destination}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["dry_run"], true);
    assert_eq!(
        plan["destinations"][0]["s3_source_id"], destination,
        "{plan}"
    );
    let services = plan["destinations"][0]["services"].as_array().unwrap();
    assert_eq!(services.len(), 1, "only this service's folders: {plan}");
    let service = &services[0];
    assert_eq!(service["service_id"], pg);
    assert_eq!(service["schedule_ids"], json!([id]));
    let ids = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|b| b["backup_id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut to_delete = ids(&service["delete"]);
    to_delete.sort();
    let mut expected = vec![manual[0].clone(), older_orphan.to_string()];
    expected.sort();
    assert_eq!(to_delete, expected, "{plan}");
    assert_eq!(
        ids(&service["keep"]),
        vec![
            newer_failed.to_string(),
            manual[2].clone(),
            manual[1].clone()
        ],
        "{plan}"
    );
    assert!(
        service["delete"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("2 newest"),
        "{plan}"
    );
    assert_eq!(
        folders(&client, bucket).await,
        before,
        "a dry run deletes nothing"
    );
    let (_, oldest) = berth
        .get(&format!("/api/external-services/{pg}/backups"))
        .await;
    assert!(
        oldest
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["state"] == "succeeded")
    );

    // A fourth backup, by the schedule (run now): retention after it leaves the two newest.
    let (status, started) = berth
        .call(
            Method::POST,
            &format!("/api/backups/schedules/{id}/run"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let fourth = started["backups"][0]["id"].as_i64().unwrap();
    let fourth = wait_backup_done(&berth, fourth).await;
    assert_eq!(fourth["state"], "succeeded", "{fourth}");
    assert_eq!(fourth["schedule_id"], id);
    let (_, s) = berth.get(&format!("/api/backups/schedules/{id}")).await;
    assert_eq!(
        s["next_run"], schedule["next_run"],
        "run now leaves next_run: {s}"
    );
    let fourth_id = fourth["backup_id"].as_str().unwrap().to_string();
    let expected: BTreeMap<String, bool> = [
        (manual[2].clone(), true),
        (fourth_id.clone(), true),
        (newer_failed.to_string(), false),
        ("20200101T000000Z-000000".to_string(), true),
    ]
    .into_iter()
    .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while folders(&client, bucket).await != expected {
        assert!(
            Instant::now() < deadline,
            "{:?}\n{}",
            folders(&client, bucket).await,
            berth.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        client.head_object(bucket, outside).await.unwrap().is_some(),
        "keys outside Berth's layout stay"
    );
    // The pruned records say so, and why; they are no longer restorable.
    let (_, records) = berth
        .get(&format!("/api/external-services/{pg}/backups"))
        .await;
    let records = records.as_array().unwrap();
    let state_of = |backup_id: &str| {
        records
            .iter()
            .find(|b| b["backup_id"] == backup_id)
            .unwrap()
            .clone()
    };
    for gone in [&manual[0], &manual[1]] {
        let b = state_of(gone);
        assert_eq!(b["state"], "deleted", "{b}");
        assert!(b["deleted_at"].as_i64().is_some(), "{b}");
        assert!(
            b["deleted_reason"].as_str().unwrap().contains("2 newest"),
            "{b}"
        );
    }
    assert_eq!(state_of(&manual[2])["state"], "succeeded");

    // A policy that would delete everything still keeps the newest succeeded backup.
    let (status, _) = berth
        .call(
            Method::DELETE,
            &format!("/api/backups/schedules/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    create_schedule(
        &berth,
        json!({
            "name": "keep-none",
            "backup_type": "full",
            "retention_period": 0,
            "s3_source_id": destination,
            "schedule_expression": YEARLY,
            "enabled": false,
            "tags": [],
            "service_id": pg,
            "keep_last": 0,
        }),
    )
    .await;
    let (status, pruned) = berth
        .call(
            Method::POST,
            "/api/backups/retention",
            Some(json!({"s3_source_id": destination, "service_id": pg})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pruned}");
    assert_eq!(pruned["dry_run"], false);
    assert_eq!(
        ids(&pruned["destinations"][0]["services"][0]["keep"]),
        vec![newer_failed.to_string(), fourth_id.clone()],
        "{pruned}"
    );
    let left = folders(&client, bucket).await;
    assert!(
        left[&fourth_id],
        "the newest succeeded backup stays: {left:?}"
    );
    assert!(!left.contains_key(&manual[2]), "{left:?}");
    assert_eq!(state_of(&fourth_id)["state"], "succeeded");
    // Pruning again deletes nothing more.
    // Pruning again (every destination) deletes nothing more.
    let (_, again) = berth
        .call(Method::POST, "/api/backups/retention", Some(json!({})))
        .await;
    assert_eq!(
        again["destinations"].as_array().unwrap().len(),
        1,
        "{again}"
    );
    assert!(
        again["destinations"][0]["services"][0]["delete"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{again}"
    );
}

#[tokio::test]
async fn a_run_over_its_runtime_limit_is_aborted_and_recorded_failed() {
    let berth = berth().await;
    let (client, destination, pg) = setup(&berth, "limited").await;
    let (status, svc) = berth.get(&format!("/api/external-services/{pg}")).await;
    assert_eq!(status, StatusCode::OK);
    let password = berth.password(pg).await;
    let mut conn = pg_connect(port_of(&svc["service"]), "postgres", &password, "postgres")
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS payload \
         FROM generate_series(1, 2000000) AS g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let schedule = create_schedule(
        &berth,
        json!({
            "name": "limited",
            "backup_type": "full",
            "retention_period": 0,
            "s3_source_id": destination,
            "schedule_expression": YEARLY,
            "enabled": true,
            "tags": [],
            "service_id": pg,
            "max_runtime_secs": 1,
        }),
    )
    .await;
    let id = schedule["id"].as_i64().unwrap();
    let (status, started) = berth
        .call(
            Method::POST,
            &format!("/api/backups/schedules/{id}/run"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let b = wait_backup_done(&berth, started["backups"][0]["id"].as_i64().unwrap()).await;
    assert_eq!(b["state"], "failed", "{b}");
    assert!(
        b["error_message"]
            .as_str()
            .unwrap()
            .contains("max_runtime_secs"),
        "{b}"
    );
    assert!(
        stored_keys(&client, &b).await.is_empty(),
        "nothing partial is kept"
    );
}

/// A schedule with `verify` restores each backup it made into a throwaway service once the
/// backup succeeded, and records the result on the backup.
#[tokio::test]
async fn a_schedule_with_verify_verifies_each_backup_it_makes() {
    let berth = berth().await;
    let (_, destination, pg) = setup(&berth, "verified").await;
    let schedule = create_schedule(
        &berth,
        json!({
            "name": "verified",
            "s3_source_id": destination,
            "schedule_expression": YEARLY,
            "service_id": pg,
            "verify": true,
        }),
    )
    .await;
    assert_eq!(schedule["verify"], true, "{schedule}");
    let id = schedule["id"].as_i64().unwrap();
    let (status, started) = berth
        .call(
            Method::POST,
            &format!("/api/backups/schedules/{id}/run"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let backup_id = started["backups"][0]["id"].as_i64().unwrap();
    let b = wait_backup_done(&berth, backup_id).await;
    assert_eq!(b["state"], "succeeded", "{b}");
    let deadline = Instant::now() + Duration::from_secs(180);
    let verified = loop {
        let b = backup(&berth, backup_id).await;
        let state = b["metadata"]["verify"]["state"].clone();
        if state == "succeeded" || state == "failed" {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "never verified: {b}\n{}",
            berth.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        verified["metadata"]["verify"]["state"], "succeeded",
        "{verified}"
    );
    // A schedule without it leaves its backups unverified.
    let plain = create_schedule(
        &berth,
        json!({
            "name": "plain",
            "s3_source_id": destination,
            "schedule_expression": YEARLY,
            "service_id": pg,
        }),
    )
    .await;
    assert_eq!(plain["verify"], false, "{plain}");
}

fn berth_cli(berth: &Berth, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .env("BERTH_API_URL", berth.url(""))
        .env("BERTH_DATA_DIR", &berth.data_dir)
        .env_remove("BERTH_TOKEN")
        .output()
        .unwrap()
}

fn cli_json(berth: &Berth, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = berth_cli(berth, &all);
    assert!(
        out.status.success(),
        "berth {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_cli_manages_schedules_and_prunes() {
    let berth = berth().await;
    let (_, destination, pg) = setup(&berth, "cli-pruned").await;
    let (destination, pg) = (destination.to_string(), pg.to_string());
    let added = cli_json(
        &berth,
        &[
            "backup",
            "schedule",
            "add",
            "nightly",
            "--to",
            &destination,
            "--cron",
            "0 3 * * *",
            "--service",
            &pg,
            "--keep-last",
            "1",
            "--tag",
            "cli",
            "--verify",
        ],
    );
    assert_eq!(added["keep_last"], 1, "{added}");
    assert_eq!(added["verify"], true, "{added}");
    assert_eq!(added["tags"], json!(["cli"]));
    let listed = cli_json(&berth, &["backup", "schedule", "list"]);
    assert_eq!(listed[0]["name"], "nightly", "{listed}");
    let out = berth_cli(&berth, &["backup", "schedule", "list"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("NEXT RUN") && table.contains("nightly"),
        "{table}"
    );

    // Bad cron: one line with the reason, non-zero exit.
    let out = berth_cli(
        &berth,
        &[
            "backup",
            "schedule",
            "add",
            "bad",
            "--to",
            &destination,
            "--cron",
            "61 * * * *",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid cron expression"),
        "{out:?}"
    );

    // Run now, twice: each waits for its backup; retention keeps the newest.
    for _ in 0..2 {
        let done = cli_json(&berth, &["backup", "schedule", "run", "nightly"]);
        assert_eq!(done[0]["state"], "succeeded", "{done}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let plan = loop {
        let plan = cli_json(
            &berth,
            &["backup", "prune", "--to", &destination, "--dry-run"],
        );
        if plan["destinations"][0]["services"][0]["delete"]
            .as_array()
            .unwrap()
            .is_empty()
        {
            break plan;
        }
        assert!(Instant::now() < deadline, "{plan}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(plan["dry_run"], true);
    assert_eq!(
        plan["destinations"][0]["services"][0]["keep"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{plan}"
    );
    let pruned = cli_json(&berth, &["backup", "prune"]);
    assert_eq!(pruned["dry_run"], false, "{pruned}");
    let out = berth_cli(&berth, &["backup", "prune", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("keeps 1, would delete 0"),
        "{text}"
    );

    let disabled = cli_json(&berth, &["backup", "schedule", "disable", "nightly"]);
    assert_eq!(disabled["enabled"], false);
    let enabled = cli_json(&berth, &["backup", "schedule", "enable", "nightly"]);
    assert!(enabled["next_run"].as_i64().is_some(), "{enabled}");
    let out = berth_cli(&berth, &["backup", "schedule", "remove", "nightly"]);
    assert!(out.status.success(), "{out:?}");
    let listed = cli_json(&berth, &["backup", "schedule", "list"]);
    assert_eq!(listed, json!([]));
}

/// The same schedules and retention with the state in PostgreSQL (migration 0009's other
/// dialect, and every query on it).
#[tokio::test]
async fn schedules_and_retention_work_with_a_postgresql_state_database() {
    struct StateDb(String);
    impl Drop for StateDb {
        fn drop(&mut self) {
            let _ = docker(&["rm", "-f", "-v", &self.0]);
        }
    }
    let port = free_port();
    let db = StateDb(unique("berth-state-pg"));
    let (ok, out) = docker(&[
        "run",
        "-d",
        "--name",
        &db.0,
        "-e",
        "POSTGRES_PASSWORD=statepw123",
        "-e",
        "POSTGRES_DB=berth",
        "-p",
        &format!("127.0.0.1:{port}:5432"),
        "berth/postgres:15",
    ]);
    assert!(ok, "starting the state database: {out}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while pg_connect(port, "postgres", "statepw123", "berth")
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "state database never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("postgres://postgres:statepw123@127.0.0.1:{port}/berth");
    let berth = Berth::start_with(
        vec![("BERTH_BACKUP_SCHEDULE_MIN_INTERVAL", "5")],
        vec!["--database-url", &url],
    )
    .await;
    let (client, destination, pg) = setup(&berth, "pg-state").await;
    let schedule = create_schedule(
        &berth,
        json!({
            "name": "pg-state",
            "backup_type": "full",
            "retention_period": 1,
            "s3_source_id": destination,
            "schedule_expression": EVERY_5S,
            "enabled": true,
            "tags": [],
            "service_id": pg,
            "keep_last": 1,
        }),
    )
    .await;
    let id = schedule["id"].as_i64().unwrap();
    let made = wait_schedule_backups(&berth, id, 2).await;
    set_enabled(&berth, id, false).await;
    let made = wait_schedule_backups(&berth, id, made.len()).await;
    assert!(per_run(&made).values().all(|n| *n == 1), "{made:?}");
    let (status, pruned) = berth
        .call(
            Method::POST,
            "/api/backups/retention",
            Some(json!({"s3_source_id": destination})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pruned}");
    // Every backup is younger than a day: retention_period keeps them all.
    assert!(
        pruned["destinations"][0]["services"][0]["delete"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{pruned}"
    );
    assert_eq!(
        folders(&client, "pg-state").await.len(),
        made.len(),
        "{pruned}"
    );
    let (status, one) = berth.get(&format!("/api/backups/schedules/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(one["last_run"].as_i64().is_some(), "{one}");
}

/// Killed after a pruned backup's record became `deleted` and before its objects went: the
/// backup is never listed as restorable again, and the next prune removes what is left.
#[tokio::test]
async fn a_prune_cut_off_half_way_is_finished_by_the_next() {
    let mut berth = berth().await;
    let (client, destination, pg) = setup(&berth, "half-pruned").await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, ran) = berth
            .call(
                Method::POST,
                &format!("/api/backups/external-services/{pg}/run"),
                Some(json!({"s3_source_id": destination})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{ran}");
        ids.push(ran["id"].as_i64().unwrap());
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    create_schedule(
        &berth,
        json!({
            "name": "keep-one",
            "backup_type": "full",
            "retention_period": 0,
            "s3_source_id": destination,
            "schedule_expression": YEARLY,
            "enabled": true,
            "tags": [],
            "keep_last": 1,
        }),
    )
    .await;
    berth.kill9();
    berth
        .spawn_with_env(&[("BERTH_CRASHPOINT", "retention.after_marked_deleted")])
        .await;
    let _ = reqwest::Client::new()
        .post(berth.url("/api/backups/retention"))
        .bearer_auth(&berth.token)
        .json(&json!({"s3_source_id": destination}))
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    assert!(berth.wait_exit(Duration::from_secs(30)), "{}", berth.log());
    berth.spawn().await;

    let older = backup(&berth, ids[0]).await;
    assert_eq!(older["state"], "deleted", "{older}");
    assert!(
        !stored_keys(&client, &older).await.is_empty(),
        "the crash left its objects"
    );
    let (_, plan) = berth
        .get(&format!(
            "/api/backups/retention?s3_source_id={destination}"
        ))
        .await;
    let delete = &plan["destinations"][0]["services"][0]["delete"];
    assert_eq!(delete.as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(delete[0]["state"], "deleted", "{plan}");
    assert!(
        delete[0]["reason"]
            .as_str()
            .unwrap()
            .contains("did not finish"),
        "{plan}"
    );
    let (status, _) = berth
        .call(
            Method::POST,
            "/api/backups/retention",
            Some(json!({"s3_source_id": destination})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        stored_keys(&client, &older).await.is_empty(),
        "leftovers removed"
    );
    let newer = backup(&berth, ids[1]).await;
    assert_eq!(newer["state"], "succeeded", "{newer}");
    assert!(!stored_keys(&client, &newer).await.is_empty());
}
