//! Test harness: builds `berth/s3` with Berth's image builder (taking the `berth-s3d` cargo just
//! built), runs it as a container with a unique name and random ports on 127.0.0.1, and talks
//! S3 to it with rusty-s3's signed URLs over reqwest.
#![allow(dead_code)]

pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_server::docker::{ContainerFile, DockerClient};
use berth_server::image_builder::{ImageBuilder, Recipe, recipe_for};

pub const ADMIN_KEY: &str = "berth-admin";
pub const ADMIN_SECRET: &str = "admin-secret-0123456789";

/// The executable cargo built for these tests; the image builder looks for `berth-s3d` there.
fn exe_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_berth-s3d"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds (or finds current) `berth/s3`, once per test process.
pub async fn ensure_image() -> String {
    static BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    BUILT
        .get_or_init(|| async {
            let work = tempfile::tempdir().unwrap();
            let builder = ImageBuilder::new(Arc::new(DockerClient::new()), work.path().into())
                .with_exe_dir(exe_dir());
            builder
                .build(&s3_recipe(), false, &|line| eprintln!("{line}"))
                .await
                .expect("building berth/s3");
        })
        .await;
    s3_recipe().reference()
}

/// A name unique to this test run, valid as a container name and a hostname.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("running docker")
}

/// Runs docker and returns its stdout; panics with stderr on failure.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A `berth/s3` container, removed with its anonymous volume when dropped.
pub struct Container {
    pub name: String,
    pub docker: DockerClient,
}

impl Container {
    /// Creates the container, writes the admin key files into it as Berth does (files, not
    /// environment) and starts it; waits until the status page answers.
    pub async fn start() -> Self {
        let image = ensure_image().await;
        let name = unique("berth-s3d-test");
        docker_ok(&[
            "create",
            "--name",
            &name,
            "--hostname",
            &name,
            "--label",
            "berth.test=s3img",
            "-p",
            "127.0.0.1::9000",
            "-p",
            "127.0.0.1::9001",
            "-p",
            "127.0.0.1::9443",
            "-e",
            "RUSTFS_ACCESS_KEY_FILE=/run/berth/s3-access-key",
            "-e",
            "RUSTFS_SECRET_KEY_FILE=/run/berth/s3-secret-key",
            &image,
        ]);
        let container = Self {
            name,
            docker: DockerClient::new(),
        };
        container
            .write("/run/berth/s3-access-key", ADMIN_KEY.as_bytes(), 0o644)
            .await;
        container
            .write("/run/berth/s3-secret-key", ADMIN_SECRET.as_bytes(), 0o644)
            .await;
        container.start_and_wait().await;
        container
    }

    pub async fn start_and_wait(&self) {
        docker_ok(&["start", &self.name]);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // Ports are assigned at each start.
            if let Some(port) = self.try_port(9001)
                && let Ok(r) = http
                    .get(format!("http://127.0.0.1:{port}/status"))
                    .send()
                    .await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "berth/s3 did not start; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes a file into the container through Docker's archive endpoint, as Berth does.
    pub async fn write(&self, path: &str, contents: &[u8], mode: u32) {
        self.docker
            .write_files(
                &self.name,
                &[ContainerFile {
                    path: path.into(),
                    contents: contents.to_vec(),
                    mode,
                }],
            )
            .await
            .expect("writing a file into the container");
    }

    pub async fn read(&self, path: &str) -> Vec<u8> {
        self.docker
            .read_file(&self.name, path)
            .await
            .expect("reading a file from the container")
            .unwrap_or_else(|| panic!("{path} is missing"))
    }

    pub fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(args);
        docker_ok(&all)
    }

    fn try_port(&self, container_port: u16) -> Option<u16> {
        let out = docker(&["port", &self.name, &format!("{container_port}/tcp")]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("127.0.0.1:"))
            .and_then(|p| p.trim().parse().ok())
    }

    /// The host port `container_port` is published on.
    pub fn port(&self, container_port: u16) -> u16 {
        self.try_port(container_port)
            .unwrap_or_else(|| panic!("{container_port} is not published"))
    }

    pub fn logs(&self) -> String {
        let out = docker(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Waits for the container to stop by itself and returns its exit code.
    pub fn wait_exit(&self) -> i64 {
        docker_ok(&["wait", &self.name]).trim().parse().unwrap()
    }

    /// Polls the logs until `needle` shows up.
    pub async fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.logs().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }
}

/// Berth's S3 image, as its engine names it.
fn s3_recipe() -> Recipe {
    recipe_for("berth/s3:0.14").expect("the s3 engine's image")
}
