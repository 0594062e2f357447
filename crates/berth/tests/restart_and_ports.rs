//! Two services of one type get different ports; restarting `berth serve` keeps everything.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn distinct_ports_and_state_survives_restart() {
    let mut berth = Berth::start().await;
    let a = berth.create("postgres", &unique("pga"), json!({})).await;
    let b = berth
        .create(
            "postgres",
            &unique("pgb"),
            json!({ "database": "appdb", "username": "app" }),
        )
        .await;
    let r = berth.create("redis", &unique("rd"), json!({})).await;
    assert_ne!(
        port_of(&a),
        port_of(&b),
        "two postgres services need two ports"
    );
    let ids: Vec<i64> = [&a, &b, &r]
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    let passwords_before = futures_passwords(&berth, &ids).await;
    // Custom database and superuser names are honoured.
    pg_connect(port_of(&b), "app", &passwords_before[1], "appdb")
        .await
        .unwrap();

    berth.kill9();
    berth.spawn().await;

    let (_, list) = berth.get("/api/external-services").await;
    let listed: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    for id in &ids {
        assert!(
            listed.contains(id),
            "service {id} survives the restart: {list}"
        );
    }
    assert_eq!(
        passwords_before,
        futures_passwords(&berth, &ids).await,
        "secrets decrypt after restart"
    );
    for id in &ids {
        let (_, health) = berth
            .get(&format!("/api/external-services/{id}/health?detail=true"))
            .await;
        assert_eq!(health["status"], "healthy", "{health}");
    }
    // The reloaded state still allocates fresh ports.
    let c = berth.create("postgres", &unique("pgc"), json!({})).await;
    assert!(![port_of(&a), port_of(&b)].contains(&port_of(&c)));
    for svc in [&a, &b, &r, &c] {
        berth.delete_service(svc["id"].as_i64().unwrap()).await;
    }
}

async fn futures_passwords(berth: &Berth, ids: &[i64]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        out.push(berth.password(*id).await);
    }
    out
}
