//! A container of Berth's MongoDB-compatible image for tests, started the way Berth starts its
//! services: unique container and volume names, a random port on 127.0.0.1, the root password
//! written into the container as a file (never in its environment).
//!
//! `BERTH_TEST_MONGODB_IMAGE` runs the same tests against another image honouring the official
//! mongo contract (a real `mongo:8`, where one can be pulled): the stand-in is not mongod.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::secrets::generate_password;
use berth_server::docker::DockerClient;
use berth_server::engines::mongodb::admin::{self, Admin, AdminError};
use berth_server::engines::mongodb::image;
use berth_server::image_builder::ImageBuilder;
use mongodb::Client;
use mongodb::options::{AuthMechanism, ClientOptions, Credential, ServerAddress};

use crate::common::{docker, free_port, unique};

/// The root user's name, as the seed's `username` parameter.
pub const ROOT: &str = "admin";

/// Bound on a start, so a broken image fails the test instead of hanging it.
const READY_BOUND: Duration = Duration::from_secs(180);

/// Serialises the image build between the tests of one binary.
static BUILD: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);

/// The image under test; Berth's own is built (or found up to date) first.
pub async fn image() -> String {
    if let Ok(other) = std::env::var("BERTH_TEST_MONGODB_IMAGE") {
        return other;
    }
    let mut built = BUILD.lock().await;
    if !*built {
        let work = std::env::var_os("BERTH_IMAGE_WORKDIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("berth-test-images"));
        let builder = ImageBuilder::new(Arc::new(DockerClient::new()), work);
        let started = Instant::now();
        builder
            .build(&image::RECIPE, false, &|_| {})
            .await
            .expect("building the MongoDB image");
        eprintln!(
            "{} ready in {:.1}s",
            image::RECIPE.reference(),
            started.elapsed().as_secs_f64()
        );
        *built = true;
    }
    image::RECIPE.reference()
}

/// One server: its container, its volume and the root password.
pub struct Mongo {
    pub name: String,
    pub volume: String,
    pub port: u16,
    pub password: String,
    pub image: String,
}

impl Mongo {
    /// Creates and starts a container on a new volume and waits until the root user can log in.
    pub async fn start() -> Self {
        let name = unique("berth-test-mongo");
        let mongo = Self {
            volume: format!("{name}-data"),
            name,
            port: free_port(),
            password: generate_password(24),
            image: image().await,
        };
        mongo.create(&mongo.password.clone()).await;
        mongo.start_and_wait().await;
        mongo
    }

    /// Creates the container (on the existing or a new volume) with `password` in its file.
    pub async fn create(&self, password: &str) {
        let publish = format!("127.0.0.1:{}:{}", self.port, image::PORT);
        let mount = format!("{}:{}", self.volume, image::DATA_PATH);
        let mut args = vec!["create", "--name", &self.name, "-p", &publish, "-v", &mount];
        let env = image::container_env(ROOT);
        for e in &env {
            args.extend(["-e", e]);
        }
        args.push(&self.image);
        let (ok, out) = docker(&args);
        assert!(ok, "docker create failed: {out}");
        DockerClient::new()
            .write_files(&self.name, &image::secret_files(password))
            .await
            .expect("writing the password file");
    }

    pub fn docker_start(&self) {
        let (ok, out) = docker(&["start", &self.name]);
        assert!(ok, "docker start: {out}");
    }

    /// `docker start`, then waits for the root login; returns how long that took.
    pub async fn start_and_wait(&self) -> Duration {
        let started = Instant::now();
        self.docker_start();
        self.wait_ready().await;
        started.elapsed()
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + READY_BOUND;
        loop {
            match admin::probe(self.port, ROOT, &self.password).await {
                Ok(()) => return,
                Err(e) => {
                    let running = docker(&["inspect", "-f", "{{.State.Running}}", &self.name]).1;
                    assert!(
                        running == "true" && Instant::now() < deadline,
                        "not ready ({e}); running: {running}; logs:\n{}",
                        self.logs()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `docker stop` (SIGTERM, then SIGKILL after Docker's grace period).
    pub fn stop(&self) {
        let (ok, out) = docker(&["stop", &self.name]);
        assert!(ok, "docker stop: {out}");
    }

    /// Removes the container, keeping the volume.
    pub fn remove_container(&self) {
        docker(&["rm", "-f", &self.name]);
    }

    pub fn exit_code(&self) -> String {
        docker(&["inspect", "-f", "{{.State.ExitCode}}", &self.name]).1
    }

    /// Runs a command in the container (as root) and returns its output.
    pub fn exec(&self, command: &[&str]) -> (bool, String) {
        let mut args = vec!["exec", self.name.as_str()];
        args.extend(command);
        docker(&args)
    }

    pub fn logs(&self) -> String {
        let out = std::process::Command::new("docker")
            .args(["logs", &self.name])
            .output()
            .expect("docker logs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    pub async fn admin(&self) -> Admin {
        Admin::connect(self.port, ROOT, &self.password)
            .await
            .expect("root login")
    }

    /// A client logged in as `user` of database `db` (its authSource).
    pub fn client(&self, db: &str, user: &str, password: &str) -> Client {
        admin::client(self.port, user, password, db).expect("client options")
    }

    /// A client using one SCRAM mechanism.
    pub fn client_with(
        &self,
        db: &str,
        user: &str,
        password: &str,
        mechanism: AuthMechanism,
    ) -> Client {
        let credential = Credential::builder()
            .username(user.to_string())
            .password(password.to_string())
            .source(db.to_string())
            .mechanism(mechanism)
            .build();
        self.options(Some(credential))
    }

    /// A client that does not authenticate.
    pub fn anonymous(&self) -> Client {
        self.options(None)
    }

    fn options(&self, credential: Option<Credential>) -> Client {
        let options = ClientOptions::builder()
            .hosts(vec![ServerAddress::Tcp {
                host: "127.0.0.1".into(),
                port: Some(self.port),
            }])
            .direct_connection(true)
            .credential(credential)
            .server_selection_timeout(Duration::from_secs(10))
            .build();
        Client::with_options(options).unwrap()
    }
}

impl Drop for Mongo {
    fn drop(&mut self) {
        docker(&["rm", "-f", "-v", &self.name]);
        docker(&["volume", "rm", "-f", &self.volume]);
    }
}

/// The server's error code of a driver result, or a panic saying what happened instead.
pub fn code_of<T: std::fmt::Debug>(result: Result<T, mongodb::error::Error>) -> i32 {
    match result {
        Ok(v) => panic!("expected a server error, got {v:?}"),
        Err(e) => admin::error_code(&e).unwrap_or_else(|| panic!("no server code in {e}")),
    }
}

/// Same for Berth's admin operations.
pub fn admin_code<T: std::fmt::Debug>(result: Result<T, AdminError>) -> i32 {
    match result {
        Ok(v) => panic!("expected a server error, got {v:?}"),
        Err(e) => e.code().unwrap_or_else(|| panic!("no server code in {e}")),
    }
}
