//! Linking against real servers: per-project isolation, the variable names of the contract,
//! masking, unlink/re-link stability, variables consumed by real clients in a container on the
//! Berth network, `berth run`, and the refusals (one per type, stopped service, exhausted
//! Redis numbers, linked delete).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn env(
    berth: &Berth,
    service: i64,
    project: i64,
    environment: &str,
) -> BTreeMap<String, String> {
    let (status, body) = berth
        .get(&format!("/api/external-services/{service}/projects/{project}/environment?environment={environment}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

fn host_port_env(vars: &BTreeMap<String, String>, published: u16) -> u16 {
    assert_eq!(
        vars["POSTGRES_PORT"], "5432",
        "network address uses the internal port"
    );
    published
}

const POSTGRES_NAMES: &[&str] = &[
    "DATABASE_URL",
    "PGDATABASE",
    "PGHOST",
    "PGPASSWORD",
    "PGPORT",
    "PGUSER",
    "POSTGRES_DATABASE",
    "POSTGRES_DB",
    "POSTGRES_HOST",
    "POSTGRES_NAME",
    "POSTGRES_PASSWORD",
    "POSTGRES_PORT",
    "POSTGRES_URL",
    "POSTGRES_USER",
];
const REDIS_NAMES: &[&str] = &[
    "REDIS_CHANNEL_PREFIX",
    "REDIS_DATABASE",
    "REDIS_HOST",
    "REDIS_PASSWORD",
    "REDIS_PORT",
    "REDIS_URL",
    "REDIS_USERNAME",
];

#[tokio::test]
async fn postgres_link_isolates_projects_and_real_clients_connect() {
    let berth = Berth::start().await;
    let pg = berth.create("postgres", &unique("lpg"), json!({})).await;
    let id = pg["id"].as_i64().unwrap();
    let published = port_of(&pg);
    let a = create_project(&berth, &unique("shop-a"), &["production", "staging"]).await;
    let b = create_project(&berth, &unique("shop-b"), &["production"]).await;

    let (status, link_a) = link_project(&berth, id, a).await;
    assert_eq!(status, StatusCode::CREATED, "{link_a}");
    assert_eq!(link_a["environments"].as_array().unwrap().len(), 2);
    let (status, again) = link_project(&berth, id, a).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "linking twice is idempotent: {again}"
    );
    let (status, _) = link_project(&berth, id, b).await;
    assert_eq!(status, StatusCode::CREATED);

    let env_a = env(&berth, id, a, "production").await;
    let env_a_staging = env(&berth, id, a, "staging").await;
    let env_b = env(&berth, id, b, "production").await;
    let names: Vec<&str> = env_a.keys().map(String::as_str).collect();
    assert_eq!(names, POSTGRES_NAMES, "the variable names of the contract");
    assert_eq!(
        env_a["POSTGRES_HOST"],
        pg["container_name"].as_str().unwrap()
    );
    assert_ne!(
        env_a["POSTGRES_USER"], "postgres",
        "projects get their own role, not the superuser"
    );
    assert_ne!(
        env_a["POSTGRES_DB"], env_a_staging["POSTGRES_DB"],
        "one database per environment"
    );
    assert!(env_a["POSTGRES_DB"].ends_with("_production"));
    let port = host_port_env(&env_a, published);

    // Isolation: A's credentials open A's database, not B's (nor the admin's).
    let user_a = &env_a["POSTGRES_USER"];
    let pw_a = &env_a["POSTGRES_PASSWORD"];
    let mut conn = pg_connect(port, user_a, pw_a, &env_a["POSTGRES_DB"])
        .await
        .unwrap();
    sqlx::query("CREATE TABLE orders (id int)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO orders VALUES (1)")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let denied = pg_connect(port, user_a, pw_a, &env_b["POSTGRES_DB"])
        .await
        .unwrap_err()
        .to_string();
    assert!(denied.contains("permission denied"), "{denied}");
    assert!(
        pg_connect(port, user_a, pw_a, "postgres").await.is_err(),
        "no access to the admin database"
    );
    assert!(
        pg_connect(
            port,
            &env_b["POSTGRES_USER"],
            &env_b["POSTGRES_PASSWORD"],
            &env_a["POSTGRES_DB"]
        )
        .await
        .is_err()
    );

    // Masked preview: names only and masked values carry no secret.
    let (_, names_only) = berth
        .get(&format!(
            "/api/external-services/{id}/preview-environment-names"
        ))
        .await;
    let mut preview_names: Vec<String> = serde_json::from_value(names_only).unwrap();
    preview_names.sort();
    assert_eq!(preview_names, POSTGRES_NAMES);
    let (_, masked) = berth
        .get(&format!(
            "/api/external-services/{id}/preview-environment-masked"
        ))
        .await;
    let masked_text = masked.to_string();
    let admin_pw = berth.password(id).await;
    for secret in [&admin_pw, pw_a, &env_b["POSTGRES_PASSWORD"]] {
        assert!(
            !masked_text.contains(secret.as_str()),
            "masked preview leaks a secret"
        );
    }
    assert_eq!(masked["POSTGRES_PASSWORD"], "********");
    assert!(
        masked["DATABASE_URL"]
            .as_str()
            .unwrap()
            .contains(":********@"),
        "{masked}"
    );

    // A real client in a container on the Berth network, using only the injected variables.
    let mut args: Vec<String> = vec![
        "run".into(),
        "--rm".into(),
        "--network".into(),
        "berth".into(),
    ];
    for (k, v) in &env_a {
        args.push("-e".into());
        args.push(format!("{k}={v}"));
    }
    args.extend([
        "berth/postgres:15".into(),
        "sh".into(),
        "-c".into(),
        r#"psql "$DATABASE_URL" -tAc 'SELECT count(*) FROM orders' && psql -tAc 'SELECT current_user'"#.into(),
    ]);
    let out = Command::new("docker").args(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.split_whitespace().collect::<Vec<_>>(),
        vec!["1", user_a.as_str()]
    );

    // Unlink stops injection but drops nothing; re-link restores the same credentials and data.
    let (status, _) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{id}/projects/{a}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = berth
        .get(&format!(
            "/api/external-services/{id}/projects/{a}/environment"
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not injected while unlinked");
    let (_, vars) = berth
        .get(&format!(
            "/api/projects/{a}/environments/production/variables"
        ))
        .await;
    assert_eq!(
        vars,
        json!({}),
        "the project gets nothing from an unlinked service"
    );
    let mut conn = pg_connect(port, user_a, pw_a, &env_a["POSTGRES_DB"])
        .await
        .unwrap();
    sqlx::query("SELECT id FROM orders")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let (status, _) = link_project(&berth, id, a).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        env(&berth, id, a, "production").await,
        env_a,
        "re-link gives back the same values"
    );

    // A second postgres for the same project is refused, naming the linked one.
    let pg2 = berth.create("postgres", &unique("lpg2"), json!({})).await;
    let (status, body) = link_project(&berth, pg2["id"].as_i64().unwrap(), a).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(pg["name"].as_str().unwrap()),
        "{body}"
    );

    // An environment added later is provisioned in the linked service straight away.
    let (status, _) = berth
        .call(
            Method::POST,
            &format!("/api/projects/{a}/environments"),
            Some(json!({ "name": "preview" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let env_preview = env(&berth, id, a, "preview").await;
    pg_connect(
        port,
        &env_preview["POSTGRES_USER"],
        &env_preview["POSTGRES_PASSWORD"],
        &env_preview["POSTGRES_DB"],
    )
    .await
    .unwrap();

    // Deleting a linked service is refused unless forced; forced says what happens to data.
    let (status, body) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = berth
        .call(Method::DELETE, &format!("/api/projects/{a}"), None)
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a linked project cannot be deleted: {body}"
    );
    let (status, body) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{id}?force=true&wait=true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["note"].as_str().unwrap().contains("unlinked"),
        "{body}"
    );
    berth.delete_service(pg2["id"].as_i64().unwrap()).await;
}

#[tokio::test]
async fn redis_link_allocates_numbers_durably_and_isolates_users() {
    let berth = Berth::start().await;
    let rd = berth.create("redis", &unique("lrd"), json!({})).await;
    let id = rd["id"].as_i64().unwrap();
    let port = port_of(&rd);
    let a = create_project(&berth, &unique("ra"), &["production"]).await;
    let b = create_project(&berth, &unique("rb"), &["production"]).await;

    // Two links at once never get the same number.
    let (ra, rb) = tokio::join!(link_project(&berth, id, a), link_project(&berth, id, b));
    assert_eq!(ra.0, StatusCode::CREATED, "{}", ra.1);
    assert_eq!(rb.0, StatusCode::CREATED, "{}", rb.1);
    let env_a = env(&berth, id, a, "production").await;
    let env_b = env(&berth, id, b, "production").await;
    let names: Vec<&str> = env_a.keys().map(String::as_str).collect();
    assert_eq!(names, REDIS_NAMES);
    assert_ne!(env_a["REDIS_DATABASE"], env_b["REDIS_DATABASE"]);
    assert_ne!(
        env_a["REDIS_DATABASE"], "0",
        "database 0 is never a tenant's"
    );

    // A's user works in A's database and cannot SELECT B's.
    let url = |vars: &BTreeMap<String, String>| {
        format!(
            "redis://{}:{}@127.0.0.1:{port}/{}",
            vars["REDIS_USERNAME"], vars["REDIS_PASSWORD"], vars["REDIS_DATABASE"]
        )
    };
    let client = redis::Client::open(url(&env_a)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("cart")
        .arg("a")
        .query_async(&mut conn)
        .await
        .unwrap();
    let other: Result<(), _> = redis::cmd("SELECT")
        .arg(env_b["REDIS_DATABASE"].as_str())
        .query_async(&mut conn)
        .await;
    assert!(
        other.is_err(),
        "SELECT of another project's database is denied"
    );
    let flush: Result<(), _> = redis::cmd("FLUSHALL").query_async(&mut conn).await;
    assert!(flush.is_err(), "FLUSHALL crosses databases and is denied");
    drop(conn);
    let client_b = redis::Client::open(url(&env_b)).unwrap();
    let mut conn_b = client_b.get_multiplexed_async_connection().await.unwrap();
    let seen: Option<String> = redis::cmd("GET")
        .arg("cart")
        .query_async(&mut conn_b)
        .await
        .unwrap();
    assert_eq!(seen, None, "B does not see A's keys");
    drop(conn_b);

    // A real client in a container, from the injected REDIS_URL only; ACL users survive a restart.
    let (status, _) = berth
        .post_wait(&format!("/api/external-services/{id}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = berth
        .post_wait(&format!("/api/external-services/{id}/start"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "berth", "-e"])
        .arg(format!("REDIS_URL={}", env_a["REDIS_URL"]))
        .args([
            "berth/redis:7",
            "sh",
            "-c",
            r#"redis-cli --no-auth-warning -u "$REDIS_URL" GET cart"#,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "a",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Unlink + re-link: same number and credentials.
    berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{id}/projects/{a}"),
            None,
        )
        .await;
    let (status, _) = link_project(&berth, id, a).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(env(&berth, id, a, "production").await, env_a);

    // Exhaustion: 16 databases, 0 kept empty, 2 used -> 13 left. A 14-environment project fails
    // cleanly and allocates nothing.
    let envs: Vec<String> = (0..14).map(|i| format!("e{i}")).collect();
    let env_refs: Vec<&str> = envs.iter().map(String::as_str).collect();
    let big = create_project(&berth, &unique("big"), &env_refs).await;
    let (status, body) = link_project(&berth, id, big).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("16 databases"),
        "{body}"
    );
    let (_, links) = berth
        .get(&format!("/api/external-services/{id}/projects"))
        .await;
    assert_eq!(
        links.as_array().unwrap().len(),
        2,
        "nothing half-linked: {links}"
    );
    let fits = create_project(&berth, &unique("fits"), &env_refs[..13]).await;
    let (status, body) = link_project(&berth, id, fits).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the remaining 13 numbers are all usable: {body}"
    );

    // A stopped service cannot be linked (documented choice: 409, start it first).
    let (status, _) = berth
        .post_wait(&format!("/api/external-services/{id}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let c = create_project(&berth, &unique("rc"), &["production"]).await;
    let (status, body) = link_project(&berth, id, c).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["detail"].as_str().unwrap().contains("start it"),
        "{body}"
    );
}

#[tokio::test]
async fn link_bad_input_and_long_slugs() {
    let berth = Berth::start().await;
    let pg = berth.create("postgres", &unique("lbad"), json!({})).await;
    let id = pg["id"].as_i64().unwrap();
    let (status, _) = link_project(&berth, id, 999).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let p = create_project(&berth, &unique("p"), &["production"]).await;
    let (status, _) = link_project(&berth, 999, p).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{id}/projects/{p}"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "unlinking what is not linked"
    );
    let (status, _) = berth
        .get(&format!(
            "/api/external-services/{id}/projects/{p}/environment"
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The longest slugs still give a valid, deterministic, distinct database name.
    let slug = format!("a{}", "b".repeat(62));
    let (status, body) = berth
        .call(Method::POST, "/api/projects", Some(json!({ "name": "long", "slug": slug, "environments": ["production-environment-with-a-long-name"] })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let long = body["id"].as_i64().unwrap();
    let (status, body) = link_project(&berth, id, long).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let db = body["environments"][0]["resource_name"].as_str().unwrap();
    assert_eq!(db.len(), 63, "{db}");
    let vars = env(&berth, id, long, "production-environment-with-a-long-name").await;
    pg_connect(
        port_of(&pg),
        &vars["POSTGRES_USER"],
        &vars["POSTGRES_PASSWORD"],
        &vars["POSTGRES_DB"],
    )
    .await
    .unwrap();
    let (status, _) = berth
        .get(&format!("/api/projects/{long}/environments/nope/variables"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = berth.get(&format!("/api/projects/{long}/environments/production-environment-with-a-long-name/variables?format=xml")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn berth_env_and_run_use_the_project_variables() {
    let berth = Berth::start().await;
    let pg = berth.create("postgres", &unique("lrun"), json!({})).await;
    let slug = unique("run");
    let p = create_project(&berth, &slug, &["production"]).await;
    let (status, _) = link_project(&berth, pg["id"].as_i64().unwrap(), p).await;
    assert_eq!(status, StatusCode::CREATED);

    let cli = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("BERTH_API_URL", berth.url(""))
            .env("BERTH_DATA_DIR", &berth.data_dir)
            .output()
            .unwrap()
    };
    let out = cli(&["env", "-p", &slug, "-e", "production", "--format", "dotenv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("DATABASE_URL=\"postgresql://")
            && text.contains(pg["container_name"].as_str().unwrap())
    );
    let out = cli(&["env", "-p", &slug, "--format", "json"]);
    let json_vars: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json_vars["PGPORT"], "5432");

    // `berth run`: a local psql connects with the host-side rewrite, using only the env.
    let out = cli(&[
        "run",
        "-p",
        &slug,
        "--",
        "psql",
        "-tAc",
        "SELECT current_database()",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .ends_with("_production")
    );
    // The command's exit code is berth's.
    let out = cli(&["run", "-p", &slug, "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
}
