//! PostgreSQL tenant isolation against real servers: names Berth did not create are never
//! adopted or altered, tenant databases come from template0, tenants reach only their own
//! database, their connections are limited, passwords never reach the server log, the admin
//! password is not in `docker inspect`, and revoke/provision turn a tenant's login off and on.

mod common;

use berth_server::engines::tenancy::ServiceAccess;
use std::collections::BTreeMap;
use std::process::Command;

use berth_core::Parameters;
use berth_server::engines::tenancy::Credentials;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

async fn unlink(berth: &Berth, service: i64, project: i64) {
    let (status, body) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{service}/projects/{project}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

/// A running postgres service: (id, published port, admin password, service JSON).
async fn postgres(berth: &Berth, prefix: &str, params: Value) -> (i64, u16, String, Value) {
    let pg = berth.create("postgres", &unique(prefix), params).await;
    let id = pg["id"].as_i64().unwrap();
    let password = berth.password(id).await;
    (id, port_of(&pg), password, pg)
}

async fn admin(port: u16, password: &str, user: &str, db: &str) -> PgConnection {
    pg_connect(port, user, password, db)
        .await
        .expect("admin login")
}

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn owner_of(conn: &mut PgConnection, db: &str) -> String {
    sqlx::query_scalar("SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1")
        .bind(db)
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

async fn tenant_connects(vars: &BTreeMap<String, String>, port: u16) -> PgConnection {
    pg_connect(
        port,
        &vars["POSTGRES_USER"],
        &vars["POSTGRES_PASSWORD"],
        &vars["POSTGRES_DB"],
    )
    .await
    .unwrap_or_else(|e| panic!("tenant {} cannot log in: {e}", vars["POSTGRES_USER"]))
}

/// stdout and stderr of `docker <args>` (PostgreSQL logs to stderr).
fn docker_all(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn hand_made_database_and_role_named_like_tenants_are_neither_adopted_nor_altered() {
    let berth = Berth::start().await;
    let (id, port, admin_pw, _) = postgres(&berth, "pgforeign", json!({})).await;
    let mut su = admin(port, &admin_pw, "postgres", "postgres").await;
    // Made by hand before the project exists: its production database and staging role names.
    exec(&mut su, "CREATE DATABASE shop_production").await;
    exec(
        &mut su,
        "CREATE ROLE shop_staging LOGIN PASSWORD 'handmade-pass'",
    )
    .await;
    // Roles made by hand get their access by explicit grants (Berth takes PUBLIC's away).
    exec(
        &mut su,
        "GRANT CONNECT ON DATABASE postgres TO shop_staging",
    )
    .await;
    let shop = create_project(&berth, "shop", &["production", "staging"]).await;
    let (status, body) = link_project(&berth, id, shop).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    assert_eq!(
        owner_of(&mut su, "shop_production").await,
        "postgres",
        "the hand-made database keeps its owner"
    );
    let comment: Option<String> =
        sqlx::query_scalar("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'shop_production'")
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(comment, None, "and is not marked as Berth's");
    let production = project_env(&berth, id, shop, "production").await;
    assert_ne!(production["POSTGRES_DB"], "shop_production");
    assert!(
        production["POSTGRES_DB"].starts_with("shop_production_"),
        "{production:?}"
    );
    assert!(
        production["DATABASE_URL"].ends_with(&format!("/{}", production["POSTGRES_DB"])),
        "the variables point at the new database"
    );
    assert_eq!(
        owner_of(&mut su, &production["POSTGRES_DB"]).await,
        production["POSTGRES_USER"]
    );
    tenant_connects(&production, port).await;

    let staging = project_env(&berth, id, shop, "staging").await;
    assert_ne!(staging["POSTGRES_USER"], "shop_staging");
    tenant_connects(&staging, port).await;
    pg_connect(port, "shop_staging", "handmade-pass", "postgres")
        .await
        .expect("the hand-made role keeps its password and login");
    let (super_, limit): (bool, i32) = sqlx::query_as(
        "SELECT rolsuper, rolconnlimit FROM pg_roles WHERE rolname = 'shop_staging'",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!((super_, limit), (false, -1), "hand-made role unchanged");
}

/// A name recorded for a tenant that is later taken by something Berth did not create (dropped
/// and re-made by hand while unlinked): provisioning refuses instead of taking it over.
#[tokio::test]
async fn recorded_tenant_name_taken_over_by_hand_is_refused_not_altered() {
    let berth = Berth::start().await;
    let (id, port, admin_pw, _) = postgres(&berth, "pgtaken", json!({})).await;
    let shop = create_project(&berth, "shop", &["production"]).await;
    let (status, body) = link_project(&berth, id, shop).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let vars = project_env(&berth, id, shop, "production").await;
    let name = vars["POSTGRES_DB"].clone();
    unlink(&berth, id, shop).await;

    let mut su = admin(port, &admin_pw, "postgres", "postgres").await;
    exec(&mut su, &format!("DROP DATABASE {name}")).await;
    exec(&mut su, &format!("DROP ROLE {name}")).await;
    exec(
        &mut su,
        &format!("CREATE ROLE {name} LOGIN PASSWORD 'someone-elses'"),
    )
    .await;
    exec(&mut su, &format!("CREATE DATABASE {name}")).await;
    exec(
        &mut su,
        &format!("GRANT CONNECT ON DATABASE postgres TO {name}"),
    )
    .await;

    let (status, body) = link_project(&berth, id, shop).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "re-link must refuse the foreign role and database: {body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("was not created by Berth"),
        "the refusal says why: {body}"
    );
    pg_connect(port, &name, "someone-elses", "postgres")
        .await
        .expect("the foreign role keeps its password");
    assert!(
        pg_connect(port, &name, &vars["POSTGRES_PASSWORD"], &name)
            .await
            .is_err(),
        "the recorded password was not put on the foreign role"
    );
    assert_eq!(owner_of(&mut su, &name).await, "postgres");
}

#[tokio::test]
async fn projects_named_like_the_admin_or_system_objects_get_safe_names() {
    let berth = Berth::start().await;
    // The admin's database and user are what projects "app" and "admin" would be named.
    let (id, port, admin_pw, _) = postgres(
        &berth,
        "pgsys",
        json!({ "database": "app_production", "username": "admin_production" }),
    )
    .await;
    let mut tenants = Vec::new();
    for slug in ["app", "admin", "pg", "template1"] {
        let p = create_project(&berth, slug, &["production"]).await;
        let (status, body) = link_project(&berth, id, p).await;
        assert_eq!(status, StatusCode::CREATED, "linking {slug}: {body}");
        tenants.push((slug, project_env(&berth, id, p, "production").await));
    }
    for (slug, vars) in &tenants {
        let db = &vars["POSTGRES_DB"];
        let expected = match *slug {
            // In use by the admin: a hash suffix.
            "app" | "admin" => format!("{slug}_production_"),
            // Reserved prefixes (PostgreSQL refuses pg_* roles): prefixed instead.
            _ => format!("t_{slug}_production"),
        };
        assert!(db.starts_with(&expected), "{slug} got {db}");
        assert!(!db.starts_with("pg_") && !db.starts_with("template"));
        assert!(db != "app_production" && db != "admin_production");
        assert_eq!(&vars["POSTGRES_USER"], db);
        tenant_connects(vars, port).await;
    }
    // The admin is untouched: same password, still superuser, still owns its database.
    let mut su = admin(port, &admin_pw, "admin_production", "app_production").await;
    let is_super: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'admin_production'")
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert!(is_super);
    assert_eq!(
        owner_of(&mut su, "app_production").await,
        "admin_production"
    );
    let (status, health) = berth
        .get(&format!("/api/external-services/{id}/health"))
        .await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health, true, "Temps' JSON boolean: {health}");
}

#[tokio::test]
async fn tenant_database_is_made_from_template0() {
    let berth = Berth::start().await;
    let (id, port, admin_pw, _) = postgres(&berth, "pgtpl", json!({})).await;
    let mut tpl = admin(port, &admin_pw, "postgres", "template1").await;
    exec(&mut tpl, "CREATE TABLE planted_in_template1 (secret text)").await;
    exec(&mut tpl, "INSERT INTO planted_in_template1 VALUES ('x')").await;
    tpl.close().await.unwrap();
    let p = create_project(&berth, "tpl", &["production"]).await;
    let (status, body) = link_project(&berth, id, p).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let vars = project_env(&berth, id, p, "production").await;
    let mut conn = tenant_connects(&vars, port).await;
    let found: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('planted_in_template1')::text")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(found, None, "nothing from template1 reaches a tenant");
}

#[tokio::test]
async fn tenant_cannot_connect_to_template1_postgres_or_the_admin_database() {
    let berth = Berth::start().await;
    let (id, port, _, _) = postgres(&berth, "pgconn", json!({ "database": "appdb" })).await;
    let p = create_project(&berth, "conn", &["production"]).await;
    let (status, body) = link_project(&berth, id, p).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let vars = project_env(&berth, id, p, "production").await;
    tenant_connects(&vars, port).await;
    for db in ["template1", "postgres", "appdb"] {
        let err = pg_connect(port, &vars["POSTGRES_USER"], &vars["POSTGRES_PASSWORD"], db)
            .await
            .err()
            .unwrap_or_else(|| panic!("tenant connected to {db}"));
        assert!(err.to_string().contains("permission denied"), "{db}: {err}");
    }
}

#[tokio::test]
async fn tenant_connection_limit_is_enforced() {
    let berth = Berth::start().await;
    let (id, port, _, _) =
        postgres(&berth, "pglimit", json!({ "tenant_connection_limit": "2" })).await;
    let p = create_project(&berth, "limit", &["production"]).await;
    let (status, body) = link_project(&berth, id, p).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let vars = project_env(&berth, id, p, "production").await;
    let first = tenant_connects(&vars, port).await;
    let second = tenant_connects(&vars, port).await;
    let err = pg_connect(
        port,
        &vars["POSTGRES_USER"],
        &vars["POSTGRES_PASSWORD"],
        &vars["POSTGRES_DB"],
    )
    .await
    .expect_err("a third connection is refused");
    assert!(
        err.to_string().contains("too many connections for role"),
        "{err}"
    );
    drop((first, second));
}

#[tokio::test]
async fn passwords_never_reach_the_server_log_even_with_log_statement_all() {
    let berth = Berth::start().await;
    let (id, port, admin_pw, pg) = postgres(&berth, "pglog", json!({})).await;
    let container = pg["container_name"].as_str().unwrap();
    let mut su = admin(port, &admin_pw, "postgres", "postgres").await;
    exec(&mut su, "ALTER SYSTEM SET log_statement = 'all'").await;
    exec(&mut su, "SELECT pg_reload_conf()").await;
    su.close().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let p = create_project(&berth, "logged", &["production", "staging"]).await;
    let (status, body) = link_project(&berth, id, p).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut passwords = Vec::new();
    for e in ["production", "staging"] {
        passwords.push(project_env(&berth, id, p, e).await["POSTGRES_PASSWORD"].clone());
    }
    // A re-link provisions again (ALTER ROLE ... PASSWORD on existing roles).
    unlink(&berth, id, p).await;
    let (status, body) = link_project(&berth, id, p).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let log = docker_all(&["logs", container]);
    assert!(
        log.contains("CREATE ROLE") && log.contains("ALTER ROLE"),
        "statements are logged:\n{log}"
    );
    for pw in &passwords {
        assert!(
            !log.contains(pw.as_str()),
            "a tenant password is in the server log"
        );
    }
    assert!(
        log.contains("SCRAM-SHA-256$4096:"),
        "verifiers are sent instead"
    );
    assert!(
        !log.contains(&admin_pw),
        "the admin password is in the server log"
    );
}

#[tokio::test]
async fn docker_inspect_shows_no_admin_password() {
    let berth = Berth::start().await;
    let (id, port, admin_pw, pg) = postgres(&berth, "pginspect", json!({})).await;
    let container = pg["container_name"].as_str().unwrap();
    let inspect = docker_all(&["inspect", container]);
    assert!(
        !inspect.contains(&admin_pw),
        "docker inspect shows the admin password"
    );
    assert!(
        inspect.contains("POSTGRES_PASSWORD_FILE=/run/berth/postgres-password"),
        "{inspect}"
    );
    // The file is there for the entrypoint, readable by postgres only, outside the data
    // directory (which holds no copy of the password either).
    let stat = docker_all(&[
        "exec",
        container,
        "stat",
        "-c",
        "%a %U",
        "/run/berth/postgres-password",
    ]);
    assert_eq!(stat.trim(), "400 postgres");
    let mut grep = Command::new("docker")
        .args([
            "exec",
            "-i",
            container,
            "grep",
            "-rlF",
            "-f",
            "-",
            "/var/lib/postgresql/data",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = grep.stdin.take().unwrap();
        stdin.write_all(admin_pw.as_bytes()).unwrap();
    }
    let out = grep.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the password is in the data directory: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The admin login works, also after a restart of the container.
    admin(port, &admin_pw, "postgres", "postgres").await;
    for action in ["stop", "start"] {
        let (status, body) = berth
            .post_wait(&format!("/api/external-services/{id}/{action}"), None)
            .await;
        assert!(status.is_success(), "{action}: {status} {body}");
    }
    admin(port, &admin_pw, "postgres", "postgres").await;
    let inspect = docker_all(&["inspect", container]);
    assert!(!inspect.contains(&admin_pw));
}

/// The image still accepts the plain `POSTGRES_PASSWORD` of containers made by earlier Berth
/// versions (`POSTGRES_PASSWORD_FILE` alone is what every other test's service uses).
#[tokio::test]
async fn image_still_initialises_from_a_plain_postgres_password() {
    let name = unique("pgenv");
    let (ok, _) = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-e",
        "POSTGRES_PASSWORD=legacy-pass",
        "berth/postgres:15",
    ]);
    assert!(ok);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let logs = docker_all(&["logs", &name]);
        if logs.contains("database system is ready to accept connections")
            && logs.contains("berth-entrypoint: initialised")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{logs}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, running) = docker(&["inspect", "-f", "{{.State.Running}}", &name]);
    docker(&["rm", "-f", "-v", &name]);
    assert_eq!(running, "true");
}

/// Verifiers Berth computes are accepted by PostgreSQL, and PostgreSQL's own verifiers match
/// Berth's check.
#[tokio::test]
async fn scram_verifiers_agree_with_postgresql() {
    let berth = Berth::start().await;
    let (_, port, admin_pw, _) = postgres(&berth, "pgscram", json!({})).await;
    let mut su = admin(port, &admin_pw, "postgres", "postgres").await;
    let verifier = berth_core::scram::verifier("Plain-Pass-123").unwrap();
    let create: String = sqlx::query_scalar(
        "SELECT format('CREATE ROLE scram_made_by_berth LOGIN PASSWORD %L', $1::text)",
    )
    .bind(&verifier)
    .fetch_one(&mut su)
    .await
    .unwrap();
    exec(&mut su, &create).await;
    let stored: String = sqlx::query_scalar(
        "SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_made_by_berth'",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(stored, verifier, "stored as sent");
    pg_connect(port, "scram_made_by_berth", "Plain-Pass-123", "postgres")
        .await
        .expect("the plain password logs in against Berth's verifier");
    assert!(
        pg_connect(port, "scram_made_by_berth", "Plain-Pass-124", "postgres")
            .await
            .is_err()
    );
    exec(
        &mut su,
        "CREATE ROLE scram_made_by_server LOGIN PASSWORD 'Server-Side-9'",
    )
    .await;
    let server_made: String = sqlx::query_scalar(
        "SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_made_by_server'",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert!(berth_core::scram::verifier_matches(
        &server_made,
        "Server-Side-9"
    ));
    assert!(!berth_core::scram::verifier_matches(
        &server_made,
        "Server-Side-0"
    ));
}

fn service_params(pg: &Value, admin_pw: &str) -> Parameters {
    let mut params: Parameters = serde_json::from_value(pg["parameters"].clone()).unwrap();
    params.insert("password".into(), admin_pw.into());
    params
}

fn credentials(vars: &BTreeMap<String, String>) -> Credentials {
    Credentials {
        resource_name: vars["POSTGRES_DB"].clone(),
        resource_number: None,
        username: vars["POSTGRES_USER"].clone(),
        password: vars["POSTGRES_PASSWORD"].clone(),
    }
}

/// The engine's revoke and provision against a real server (the API's unlink?revoke=true and
/// project deletion call them).
#[tokio::test]
async fn revoke_then_provision_turns_login_off_and_back_on() {
    let berth = Berth::start().await;
    let (id, port, admin_pw, pg) = postgres(&berth, "pgrevoke", json!({})).await;
    let p = create_project(&berth, "rev", &["production"]).await;
    let (status, body) = link_project(&berth, id, p).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let vars = project_env(&berth, id, p, "production").await;
    let tenant = credentials(&vars);
    let params = service_params(&pg, &admin_pw);
    let docker = berth_server::docker::DockerClient::new();
    let container = pg["container_name"].as_str().unwrap().to_string();
    let access = ServiceAccess::new(&docker, &container, port, &params);
    let tenancy = berth_server::engines::engine("postgres")
        .unwrap()
        .tenancy()
        .unwrap();
    assert!(tenancy.is_provisioned(&access, &tenant).await.unwrap());

    let mut session = tenant_connects(&vars, port).await;
    exec(
        &mut session,
        "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)",
    )
    .await;
    tenancy.revoke(&access, &tenant).await.unwrap();
    tenancy
        .revoke(&access, &tenant)
        .await
        .expect("revoke is idempotent");
    assert!(
        sqlx::query("SELECT 1").execute(&mut session).await.is_err(),
        "the open session was terminated"
    );
    let err = pg_connect(
        port,
        &tenant.username,
        &tenant.password,
        &tenant.resource_name,
    )
    .await
    .expect_err("login is off");
    assert!(err.to_string().contains("not permitted to log in"), "{err}");
    assert!(!tenancy.is_provisioned(&access, &tenant).await.unwrap());

    tenancy.provision(&access, &tenant).await.unwrap();
    let mut conn = tenant_connects(&vars, port).await;
    let kept: i32 = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept, 7, "data stayed");
    assert!(tenancy.is_provisioned(&access, &tenant).await.unwrap());

    // A password changed behind Berth's back is not "provisioned"; provision puts it back.
    let mut su = admin(port, &admin_pw, "postgres", "postgres").await;
    exec(
        &mut su,
        &format!("ALTER ROLE {} PASSWORD 'changed-by-hand'", tenant.username),
    )
    .await;
    assert!(!tenancy.is_provisioned(&access, &tenant).await.unwrap());
    tenancy.provision(&access, &tenant).await.unwrap();
    assert!(tenancy.is_provisioned(&access, &tenant).await.unwrap());

    // Revoke never touches a role Berth did not create.
    exec(&mut su, "CREATE ROLE hand_role LOGIN PASSWORD 'hand-pass'").await;
    exec(&mut su, "GRANT CONNECT ON DATABASE postgres TO hand_role").await;
    let foreign = Credentials {
        resource_name: "hand_role".into(),
        resource_number: None,
        username: "hand_role".into(),
        password: "x".into(),
    };
    assert!(tenancy.revoke(&access, &foreign).await.is_err());
    assert!(tenancy.provision(&access, &foreign).await.is_err());
    pg_connect(port, "hand_role", "hand-pass", "postgres")
        .await
        .expect("the hand-made role still logs in");
}
