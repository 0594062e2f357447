//! Redis tenant isolation against a real server: what one project's ACL user can do to another
//! project's data and to server-wide state (functions, the script cache, clients, pub/sub,
//! configuration), what clients need keeps working, database 0 is watched, revocation, and the
//! admin password stays out of `docker inspect` and out of the volume.

mod common;

use berth_server::engines::tenancy::ServiceAccess;
use std::collections::BTreeMap;
use std::time::Duration;

use berth_server::engines::tenancy::Credentials;
use common::*;
use redis::Value;
use redis::aio::MultiplexedConnection;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn project(berth: &Berth, name: &str) -> i64 {
    let (status, body) = berth
        .call(
            Method::POST,
            "/api/projects",
            Some(json!({ "name": name, "environments": ["production"] })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

/// A linked project environment as its application sees it.
#[derive(Debug, Clone)]
struct Tenant {
    user: String,
    password: String,
    db: i64,
    prefix: String,
}

struct Setup {
    berth: Berth,
    id: i64,
    port: u16,
    container: String,
    admin_password: String,
    a: Tenant,
    b: Tenant,
}

async fn link_tenant(berth: &Berth, id: i64, project_id: i64) -> Tenant {
    let (status, body) = berth
        .call(
            Method::POST,
            &format!("/api/external-services/{id}/projects"),
            Some(json!({ "project_id": project_id })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = berth
        .get(&format!(
            "/api/external-services/{id}/projects/{project_id}/environment?environment=production"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let vars: BTreeMap<String, String> = serde_json::from_value(body).unwrap();
    let tenant = Tenant {
        user: vars["REDIS_USERNAME"].clone(),
        password: vars["REDIS_PASSWORD"].clone(),
        db: vars["REDIS_DATABASE"].parse().unwrap(),
        prefix: vars
            .get("REDIS_CHANNEL_PREFIX")
            .expect("REDIS_CHANNEL_PREFIX is injected")
            .clone(),
    };
    assert_eq!(tenant.prefix, format!("{}:", tenant.user));
    assert!(
        vars["REDIS_URL"].ends_with(&format!("/{}", tenant.db)),
        "REDIS_URL selects the tenant's database: {}",
        vars["REDIS_URL"]
    );
    tenant
}

/// One Redis, two projects A and B linked to it.
async fn setup() -> Setup {
    let berth = Berth::start().await;
    let rd = berth.create("redis", &unique("iso"), json!({})).await;
    let id = rd["id"].as_i64().unwrap();
    let port = port_of(&rd);
    let container = rd["container_name"].as_str().unwrap().to_string();
    let admin_password = berth.password(id).await;
    let pa = project(&berth, &unique("pa")).await;
    let pb = project(&berth, &unique("pb")).await;
    let a = link_tenant(&berth, id, pa).await;
    let b = link_tenant(&berth, id, pb).await;
    assert_ne!(a.db, b.db);
    Setup {
        berth,
        id,
        port,
        container,
        admin_password,
        a,
        b,
    }
}

/// The tenant's URL on the published port; `db` None lands in database 0 (no SELECT).
fn url(port: u16, t: &Tenant, db: Option<i64>, resp3: bool) -> String {
    let db = db.map(|d| d.to_string()).unwrap_or_default();
    let protocol = if resp3 { "?protocol=resp3" } else { "" };
    format!(
        "redis://{}:{}@127.0.0.1:{port}/{db}{protocol}",
        urlencode(&t.user),
        urlencode(&t.password)
    )
}

async fn connect(url: &str) -> redis::RedisResult<MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    tokio::time::timeout(
        Duration::from_secs(10),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| redis::RedisError::from(std::io::Error::other("connect timed out")))?
}

async fn tenant(port: u16, t: &Tenant) -> MultiplexedConnection {
    connect(&url(port, t, Some(t.db), false)).await.unwrap()
}

/// A RESP3 connection (the client sends `HELLO 3 AUTH ...`) whose push messages arrive on the
/// returned channel.
async fn tenant_resp3(
    port: u16,
    t: &Tenant,
) -> (
    MultiplexedConnection,
    tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = redis::Client::open(url(port, t, Some(t.db), true)).unwrap();
    let config = redis::AsyncConnectionConfig::new()
        .set_push_sender(tx)
        .set_response_timeout(Some(Duration::from_secs(10)));
    let conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    (conn, rx)
}

async fn query(conn: &mut MultiplexedConnection, args: &[String]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(&args[0]);
    for a in &args[1..] {
        cmd.arg(a);
    }
    match tokio::time::timeout(Duration::from_secs(10), cmd.query_async(conn)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::other("timed out").into()),
    }
}

fn is_noperm(e: &redis::RedisError) -> bool {
    e.code() == Some("NOPERM") || e.to_string().contains("NOPERM")
}

/// NOPERM, or a protected command (`DEBUG`, `MODULE` with `enable-*-command no`, checked by
/// Redis before ACLs).
fn is_refused(e: &redis::RedisError) -> bool {
    is_noperm(e) || e.to_string().contains("command not allowed")
}

const B_KEY: &str = "b-only-key";
const B_VALUE: &str = "b-only-value";
const B_LIBRARY: &str =
    "#!lua name=blib\nredis.register_function('bfn', function() return 'b' end)";
const A_LIBRARY: &str =
    "#!lua name=blib\nredis.register_function('bfn', function() return 'a' end)";
const B_SCRIPT: &str = "return 'b-cached-script'";

/// What an entry of the table is expected to do.
enum Expect {
    /// Refused (NOPERM, or a protected command).
    Refused,
    /// Runs in A's own database (after A tried to SELECT B's): its reply must not show B's key
    /// or value; the checks after the table prove B lost nothing.
    NoEffect,
}

enum Action {
    Cmd(Vec<String>),
    Subscribe(String),
    PSubscribe(String),
}

fn cmd(args: &[&str]) -> Action {
    Action::Cmd(args.iter().map(|s| s.to_string()).collect())
}

#[tokio::test]
async fn tenant_cannot_reach_another_tenants_data_or_server_wide_state() {
    let s = setup().await;
    let (a, b) = (&s.a, &s.b);

    // B's data and server-wide state that other tenants must not touch: a key in B's
    // database, a function library (loaded by the admin: tenants cannot own functions), and
    // a script B cached for EVALSHA.
    let mut conn_b = tenant(s.port, b).await;
    let _: () = redis::cmd("SET")
        .arg(B_KEY)
        .arg(B_VALUE)
        .query_async(&mut conn_b)
        .await
        .unwrap();
    let b_sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(B_SCRIPT)
        .query_async(&mut conn_b)
        .await
        .unwrap();
    let mut admin = redis_conn(s.port, &s.admin_password).await;
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(B_LIBRARY)
        .query_async(&mut admin)
        .await
        .unwrap();
    let dump: Vec<u8> = redis::cmd("FUNCTION")
        .arg("DUMP")
        .query_async(&mut admin)
        .await
        .unwrap();

    let bdb = b.db.to_string();
    let adb = a.db.to_string();
    let b_chan = format!("{}orders", b.prefix);
    // Binary; lossy is fine: the point is whether A may run RESTORE at all.
    let dump = String::from_utf8_lossy(&dump).into_owned();
    use Expect::*;
    let table: Vec<(Action, Expect)> = vec![
        (cmd(&["SELECT", &bdb]), Refused),
        (cmd(&["SELECT", "0"]), Refused),
        (cmd(&["KEYS", "*"]), NoEffect),
        (cmd(&["SCAN", "0", "COUNT", "1000"]), NoEffect),
        (cmd(&["GET", B_KEY]), NoEffect),
        (cmd(&["DEL", B_KEY]), NoEffect),
        (cmd(&["FLUSHDB"]), NoEffect),
        (cmd(&["MOVE", B_KEY, &bdb]), Refused),
        (cmd(&["COPY", B_KEY, "x", "DB", &bdb, "REPLACE"]), Refused),
        (cmd(&["SWAPDB", &adb, &bdb]), Refused),
        (cmd(&["FLUSHALL"]), Refused),
        (cmd(&["FUNCTION", "LOAD", "REPLACE", A_LIBRARY]), Refused),
        (cmd(&["FUNCTION", "DELETE", "blib"]), Refused),
        (cmd(&["FUNCTION", "FLUSH"]), Refused),
        (cmd(&["FUNCTION", "RESTORE", &dump, "REPLACE"]), Refused),
        (cmd(&["FUNCTION", "KILL"]), Refused),
        (cmd(&["SCRIPT", "FLUSH"]), Refused),
        (cmd(&["SCRIPT", "KILL"]), Refused),
        (cmd(&["CONFIG", "GET", "*"]), Refused),
        (cmd(&["CONFIG", "SET", "maxmemory", "1"]), Refused),
        (cmd(&["ACL", "LIST"]), Refused),
        (cmd(&["ACL", "GETUSER", &b.user]), Refused),
        (cmd(&["ACL", "SETUSER", &a.user, "+@all"]), Refused),
        (cmd(&["ACL", "DELUSER", &b.user]), Refused),
        (cmd(&["CLIENT", "LIST"]), Refused),
        (cmd(&["CLIENT", "KILL", "USER", &b.user]), Refused),
        (cmd(&["CLIENT", "PAUSE", "10", "WRITE"]), Refused),
        (cmd(&["CLIENT", "UNPAUSE"]), Refused),
        (cmd(&["CLIENT", "NO-EVICT", "on"]), Refused),
        (cmd(&["CLIENT", "TRACKING", "on", "BCAST"]), Refused),
        (cmd(&["PUBLISH", &b_chan, "forged"]), Refused),
        (cmd(&["PUBSUB", "CHANNELS"]), Refused),
        (Action::Subscribe(b_chan.clone()), Refused),
        (Action::PSubscribe("*".into()), Refused),
        (Action::PSubscribe(format!("{}*", b.prefix)), Refused),
        (cmd(&["DEBUG", "SLEEP", "0"]), Refused),
        (cmd(&["MODULE", "LIST"]), Refused),
        (
            cmd(&["MIGRATE", "127.0.0.1", "6379", B_KEY, &bdb, "1000"]),
            Refused,
        ),
        (cmd(&["SAVE"]), Refused),
        (cmd(&["SHUTDOWN", "NOSAVE"]), Refused),
    ];

    let mut failures = Vec::new();
    for (action, expect) in &table {
        let (label, result) = match action {
            Action::Cmd(args) => {
                let mut conn = tenant(s.port, a).await;
                if matches!(expect, NoEffect) {
                    // What an attacker would try first; refused (asserted above).
                    let _ = query(&mut conn, &["SELECT".into(), bdb.clone()]).await;
                }
                (args.join(" "), query(&mut conn, args).await)
            }
            Action::Subscribe(chan) | Action::PSubscribe(chan) => {
                let (mut conn, _rx) = tenant_resp3(s.port, a).await;
                let pattern = matches!(action, Action::PSubscribe(_));
                let r = if pattern {
                    conn.psubscribe(chan).await
                } else {
                    conn.subscribe(chan).await
                };
                let verb = if pattern { "PSUBSCRIBE" } else { "SUBSCRIBE" };
                (format!("{verb} {chan}"), r.map(|()| Value::Okay))
            }
        };
        let label = label.lines().next().unwrap_or_default().to_string();
        match (expect, result) {
            (Refused, Err(e)) if is_refused(&e) => {}
            (Refused, other) => failures.push(format!("{label}: not refused: {other:?}")),
            (NoEffect, Ok(reply)) => {
                let text = format!("{reply:?}");
                if text.contains(B_KEY) || text.contains(B_VALUE) {
                    failures.push(format!("{label}: shows B's data: {text}"));
                }
            }
            (NoEffect, Err(e)) => failures.push(format!("{label}: failed in A's own db: {e}")),
        }
    }

    // As admin: B's key, B's library and B's cached script are all still there, and B's user
    // still logs in.
    let mut admin = redis_conn(s.port, &s.admin_password).await;
    let (_, value): ((), Option<String>) = redis::pipe()
        .cmd("SELECT")
        .arg(b.db)
        .cmd("GET")
        .arg(B_KEY)
        .query_async(&mut admin)
        .await
        .unwrap();
    if value.as_deref() != Some(B_VALUE) {
        failures.push(format!("B's key is gone or changed: {value:?}"));
    }
    let libraries: Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("LIBRARYNAME")
        .arg("blib")
        .arg("WITHCODE")
        .query_async(&mut admin)
        .await
        .unwrap();
    if !format!("{libraries:?}").contains("return 'b'") {
        failures.push(format!(
            "B's function library is gone or replaced: {libraries:?}"
        ));
    }
    let exists: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&b_sha)
        .query_async(&mut admin)
        .await
        .unwrap();
    if exists != [1] {
        failures.push("B's cached script was flushed".into());
    }
    match connect(&url(s.port, b, Some(b.db), false)).await {
        Ok(mut conn) => {
            let seen: Option<String> = redis::cmd("GET")
                .arg(B_KEY)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(seen.as_deref(), Some(B_VALUE));
        }
        Err(e) => failures.push(format!("B can no longer log in: {e}")),
    }
    assert!(
        failures.is_empty(),
        "tenant A reached B or server-wide state:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn tenant_pubsub_is_confined_to_its_prefix_and_client_commands_work() {
    let s = setup().await;
    let a = &s.a;

    // HELLO 3 with AUTH (sent by the client on connect), then what clients send on connect.
    let (mut sub, mut pushes) = tenant_resp3(s.port, a).await;
    let hello: Value = redis::cmd("HELLO")
        .arg(3)
        .query_async(&mut sub)
        .await
        .unwrap();
    assert!(format!("{hello:?}").contains("redis"), "{hello:?}");
    let mut conn = tenant(s.port, a).await;
    for args in [
        vec!["CLIENT", "SETNAME", "shop-web"],
        vec!["CLIENT", "GETNAME"],
        vec!["CLIENT", "ID"],
        vec!["CLIENT", "INFO"],
        vec!["PING"],
        vec!["INFO", "server"],
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        query(&mut conn, &args)
            .await
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
    let name: String = redis::cmd("CLIENT")
        .arg("GETNAME")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(name, "shop-web");

    // EVAL and EVALSHA run as the tenant, inside its own database.
    let set: String = redis::cmd("EVAL")
        .arg("return redis.call('SET', KEYS[1], ARGV[1])")
        .arg(1)
        .arg("from-lua")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(set, "OK");
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return redis.call('GET', KEYS[1])")
        .query_async(&mut conn)
        .await
        .unwrap();
    let got: String = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(1)
        .arg("from-lua")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(got, "v");
    let escape: redis::RedisResult<Value> = redis::cmd("EVAL")
        .arg("return redis.call('SELECT', ARGV[1])")
        .arg(0)
        .arg(s.b.db)
        .query_async(&mut conn)
        .await;
    assert!(escape.is_err(), "a script cannot SELECT B's database");

    // Pub/sub under the tenant's own prefix works, for channels and the prefix pattern.
    let channel = format!("{}events", a.prefix);
    sub.subscribe(&channel).await.unwrap();
    sub.psubscribe(format!("{}*", a.prefix)).await.unwrap();
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg("hello")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(receivers, 2, "one channel and one pattern subscription");
    let mut payloads = Vec::new();
    while payloads.len() < 2 {
        let push = tokio::time::timeout(Duration::from_secs(10), pushes.recv())
            .await
            .expect("message delivered")
            .unwrap();
        if matches!(
            push.kind,
            redis::PushKind::Message | redis::PushKind::PMessage
        ) {
            payloads.push(format!("{:?}", push.data));
        }
    }
    assert!(payloads.iter().all(|p| p.contains("hello")), "{payloads:?}");

    // Outside the prefix: refused both ways.
    let (mut other, _rx) = tenant_resp3(s.port, a).await;
    let e = other.subscribe("global").await.unwrap_err();
    assert!(is_noperm(&e), "{e}");
    let e = query(&mut conn, &["PUBLISH".into(), "global".into(), "x".into()])
        .await
        .unwrap_err();
    assert!(is_noperm(&e), "{e}");
}

#[tokio::test]
async fn keys_in_database_zero_are_reported_as_warnings() {
    let s = setup().await;
    // `warnings` is an array of strings, left out of the view when empty.
    let service_warnings = |body: &serde_json::Value| -> Vec<String> {
        match &body["warnings"] {
            serde_json::Value::Null => Vec::new(),
            w => serde_json::from_value(w.clone())
                .unwrap_or_else(|e| panic!("`warnings` is an array of strings ({e}): {body}")),
        }
    };
    let path = format!("/api/external-services/{}", s.id);
    let (status, body) = s.berth.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The service's warnings are inside `service` of the details.
    assert!(body["service"].is_object(), "{body}");
    assert_eq!(service_warnings(&body["service"]), Vec::<String>::new());

    // A tenant whose client ignores the database number lands in 0, where it can write.
    let mut db0 = connect(&url(s.port, &s.a, None, false)).await.unwrap();
    for key in ["leak-1", "leak-2"] {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("v")
            .query_async(&mut db0)
            .await
            .unwrap();
    }
    // ... and the other tenant can read it: what the warning is about.
    let mut other = connect(&url(s.port, &s.b, None, false)).await.unwrap();
    let seen: Option<String> = redis::cmd("GET")
        .arg("leak-1")
        .query_async(&mut other)
        .await
        .unwrap();
    assert_eq!(seen.as_deref(), Some("v"));

    let expected =
        "an application wrote to database 0, which every tenant can read (2 keys)".to_string();
    let (_, body) = s.berth.get(&path).await;
    assert_eq!(
        service_warnings(&body["service"]),
        [expected.as_str()],
        "{body}"
    );
    let (status, health) = s.berth.get(&format!("{path}/health?detail=true")).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(
        health["healthy"], true,
        "a warning is not ill health: {health}"
    );
    assert_eq!(service_warnings(&health), [expected.as_str()], "{health}");
}

/// SHA-256 in hex by `sha256sum`, the secret on its stdin (never in an argument).
fn sha256_hex(secret: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(secret.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn credentials(t: &Tenant) -> Credentials {
    Credentials {
        resource_name: t.user.clone(),
        resource_number: Some(t.db),
        username: t.user.clone(),
        password: t.password.clone(),
    }
}

#[tokio::test]
async fn revoke_logs_the_tenant_out_keeps_its_data_and_provision_restores_it() {
    let s = setup().await;
    let engine = berth_server::engines::engine("redis").unwrap();
    let tenancy = engine.tenancy().unwrap();
    let params: berth_core::Parameters =
        [("password".to_string(), s.admin_password.clone())].into();
    let (a, b) = (credentials(&s.a), credentials(&s.b));
    let docker = berth_server::docker::DockerClient::new();
    let access = ServiceAccess::new(&docker, &s.container, s.port, &params);
    assert!(tenancy.is_provisioned(&access, &a).await.unwrap());

    let mut conn = tenant(s.port, &s.a).await;
    let _: () = redis::cmd("SET")
        .arg("cart")
        .arg("kept")
        .query_async(&mut conn)
        .await
        .unwrap();
    tenancy.revoke(&access, &a).await.unwrap();
    tenancy
        .revoke(&access, &a)
        .await
        .expect("revoke is idempotent");
    assert!(
        query(&mut conn, &["PING".into()]).await.is_err(),
        "the open connection is closed"
    );
    assert!(
        connect(&url(s.port, &s.a, Some(s.a.db), false))
            .await
            .is_err(),
        "no new login"
    );
    assert!(!tenancy.is_provisioned(&access, &a).await.unwrap());
    assert!(tenancy.is_provisioned(&access, &b).await.unwrap());
    tenant(s.port, &s.b).await; // B is untouched

    // Revoking a user that does not exist does not create it.
    let ghost = Credentials {
        username: "ghost_production".into(),
        ..a.clone()
    };
    tenancy.revoke(&access, &ghost).await.unwrap();
    let mut admin = redis_conn(s.port, &s.admin_password).await;
    let user: Value = redis::cmd("ACL")
        .arg("GETUSER")
        .arg("ghost_production")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(user, Value::Nil);

    // Provision turns the login back on, with the data still there.
    tenancy.provision(&access, &a).await.unwrap();
    assert!(tenancy.is_provisioned(&access, &a).await.unwrap());
    let mut conn = tenant(s.port, &s.a).await;
    let cart: Option<String> = redis::cmd("GET")
        .arg("cart")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(cart.as_deref(), Some("kept"));

    // A revoked login turned back on by hand (with broader rules) is turned off again.
    tenancy.revoke(&access, &a).await.unwrap();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&a.username)
        .arg("on")
        .arg("&*")
        .query_async(&mut admin)
        .await
        .unwrap();
    tenant(s.port, &s.a).await;
    tenancy.revoke(&access, &a).await.unwrap();
    assert!(
        connect(&url(s.port, &s.a, Some(s.a.db), false))
            .await
            .is_err(),
        "turned off again"
    );
    tenancy.provision(&access, &a).await.unwrap();

    // A user whose rules drifted (older, broader rules) is not provisioned as recorded.
    for drift in [
        vec!["&*"],
        vec!["+function"],
        vec!["+select|0"],
        vec![">other"],
    ] {
        let mut setuser = redis::cmd("ACL");
        setuser.arg("SETUSER").arg(&a.username).arg(&drift);
        let _: () = setuser.query_async(&mut admin).await.unwrap();
        assert!(
            !tenancy.is_provisioned(&access, &a).await.unwrap(),
            "{drift:?} is noticed"
        );
        tenancy.provision(&access, &a).await.unwrap();
        assert!(tenancy.is_provisioned(&access, &a).await.unwrap());
    }
}

#[tokio::test]
async fn admin_password_is_neither_in_docker_inspect_nor_in_the_volume() {
    let s = setup().await;
    let (ok, inspect) = docker(&["inspect", &s.container]);
    assert!(ok);
    assert!(
        !inspect.contains(&s.admin_password),
        "docker inspect shows the admin password"
    );
    let (ok, acl) = docker(&["exec", &s.container, "cat", "/data/users.acl"]);
    assert!(ok, "{acl}");
    assert!(
        !acl.contains(&s.admin_password),
        "plain password in the volume"
    );
    let hash = sha256_hex(&s.admin_password);
    assert!(acl.contains(&format!("#{hash}")), "{acl}");
    let (ok, listing) = docker(&["exec", &s.container, "ls", "-A", "/data"]);
    assert!(ok);
    assert!(!listing.contains("password"), "{listing}");

    // An existing ACL file is kept: the container restarts without the password file, and
    // both the admin and the tenants still log in.
    let (ok, out) = docker(&["exec", &s.container, "rm", "/run/berth/admin-password"]);
    assert!(ok, "{out}");
    let (ok, out) = docker(&["restart", &s.container]);
    assert!(ok, "{out}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, health) = s
            .berth
            .get(&format!(
                "/api/external-services/{}/health?detail=true",
                s.id
            ))
            .await;
        if health["healthy"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not healthy after restart: {health}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    redis_conn(s.port, &s.admin_password).await;
    tenant(s.port, &s.a).await;
}
