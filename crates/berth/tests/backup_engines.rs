//! Backups of MongoDB and S3 services through the API, against Berth's images (MongoDB: the
//! SecantusDB stand-in, see the README): the data written, backed up into another S3
//! service, changed, restored in place (one database or bucket, nothing else touched) and into
//! a new service, and compared byte for byte; verification restores into a throwaway service.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use berth_server::engines::mongodb::admin;
use berth_server::s3client::S3Client;
use common::backups::*;
use common::*;
use futures_util::TryStreamExt;
use mongodb::bson::{Binary, Bson, RawDocumentBuf, doc, spec::BinarySubtype};
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

/// Starts a restore and waits for it; asserts it succeeded and returns the run.
async fn restore(berth: &Berth, path: &str, body: Value) -> Value {
    let (status, started) = berth.call(Method::POST, path, Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run = wait_restore(berth, started["id"].as_i64().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}\n{}", berth.log());
    run
}

/// The manifest's object for `database`.
fn manifest_object<'a>(b: &'a Value, database: &str) -> &'a Value {
    let manifest = &b["metadata"]["manifest"];
    manifest["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["database"] == database)
        .unwrap_or_else(|| panic!("no object for {database}: {manifest}"))
}

/// Deterministic bytes that do not compress to nothing.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// --- MongoDB ---------------------------------------------------------------------------------

/// Every document of a collection as stored, sorted by `_id`.
async fn raw_documents(client: &mongodb::Client, db: &str, coll: &str) -> Vec<Vec<u8>> {
    let cursor = client
        .database(db)
        .collection::<RawDocumentBuf>(coll)
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .unwrap();
    let docs: Vec<RawDocumentBuf> = cursor.try_collect().await.unwrap();
    docs.into_iter().map(|d| d.into_bytes()).collect()
}

async fn index_names(client: &mongodb::Client, db: &str, coll: &str) -> Vec<String> {
    let mut names = client
        .database(db)
        .collection::<mongodb::bson::Document>(coll)
        .list_index_names()
        .await
        .unwrap();
    names.sort();
    names
}

type Snapshot = BTreeMap<String, Vec<Vec<u8>>>;

async fn snapshot(client: &mongodb::Client, db: &str) -> Snapshot {
    let mut out = BTreeMap::new();
    for coll in ["orders", "events", "empty"] {
        out.insert(coll.to_string(), raw_documents(client, db, coll).await);
    }
    out
}

#[tokio::test]
async fn a_mongodb_database_is_backed_up_through_the_driver_and_restored_byte_for_byte() {
    let berth = berth().await;
    let (s3, _, _) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "mongo-backups").await;
    let mongo = berth
        .create("mongodb", &unique("bk-mongo"), json!({}))
        .await;
    let id = mongo["id"].as_i64().unwrap();
    let port = port_of(&mongo);
    let project = create_project(&berth, &unique("shop"), &["production"]).await;
    let (status, linked) = link_project(&berth, id, project).await;
    assert_eq!(status, StatusCode::CREATED, "{linked}");
    let vars = project_env(&berth, id, project, "production").await;
    let db = vars["MONGODB_DATABASE"].clone();
    let tenant = admin::client(
        port,
        &vars["MONGODB_USERNAME"],
        &vars["MONGODB_PASSWORD"],
        &db,
    )
    .unwrap();
    let root = admin::client(port, "admin", &berth.password(id).await, "admin").unwrap();

    // The project's data: many small documents of varied types, one over 1 MiB, an index, an
    // empty collection; and another database the restore must not touch.
    let orders = tenant.database(&db).collection("orders");
    let many: Vec<_> = (0..2500)
        .map(|i| {
            doc! {
                "_id": i,
                "customer": format!("c{}", i % 97),
                "total": f64::from(i) * 1.25,
                "tags": ["a", "b"],
                "nested": { "n": i64::from(i) << 33, "ok": i % 2 == 0, "nothing": Bson::Null },
            }
        })
        .collect();
    orders.insert_many(many).await.unwrap();
    let big = noise(1_500_000, 7);
    orders
        .insert_one(doc! {
            "_id": "big",
            "blob": Binary { subtype: BinarySubtype::Generic, bytes: big },
        })
        .await
        .unwrap();
    orders
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! { "customer": 1 })
                .options(
                    mongodb::options::IndexOptions::builder()
                        .name("by_customer".to_string())
                        .build(),
                )
                .build(),
        )
        .await
        .unwrap();
    let events = tenant.database(&db).collection("events");
    let some: Vec<_> = (0..30)
        .map(
            |i| doc! { "_id": mongodb::bson::oid::ObjectId::new(), "seq": i, "text": "é ☃ \u{0}x" },
        )
        .collect();
    events.insert_many(some).await.unwrap();
    tenant
        .database(&db)
        .create_collection("empty")
        .await
        .unwrap();
    let other = root.database("other_db").collection("notes");
    other
        .insert_many((0..5).map(|i| doc! { "_id": i }))
        .await
        .unwrap();
    let before = snapshot(&root, &db).await;
    assert_eq!(before["orders"].len(), 2501);

    let (status, ran) = run_backup(&berth, id, destination).await;
    assert_eq!(status, StatusCode::OK, "{ran}\n{}", berth.log());
    assert_eq!(ran["state"], "succeeded", "{ran}");
    let backup_id = ran["id"].as_i64().unwrap();
    let b = backup(&berth, backup_id).await;
    let object = manifest_object(&b, &db);
    assert_eq!(object["kind"], "database", "{object}");
    assert_eq!(
        object["counts"],
        json!({
            format!("{db}.orders"): 2501,
            format!("{db}.events"): 30,
            format!("{db}.empty"): 0,
        }),
        "{object}"
    );
    assert_eq!(
        manifest_object(&b, "other_db")["counts"]["other_db.notes"],
        5
    );
    let databases: Vec<&str> = b["metadata"]["manifest"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["database"].as_str())
        .collect();
    for own in ["admin", "local", "config"] {
        assert!(
            !databases.contains(&own),
            "the server's own {own} is not backed up: {databases:?}"
        );
    }

    // After the backup: most orders go, one changes, the index is dropped; the other
    // database changes too.
    orders
        .delete_many(doc! { "_id": { "$gte": 100 } })
        .await
        .unwrap();
    orders
        .update_one(doc! { "_id": 1 }, doc! { "$set": { "total": -1.0 } })
        .await
        .unwrap();
    orders.drop_index("by_customer").await.unwrap();
    other.insert_one(doc! { "_id": 99 }).await.unwrap();

    let capabilities = berth
        .get(&format!("/api/external-services/{id}/restore-capabilities"))
        .await
        .1;
    assert_eq!(
        capabilities["modes"],
        json!(["in_place", "new_service"]),
        "{capabilities}"
    );
    let run = restore(
        &berth,
        &format!("/api/external-services/{id}/restore"),
        json!({"backup_id": backup_id, "mode": "in_place", "database": db}),
    )
    .await;
    assert!(run["safety_backup_id"].as_i64().is_some(), "{run}");
    assert!(
        snapshot(&root, &db).await == before,
        "the restored documents are not the backed-up ones byte for byte"
    );
    assert!(
        index_names(&root, &db, "orders")
            .await
            .contains(&"by_customer".to_string()),
        "the index came back"
    );
    assert_eq!(
        other.count_documents(doc! {}).await.unwrap(),
        6,
        "the other database was not touched"
    );
    // The project's login still works on its restored database.
    let tenant_again = admin::client(
        port,
        &vars["MONGODB_USERNAME"],
        &vars["MONGODB_PASSWORD"],
        &db,
    )
    .unwrap();
    assert_eq!(
        raw_documents(&tenant_again, &db, "events").await.len(),
        30,
        "the project reads its restored data with its own login"
    );

    // Into a new service: the same documents and indexes.
    let run = restore(
        &berth,
        &format!("/api/backups/{backup_id}/restore"),
        json!({"mode": "new_service", "name": unique("rs-mongo")}),
    )
    .await;
    let new_id = run["target_service_id"].as_i64().unwrap();
    let (_, svc) = berth.get(&format!("/api/external-services/{new_id}")).await;
    let new_root = admin::client(
        port_of(&svc["service"]),
        "admin",
        &berth.password(new_id).await,
        "admin",
    )
    .unwrap();
    assert!(
        snapshot(&new_root, &db).await == before,
        "the new service's documents are not the backed-up ones byte for byte"
    );
    assert!(
        index_names(&new_root, &db, "orders")
            .await
            .contains(&"by_customer".to_string())
    );
    assert_eq!(raw_documents(&new_root, "other_db", "notes").await.len(), 5);

    verify_passes(&berth, backup_id).await;
}

// --- S3 --------------------------------------------------------------------------------------

/// (key, content type, bytes) of every object of a bucket, sorted by key.
async fn bucket_contents(client: &S3Client, bucket: &str) -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    for object in client.list_all(bucket, "").await.unwrap() {
        let response = client
            .get_object(bucket, &object.key, None)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{:?} is listed but cannot be read", object.key));
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = response.bytes().await.unwrap().to_vec();
        out.push((object.key, content_type, bytes));
    }
    out.sort();
    out
}

async fn put(client: &S3Client, bucket: &str, key: &str, content_type: &str, bytes: Vec<u8>) {
    let body = futures_util::stream::iter(
        bytes
            .chunks(1 << 20)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    client
        .put_stream(bucket, key, content_type, body, u64::MAX)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_s3_bucket_is_backed_up_as_a_tar_and_restored_alone_with_its_content_types() {
    let berth = berth().await;
    let (dest_s3, _, _) = s3_service(&berth).await;
    let destination = managed_destination(&berth, dest_s3, "s3-backups").await;
    let (id, source, _) = s3_service(&berth).await;
    source.create_bucket("assets").await.unwrap();
    source.create_bucket("untouched").await.unwrap();
    let big = noise(9 * 1024 * 1024 + 12345, 3);
    let objects: Vec<(&str, &str, Vec<u8>)> = vec![
        ("plain.txt", "text/plain", b"hello".to_vec()),
        (
            "dir/sub/ünïcødé ☃ + space.bin",
            "application/octet-stream",
            noise(70_000, 1),
        ),
        ("big/blob.bin", "application/x-big", big.clone()),
        ("empty", "application/x-empty", Vec::new()),
        (
            "json/a&b=c?.json",
            "application/json",
            br#"{"a":1}"#.to_vec(),
        ),
        (
            "deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/0/1/2/3/4/5/6/7/8/9/a-very-long-name-well-past-the-hundred-bytes-of-a-ustar-name-field.dat",
            "image/png",
            noise(513, 2),
        ),
    ];
    for (key, content_type, bytes) in &objects {
        put(&source, "assets", key, content_type, bytes.clone()).await;
    }
    put(
        &source,
        "untouched",
        "keep.txt",
        "text/plain",
        b"v1".to_vec(),
    )
    .await;
    let before = bucket_contents(&source, "assets").await;
    assert_eq!(before.len(), objects.len());
    for (key, content_type, _) in &objects {
        assert!(
            before.iter().any(|(k, t, _)| k == key && t == content_type),
            "the S3 server kept {key} as {content_type}: {:?}",
            before.iter().map(|(k, t, _)| (k, t)).collect::<Vec<_>>()
        );
    }

    let (status, ran) = run_backup(&berth, id, destination).await;
    assert_eq!(status, StatusCode::OK, "{ran}\n{}", berth.log());
    assert_eq!(ran["state"], "succeeded", "{ran}");
    let backup_id = ran["id"].as_i64().unwrap();
    let b = backup(&berth, backup_id).await;
    let object = manifest_object(&b, "assets");
    assert_eq!(object["kind"], "database", "{object}");
    assert_eq!(
        object["counts"],
        json!({"assets": objects.len()}),
        "{object}"
    );
    assert_eq!(manifest_object(&b, "untouched")["counts"]["untouched"], 1);

    // After the backup: one object deleted, the big one replaced, one added; the other bucket
    // changes too.
    source.delete_object("assets", "plain.txt").await.unwrap();
    put(
        &source,
        "assets",
        "big/blob.bin",
        "text/plain",
        b"small now".to_vec(),
    )
    .await;
    put(&source, "assets", "new.txt", "text/plain", b"new".to_vec()).await;
    put(
        &source,
        "untouched",
        "keep.txt",
        "text/plain",
        b"v2".to_vec(),
    )
    .await;

    restore(
        &berth,
        &format!("/api/external-services/{id}/restore"),
        json!({"backup_id": backup_id, "mode": "in_place", "database": "assets"}),
    )
    .await;
    let after = bucket_contents(&source, "assets").await;
    assert_eq!(
        after
            .iter()
            .map(|(k, t, b)| (k, t, b.len()))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|(k, t, b)| (k, t, b.len()))
            .collect::<Vec<_>>(),
    );
    assert!(after == before, "the restored bytes differ");
    assert_eq!(
        bucket_contents(&source, "untouched").await,
        vec![("keep.txt".into(), "text/plain".into(), b"v2".to_vec())],
        "the other bucket was not touched"
    );

    verify_passes(&berth, backup_id).await;
}

/// An S3 service that keeps Berth's backups (a destination's bucket) and user data: its backup
/// leaves the backups' bucket out, and a whole-service restore in place never writes it, so the
/// backups made since are not rolled back under records that still list them.
#[tokio::test]
async fn a_bucket_holding_backups_is_neither_backed_up_nor_restored_over() {
    let berth = berth().await;
    let (id, source, _) = s3_service(&berth).await;
    let local = managed_destination(&berth, id, "local-backups").await;
    let (elsewhere_s3, _, _) = s3_service(&berth).await;
    let elsewhere = managed_destination(&berth, elsewhere_s3, "offsite").await;
    source.create_bucket("data").await.unwrap();
    put(&source, "data", "a.txt", "text/plain", b"v1".to_vec()).await;
    // A backup of another service kept in this one's destination bucket.
    let pg = berth
        .create("postgres", &unique("bk-holder-pg"), json!({}))
        .await;
    let (status, first) = run_backup(&berth, pg["id"].as_i64().unwrap(), local).await;
    assert_eq!(status, StatusCode::OK, "{first}");

    let (status, ran) = run_backup(&berth, id, elsewhere).await;
    assert_eq!(status, StatusCode::OK, "{ran}\n{}", berth.log());
    assert_eq!(ran["state"], "succeeded", "{ran}");
    let backup_id = ran["id"].as_i64().unwrap();
    let b = backup(&berth, backup_id).await;
    let databases: Vec<&str> = b["metadata"]["manifest"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["database"].as_str())
        .collect();
    assert_eq!(databases, vec!["data"], "{b}");

    // Backups made after it stay; the data bucket comes back as it was.
    let (status, second) = run_backup(&berth, pg["id"].as_i64().unwrap(), local).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let kept_before = bucket_contents(&source, "local-backups").await;
    put(&source, "data", "a.txt", "text/plain", b"v2".to_vec()).await;
    restore(
        &berth,
        &format!("/api/external-services/{id}/restore"),
        json!({"backup_id": backup_id, "mode": "in_place"}),
    )
    .await;
    assert_eq!(
        bucket_contents(&source, "data").await,
        vec![("a.txt".into(), "text/plain".into(), b"v1".to_vec())]
    );
    let kept_after = bucket_contents(&source, "local-backups").await;
    assert!(
        kept_before.iter().all(|o| kept_after.contains(o)),
        "the backups bucket lost nothing"
    );
    verify_passes(&berth, second["id"].as_i64().unwrap()).await;
}
