//! Importing containers the user already runs (seed: "Import an existing container"): found by
//! what they run, verified by connecting, then managed in place — never recreated or removed
//! unless a delete asks.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "their-own-pw";

/// A PostgreSQL container as a user would run it by hand: no Berth labels, a retagged image
/// (so the image name says nothing), a named volume and a published port.
struct UserPostgres {
    name: String,
    image: String,
    volume: String,
    port: u16,
}

impl UserPostgres {
    fn run() -> Self {
        let name = unique("their-pg");
        let image = format!("acme-test/db:{name}");
        assert!(docker(&["tag", "berth/postgres:15", &image]).0, "tag");
        let volume = format!("{name}-data");
        let port = free_port();
        let (ok, out) = docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "-e",
            &format!("POSTGRES_PASSWORD={PASSWORD}"),
            "-p",
            &format!("127.0.0.1:{port}:5432"),
            "-v",
            &format!("{volume}:/var/lib/postgresql/data"),
            &image,
        ]);
        assert!(ok, "docker run: {out}");
        let user = Self {
            name,
            image,
            volume,
            port,
        };
        user.wait_ready();
        user
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !docker(&[
            "exec",
            &self.name,
            "pg_isready",
            "-U",
            "postgres",
            "-h",
            "127.0.0.1",
        ])
        .0
        {
            assert!(
                Instant::now() < deadline,
                "{} never became ready",
                self.name
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn set_restart_policy(&self, policy: &str) {
        assert!(docker(&["update", "--restart", policy, &self.name]).0);
    }

    fn restart_policy(&self) -> String {
        docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.RestartPolicy.Name}}",
            &self.name,
        ])
        .1
    }

    fn running(&self) -> bool {
        docker(&["inspect", "-f", "{{.State.Running}}", &self.name]).1 == "true"
    }

    fn import_body(&self, service: &str, password: &str) -> Value {
        json!({
            "container_id": self.name,
            "name": service,
            "service_type": "postgres",
            "parameters": {
                "host": "localhost",
                "port": self.port.to_string(),
                "database": "postgres",
                "username": "postgres",
                "password": password,
            }
        })
    }
}

impl Drop for UserPostgres {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.name]);
        docker(&["rm", "-f", &format!("{}-before-berth", self.name)]);
        docker(&["volume", "rm", "-f", &self.volume]);
        docker(&["rmi", &self.image]);
    }
}

async fn import(berth: &Berth, body: Value) -> (StatusCode, Value) {
    berth
        .call(Method::POST, "/api/external-services/import", Some(body))
        .await
}

async fn available(berth: &Berth) -> Vec<Value> {
    let (status, list) = berth
        .get("/api/external-services/available-containers")
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().unwrap().clone()
}

fn refused(status: StatusCode, answer: &Value, expected: StatusCode, words: &str) {
    assert_eq!(status, expected, "{answer}");
    let detail = answer["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(words), "{words:?} not in {detail:?}");
}

#[tokio::test]
async fn a_users_postgres_container_is_found_verified_imported_and_stays_theirs() {
    let berth = Berth::start().await;
    let theirs = UserPostgres::run();
    let own = berth.create("redis", &unique("own"), json!({})).await;
    let own_container = own["container_name"].as_str().unwrap().to_string();

    // Found by what it runs, under an image name that says nothing; Berth's own are not offered.
    let list = available(&berth).await;
    let found = list
        .iter()
        .find(|c| c["container_name"] == theirs.name.as_str())
        .unwrap_or_else(|| panic!("{} not offered: {list:?}", theirs.name));
    assert_eq!(found["service_type"], "postgres", "{found}");
    assert_eq!(found["version"], "15", "{found}");
    assert_eq!(found["is_running"], true, "{found}");
    assert_eq!(found["image"], theirs.image.as_str(), "{found}");
    assert_eq!(found["exposed_ports"], json!([5432]), "{found}");
    assert!(
        found["container_id"].as_str().unwrap().len() >= 12,
        "{found}"
    );
    assert!(
        list.iter()
            .all(|c| c["container_name"] != own_container.as_str()),
        "Berth's own container offered: {list:?}"
    );

    // Bad input: nothing is recorded.
    let name = unique("imported");
    let mut body = theirs.import_body(&name, PASSWORD);
    body["container_id"] = json!("no-such-container-at-all");
    let (status, answer) = import(&berth, body).await;
    refused(status, &answer, StatusCode::BAD_REQUEST, "no container");
    let (status, answer) = import(&berth, theirs.import_body(&name, "not-their-password")).await;
    refused(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "password authentication failed",
    );
    let mut body = theirs.import_body(&name, PASSWORD);
    body["service_type"] = json!("redis");
    body["parameters"] = json!({ "password": PASSWORD });
    let (status, answer) = import(&berth, body).await;
    refused(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "looks like PostgreSQL",
    );
    // A container that runs no database at all.
    let idle = unique("idle");
    assert!(
        docker(&[
            "run",
            "-d",
            "--name",
            &idle,
            "berth/debian-base:bookworm",
            "sleep",
            "600"
        ])
        .0
    );
    let mut body = theirs.import_body(&name, PASSWORD);
    body["container_id"] = json!(idle);
    let (status, answer) = import(&berth, body).await;
    docker(&["rm", "-f", &idle]);
    refused(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "does not run a PostgreSQL server",
    );
    let mut body = theirs.import_body(&name, PASSWORD);
    body["parameters"]
        .as_object_mut()
        .unwrap()
        .remove("password");
    let (status, answer) = import(&berth, body).await;
    refused(status, &answer, StatusCode::BAD_REQUEST, "password");
    let mut body = json!({
        "container_id": own_container,
        "name": name,
        "service_type": "redis",
        "parameters": { "password": "whatever-it-is" },
    });
    let (status, answer) = import(&berth, body.take()).await;
    refused(status, &answer, StatusCode::CONFLICT, "made by Berth");
    let (_, services) = berth.get("/api/external-services").await;
    assert_eq!(services.as_array().unwrap().len(), 1, "{services}");

    // The import, as the seed's curl example sends it.
    let (status, service) = import(&berth, theirs.import_body(&name, PASSWORD)).await;
    assert_eq!(status, StatusCode::CREATED, "{service}\n{}", berth.log());
    assert_eq!(service["origin"], "imported", "{service}");
    assert_eq!(service["status"], "running", "{service}");
    assert_eq!(service["container_name"], theirs.name.as_str());
    assert_eq!(service["volume_name"], theirs.volume.as_str());
    assert_eq!(service["parameters"]["password"], "********", "{service}");
    let id = service["id"].as_i64().unwrap();
    let (status, answer) = import(&berth, theirs.import_body(&unique("again"), PASSWORD)).await;
    refused(status, &answer, StatusCode::CONFLICT, "already imported");
    assert!(
        available(&berth)
            .await
            .iter()
            .all(|c| c["container_name"] != theirs.name.as_str()),
        "an imported container is not offered again"
    );
    let (status, health) = berth
        .get(&format!("/api/external-services/{id}/health?detail=true"))
        .await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["healthy"], true, "{health}");

    // Linked like a created one: the project's database works over Berth's network by name.
    let project = create_project(&berth, &unique("shop"), &["production"]).await;
    let (status, link) = link_project(&berth, id, project).await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let env = project_env(&berth, id, project, "production").await;
    let url = env["DATABASE_URL"].clone();
    assert!(url.contains(&format!("@{}:5432/", theirs.name)), "{url}");
    let (ok, out) = docker(&[
        "run",
        "--rm",
        "--network",
        "berth",
        "-e",
        &format!("DATABASE_URL={url}"),
        "berth/postgres:15",
        "sh",
        "-c",
        "psql \"$DATABASE_URL\" -tAc 'select current_user'",
    ]);
    assert!(ok, "the linked database answers on Berth's network: {out}");

    // Changes that need a new container are refused, naming why.
    let (status, answer) = berth
        .call(
            Method::PUT,
            &format!("/api/external-services/{id}"),
            Some(json!({ "parameters": { "max_connections": "50" } })),
        )
        .await;
    refused(status, &answer, StatusCode::CONFLICT, "imported");
    let (status, answer) = berth
        .call(
            Method::POST,
            &format!("/api/external-services/{id}/upgrade"),
            Some(json!({ "docker_image": "berth/postgres:15" })),
        )
        .await;
    refused(status, &answer, StatusCode::CONFLICT, "never recreates");

    // Stop and start act on their container in place.
    let (status, answer) = berth
        .post_wait(&format!("/api/external-services/{id}/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(container_exists(&theirs.name) && !theirs.running());
    let (status, answer) = berth
        .post_wait(&format!("/api/external-services/{id}/start"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(theirs.running());

    // Delete forgets it (force: it is linked); container and volume stay, running.
    let (status, answer) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{id}?force=true"),
            None,
        )
        .await;
    assert!(status.is_success(), "{status} {answer}");
    let (status, _) = berth.get(&format!("/api/external-services/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(theirs.running(), "the container keeps running");
    assert!(volume_exists(&theirs.volume));

    // Imported again, then deleted with ?remove_container=true: the container goes, the
    // volume stays.
    let (status, service) = import(&berth, theirs.import_body(&name, PASSWORD)).await;
    assert_eq!(status, StatusCode::CREATED, "{service}");
    let id = service["id"].as_i64().unwrap();
    let (status, answer) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{id}?remove_container=true"),
            None,
        )
        .await;
    assert!(status.is_success(), "{status} {answer}");
    assert!(!container_exists(&theirs.name), "removed when asked");
    assert!(volume_exists(&theirs.volume), "its volume is never removed");
    berth.delete_service(own["id"].as_i64().unwrap()).await;
}

#[tokio::test]
async fn an_imported_container_that_vanishes_is_never_recreated() {
    let berth = Berth::start_with(vec![], vec!["--reconcile-interval", "1"]).await;
    let theirs = UserPostgres::run();
    let name = unique("imported");
    let (status, service) = import(&berth, theirs.import_body(&name, PASSWORD)).await;
    assert_eq!(status, StatusCode::CREATED, "{service}");
    let id = service["id"].as_i64().unwrap();

    // Stopped behind Berth's back while it should run: started again in place.
    assert!(docker(&["stop", &theirs.name]).0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !theirs.running() {
        assert!(
            Instant::now() < deadline,
            "the reconciler never started it again"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Removed behind Berth's back: observed as missing; neither the reconciler nor a start
    // makes a container in its place.
    assert!(docker(&["rm", "-f", &theirs.name]).0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, details) = berth.get(&format!("/api/external-services/{id}")).await;
        if details["service"]["status"] == "missing" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never observed missing: {details}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (status, answer) = berth
        .post_wait(&format!("/api/external-services/{id}/start"), None)
        .await;
    assert!(
        answer.to_string().contains("never recreates"),
        "{status} {answer}"
    );
    assert!(!container_exists(&theirs.name));
    assert!(!container_exists(&format!("berth-postgres-{name}")));
    assert!(volume_exists(&theirs.volume), "the data is untouched");
}

async fn operation_outcome(berth: &Berth, op: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = berth.get(&format!("/api/operations/{op}")).await;
        if !matches!(body["status"].as_str(), Some("running" | "queued")) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "operation {op} never finished: {body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn an_adopted_container_becomes_berths_on_the_same_volume_and_a_crash_gives_it_back() {
    let mut berth = Berth::start().await;
    let theirs = UserPostgres::run();
    theirs.set_restart_policy("unless-stopped");
    {
        let mut conn = pg_connect(theirs.port, "postgres", PASSWORD, "postgres")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE kept (v text)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO kept VALUES ('written before the adopt')")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let name = unique("adopted");
    let (status, service) = import(&berth, theirs.import_body(&name, PASSWORD)).await;
    assert_eq!(status, StatusCode::CREATED, "{service}");
    let id = service["id"].as_i64().unwrap();
    let kept_as = format!("{}-before-berth", theirs.name);

    // A crash half way (their container stopped and renamed, Berth's not made yet): the
    // restart gives it back as it was, running, with its restart policy.
    let accepted = berth
        .crash_at(
            "adopt.after_rename",
            Method::POST,
            &format!("/api/external-services/{id}/adopt"),
            None,
        )
        .await;
    let op = operation_outcome(&berth, accepted["operation"]["id"].as_i64().unwrap()).await;
    assert_eq!(op["status"], "rolled_back", "{op}");
    assert!(theirs.running(), "their container runs again");
    assert!(!container_exists(&kept_as));
    assert_eq!(theirs.restart_policy(), "unless-stopped");
    let (_, details) = berth.get(&format!("/api/external-services/{id}")).await;
    assert_eq!(details["service"]["origin"], "imported", "{details}");

    // The adopt itself.
    let (status, adopted) = berth
        .post_wait(&format!("/api/external-services/{id}/adopt"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{adopted}\n{}", berth.log());
    let berths = format!("berth-postgres-{name}");
    assert_eq!(adopted["origin"], "berth", "{adopted}");
    assert_eq!(adopted["container_name"], berths.as_str(), "{adopted}");
    assert_eq!(adopted["volume_name"], theirs.volume.as_str(), "{adopted}");
    let (_, mounts) = docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Name}} {{end}}",
        &berths,
    ]);
    assert!(mounts.contains(&theirs.volume), "{mounts}");
    // Theirs is kept, stopped, under another name, and will not come back by itself.
    assert!(container_exists(&kept_as));
    assert!(!container_exists(&theirs.name));
    assert_eq!(
        docker(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.HostConfig.RestartPolicy.Name}}",
            &kept_as
        ])
        .1,
        "false no"
    );
    let mut conn = pg_connect(theirs.port, "postgres", PASSWORD, "postgres")
        .await
        .unwrap();
    let (v,): (String,) = sqlx::query_as("SELECT v FROM kept")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, "written before the adopt");
    drop(conn);

    // Now Berth's like any other: an update recreates the container, the data stays.
    let (status, updated) = berth
        .call(
            Method::PUT,
            &format!("/api/external-services/{id}"),
            Some(json!({ "parameters": { "max_connections": "50" } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let mut conn = pg_connect(theirs.port, "postgres", PASSWORD, "postgres")
        .await
        .unwrap();
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM kept")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 1);
    drop(conn);
    let (status, again) = berth
        .call(
            Method::POST,
            &format!("/api/external-services/{id}/adopt"),
            None,
        )
        .await;
    refused(
        status,
        &again,
        StatusCode::CONFLICT,
        "already runs in Berth's own container",
    );

    // Their kept container still mounts the volume: deleting with the data is refused, naming
    // it, until it is gone.
    let (status, answer) = berth
        .call(
            Method::DELETE,
            &format!("/api/external-services/{id}"),
            None,
        )
        .await;
    refused(status, &answer, StatusCode::CONFLICT, &kept_as);
    assert!(volume_exists(&theirs.volume));
    assert!(docker(&["rm", &kept_as]).0);
    berth.delete_service(id).await;
    assert!(
        !volume_exists(&theirs.volume),
        "Berth's now, deleted with the service"
    );
}
