//! Isolation and data safety against real containers: a lost volume is reported and never
//! silently replaced, keep_data survives a delete finished by the reconciler, updates stop
//! databases cleanly, foreign containers are never taken over, a lost secret.key is refused,
//! deleted projects' credentials stop working, missing tenants are re-provisioned, and links
//! queue behind operations instead of interleaving with them.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

/// A Berth whose reconciler passes every second, so tests see convergence quickly.
async fn fast_berth() -> Berth {
    Berth::start_with(vec![], vec!["--reconcile-interval", "1"]).await
}

async fn project(berth: &Berth, envs: &[&str]) -> i64 {
    create_project(berth, &unique("proj"), envs).await
}

async fn link(berth: &Berth, service: i64, project: i64) {
    let (status, body) = link_project(berth, service, project).await;
    assert!(status.is_success(), "link: {status} {body}");
}

/// The variables of a linked project environment, with 127.0.0.1 addresses.
async fn host_env(
    berth: &Berth,
    service: i64,
    project: i64,
    env: &str,
) -> BTreeMap<String, String> {
    let (status, body) = berth
        .get(&format!(
            "/api/external-services/{service}/projects/{project}/environment?environment={env}&address=host"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

async fn pg_login(vars: &BTreeMap<String, String>) -> Result<(), String> {
    let mut conn = sqlx::PgConnection::connect(&vars["DATABASE_URL"])
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query("SELECT 1")
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn redis_login(vars: &BTreeMap<String, String>) -> Result<(), String> {
    let client = redis::Client::open(vars["REDIS_URL"].as_str()).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Polls the service until `done` holds for it, or panics after `timeout`.
async fn wait_service(
    berth: &Berth,
    id: i64,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, details) = berth.get(&format!("/api/external-services/{id}")).await;
        // Warnings about the data are part of the service object.
        let body = details["service"].clone();
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "service {id} never became {what}: {body}\nlog:\n{}",
            berth.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

#[tokio::test]
async fn lost_volume_is_reported_never_replaced_and_recreate_brings_logins_back() {
    let mut berth = fast_berth().await;
    let svc = berth.create("postgres", &unique("lost"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let (container, volume) = (str_of(&svc, "container_name"), str_of(&svc, "volume_name"));
    let p = project(&berth, &["production"]).await;
    link(&berth, id, p).await;
    let vars = host_env(&berth, id, p, "production").await;
    pg_login(&vars).await.unwrap();

    // The volume goes away behind Berth's back (while it is down, so no pass races the two
    // removals; the first pass after the restart must notice).
    berth.kill9();
    assert!(docker(&["rm", "-f", container]).0);
    assert!(docker(&["volume", "rm", volume]).0);
    berth.spawn().await;

    let view = wait_service(&berth, id, Duration::from_secs(60), "data_missing", |s| {
        s["status"] == "data_missing"
    })
    .await;
    assert!(
        view["warnings"][0].as_str().unwrap().contains("recreate"),
        "the service view says what to do: {view}"
    );
    // Several more passes: Berth still creates nothing (no empty server posing as the service).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!container_exists(container), "no container was recreated");
    assert!(!volume_exists(volume), "no empty volume was made");
    let (_, health) = berth
        .get(&format!("/api/external-services/{id}/health?detail=true"))
        .await;
    assert_eq!(health["healthy"], false, "{health}");
    assert_eq!(health["status"], "data_missing", "{health}");
    let (status, healthy) = berth
        .get(&format!("/api/external-services/{id}/health"))
        .await;
    assert_eq!(status, StatusCode::OK, "{healthy}");
    assert_eq!(healthy, false, "data_missing is not healthy: {healthy}");
    let (_, list) = berth.get("/api/external-services").await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == id && s["status"] == "data_missing"),
        "{list}"
    );
    // Starting is refused the same way instead of initialising an empty server.
    let (status, body) = berth
        .post_wait(&format!("/api/external-services/{id}/start"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(!container_exists(container));

    // The explicit way out: empty data, same credentials, tenants provisioned again.
    let (status, body) = berth
        .post_wait(&format!("/api/external-services/{id}/recreate"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "running", "{body}");
    pg_login(&vars)
        .await
        .expect("the linked project's login works again with its stored credentials");
    // Recreate is only for lost data: on a healthy service it would destroy what is there.
    let (status, _) = berth
        .post_wait(&format!("/api/external-services/{id}/recreate"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn volume_replaced_by_an_empty_one_is_reported_not_used() {
    let mut berth = fast_berth().await;
    let svc = berth.create("redis", &unique("swap"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let (container, volume) = (str_of(&svc, "container_name"), str_of(&svc, "volume_name"));
    berth.kill9();
    assert!(docker(&["rm", "-f", container]).0);
    assert!(docker(&["volume", "rm", volume]).0);
    assert!(docker(&["volume", "create", volume]).0);
    berth.spawn().await;
    let view = wait_service(&berth, id, Duration::from_secs(60), "data_missing", |s| {
        s["status"] == "data_missing"
    })
    .await;
    assert!(
        view["warnings"][0].as_str().unwrap().contains(volume),
        "{view}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !container_exists(container),
        "no server was started on the empty volume"
    );
    docker(&["volume", "rm", volume]);
}

/// A delete with keep_data that does not finish (here: the process dies after removing the
/// container, and its operation is then recorded as failed) is finished by the reconciler's
/// pass from the row's `deleting` status. The volume must survive that path too.
#[tokio::test]
async fn keep_data_is_honoured_when_the_reconciler_finishes_a_failed_delete() {
    let mut berth = Berth::start().await;
    let svc = berth.create("redis", &unique("keep"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let volume = str_of(&svc, "volume_name").to_string();

    berth.kill9();
    berth
        .spawn_with_env(&[("BERTH_CRASHPOINT", "delete.after_container")])
        .await;
    let (status, body) = berth
        .call_async(
            Method::DELETE,
            &format!("/api/external-services/{id}?keep_data=true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(
        berth.wait_exit(Duration::from_secs(60)),
        "crash point reached"
    );
    // The delete is on record as failed, not running: only the row's status says `deleting`.
    let url = format!("sqlite://{}", berth.data_dir.join("berth.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let marked = sqlx::query(
        "UPDATE operations SET status = 'failed', error = 'test: failed half-way' \
         WHERE service_id = $1 AND kind = 'delete' AND status = 'running'",
    )
    .bind(id)
    .execute(&mut db)
    .await
    .unwrap();
    assert_eq!(marked.rows_affected(), 1);
    db.close().await.unwrap();

    berth.spawn().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _) = berth.get(&format!("/api/external-services/{id}")).await;
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(Instant::now() < deadline, "delete never finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        volume_exists(&volume),
        "keep_data=true: the volume must survive"
    );
    docker(&["volume", "rm", &volume]);
}

#[tokio::test]
async fn update_stops_the_database_cleanly_and_keeps_acknowledged_writes() {
    let berth = Berth::start().await;
    let svc = berth.create("postgres", &unique("clean"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let port = port_of(&svc);
    let password = berth.password(id).await;
    let container = str_of(&svc, "container_name").to_string();
    let mut conn = pg_connect(port, "postgres", &password, "postgres")
        .await
        .unwrap();
    sqlx::query("CREATE TABLE acked (n int)")
        .execute(&mut conn)
        .await
        .unwrap();
    for n in 0..200 {
        sqlx::query("INSERT INTO acked VALUES ($1)")
            .bind(n)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    drop(conn);
    let (status, body) = berth
        .call(
            Method::PUT,
            &format!("/api/external-services/{id}?wait=true"),
            Some(json!({"parameters": {"max_connections": "150"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let out = Command::new("docker")
        .args(["logs", &container])
        .output()
        .unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        logs.contains("database system was shut down at"),
        "the new server found a cleanly shut down cluster:\n{logs}"
    );
    assert!(
        !logs.contains("not properly shut down") && !logs.contains("was interrupted"),
        "no crash recovery after an update:\n{logs}"
    );
    let mut conn = pg_connect(port, "postgres", &password, "postgres")
        .await
        .unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM acked")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 200, "every acknowledged write is there");
}

#[tokio::test]
async fn a_foreign_container_with_berths_name_is_refused_and_left_alone() {
    let berth = Berth::start().await;
    let name = unique("foreign");
    let container = format!("berth-redis-{name}");
    assert!(docker(&["create", "--name", &container, "berth/redis:7"]).0);
    let (status, body) = berth
        .call(
            Method::POST,
            "/api/external-services?wait=true",
            Some(json!({"name": name, "service_type": "redis", "parameters": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("not made by Berth"),
        "{body}"
    );
    let (exists, labels) = docker(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"berth.service_id\"}}",
        &container,
    ]);
    assert!(exists, "the foreign container is still there");
    assert_eq!(labels, "", "and was not relabelled");
    docker(&["rm", "-f", &container]);
}

fn serve_once(data_dir: &std::path::Path) -> (bool, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .env("BERTH_DATA_DIR", data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.success(), err);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            return (true, "still serving after 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn a_missing_or_wrong_secret_key_is_refused_not_replaced() {
    let mut berth = Berth::start().await;
    let svc = berth.create("redis", &unique("key"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    berth.kill9();
    let key_path = berth.data_dir.join("secret.key");
    let key = std::fs::read(&key_path).unwrap();

    std::fs::remove_file(&key_path).unwrap();
    let (ok, err) = serve_once(&berth.data_dir);
    assert!(!ok, "refuses to start without its key: {err}");
    assert!(err.contains("secret.key is missing"), "{err}");
    assert!(!key_path.exists(), "no new key was generated");

    std::fs::write(&key_path, [7u8; 32]).unwrap();
    let (ok, err) = serve_once(&berth.data_dir);
    assert!(!ok, "refuses a different key: {err}");
    assert!(err.contains("is not the key"), "{err}");

    std::fs::write(&key_path, &key).unwrap();
    berth.spawn().await;
    let (status, _) = berth.get(&format!("/api/external-services/{id}")).await;
    assert_eq!(status, StatusCode::OK, "the right key works again");
}

#[tokio::test]
async fn deleted_projects_and_environments_lose_their_logins_but_unlink_keeps_them() {
    let berth = Berth::start().await;
    let pg = berth.create("postgres", &unique("rv-pg"), json!({})).await["id"]
        .as_i64()
        .unwrap();
    let rd = berth.create("redis", &unique("rv-rd"), json!({})).await["id"]
        .as_i64()
        .unwrap();
    let p = project(&berth, &["production", "staging"]).await;
    link(&berth, pg, p).await;
    link(&berth, rd, p).await;
    let pg_prod = host_env(&berth, pg, p, "production").await;
    let pg_staging = host_env(&berth, pg, p, "staging").await;
    let rd_prod = host_env(&berth, rd, p, "production").await;
    let rd_staging = host_env(&berth, rd, p, "staging").await;

    // Unlink keeps the seed's meaning: running applications keep working.
    let (status, _) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{pg}/projects/{p}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    pg_login(&pg_prod).await.expect("unlink does not revoke");

    // Removing an environment turns its logins off everywhere, data kept.
    let (status, body) = berth
        .call(
            Method::DELETE,
            &format!("/api/projects/{p}/environments/staging"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"].as_array().unwrap().len(), 2, "{body}");
    assert!(
        body["note"].as_str().unwrap().contains("data stays"),
        "{body}"
    );
    assert!(
        pg_login(&pg_staging).await.is_err(),
        "staging pg login is off"
    );
    assert!(
        redis_login(&rd_staging).await.is_err(),
        "staging redis user is off"
    );
    redis_login(&rd_prod).await.expect("production untouched");

    let (status, _) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{rd}/projects/{p}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = berth
        .call(Method::DELETE, &format!("/api/projects/{p}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        pg_login(&pg_prod).await.is_err(),
        "deleted project's pg login is off"
    );
    assert!(
        redis_login(&rd_prod).await.is_err(),
        "deleted project's redis user is off"
    );
}

#[tokio::test]
async fn unlink_with_revoke_turns_logins_off_and_relink_turns_them_back_on() {
    let berth = Berth::start().await;
    let rd = berth.create("redis", &unique("relink"), json!({})).await["id"]
        .as_i64()
        .unwrap();
    let p = project(&berth, &["production"]).await;
    link(&berth, rd, p).await;
    let vars = host_env(&berth, rd, p, "production").await;
    redis_login(&vars).await.unwrap();
    let (status, body) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{rd}/projects/{p}?revoke=true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(redis_login(&vars).await.is_err(), "revoked at once");
    link(&berth, rd, p).await;
    assert_eq!(
        host_env(&berth, rd, p, "production").await,
        vars,
        "same values"
    );
    redis_login(&vars).await.expect("re-link turns it back on");
}

#[tokio::test]
async fn a_tenant_dropped_by_hand_is_provisioned_again_with_its_credentials() {
    let berth = fast_berth().await;
    let svc = berth.create("postgres", &unique("repair"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let p = project(&berth, &["production"]).await;
    link(&berth, id, p).await;
    let vars = host_env(&berth, id, p, "production").await;
    let password = berth.password(id).await;
    let mut admin = pg_connect(port_of(&svc), "postgres", &password, "postgres")
        .await
        .unwrap();
    let db = &vars["POSTGRES_DB"];
    for statement in [
        format!("DROP DATABASE \"{db}\" WITH (FORCE)"),
        format!("DROP ROLE \"{}\"", vars["POSTGRES_USER"]),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    assert!(pg_login(&vars).await.is_err());
    let deadline = Instant::now() + Duration::from_secs(30);
    while pg_login(&vars).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the tenant was never re-provisioned:\n{}",
            berth.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A link arriving while an update runs waits for it (it never provisions into a container
/// being replaced), and a delete arriving after the link sees it: the delete is refused as
/// linked, not run over the new link.
#[tokio::test]
async fn links_queue_behind_operations_and_deletes_see_links_made_while_waiting() {
    let berth = Berth::start().await;
    let svc = berth.create("postgres", &unique("queue"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let p = project(&berth, &["production"]).await;
    let (status, body) = berth
        .call_async(
            Method::PUT,
            &format!("/api/external-services/{id}"),
            Some(json!({"parameters": {"max_connections": "120"}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let update_op = body["operation"]["id"].as_i64().unwrap();
    let link_path = format!("/api/external-services/{id}/projects");
    let link_req = berth.call(Method::POST, &link_path, Some(json!({ "project_id": p })));
    let delete_req = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        berth
            .call(
                Method::DELETE,
                &format!("/api/external-services/{id}"),
                None,
            )
            .await
    };
    let ((link_status, link_body), (delete_status, delete_body)) =
        tokio::join!(link_req, delete_req);
    assert_eq!(link_status, StatusCode::CREATED, "{link_body}");
    let op = berth
        .wait_operation(update_op, Duration::from_secs(120))
        .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(delete_status, StatusCode::CONFLICT, "{delete_body}");
    assert!(
        delete_body["detail"].as_str().unwrap().contains("linked"),
        "refused because of the link, not because something was busy: {delete_body}"
    );
    let vars = host_env(&berth, id, p, "production").await;
    pg_login(&vars)
        .await
        .expect("the link provisioned into the updated server");
}

/// A container that drifted from its row in what matters (here: published on another port) is
/// replaced on the same volume; a container that matches is never restarted by a pass.
#[tokio::test]
async fn drifted_containers_are_replaced_and_matching_ones_left_running() {
    let mut berth = fast_berth().await;
    let svc = berth.create("redis", &unique("drift"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let container = str_of(&svc, "container_name").to_string();
    let volume = str_of(&svc, "volume_name").to_string();
    let port = port_of(&svc);
    let started_at = |c: &str| docker(&["inspect", "-f", "{{.Id}} {{.State.StartedAt}}", c]).1;
    let before = started_at(&container);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        started_at(&container),
        before,
        "passes leave a matching, healthy container alone"
    );

    // Someone recreates it by hand with Berth's labels but on another host port (while Berth
    // is down, so no pass recreates it between the removal and the replacement).
    let (_, labels) = docker(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"berth.instance\"}}",
        &container,
    ]);
    berth.kill9();
    assert!(docker(&["rm", "-f", &container]).0);
    let other_port = free_port();
    let (created, out) = docker(&[
        "run",
        "-d",
        "--name",
        &container,
        "--label",
        "berth.managed=true",
        "--label",
        &format!("berth.service_id={id}"),
        "--label",
        &format!("berth.instance={labels}"),
        "-v",
        &format!("{volume}:/data"),
        "-p",
        &format!("127.0.0.1:{other_port}:6379"),
        "berth/redis:7",
        "sleep",
        "infinity",
    ]);
    assert!(created, "{out}");
    berth.spawn().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, ports) = docker(&["port", &container, "6379/tcp"]);
        if ports.contains(&format!(":{port}")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the drifted container was never replaced (ports {ports}):\n{}",
            berth.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The replacement is published before it accepts connections: poll until it answers.
    let password = berth.password(id).await;
    let url = format!("redis://:{password}@127.0.0.1:{port}/0");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(pong) => {
                assert_eq!(pong, "PONG", "the replacement serves on the row's port");
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "the replacement never answered: {e}\n{}",
                berth.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
