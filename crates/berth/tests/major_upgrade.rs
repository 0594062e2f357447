//! PostgreSQL major upgrades by dump and restore (issue 12): 15 -> 17 keeping name, port,
//! credentials, roles, databases and links; rollback to the kept old volume; finalize; and a
//! kill -9 at each step leaves the service on one version with all its data.

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

const NEW: &str = "berth/postgres:17";

/// A PostgreSQL 15 service with data of its own and of a linked project's tenant.
struct Fixture {
    id: i64,
    port: u16,
    password: String,
    tenant: (String, String, String),
    volume: String,
}

async fn fixture(berth: &Berth) -> Fixture {
    let name = unique("pgup");
    let svc = berth
        .create(
            "postgres",
            &name,
            json!({ "docker_image": "berth/postgres:15" }),
        )
        .await;
    let id = svc["id"].as_i64().unwrap();
    let port = port_of(&svc);
    let password = berth.password(id).await;
    let mut admin = pg_connect(port, "postgres", &password, "postgres")
        .await
        .unwrap();
    for sql in [
        "CREATE TABLE admin_t (v int)",
        "INSERT INTO admin_t SELECT generate_series(1, 3)",
    ] {
        sqlx::query(sql).execute(&mut admin).await.unwrap();
    }
    admin.close().await.unwrap();
    let project = create_project(berth, &unique("shop"), &["production"]).await;
    let (status, link) = link_project(berth, id, project).await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let env = project_env(berth, id, project, "production").await;
    let tenant = (
        env["POSTGRES_USER"].clone(),
        env["POSTGRES_PASSWORD"].clone(),
        env["POSTGRES_DB"].clone(),
    );
    let mut conn = pg_connect(port, &tenant.0, &tenant.1, &tenant.2)
        .await
        .unwrap();
    for sql in [
        "CREATE TABLE orders (id int PRIMARY KEY, note text)",
        "INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 1000) g",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    Fixture {
        id,
        port,
        password,
        tenant,
        volume: svc["volume_name"].as_str().unwrap().to_string(),
    }
}

impl Fixture {
    async fn server_major(&self) -> i64 {
        let mut admin = pg_connect(self.port, "postgres", &self.password, "postgres")
            .await
            .unwrap();
        let (num,): (String,) = sqlx::query_as("SHOW server_version_num")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        num.parse::<i64>().unwrap() / 10000
    }

    /// Rows in the tenant's table and the admin's, read with the credentials of before.
    async fn rows(&self) -> (i64, i64) {
        let (user, password, db) = &self.tenant;
        let mut conn = pg_connect(self.port, user, password, db).await.unwrap();
        let (orders,): (i64,) = sqlx::query_as("SELECT count(*) FROM orders")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let mut admin = pg_connect(self.port, "postgres", &self.password, "postgres")
            .await
            .unwrap();
        let (admin_rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM admin_t")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        (orders, admin_rows)
    }

    /// Deletes the service (linked: forced) and every volume an upgrade left of it.
    async fn delete(&self, berth: &Berth) {
        let (status, body) = berth
            .call(
                Method::DELETE,
                &format!("/api/external-services/{}?force=true", self.id),
                None,
            )
            .await;
        assert!(status.is_success(), "{status} {body}");
        for volume in volumes_of(&self.volume) {
            docker(&["volume", "rm", "-f", &volume]);
        }
    }

    async fn tenant_writes(&self, id: i32) -> Result<(), sqlx::Error> {
        let (user, password, db) = &self.tenant;
        let mut conn = pg_connect(self.port, user, password, db).await?;
        sqlx::query("INSERT INTO orders VALUES ($1, 'later')")
            .bind(id)
            .execute(&mut conn)
            .await
            .map(|_| ())
    }
}

async fn upgrade(berth: &Berth, id: i64, body: Value) -> (StatusCode, Value) {
    berth
        .post_wait(&format!("/api/external-services/{id}/upgrade"), Some(body))
        .await
}

fn volumes_of(prefix: &str) -> Vec<String> {
    let (_, out) = docker(&["volume", "ls", "-q", "--filter", &format!("name={prefix}")]);
    out.lines().map(str::to_string).collect()
}

#[tokio::test]
async fn a_postgres_15_service_moves_to_17_keeping_roles_data_and_links_and_can_go_back() {
    let berth = Berth::start().await;
    let f = fixture(&berth).await;
    assert_eq!(f.server_major().await, 15);

    // A plain image swap across majors stays refused, naming the safe mode.
    let (status, body) = berth
        .call(
            Method::POST,
            &format!("/api/external-services/{}/upgrade", f.id),
            Some(json!({ "docker_image": NEW })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("dump_restore"),
        "{body}"
    );
    // Down or sideways is not what the mode is for.
    let (status, body) = upgrade(
        &berth,
        f.id,
        json!({ "docker_image": "berth/postgres:15", "mode": "dump_restore" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = upgrade(
        &berth,
        f.id,
        json!({ "docker_image": "berth/postgres:99-missing", "mode": "dump_restore" }),
    )
    .await;
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{status} {body}"
    );
    assert_eq!(
        f.server_major().await,
        15,
        "a failed upgrade leaves the service as it was"
    );
    assert_eq!(f.rows().await, (1000, 3));
    f.tenant_writes(5000)
        .await
        .expect("writes allowed again after a failed upgrade");

    // The upgrade: same port, same credentials, every row, the tenant's role.
    let (status, body) = upgrade(
        &berth,
        f.id,
        json!({ "docker_image": NEW, "mode": "dump_restore" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", berth.log());
    assert_eq!(body["parameters"]["docker_image"], NEW, "{body}");
    assert_eq!(body["version"], "17", "{body}");
    assert_eq!(f.server_major().await, 17);
    assert_eq!(f.rows().await, (1001, 3));
    f.tenant_writes(5001)
        .await
        .expect("the tenant writes on 17");
    let (_, ops) = berth
        .get(&format!("/api/external-services/{}/operations", f.id))
        .await;
    let done = ops
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["kind"] == "upgrade" && op["status"] == "succeeded")
        .unwrap_or_else(|| panic!("{ops}"));
    assert!(
        done["payload"]["writes_held_ms"].is_u64(),
        "the window in which writes were held is reported: {done}"
    );
    assert!(
        volumes_of(&f.volume).contains(&f.volume),
        "the old volume is kept until finalize"
    );
    let (status, body) = upgrade(
        &berth,
        f.id,
        json!({ "docker_image": NEW, "mode": "dump_restore" }),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "one pending major upgrade at a time: {body}"
    );

    // Rollback: 15 again, with its data as it was at the switch, writable.
    let (status, body) = berth
        .post_wait(
            &format!("/api/external-services/{}/upgrade/rollback", f.id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", berth.log());
    assert_eq!(f.server_major().await, 15);
    assert_eq!(f.rows().await, (1001, 3));
    f.tenant_writes(5002)
        .await
        .expect("writes allowed after a rollback");

    // Again, then finalize: the old volume goes.
    let (status, body) = upgrade(
        &berth,
        f.id,
        json!({ "docker_image": NEW, "mode": "dump_restore" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(f.rows().await, (1002, 3));
    let (status, body) = berth
        .call(
            Method::POST,
            &format!("/api/external-services/{}/upgrade/finalize", f.id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !volumes_of(&f.volume).contains(&f.volume),
        "finalize removes the old volume"
    );
    assert_eq!(f.server_major().await, 17);
    // Back to an older major is not an upgrade.
    let (status, body) = upgrade(
        &berth,
        f.id,
        json!({ "docker_image": "berth/postgres:15", "mode": "dump_restore" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("newer major only"),
        "{body}"
    );
    assert_eq!(f.rows().await, (1002, 3));
    f.delete(&berth).await;
}

#[tokio::test]
async fn kill_9_at_each_step_of_a_major_upgrade_ends_on_one_version_with_all_data() {
    let mut berth = Berth::start().await;
    let f = fixture(&berth).await;
    for (round, (point, expected, major)) in [
        ("upgrade.after_staging", "rolled_back", 15),
        ("upgrade.before_switch", "rolled_back", 15),
        ("upgrade.after_switch", "succeeded", 17),
    ]
    .into_iter()
    .enumerate()
    {
        let accepted = berth
            .crash_at(
                point,
                Method::POST,
                &format!("/api/external-services/{}/upgrade", f.id),
                Some(json!({ "docker_image": NEW, "mode": "dump_restore" })),
            )
            .await;
        let op = berth
            .wait_operation(
                accepted["operation"]["id"].as_i64().unwrap(),
                Duration::from_secs(180),
            )
            .await;
        assert_eq!(op["status"], expected, "{point}: {op}\n{}", berth.log());
        assert_eq!(f.server_major().await, major, "{point}");
        assert_eq!(f.rows().await.1, 3, "{point}");
        let (orders, _) = f.rows().await;
        assert!(orders >= 1000, "{point}: {orders}");
        f.tenant_writes(6000 + round as i32)
            .await
            .unwrap_or_else(|e| panic!("{point}: writes allowed: {e}"));
        let (_, health) = berth
            .get(&format!(
                "/api/external-services/{}/health?detail=true",
                f.id
            ))
            .await;
        assert_eq!(health["healthy"], true, "{point}: {health}");
    }
    f.delete(&berth).await;
}
