//! KV through Berth against a real Redis (KV's own backing service, made by `/api/kv/enable`):
//! every command with Temps' semantics, isolation between projects (admin tokens naming
//! `project_id`, project tokens, hostile patterns and key names), bad input, the backing
//! service's lifecycle (idempotent enable, the ordinary routes' refusals, 503 when stopped,
//! update, disable with and without its data) and the CLI.
//!
//! Each test runs its own `berth serve` whose KV service has a unique name, so tests running
//! at the same time on the same Docker engine never share a container.

mod common;

use std::process::Command;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A server with KV enabled on a service named uniquely; the enable's answer.
async fn berth_with_kv() -> (Berth, Value) {
    let name = unique("kv");
    let berth = Berth::start_with(vec![], vec!["--kv-service-name", &name]).await;
    // A free port of its own: Berth instances started at the same time on one Docker engine
    // would otherwise both pick 6379.
    let enabled = enable(&berth, json!({"port": free_port()})).await;
    assert_eq!(
        enabled["status"]["service_name"],
        name.as_str(),
        "{enabled}"
    );
    (berth, enabled)
}

async fn enable(berth: &Berth, body: Value) -> Value {
    let (status, answer) = berth.call(Method::POST, "/api/kv/enable", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "enable: {answer}\n{}", berth.log());
    assert_eq!(answer["success"], true, "{answer}");
    assert_eq!(answer["status"]["enabled"], true, "{answer}");
    answer
}

/// One caller of the KV data routes: a token, and the `project_id` it names (if any).
struct Kv<'a> {
    berth: &'a Berth,
    token: String,
    project: Option<i64>,
}

impl<'a> Kv<'a> {
    fn admin(berth: &'a Berth, project: i64) -> Self {
        Kv {
            berth,
            token: berth.token.clone(),
            project: Some(project),
        }
    }

    /// A project token of `project`, naming no project (it implies its own).
    async fn project_token(berth: &'a Berth, project: i64) -> Self {
        let created = create_token(
            berth,
            json!({"name": unique("app"), "scope": "project", "project_id": project}),
        )
        .await;
        Kv {
            berth,
            token: created["token"].as_str().unwrap().to_string(),
            project: None,
        }
    }

    async fn call(&self, command: &str, mut body: Value) -> (StatusCode, Value) {
        if let Some(project) = self.project {
            body["project_id"] = json!(project);
        }
        let (status, _, answer) = self
            .berth
            .call_as(
                &self.token,
                Method::POST,
                &format!("/api/kv/{command}"),
                Some(body),
            )
            .await;
        (status, answer)
    }

    async fn ok(&self, command: &str, body: Value) -> Value {
        let (status, answer) = self.call(command, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{command} {body}: {answer}");
        answer
    }

    async fn set(&self, key: &str, value: Value) {
        let answer = self.ok("set", json!({"key": key, "value": value})).await;
        assert_eq!(answer["result"], "OK", "set {key:?}: {answer}");
    }

    async fn get(&self, key: &str) -> Value {
        self.ok("get", json!({"key": key})).await["value"].clone()
    }

    async fn keys(&self, pattern: &str) -> Vec<String> {
        let answer = self.ok("keys", json!({"pattern": pattern})).await;
        serde_json::from_value(answer["keys"].clone()).unwrap()
    }

    /// A refusal with this status, as problem+json naming `words`.
    async fn refused(&self, command: &str, body: Value, status: StatusCode, words: &str) {
        let (got, answer) = self.call(command, body.clone()).await;
        assert_eq!(got, status, "{command} {body}: {answer}");
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(words),
            "{command} {body}: {detail:?} should say {words:?}"
        );
    }
}

/// An admin connection to KV's Redis, to see what Berth stored.
async fn backing_redis(berth: &Berth) -> redis::aio::MultiplexedConnection {
    let (_, status) = berth.get("/api/kv/status").await;
    let id = status["service_id"].as_i64().unwrap();
    let (_, service) = berth
        .get(&format!("/api/external-services/{id}/reveal"))
        .await;
    redis_conn(
        port_of(&service),
        service["parameters"]["password"].as_str().unwrap(),
    )
    .await
}

async fn raw_keys(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(conn).await.unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn kv_commands_follow_temps_semantics() {
    let (berth, enabled) = berth_with_kv().await;
    assert_eq!(enabled["status"]["healthy"], true, "{enabled}");
    assert_eq!(enabled["status"]["version"], "8", "{enabled}");
    assert!(enabled["status"]["docker_image"].is_string(), "{enabled}");
    let project = create_project(&berth, &unique("shop"), &["production"]).await;
    let kv = Kv::admin(&berth, project);

    // Values are JSON, returned as given; a missing key is null.
    for (key, value) in [
        (
            "object",
            json!({"name": "Ada", "tags": ["a", "b"], "n": 1.5}),
        ),
        ("string", json!("hello")),
        ("number", json!(42)),
        ("array", json!([1, "two", null])),
        ("bool", json!(false)),
    ] {
        kv.set(key, value.clone()).await;
        assert_eq!(kv.get(key).await, value, "{key}");
    }
    assert_eq!(kv.get("missing").await, Value::Null);
    let mut raw = backing_redis(&berth).await;
    let stored: String = redis::cmd("GET")
        .arg(format!("kv:p{project}:object"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&stored).unwrap()["name"],
        "Ada",
        "stored as JSON text under the project's prefix"
    );

    // nx / xx: null when the condition keeps the value from being written.
    let answer = kv
        .ok("set", json!({"key": "number", "value": 1, "nx": true}))
        .await;
    assert!(answer["result"].is_null(), "{answer}");
    assert_eq!(kv.get("number").await, json!(42));
    let answer = kv
        .ok("set", json!({"key": "absent", "value": 1, "xx": true}))
        .await;
    assert!(answer["result"].is_null(), "{answer}");
    assert_eq!(kv.get("absent").await, Value::Null);
    let answer = kv
        .ok("set", json!({"key": "fresh", "value": 1, "nx": true}))
        .await;
    assert_eq!(answer["result"], "OK", "{answer}");
    let answer = kv
        .ok("set", json!({"key": "fresh", "value": 2, "xx": true}))
        .await;
    assert_eq!(answer["result"], "OK", "{answer}");
    assert_eq!(kv.get("fresh").await, json!(2));

    // Expiry: ex in seconds, px in milliseconds; ttl -1 without, -2 when absent.
    kv.ok("set", json!({"key": "session", "value": "s", "ex": 100}))
        .await;
    let ttl = kv.ok("ttl", json!({"key": "session"})).await["ttl"]
        .as_i64()
        .unwrap();
    assert!((1..=100).contains(&ttl), "{ttl}");
    kv.ok("set", json!({"key": "short", "value": "s", "px": 50_000}))
        .await;
    let ttl = kv.ok("ttl", json!({"key": "short"})).await["ttl"]
        .as_i64()
        .unwrap();
    assert!((1..=50).contains(&ttl), "{ttl}");
    assert_eq!(kv.ok("ttl", json!({"key": "string"})).await["ttl"], -1);
    assert_eq!(kv.ok("ttl", json!({"key": "missing"})).await["ttl"], -2);
    let answer = kv
        .ok("expire", json!({"key": "string", "seconds": 300}))
        .await;
    assert_eq!(answer, json!({"success": true, "result": 1}));
    let ttl = kv.ok("ttl", json!({"key": "string"})).await["ttl"]
        .as_i64()
        .unwrap();
    assert!((1..=300).contains(&ttl), "{ttl}");
    let answer = kv
        .ok("expire", json!({"key": "missing", "seconds": 300}))
        .await;
    assert_eq!(answer, json!({"success": false, "result": 0}));

    // Temps' errors for contradictory options.
    for (body, words) in [
        (
            json!({"key": "k", "value": 1, "ex": 10, "px": 10}),
            "not both",
        ),
        (
            json!({"key": "k", "value": 1, "nx": true, "xx": true}),
            "not both",
        ),
        (json!({"key": "k", "value": 1, "ex": 0}), "positive"),
        (json!({"key": "k", "value": 1, "px": -5}), "positive"),
    ] {
        kv.refused("set", body, StatusCode::BAD_REQUEST, words)
            .await;
    }
    assert_eq!(
        kv.get("k").await,
        Value::Null,
        "a refused set wrote nothing"
    );

    // incr: from 0 when absent, by `amount`, on a number `set` wrote; not on text.
    assert_eq!(kv.ok("incr", json!({"key": "hits"})).await["value"], 1);
    assert_eq!(
        kv.ok("incr", json!({"key": "hits", "amount": 5})).await["value"],
        6
    );
    assert_eq!(
        kv.ok("incr", json!({"key": "hits", "amount": -2})).await["value"],
        4
    );
    assert_eq!(kv.get("hits").await, json!(4), "a number for get");
    assert_eq!(
        kv.ok("incr", json!({"key": "number"})).await["value"],
        43,
        "incr works on what set stored"
    );
    kv.refused(
        "incr",
        json!({"key": "string"}),
        StatusCode::BAD_REQUEST,
        "not an integer",
    )
    .await;
    // Fuzz finding: an increment past i64 is bad input, not a server error.
    kv.refused(
        "incr",
        json!({"key": "hits", "amount": i64::MAX}),
        StatusCode::BAD_REQUEST,
        "64-bit",
    )
    .await;
    assert_eq!(kv.get("hits").await, json!(4), "unchanged");

    // keys: sorted, without the prefix; del counts what existed.
    assert_eq!(
        kv.keys("s*").await,
        ["session", "short", "string"],
        "glob within the project"
    );
    assert_eq!(kv.keys("[ab]*").await, ["array", "bool"]);
    assert_eq!(kv.keys("?o*").await, ["bool"]);
    let answer = kv
        .ok("del", json!({"keys": ["array", "bool", "missing"]}))
        .await;
    assert_eq!(answer["deleted"], 2, "{answer}");
    assert_eq!(kv.ok("del", json!({"keys": []})).await["deleted"], 0);
    assert_eq!(kv.get("array").await, Value::Null);

    // Deleting a project removes its keys (its id is never given again).
    let (status, _) = berth
        .call(Method::DELETE, &format!("/api/projects/{project}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let left: Vec<String> = raw_keys(&mut raw).await;
    assert!(left.is_empty(), "{left:?}");

    // The CLI, against the same server.
    let other = create_project(&berth, &unique("cli"), &["production"]).await;
    let other = other.to_string();
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["--api-url", &berth.url(""), "--token", &berth.token])
            .args(["kv"])
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "berth kv {args:?}: {stderr}");
        stdout
    };
    cli(&["set", "greeting", "hello world", "--project", &other]);
    cli(&["set", "count", "41", "--project", &other]);
    cli(&["set", "code", "007", "--string", "--project", &other]);
    assert_eq!(
        cli(&["get", "greeting", "--project", &other]).trim(),
        "\"hello world\""
    );
    assert_eq!(cli(&["get", "count", "--project", &other]).trim(), "41");
    assert_eq!(cli(&["get", "code", "--project", &other]).trim(), "\"007\"");
    assert_eq!(
        cli(&["keys", "--project", &other])
            .lines()
            .collect::<Vec<_>>(),
        ["code", "count", "greeting"]
    );
    assert_eq!(
        cli(&["del", "count", "code", "--project", &other]).trim(),
        "2"
    );
    let status: Value = serde_json::from_str(&cli(&["status", "--json"])).unwrap();
    assert_eq!(status["enabled"], true, "{status}");
    assert_eq!(status["healthy"], true, "{status}");
}

#[tokio::test]
async fn projects_never_reach_each_others_keys() {
    let (berth, _) = berth_with_kv().await;
    let a = create_project(&berth, &unique("alpha"), &["production"]).await;
    let b = create_project(&berth, &unique("beta"), &["production"]).await;
    let admin_a = Kv::admin(&berth, a);
    let admin_b = Kv::admin(&berth, b);
    let token_a = Kv::project_token(&berth, a).await;
    let token_b = Kv::project_token(&berth, b).await;

    // B's keys, some shaped like what A might try to reach them with.
    let b_keys = ["secret", "user:1", "*", "a", "x:y:z"];
    for key in b_keys {
        token_b.set(key, json!(format!("b's {key}"))).await;
    }
    // A's keys, named after B's prefix, with separators, dots and glob characters.
    let a_keys = [
        format!("kv:p{b}:secret"),
        format!("p{b}:secret"),
        "../secret".to_string(),
        format!("../kv:p{b}:secret"),
        "*".to_string(),
        "a:b".to_string(),
        "[x]".to_string(),
    ];
    for key in &a_keys {
        admin_a.set(key, json!("a's")).await;
    }
    let mut expected_a: Vec<String> = a_keys.to_vec();
    expected_a.sort();

    for (who, kv) in [("admin naming A", &admin_a), ("A's token", &token_a)] {
        assert_eq!(kv.keys("*").await, expected_a, "{who}: all of A, only A");
        for pattern in [
            "*",
            "?*",
            "[^x]*",
            "\\*",
            "*:*",
            "*secret*",
            &format!("kv:p{b}:*"),
            &format!("*p{b}*"),
            &format!("[k]v:p{b}:*"),
            &format!("../kv:p{b}:*"),
            "\\",
            "[",
            "*\\",
            "[a-z]*",
            &format!("{b}:*"),
        ] {
            for key in kv.keys(pattern).await {
                assert!(
                    a_keys.contains(&key),
                    "{who}: pattern {pattern:?} returned {key:?}, not one of A's keys"
                );
            }
        }
        // Names that look like B's keys are A's own.
        assert_eq!(kv.get("secret").await, Value::Null, "{who}");
        assert_eq!(kv.get(&format!("kv:p{b}:secret")).await, json!("a's"));
        assert_eq!(kv.get("../secret").await, json!("a's"));
        assert_eq!(kv.get("user:1").await, Value::Null, "{who}");
        assert_eq!(kv.ok("ttl", json!({"key": "x:y:z"})).await["ttl"], -2);
        assert_eq!(
            kv.ok("expire", json!({"key": "a", "seconds": 1})).await["success"],
            false,
            "{who}: B's key is not A's to expire"
        );
    }
    // A deletes everything it can name, `*` included (a literal key, not a pattern).
    let deleted = token_a
        .ok(
            "del",
            json!({"keys": ["*", "secret", "user:1", "a", "x:y:z"]}),
        )
        .await;
    assert_eq!(deleted["deleted"], 1, "only A's own \"*\": {deleted}");
    assert_eq!(token_a.ok("incr", json!({"key": "a"})).await["value"], 1);

    // B's keys are untouched, whoever asks for B.
    for kv in [&admin_b, &token_b] {
        let mut listed = kv.keys("*").await;
        listed.sort();
        let mut expected: Vec<String> = b_keys.iter().map(|k| k.to_string()).collect();
        expected.sort();
        assert_eq!(listed, expected);
        for key in b_keys {
            assert_eq!(kv.get(key).await, json!(format!("b's {key}")), "{key}");
            assert_eq!(kv.ok("ttl", json!({"key": key})).await["ttl"], -1);
        }
    }
    let mut raw = backing_redis(&berth).await;
    for key in raw_keys(&mut raw).await {
        assert!(
            key.starts_with(&format!("kv:p{a}:")) || key.starts_with(&format!("kv:p{b}:")),
            "every stored key is under a project prefix: {key:?}"
        );
    }

    // A's token naming B is refused on every command, and changes nothing.
    let naming_b = Kv {
        berth: &berth,
        token: token_a.token.clone(),
        project: Some(b),
    };
    for (command, body) in [
        ("get", json!({"key": "secret"})),
        ("set", json!({"key": "secret", "value": "overwritten"})),
        ("del", json!({"keys": ["secret"]})),
        ("incr", json!({"key": "secret"})),
        ("expire", json!({"key": "secret", "seconds": 1})),
        ("ttl", json!({"key": "secret"})),
        ("keys", json!({"pattern": "*"})),
    ] {
        naming_b
            .refused(command, body, StatusCode::FORBIDDEN, "scope")
            .await;
    }
    // A project that does not exist: refused alike to A's token, 404 to an admin.
    let nowhere = b + 1000;
    let token_nowhere = Kv {
        berth: &berth,
        token: token_a.token.clone(),
        project: Some(nowhere),
    };
    token_nowhere
        .refused("get", json!({"key": "k"}), StatusCode::FORBIDDEN, "scope")
        .await;
    Kv::admin(&berth, nowhere)
        .refused(
            "get",
            json!({"key": "k"}),
            StatusCode::NOT_FOUND,
            "does not exist",
        )
        .await;
    // Its own project named explicitly is fine.
    let naming_a = Kv {
        berth: &berth,
        token: token_a.token.clone(),
        project: Some(a),
    };
    assert_eq!(naming_a.get("a").await, json!(1));
    // An admin must name the project; a read-only token may not use KV; a project token may
    // not manage it.
    let admin_unnamed = Kv {
        berth: &berth,
        token: berth.token.clone(),
        project: None,
    };
    admin_unnamed
        .refused(
            "get",
            json!({"key": "k"}),
            StatusCode::BAD_REQUEST,
            "project_id",
        )
        .await;
    let read_only = create_token(&berth, json!({"name": "ro", "scope": "read_only"})).await;
    let read_only = Kv {
        berth: &berth,
        token: read_only["token"].as_str().unwrap().to_string(),
        project: Some(a),
    };
    read_only
        .refused(
            "get",
            json!({"key": "a"}),
            StatusCode::FORBIDDEN,
            "read_only",
        )
        .await;
    for (method, path) in [
        (Method::POST, "/api/kv/enable"),
        (Method::DELETE, "/api/kv/disable"),
        (Method::PATCH, "/api/kv/update"),
        (Method::GET, "/api/kv/status"),
    ] {
        let (status, _, answer) = berth
            .call_as(&token_b.token, method.clone(), path, Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
    }
    for key in b_keys {
        assert_eq!(token_b.get(key).await, json!(format!("b's {key}")), "{key}");
    }
}

#[tokio::test]
async fn bad_input_is_refused_before_it_reaches_redis() {
    let (berth, _) = berth_with_kv().await;
    let project = create_project(&berth, &unique("input"), &["production"]).await;
    let kv = Kv::admin(&berth, project);

    // Allowed: dots, globs, separators and any printable Unicode are plain characters.
    let long = "k".repeat(1024);
    for key in [
        "..",
        "../../etc/passwd",
        "*",
        "?",
        "[",
        "a:b:c",
        "ключ",
        "🔑 emoji",
        &long,
    ] {
        kv.set(key, json!(key)).await;
        assert_eq!(kv.get(key).await, json!(key), "{key:?} round-trips");
    }
    let mut listed = kv.keys("*").await;
    listed.sort();
    assert!(listed.contains(&"ключ".to_string()) && listed.contains(&"🔑 emoji".to_string()));
    assert_eq!(kv.keys("\\*").await, ["*"], "an escaped glob is a literal");

    // Refused: empty, control characters (NUL first), longer than 1024 bytes.
    let too_long = "k".repeat(1025);
    let two_kb = "x".repeat(2048);
    let wide = "é".repeat(513); // 1026 bytes in 513 characters
    for (key, words) in [
        ("", "empty"),
        ("a\0b", "U+0000"),
        ("\0", "U+0000"),
        ("line\nbreak", "U+000A"),
        ("\u{7f}", "U+007F"),
        (too_long.as_str(), "1024"),
        (two_kb.as_str(), "1024"),
        (wide.as_str(), "1024"),
    ] {
        for (command, body) in [
            ("get", json!({"key": key})),
            ("set", json!({"key": key, "value": 1})),
            ("incr", json!({"key": key})),
            ("expire", json!({"key": key, "seconds": 5})),
            ("ttl", json!({"key": key})),
            ("del", json!({"keys": ["ok", key]})),
        ] {
            kv.refused(command, body, StatusCode::BAD_REQUEST, words)
                .await;
        }
        kv.refused(
            "keys",
            json!({"pattern": key}),
            StatusCode::BAD_REQUEST,
            words,
        )
        .await;
    }
    // A refused del deletes none of its keys.
    kv.set("ok", json!(1)).await;
    kv.refused(
        "del",
        json!({"keys": ["ok", "a\0b"]}),
        StatusCode::BAD_REQUEST,
        "U+0000",
    )
    .await;
    assert_eq!(kv.get("ok").await, json!(1));
    let many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    kv.refused(
        "del",
        json!({"keys": many}),
        StatusCode::BAD_REQUEST,
        "1000",
    )
    .await;

    // Malformed bodies: problem+json, nothing stored.
    for (command, body, words) in [
        ("set", json!({"key": "v"}), "value"),
        ("get", json!({}), "key"),
        ("get", json!({"key": 5}), "key"),
        (
            "set",
            json!({"key": "v", "value": 1, "expire": 5}),
            "expire",
        ),
        ("incr", json!({"key": "v", "amount": "1"}), "amount"),
        ("keys", json!({"pattern": ""}), "empty"),
    ] {
        kv.refused(command, body, StatusCode::BAD_REQUEST, words)
            .await;
    }
    let (status, _, answer) = berth
        .call_as(
            &berth.token,
            Method::POST,
            "/api/kv/set",
            Some(json!({"key": "big", "value": "x".repeat(70_000), "project_id": project})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(kv.get("v").await, Value::Null);
    assert_eq!(kv.get("big").await, Value::Null);

    // Nothing with a control character or outside the prefix reached Redis.
    let mut raw = backing_redis(&berth).await;
    for key in raw_keys(&mut raw).await {
        assert!(key.starts_with(&format!("kv:p{project}:")), "{key:?}");
        assert!(!key.chars().any(char::is_control), "{key:?}");
    }
}

#[tokio::test]
async fn the_backing_service_lifecycle() {
    let name = unique("kv");
    let berth = Berth::start_with(vec![], vec!["--kv-service-name", &name]).await;
    let project = create_project(&berth, &unique("life"), &["production"]).await;
    let kv = Kv::admin(&berth, project);

    // Before enable: off, and data routes say how to turn it on (404, as Temps' "not
    // configured": KV is off, not out of order).
    let (status, off) = berth.get("/api/kv/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(off["enabled"], false, "{off}");
    assert!(off["service_id"].is_null(), "{off}");
    kv.refused(
        "get",
        json!({"key": "k"}),
        StatusCode::NOT_FOUND,
        "/api/kv/enable",
    )
    .await;
    for (method, path) in [
        (Method::DELETE, "/api/kv/disable"),
        (Method::PATCH, "/api/kv/update"),
    ] {
        let (status, answer) = berth
            .call(method, path, Some(json!({"docker_image": "berth/redis:7"})))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
    }

    // A user's service with KV's name: enable refuses and says how to get out.
    let squatter = berth
        .create("redis", &name, json!({"port": free_port().to_string()}))
        .await;
    let (status, answer) = berth
        .call(Method::POST, "/api/kv/enable", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("kv_service_name"),
        "{answer}"
    );
    berth.delete_service(squatter["id"].as_i64().unwrap()).await;
    // Temps' fields Berth's Redis cannot honour are refused, not ignored.
    for body in [
        json!({"max_memory": "256mb"}),
        json!({"persistence": false}),
    ] {
        let (status, answer) = berth.call(Method::POST, "/api/kv/enable", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }

    // Enable, then enable again: the same service, nothing new.
    let first = enable(
        &berth,
        json!({"docker_image": "berth/redis:7", "port": free_port().to_string()}),
    )
    .await;
    let service_id = first["status"]["service_id"].as_i64().unwrap();
    let again = enable(&berth, json!({})).await;
    assert_eq!(again["status"]["service_id"], service_id, "{again}");
    assert_eq!(again["message"], "KV was already enabled", "{again}");
    let (status, answer) = berth
        .call(Method::POST, "/api/kv/enable", Some(json!({"port": 1})))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a port once enabled: {answer}"
    );
    let (_, services) = berth.get("/api/external-services").await;
    assert_eq!(services.as_array().unwrap().len(), 1, "{services}");
    let (status, answer) = berth
        .call(
            Method::POST,
            "/api/kv/enable",
            Some(json!({"docker_image": "redis:7-alpine"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "another image: {answer}");
    kv.set("kept", json!({"v": 1})).await;

    // The ordinary routes may not delete or link it.
    let (status, answer) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{service_id}?force=true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("delete_data"),
        "{answer}"
    );
    let (status, answer) = link_project(&berth, service_id, project).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");

    // Stopped through the ordinary route: 503 saying what to do; enable starts it again.
    let (status, answer) = berth
        .post_wait(&format!("/api/external-services/{service_id}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for (command, body) in [
        ("get", json!({"key": "kept"})),
        ("set", json!({"key": "kept", "value": 2})),
        ("incr", json!({"key": "n"})),
        ("keys", json!({"pattern": "*"})),
    ] {
        let (status, answer) = kv.call(command, body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        let detail = answer["detail"].as_str().unwrap();
        for words in ["stopped", name.as_str(), "berth service start"] {
            assert!(detail.contains(words), "{detail:?} should say {words:?}");
        }
    }
    let (_, status) = berth.get("/api/kv/status").await;
    assert_eq!(status["enabled"], true, "{status}");
    assert_eq!(status["healthy"], false, "{status}");
    let restarted = enable(&berth, json!({})).await;
    assert_eq!(restarted["status"]["healthy"], true, "{restarted}");
    assert_eq!(kv.get("kept").await, json!({"v": 1}), "data survives");

    // Update through KV: a new port; KV follows it without a restart of Berth.
    let port = free_port().to_string();
    let (status, answer) = berth
        .call(
            Method::PATCH,
            "/api/kv/update",
            Some(json!({"parameters": {"port": port}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"]["healthy"], true, "{answer}");
    assert_eq!(
        kv.get("kept").await,
        json!({"v": 1}),
        "after the port change"
    );
    // Recreated on the same port through the ordinary route (whose answer does not touch KV):
    // the pooled connection is dead, and the first read after it still works.
    let (status, answer) = berth
        .call(
            Method::PUT,
            &format!("/api/external-services/{service_id}"),
            Some(json!({"docker_image": "berth/redis:7"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(kv.get("kept").await, json!({"v": 1}), "after the recreate");

    // Disable keeps the data in the stopped service; enable brings it back.
    let (status, answer) = berth.call(Method::DELETE, "/api/kv/disable", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("kept"),
        "{answer}"
    );
    let (_, status) = berth.get("/api/kv/status").await;
    assert_eq!(status["enabled"], false, "{status}");
    assert_eq!(status["service_id"], service_id, "{status}");
    assert_eq!(status["service_status"], "stopped", "{status}");
    kv.refused(
        "get",
        json!({"key": "kept"}),
        StatusCode::NOT_FOUND,
        "disabled",
    )
    .await;
    let back = enable(&berth, json!({})).await;
    assert_eq!(back["status"]["service_id"], service_id, "{back}");
    assert_eq!(kv.get("kept").await, json!({"v": 1}), "kept while disabled");

    // Disable with delete_data: the service and its volume go.
    let volume = format!("berth-redis-{name}-data");
    assert!(volume_exists(&volume));
    let (status, answer) = berth
        .call(Method::DELETE, "/api/kv/disable?delete_data=true", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(!volume_exists(&volume), "the data volume is removed");
    let (status, _) = berth
        .get(&format!("/api/external-services/{service_id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, status) = berth.get("/api/kv/status").await;
    assert_eq!(status["enabled"], false, "{status}");
    assert!(status["service_id"].is_null(), "{status}");
    kv.refused(
        "get",
        json!({"key": "kept"}),
        StatusCode::NOT_FOUND,
        "not enabled",
    )
    .await;
    // Enabled afresh, asynchronously: a new, empty service. A request arriving while it is
    // being created waits for it rather than failing (fuzz finding: 503 while `creating`).
    let (status, _, accepted) = berth
        .call_with_headers(
            Method::POST,
            "/api/kv/enable",
            Some(json!({"port": free_port()})),
            &[("Prefer", "respond-async")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    kv.set("fresh", json!(true)).await;
    assert_eq!(kv.get("kept").await, Value::Null);
    let (_, fresh) = berth.get("/api/kv/status").await;
    assert_eq!(fresh["healthy"], true, "{fresh}");
    assert_ne!(fresh["service_id"], service_id, "{fresh}");
}

/// Fuzz findings: KV managed while its service is still being deleted (a disable with
/// `delete_data` answered 202 and goes on). An enable waits for the delete and makes a new
/// service (it answered 404 "service N does not exist"); a disable answers "not enabled" (it
/// could answer 500 when the service row went between its read and its write).
#[tokio::test]
async fn kv_managed_during_the_delete_of_its_service_waits_for_it() {
    let (berth, enabled) = berth_with_kv().await;
    let old = enabled["status"]["service_id"].as_i64().unwrap();
    for round in 0..3 {
        let (status, deleting) = berth
            .call_async(Method::DELETE, "/api/kv/disable?delete_data=true", None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "round {round}: {deleting}");
        let (status, answer) = if round == 1 {
            berth.call(Method::DELETE, "/api/kv/disable", None).await
        } else {
            berth
                .call(
                    Method::POST,
                    "/api/kv/enable",
                    Some(json!({"port": free_port()})),
                )
                .await
        };
        if round == 1 {
            assert_eq!(status, StatusCode::NOT_FOUND, "round {round}: {answer}");
            assert!(
                answer["detail"].as_str().unwrap().contains("not enabled"),
                "{answer}"
            );
            enable(&berth, json!({"port": free_port()})).await;
        } else {
            assert_eq!(status, StatusCode::OK, "round {round}: {answer}");
            assert_eq!(answer["status"]["enabled"], true, "{answer}");
            assert_ne!(answer["status"]["service_id"], old, "{answer}");
        }
    }
}

/// Fuzz finding (`POST /api/blob/enable` → 404 "service N does not exist"): an enable arriving
/// while the first enable's create is still running waited behind it to start that service,
/// but the create failed and was undone, service and record with it. The second enable must
/// then enable KV afresh; a disable must answer "not enabled".
#[tokio::test]
async fn kv_enabled_while_a_failing_create_is_undone_starts_afresh() {
    let name = unique("kv");
    let berth = Berth::start_with(vec![], vec!["--kv-service-name", &name]).await;
    // Berth's base image has a shell but no redis-server: the container exits at once and the
    // create is undone, service row, volume and backing record.
    let broken = json!({"docker_image": "berth/debian-base:bookworm", "port": free_port()});
    for round in 0..3 {
        let (status, first) = berth
            .call_async(Method::POST, "/api/kv/enable", Some(broken.clone()))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "round {round}: {first}");
        if round == 1 {
            let (status, answer) = berth.call(Method::DELETE, "/api/kv/disable", None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "round {round}: {answer}");
            assert!(
                answer["detail"].as_str().unwrap().contains("not enabled"),
                "{answer}"
            );
            continue;
        }
        let (status, answer) = berth
            .call(
                Method::POST,
                "/api/kv/enable",
                Some(json!({"port": free_port()})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "round {round}: {answer}\n{}",
            berth.log()
        );
        assert_eq!(answer["status"]["enabled"], true, "{answer}");
        assert_eq!(answer["status"]["healthy"], true, "{answer}");
        let (status, answer) = berth
            .call(Method::DELETE, "/api/kv/disable?delete_data=true", None)
            .await;
        assert_eq!(status, StatusCode::OK, "round {round}: {answer}");
    }
}
