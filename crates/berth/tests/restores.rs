//! Restores through Temps' restore-run API against real PostgreSQL and Berth's S3: the round
//! trip (data written, backed up, service destroyed, restored into a new service, compared),
//! an in-place restore of one project's database with its safety backup, and the refusals
//! (another service's backup without confirmation, PITR of a logical backup, a failed backup).

mod common;

use std::time::{Duration, Instant};

use common::backups::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn wait_restore(berth: &Berth, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (status, run) = berth.get(&format!("/api/restore-runs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{run}");
        if run["status"] != "running" {
            return run;
        }
        assert!(Instant::now() < deadline, "restore {id} never ended: {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn count(conn: &mut sqlx::PgConnection, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn exec(conn: &mut sqlx::PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(conn)
        .await
        .unwrap();
}

/// A PostgreSQL service linked to a project whose database holds `items` (1234 rows), plus a
/// table in the admin database; backed up. Returns (service, its JSON, tenant variables,
/// backup id).
async fn backed_up_postgres(
    berth: &Berth,
    destination: i64,
) -> (i64, Value, std::collections::BTreeMap<String, String>, i64) {
    let pg = berth.create("postgres", &unique("rs-pg"), json!({})).await;
    let id = pg["id"].as_i64().unwrap();
    let project = create_project(berth, &unique("shop"), &["production"]).await;
    let (status, linked) = link_project(berth, id, project).await;
    assert_eq!(status, StatusCode::CREATED, "{linked}");
    let vars = project_env(berth, id, project, "production").await;
    let mut tenant = pg_connect(
        port_of(&pg),
        &vars["POSTGRES_USER"],
        &vars["POSTGRES_PASSWORD"],
        &vars["POSTGRES_DATABASE"],
    )
    .await
    .unwrap();
    exec(
        &mut tenant,
        "CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1234) g",
    )
    .await;
    let password = berth.password(id).await;
    let mut admin = pg_connect(port_of(&pg), "postgres", &password, "postgres")
        .await
        .unwrap();
    exec(
        &mut admin,
        "CREATE TABLE audit (at int); INSERT INTO audit SELECT generate_series(1, 10)",
    )
    .await;
    let (status, ran) = run_backup(berth, id, destination).await;
    assert_eq!(status, StatusCode::OK, "{ran}");
    (id, pg, vars, ran["id"].as_i64().unwrap())
}

#[tokio::test]
async fn a_destroyed_postgres_service_comes_back_from_its_backup_with_the_same_data() {
    let berth = berth().await;
    let (s3, _, _) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "round-trip").await;
    let (id, _, vars, backup_id) = backed_up_postgres(&berth, destination).await;

    // The service is destroyed with its volume.
    let (status, body) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{id}?force=true"),
            None,
        )
        .await;
    assert!(status.is_success(), "{body}");

    let name = unique("rs-back");
    let (status, started) = berth
        .call(
            Method::POST,
            &format!("/api/backups/{backup_id}/restore"),
            Some(json!({"mode": "new_service", "name": name})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["mode"], "new_service");
    let run = wait_restore(&berth, started["id"].as_i64().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}\n{}", berth.log());
    let new_id = run["target_service_id"].as_i64().unwrap();

    // Same rows, and the project's role logs in with the password it had.
    let (_, svc) = berth.get(&format!("/api/external-services/{new_id}")).await;
    let port = port_of(&svc["service"]);
    let mut tenant = pg_connect(
        port,
        &vars["POSTGRES_USER"],
        &vars["POSTGRES_PASSWORD"],
        &vars["POSTGRES_DATABASE"],
    )
    .await
    .expect("the tenant's role and database came back");
    assert_eq!(count(&mut tenant, "items").await, 1234);
    // The new service's admin is its own (Berth still manages it).
    let password = berth.password(new_id).await;
    let mut admin = pg_connect(port, "postgres", &password, "postgres")
        .await
        .expect("the admin password is the new service's, not the backup's");
    assert_eq!(count(&mut admin, "audit").await, 10);
    let (status, health) = berth
        .get(&format!("/api/external-services/{new_id}/health"))
        .await;
    assert_eq!((status, health), (StatusCode::OK, json!(true)));
    let (_, runs) = berth
        .get(&format!("/api/external-services/{new_id}/restore-runs"))
        .await;
    assert_eq!(runs[0]["id"], run["id"], "{runs}");
}

#[tokio::test]
async fn an_in_place_restore_of_one_database_takes_a_safety_backup_and_touches_nothing_else() {
    let berth = berth().await;
    let (s3, _, _) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "in-place").await;
    let (id, pg, vars, backup_id) = backed_up_postgres(&berth, destination).await;
    let port = port_of(&pg);
    let tenant_db = vars["POSTGRES_DATABASE"].clone();

    // After the backup: a project deletes most of its rows; the admin database changes too.
    let mut tenant = pg_connect(
        port,
        &vars["POSTGRES_USER"],
        &vars["POSTGRES_PASSWORD"],
        &tenant_db,
    )
    .await
    .unwrap();
    exec(&mut tenant, "DELETE FROM items WHERE id > 100").await;
    drop(tenant);
    let password = berth.password(id).await;
    let mut admin = pg_connect(port, "postgres", &password, "postgres")
        .await
        .unwrap();
    exec(&mut admin, "INSERT INTO audit VALUES (11)").await;

    let capabilities = berth
        .get(&format!("/api/external-services/{id}/restore-capabilities"))
        .await
        .1;
    assert_eq!(
        capabilities["modes"],
        json!(["in_place", "new_service"]),
        "{capabilities}"
    );
    assert_eq!(capabilities["pitr"]["supported"], false);

    let (status, started) = berth
        .call(
            Method::POST,
            &format!("/api/external-services/{id}/restore"),
            Some(json!({"backup_id": backup_id, "mode": "in_place", "database": tenant_db})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run = wait_restore(&berth, started["id"].as_i64().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}\n{}", berth.log());

    let mut tenant = pg_connect(
        port,
        &vars["POSTGRES_USER"],
        &vars["POSTGRES_PASSWORD"],
        &tenant_db,
    )
    .await
    .unwrap();
    assert_eq!(
        count(&mut tenant, "items").await,
        1234,
        "the project's rows are back"
    );
    let mut admin = pg_connect(port, "postgres", &password, "postgres")
        .await
        .unwrap();
    assert_eq!(
        count(&mut admin, "audit").await,
        11,
        "the admin database was not touched"
    );
    let safety = run["safety_backup_id"]
        .as_i64()
        .expect("a safety backup was taken");
    assert_eq!(backup(&berth, safety).await["state"], "succeeded");
}

#[tokio::test]
async fn restores_that_would_do_harm_or_cannot_be_done_are_refused() {
    let berth = berth().await;
    let (s3, _, _) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "refusals").await;
    let (id, _, _, backup_id) = backed_up_postgres(&berth, destination).await;
    let other = berth
        .create("postgres", &unique("rs-other"), json!({}))
        .await;
    let other_id = other["id"].as_i64().unwrap();
    let restore = |service: i64, body: Value| {
        let berth = &berth;
        async move {
            berth
                .call(
                    Method::POST,
                    &format!("/api/external-services/{service}/restore"),
                    Some(body),
                )
                .await
        }
    };

    // Another service's backup over this one: only with confirm_cross_service.
    let (status, refused) = restore(
        other_id,
        json!({"backup_id": backup_id, "mode": "in_place"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        str_of(&refused, "detail").contains("confirm_cross_service"),
        "{refused}"
    );
    // PITR of a logical backup.
    let (status, refused) = restore(
        id,
        json!({"backup_id": backup_id, "mode": "pitr", "to_new_service": true,
               "target": {"kind": "time", "time": "2026-01-01T00:00:00Z"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(str_of(&refused, "detail").contains("logical"), "{refused}");
    // A database the backup does not have; an unknown backup; an unknown mode.
    let (status, refused) = restore(
        id,
        json!({"backup_id": backup_id, "mode": "in_place", "database": "nope"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, _) = restore(id, json!({"backup_id": 999_999, "mode": "in_place"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = restore(id, json!({"backup_id": backup_id, "mode": "sideways"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A failed backup is never restorable.
    let (status, _) = berth
        .post_wait(&format!("/api/external-services/{other_id}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, failed) = run_backup(&berth, other_id, destination).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{failed}");
    let (_, failed_list) = berth
        .get(&format!("/api/external-services/{other_id}/backups"))
        .await;
    let failed_id = failed_list[0]["id"].as_i64().unwrap();
    let (status, refused) = restore(
        other_id,
        json!({"backup_id": failed_id, "mode": "in_place"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(str_of(&refused, "detail").contains("failed"), "{refused}");
    // Nothing ran.
    let (_, runs) = berth
        .get(&format!("/api/external-services/{id}/restore-runs"))
        .await;
    assert_eq!(runs, json!([]));
}

#[tokio::test]
async fn verification_restores_into_a_throwaway_service_and_catches_a_tampered_object() {
    let berth = berth().await;
    let (s3, admin, _) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "verify").await;
    let (_, _, vars, backup_id) = backed_up_postgres(&berth, destination).await;

    verify_passes(&berth, backup_id).await;

    // Someone corrupts the project's dump on the destination: verification says so.
    let b = backup(&berth, backup_id).await;
    let (bucket, folder) = location(&b);
    let key = format!("{folder}db-{}.pgdump", vars["POSTGRES_DATABASE"]);
    let garbage = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
        b"not a dump",
    ))]);
    admin
        .put_stream(&bucket, &key, "application/octet-stream", garbage, u64::MAX)
        .await
        .unwrap();
    let (status, failed) = berth
        .call(
            Method::POST,
            &format!("/api/backups/{backup_id}/verify"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{failed}");
    let b = backup(&berth, backup_id).await;
    assert_eq!(b["metadata"]["verify"]["state"], "failed", "{b}");
    assert!(
        str_of(&b["metadata"]["verify"], "message").contains("sha256"),
        "{b}"
    );
    let (_, services) = berth.get("/api/external-services").await;
    assert!(!services.to_string().contains("verify-"), "{services}");
}

/// Berth killed while a verification's throwaway service exists: at restart the verification
/// is recorded failed (never left `running`) and the throwaway service is deleted with its
/// container, from the name recorded before it was created.
#[tokio::test]
async fn an_interrupted_verification_is_failed_and_its_throwaway_service_removed_at_restart() {
    let mut berth = berth().await;
    let (s3, _, _) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "verify-crash").await;
    let (_, _, _, backup_id) = backed_up_postgres(&berth, destination).await;

    berth
        .crash_at(
            "verify.after_throwaway_created",
            Method::POST,
            &format!("/api/backups/{backup_id}/verify"),
            None,
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let b = backup(&berth, backup_id).await;
        let (_, services) = berth.get("/api/external-services").await;
        let verify = &b["metadata"]["verify"];
        if verify["state"] == "failed" && !services.to_string().contains("verify-") {
            assert!(str_of(verify, "message").contains("berth stopped"), "{b}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "verification {verify} / services {services}\n{}",
            berth.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let instance = std::fs::read_to_string(berth.data_dir.join("instance-id")).unwrap();
    let leftover = std::process::Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=berth.instance={}", instance.trim()))
        .args(["--filter", &format!("name=verify-{backup_id}-")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&leftover.stdout).trim(),
        "",
        "the throwaway container is gone"
    );
}

/// A connection as a linked project's Redis user, on its database.
async fn redis_tenant(
    port: u16,
    vars: &std::collections::BTreeMap<String, String>,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let url = format!(
        "redis://{}:{}@127.0.0.1:{port}/{}",
        urlencode(&vars["REDIS_USERNAME"]),
        urlencode(&vars["REDIS_PASSWORD"]),
        vars["REDIS_DATABASE"]
    );
    redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
}

#[tokio::test]
async fn a_destroyed_redis_service_comes_back_with_its_keys_and_project_logins() {
    let berth = berth().await;
    let (s3, _, _) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "redis-round-trip").await;
    let svc = berth.create("redis", &unique("rs-redis"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let project = create_project(&berth, &unique("cache"), &["production"]).await;
    let (status, linked) = link_project(&berth, id, project).await;
    assert_eq!(status, StatusCode::CREATED, "{linked}");
    let vars = project_env(&berth, id, project, "production").await;

    // Every kind of value the scanner must step over, and keys with an expiry.
    let mut conn = redis_tenant(port_of(&svc), &vars).await.unwrap();
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg("x".repeat(i * 10))
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let big = "compressible ".repeat(4000);
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("n")
        .arg(12345)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("ttl")
        .arg("soon")
        .arg("EX")
        .arg(3600)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg("h")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg("l")
        .arg("a")
        .arg("b")
        .arg("c")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("s")
        .arg("a")
        .arg("b")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("si")
        .arg(1)
        .arg(2)
        .arg(3)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg("z")
        .arg(1.5)
        .arg("a")
        .arg(2)
        .arg("b")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg("st")
        .arg("*")
        .arg("f")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    let expected: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    drop(conn);

    let (status, ran) = run_backup(&berth, id, destination).await;
    assert_eq!(status, StatusCode::OK, "{ran}\n{}", berth.log());
    let backup_id = ran["id"].as_i64().unwrap();
    let b = backup(&berth, backup_id).await;
    let snapshot = b["metadata"]["manifest"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "snapshot")
        .cloned()
        .unwrap();
    let db = format!("db{}", vars["REDIS_DATABASE"]);
    assert_eq!(
        snapshot["counts"][&db], expected,
        "counted in the snapshot: {snapshot}"
    );
    assert_eq!(
        snapshot["counts"][format!("{db}.expiring")],
        1,
        "{snapshot}"
    );

    let (status, body) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{id}?force=true"),
            None,
        )
        .await;
    assert!(status.is_success(), "{body}");
    let (status, started) = berth
        .call(
            Method::POST,
            &format!("/api/backups/{backup_id}/restore"),
            Some(json!({"mode": "new_service", "name": unique("rs-redis-back")})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run = wait_restore(&berth, started["id"].as_i64().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}\n{}", berth.log());
    let new_id = run["target_service_id"].as_i64().unwrap();
    let (_, restored) = berth.get(&format!("/api/external-services/{new_id}")).await;
    let port = port_of(&restored["service"]);

    // The project's user logs in as before and finds every key.
    let mut conn = redis_tenant(port, &vars)
        .await
        .expect("the project's ACL user came back");
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(size, expected);
    let got: String = redis::cmd("GET")
        .arg("big")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(got, big);
    let members: Vec<String> = redis::cmd("LRANGE")
        .arg("l")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(members, ["a", "b", "c"]);
    // The service's own admin password is the new service's, and it survives a restart.
    let password = berth.password(new_id).await;
    let mut admin = redis_conn(port, &password).await;
    let _: () = redis::cmd("PING").query_async(&mut admin).await.unwrap();
    let (status, _) = berth
        .post_wait(&format!("/api/external-services/{new_id}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = berth
        .post_wait(&format!("/api/external-services/{new_id}/start"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut conn = redis_tenant(port, &vars).await.unwrap();
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(
        size, expected,
        "the restored keys are in the append-only files"
    );
}
