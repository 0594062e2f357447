//! Backups to S3 through the API, against real PostgreSQL and Berth's S3 server in containers:
//! destinations (validated, secrets masked and encrypted, probed), a backup streamed and only
//! called `succeeded` once every object and its manifest were read back, and the faults the
//! issue lists — each leaves a failed record with its reason and nothing restorable behind.

mod common;

use std::time::{Duration, Instant};

use common::backups::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Unfinished multipart uploads left in the S3 container's data (s3s-fs keeps each as
/// `.upload-*` files until it is completed or aborted).
fn unfinished_uploads(s3_container: &str) -> String {
    let (ok, out) = docker(&["exec", s3_container, "find", "/data", "-name", ".upload*"]);
    assert!(ok, "{out}");
    out
}

/// A PostgreSQL service whose admin database holds a table large enough that its dump takes
/// several seconds and several multipart parts.
async fn postgres_with_big_table(berth: &Berth) -> (i64, Value) {
    let svc = berth.create("postgres", &unique("bk-pg"), json!({})).await;
    let id = svc["id"].as_i64().unwrap();
    let password = berth.password(id).await;
    let mut conn = pg_connect(port_of(&svc), "postgres", &password, "postgres")
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS payload \
         FROM generate_series(1, 2000000) AS g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    (id, svc)
}

#[tokio::test]
async fn destinations_are_validated_masked_encrypted_and_probed() {
    let berth = berth().await;
    let (s3, admin, _) = s3_service(&berth).await;
    let managed = managed_destination(&berth, s3, "managed-backups").await;
    let (status, tested) = berth
        .call(
            Method::POST,
            &format!("/api/backups/s3-sources/{managed}/test"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tested}");
    assert_eq!(tested["success"], true);

    // Any S3-compatible endpoint, with keys: the secret is masked in every answer.
    let (_, revealed) = berth
        .get(&format!("/api/external-services/{s3}/reveal"))
        .await;
    let (_, svc) = berth.get(&format!("/api/external-services/{s3}")).await;
    let secret = revealed["parameters"]["secret_key"].as_str().unwrap();
    let body = json!({
        "name": "explicit",
        "bucket_name": "explicit-bucket",
        "bucket_path": "/team//db/",
        "access_key_id": revealed["parameters"]["access_key"],
        "secret_key": secret,
        "region": "us-east-1",
        "endpoint": format!("http://127.0.0.1:{}", port_of(&svc["service"])),
        "force_path_style": true,
    });
    let (status, created) = berth
        .call(Method::POST, "/api/backups/s3-sources", Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["secret_key"], "********", "{created}");
    assert!(created["created_at"].as_i64().unwrap() > 1_700_000_000_000);
    let explicit = created["id"].as_i64().unwrap();
    let (_, listed) = berth.get("/api/backups/s3-sources").await;
    assert!(!listed.to_string().contains(secret), "{listed}");
    assert!(
        !String::from_utf8_lossy(&read_state_files(&berth.data_dir)).contains(secret),
        "the secret key is encrypted at rest"
    );

    // The bucket does not exist yet: the test says which step failed.
    let test_path = format!("/api/backups/s3-sources/{explicit}/test");
    let (status, failed) = berth.call(Method::POST, &test_path, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{failed}");
    assert!(
        str_of(&failed, "detail").contains("finding the bucket"),
        "{failed}"
    );
    admin.create_bucket("explicit-bucket").await.unwrap();
    let (status, ok) = berth.call(Method::POST, &test_path, None).await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert!(
        str_of(&ok, "message").contains("s3://explicit-bucket/team/db"),
        "the prefix is normalised: {ok}"
    );
    assert!(
        admin
            .list_all("explicit-bucket", "")
            .await
            .unwrap()
            .is_empty(),
        "the probe object is deleted"
    );

    // Wrong keys fail the test; a PATCH keeps what it does not name.
    let one = format!("/api/backups/s3-sources/{explicit}");
    let (status, patched) = berth
        .call(
            Method::PATCH,
            &one,
            Some(json!({"secret_key": "wrong-secret"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["bucket_path"], "/team//db/");
    let (status, failed) = berth.call(Method::POST, &test_path, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{failed}");

    // Bad input is refused with the reason, and nothing is stored.
    for (bad, why) in [
        (json!({"bucket_name": "Bad_Bucket"}), "bucket_name"),
        (json!({"endpoint": "ftp://host"}), "endpoint"),
        (json!({"endpoint": "http://user:pw@host"}), "credentials"),
        (json!({"bucket_path": "../escape"}), "bucket_path"),
        (json!({"region": "us east"}), "region"),
    ] {
        let mut request = body.clone();
        request["name"] = json!(unique("bad"));
        for (k, v) in bad.as_object().unwrap() {
            request[k] = v.clone();
        }
        let (status, refused) = berth
            .call(Method::POST, "/api/backups/s3-sources", Some(request))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {refused}");
        assert!(str_of(&refused, "detail").contains(why), "{refused}");
    }
    let (status, _) = berth
        .call(
            Method::POST,
            "/api/backups/s3-sources",
            Some(json!({"name": "no-keys", "bucket_name": "abc"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = berth
        .call(Method::POST, "/api/backups/s3-sources", Some(body))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "the name is taken");
    let (_, listed) = berth.get("/api/backups/s3-sources").await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    // The S3 service cannot be deleted from under its destination.
    let (status, refused) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{s3}?force=true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let (status, _) = berth.call(Method::DELETE, &one, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = berth.get(&one).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_postgres_backup_is_verified_on_the_destination_with_row_counts() {
    let berth = berth().await;
    let (s3, admin, _) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "pg-backups").await;
    let pg = berth.create("postgres", &unique("bk-pg"), json!({})).await;
    let pg_id = pg["id"].as_i64().unwrap();
    let project = create_project(&berth, &unique("shop"), &["production"]).await;
    let (status, linked) = link_project(&berth, pg_id, project).await;
    assert_eq!(status, StatusCode::CREATED, "{linked}");
    let vars = project_env(&berth, pg_id, project, "production").await;
    let tenant_db = vars["POSTGRES_DATABASE"].clone();
    let mut conn = pg_connect(
        port_of(&pg),
        &vars["POSTGRES_USER"],
        &vars["POSTGRES_PASSWORD"],
        &tenant_db,
    )
    .await
    .unwrap();
    sqlx::query("CREATE TABLE items (id int, name text)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1234) g")
        .execute(&mut conn)
        .await
        .unwrap();

    let (status, ran) = run_backup(&berth, pg_id, destination).await;
    assert_eq!(status, StatusCode::OK, "{ran}\n{}", berth.log());
    assert_eq!(ran["state"], "succeeded", "{ran}");
    let id = ran["id"].as_i64().unwrap();
    let b = backup(&berth, id).await;
    assert!(b["completed_at"].as_i64().unwrap() >= b["started_at"].as_i64().unwrap());
    let manifest = &b["metadata"]["manifest"];
    let objects = manifest["objects"].as_array().unwrap();
    let tenant = objects
        .iter()
        .find(|o| o["database"] == tenant_db.as_str())
        .unwrap_or_else(|| panic!("no object for {tenant_db}: {manifest}"));
    assert_eq!(tenant["counts"]["public.items"], 1234, "{tenant}");
    assert_eq!(
        tenant["compression"], "pg_custom",
        "compressed once, by pg_dump"
    );
    assert!(
        objects.iter().any(|o| o["kind"] == "globals"),
        "roles are backed up: {manifest}"
    );

    // What the manifest says is what the destination holds.
    let (bucket, folder) = location(&b);
    assert!(folder.starts_with("nightly/berth/postgres/"), "{folder}");
    for object in objects {
        let key = format!("{folder}{}", str_of(object, "key"));
        let (size, sha) = admin.sha256_of(&bucket, &key).await.unwrap().unwrap();
        assert_eq!(size, object["size_bytes"].as_u64().unwrap(), "{key}");
        assert_eq!(sha, str_of(object, "sha256"), "{key}");
    }
    let (_, sha) = admin
        .sha256_of(&bucket, &format!("{folder}manifest.json"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b["checksum"], sha.as_str());

    // Listed for the service and the destination; the destination cannot go while it holds it.
    let (_, mine) = berth
        .get(&format!("/api/external-services/{pg_id}/backups"))
        .await;
    assert_eq!(mine[0]["id"], id, "{mine}");
    let (_, in_destination) = berth
        .get(&format!("/api/backups/s3-sources/{destination}/backups"))
        .await;
    assert_eq!(in_destination["backups"][0]["id"], id, "{in_destination}");
    let (status, _) = berth
        .call(
            Method::DELETE,
            &format!("/api/backups/s3-sources/{destination}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Visible to monitoring: the outcome counter, and the last success per service.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::get(berth.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(&format!(
            "berth_backup_last_success_timestamp_seconds{{service_id=\"{pg_id}\""
        )) {
            assert!(
                metrics.contains(
                    "berth_backups_total{service_type=\"postgres\",result=\"succeeded\"} 1"
                ),
                "{metrics}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn backups_that_cannot_run_fail_with_the_reason_and_store_nothing() {
    let berth = berth().await;
    let (s3, admin, _) = s3_service(&berth).await;
    let good = managed_destination(&berth, s3, "good-bucket").await;
    let pg = berth.create("postgres", &unique("bk-pg"), json!({})).await;
    let pg_id = pg["id"].as_i64().unwrap();

    // Bucket missing (deleted behind Berth's back).
    let (_, svc) = berth.get(&format!("/api/external-services/{s3}")).await;
    let (_, revealed) = berth
        .get(&format!("/api/external-services/{s3}/reveal"))
        .await;
    let explicit = |name: &str, bucket: &str, secret: &str| {
        json!({
            "name": name,
            "bucket_name": bucket,
            "access_key_id": revealed["parameters"]["access_key"],
            "secret_key": secret,
            "endpoint": format!("http://127.0.0.1:{}", port_of(&svc["service"])),
        })
    };
    let (_, missing) = berth
        .call(
            Method::POST,
            "/api/backups/s3-sources",
            Some(explicit(
                "missing",
                "no-such-bucket",
                revealed["parameters"]["secret_key"].as_str().unwrap(),
            )),
        )
        .await;
    let (status, failed) = run_backup(&berth, pg_id, missing["id"].as_i64().unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{failed}");
    assert!(
        str_of(&failed, "detail").contains("does not exist"),
        "{failed}"
    );

    // Wrong keys.
    let (_, wrong) = berth
        .call(
            Method::POST,
            "/api/backups/s3-sources",
            Some(explicit("wrong", "good-bucket", "not-the-secret")),
        )
        .await;
    let (status, failed) = run_backup(&berth, pg_id, wrong["id"].as_i64().unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{failed}");
    assert!(str_of(&failed, "detail").contains("refused"), "{failed}");

    // The database is stopped.
    let (status, _) = berth
        .post_wait(&format!("/api/external-services/{pg_id}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, failed) = run_backup(&berth, pg_id, good).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{failed}");
    assert!(
        str_of(&failed, "detail").contains("not running"),
        "{failed}"
    );

    // Every one is recorded failed with its reason; nothing reached the good bucket.
    let (_, all) = berth
        .get(&format!("/api/external-services/{pg_id}/backups"))
        .await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    for b in all {
        assert_eq!(b["state"], "failed", "{b}");
        assert!(!str_of(b, "error_message").is_empty(), "{b}");
        assert!(b["metadata"]["manifest"].is_null(), "{b}");
    }
    assert!(admin.list_all("good-bucket", "").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_dump_failing_half_way_fails_the_backup_and_aborts_its_upload() {
    let berth = berth().await;
    let (s3, admin, s3_container) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "halfway").await;
    let (pg_id, pg) = postgres_with_big_table(&berth).await;
    let id = start_backup(&berth, pg_id, destination).await;
    wait_uploading(&berth, id, 9 << 20).await;

    // pg_dump's server process dies mid-dump (as an OOM kill or a DBA would end it).
    let password = berth.password(pg_id).await;
    let mut conn = pg_connect(port_of(&pg), "postgres", &password, "postgres")
        .await
        .unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'pg_dump'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(ended.contains(&true), "pg_dump was running");

    let b = wait_backup_done(&berth, id).await;
    assert_eq!(b["state"], "failed", "{b}");
    assert!(str_of(&b, "error_message").contains("exit code"), "{b}");
    assert!(
        stored_keys(&admin, &b).await.is_empty(),
        "nothing partial is kept"
    );
    assert_eq!(
        unfinished_uploads(&s3_container),
        "",
        "the multipart upload was aborted"
    );
}

#[tokio::test]
async fn kill_9_mid_backup_leaves_a_failed_record_and_no_upload_behind() {
    let mut berth = berth().await;
    let (s3, admin, s3_container) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "killed").await;
    let (pg_id, _) = postgres_with_big_table(&berth).await;
    let id = start_backup(&berth, pg_id, destination).await;
    wait_uploading(&berth, id, 9 << 20).await;
    assert_ne!(
        unfinished_uploads(&s3_container),
        "",
        "a multipart upload is under way"
    );

    berth.kill9();
    berth.spawn().await;
    let b = wait_backup_done(&berth, id).await;
    assert_eq!(b["state"], "failed", "{b}");
    assert!(str_of(&b, "error_message").contains("berth stopped"), "{b}");
    assert!(
        stored_keys(&admin, &b).await.is_empty(),
        "nothing partial is kept"
    );
    assert_eq!(
        unfinished_uploads(&s3_container),
        "",
        "the orphan upload was aborted"
    );
}

#[tokio::test]
async fn s3_stopped_mid_upload_fails_the_backup_and_is_cleaned_once_back() {
    let berth = berth().await;
    let (s3, admin, s3_container) = s3_service(&berth).await;
    let destination = managed_destination(&berth, s3, "interrupted").await;
    let (pg_id, _) = postgres_with_big_table(&berth).await;
    let id = start_backup(&berth, pg_id, destination).await;
    wait_uploading(&berth, id, 9 << 20).await;

    // Stopped for good (not killed: the reconciler would start a killed server again within a
    // pass, and the upload would carry on into the same multipart upload).
    let (status, body) = berth
        .post_wait(&format!("/api/external-services/{s3}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let b = wait_backup_done(&berth, id).await;
    assert_eq!(b["state"], "failed", "{b}");
    assert!(!str_of(&b, "error_message").is_empty(), "{b}");

    // Once the S3 server is back, reconciler passes remove what the failed run left.
    let (status, body) = berth
        .post_wait(&format!("/api/external-services/{s3}/start"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let clean = match admin.list_all(&location(&b).0, &location(&b).1).await {
            Ok(keys) => keys.is_empty() && unfinished_uploads(&s3_container).is_empty(),
            Err(_) => false,
        };
        if clean {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failed run's leftovers were never removed:\n{}",
            berth.log()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
