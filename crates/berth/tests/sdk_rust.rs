//! The Rust SDK's KV client against a running Berth (real Redis behind it), as an app would
//! use it: a project token, no project id. Every command, typed values, the errors as
//! problem+json, and an admin token naming projects.

mod common;
mod sdk_support;

use berth_sdk::{Client, Error, SetOptions};
use common::*;
use sdk_support::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    tags: Vec<String>,
}

#[tokio::test]
async fn kv_through_the_rust_sdk() {
    let berth = berth_with_kv().await;
    let (project, token) = project_with_token(&berth).await;
    let client = Client::new(berth.url("/"), token);
    let kv = client.kv();

    // Typed and untyped values round-trip; a missing key is None.
    let ada = User {
        name: "Ada".into(),
        tags: vec!["a".into(), "b".into()],
    };
    assert!(kv.set("user:1", &ada, SetOptions::default()).await.unwrap());
    assert_eq!(kv.get::<User>("user:1").await.unwrap(), Some(ada));
    assert_eq!(
        kv.get::<Value>("user:1").await.unwrap(),
        Some(json!({"name": "Ada", "tags": ["a", "b"]}))
    );
    assert!(
        kv.set("greeting", "hello", SetOptions::default())
            .await
            .unwrap()
    );
    assert_eq!(
        kv.get::<String>("greeting").await.unwrap().as_deref(),
        Some("hello")
    );
    assert_eq!(kv.get::<Value>("missing").await.unwrap(), None);
    // A value of another type is a decode error, not a panic or a silent None.
    let err = kv.get::<i64>("greeting").await.unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err}");

    // nx / xx: false when the condition kept the value from being written.
    assert!(
        !kv.set("greeting", "other", SetOptions::default().nx())
            .await
            .unwrap()
    );
    assert!(
        !kv.set("absent", &1, SetOptions::default().xx())
            .await
            .unwrap()
    );
    assert_eq!(kv.get::<Value>("absent").await.unwrap(), None);
    assert!(
        kv.set("fresh", &1, SetOptions::default().nx())
            .await
            .unwrap()
    );
    assert!(
        kv.set("fresh", &2, SetOptions::default().xx())
            .await
            .unwrap()
    );
    assert_eq!(kv.get::<i64>("fresh").await.unwrap(), Some(2));

    // Expiry: ex, px, expire, ttl (-1 without, -2 absent).
    assert!(kv.set("session", "s", SetOptions::ex(100)).await.unwrap());
    let ttl = kv.ttl("session").await.unwrap();
    assert!((1..=100).contains(&ttl), "{ttl}");
    assert!(
        kv.set("short", "s", SetOptions::px(50_000).nx())
            .await
            .unwrap()
    );
    let ttl = kv.ttl("short").await.unwrap();
    assert!((1..=50).contains(&ttl), "{ttl}");
    assert_eq!(kv.ttl("greeting").await.unwrap(), -1);
    assert_eq!(kv.ttl("missing").await.unwrap(), -2);
    assert!(kv.expire("greeting", 300).await.unwrap());
    assert!((1..=300).contains(&kv.ttl("greeting").await.unwrap()));
    assert!(!kv.expire("missing", 300).await.unwrap());

    // incr: from 0, by an amount, negative too.
    assert_eq!(kv.incr("hits").await.unwrap(), 1);
    assert_eq!(kv.incr_by("hits", 5).await.unwrap(), 6);
    assert_eq!(kv.incr_by("hits", -2).await.unwrap(), 4);

    // keys (sorted, the project's own) and del (how many existed).
    assert_eq!(kv.keys("s*").await.unwrap(), ["session", "short"]);
    assert_eq!(kv.keys("user:*").await.unwrap(), ["user:1"]);
    assert_eq!(kv.del(&["fresh", "hits", "missing"]).await.unwrap(), 2);
    assert_eq!(kv.del::<&str>(&[]).await.unwrap(), 0);
    assert_eq!(kv.get::<Value>("fresh").await.unwrap(), None);

    // Errors carry Berth's problem+json.
    let err = kv
        .set("k", &1, SetOptions::ex(10).nx().xx())
        .await
        .unwrap_err();
    let problem = err.problem().expect("an API error");
    assert_eq!(problem.status, 400, "{err}");
    assert_eq!(problem.title, "Bad Request", "{err}");
    assert!(problem.detail.contains("not both"), "{err}");
    let err = kv.get::<Value>("").await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("empty"), "{err}");
    let err = Client::new(berth.url(""), "not-a-token")
        .kv()
        .get::<Value>("k")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    // Nothing listens: a transport error, not an API one.
    let err = Client::new(format!("http://127.0.0.1:{}", free_port()), "t")
        .kv()
        .get::<Value>("k")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Http(_)), "{err}");

    // The project token may name its own project, not another.
    assert_eq!(
        client
            .with_project(project)
            .kv()
            .get::<String>("session")
            .await
            .unwrap()
            .as_deref(),
        Some("s")
    );
    let other = create_project(&berth, &unique("other"), &["production"]).await;
    let err = client
        .with_project(other)
        .kv()
        .get::<Value>("session")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");

    // An admin token must name the project, and then sees that project's keys only.
    let admin = Client::new(berth.url(""), berth.token.clone());
    let err = admin.kv().get::<Value>("session").await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("project_id"), "{err}");
    assert_eq!(
        admin.with_project(project).kv().keys("*").await.unwrap(),
        ["greeting", "session", "short", "user:1"]
    );
    assert!(
        admin
            .with_project(other)
            .kv()
            .keys("*")
            .await
            .unwrap()
            .is_empty()
    );
}
