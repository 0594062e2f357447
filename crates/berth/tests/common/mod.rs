//! Test harness: runs the real `berth serve` binary on a free loopback port with its own data
//! directory, against the real Docker engine, and talks to it over HTTP like a user would.
#![allow(dead_code)]

pub mod backups;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// A running `berth serve`.
pub struct Berth {
    pub data_dir: PathBuf,
    pub port: u16,
    pub token: String,
    pub log_path: PathBuf,
    child: Option<Child>,
    extra_env: Vec<(String, String)>,
    args: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
    http: reqwest::Client,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A name unique to this test run, valid as a service name.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{:x}", std::process::id(), nanos)
}

impl Berth {
    pub async fn start() -> Self {
        Self::start_with(Vec::new(), Vec::new()).await
    }

    pub async fn start_with(env: Vec<(&str, &str)>, args: Vec<&str>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let mut berth = Self {
            log_path: tmp.path().join("berth.log"),
            data_dir,
            port: free_port(),
            token: String::new(),
            child: None,
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            _tmp: Some(tmp),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .unwrap(),
        };
        berth.spawn().await;
        berth.token = std::fs::read_to_string(berth.data_dir.join("admin-token"))
            .unwrap()
            .trim()
            .to_string();
        berth
    }

    /// Starts (or restarts) the server process and waits for `/healthz`.
    pub async fn spawn(&mut self) {
        self.spawn_with_env(&[]).await
    }

    pub async fn spawn_with_env(&mut self, once_env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(&self.args)
            .env("BERTH_DATA_DIR", &self.data_dir)
            .env("BERTH_LOG", "debug")
            .env_remove("BERTH_CRASHPOINT")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        for (k, v) in once_env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("starting berth serve"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = format!("http://127.0.0.1:{}/healthz", self.port);
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "berth serve did not start; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, as abrupt as a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM: asks for a graceful shutdown.
    pub fn sigterm(&self) {
        if let Some(child) = self.child.as_ref() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    /// Waits for the process to exit by itself (e.g. after a crash point aborted it).
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().unwrap().is_some()
            {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Restarts the server armed with crash point `point`, sends a request that starts a long
    /// operation with `Prefer: respond-async` (expecting 202), waits for the server to abort at the point, and restarts it
    /// unarmed. Returns the 202 body (with the operation to follow).
    pub async fn crash_at(
        &mut self,
        point: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        self.kill9();
        self.spawn_with_env(&[("BERTH_CRASHPOINT", point)]).await;
        let (status, accepted) = self.call_async(method, path, body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        assert!(
            self.wait_exit(Duration::from_secs(120)),
            "crash point {point} was not reached"
        );
        self.spawn().await;
        accepted
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Sends an authenticated request; returns status and JSON (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// Sends a request authenticated with `token` instead of the admin token; returns status,
    /// headers and JSON (Null when empty).
    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, value)
    }

    /// Sends an authenticated request with extra headers; returns status, headers and JSON.
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, value)
    }

    /// Starts a long operation asynchronously (`Prefer: respond-async`): 202 + the operation.
    pub async fn call_async(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, value) = self
            .call_with_headers(method, path, body, &[("Prefer", "respond-async")])
            .await;
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    /// Creates a service and waits until it accepts connections; panics on failure.
    pub async fn create(&self, service_type: &str, name: &str, params: Value) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/external-services?wait=true",
                Some(json!({ "name": name, "service_type": service_type, "parameters": params })),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "create {name}: {body}\nlog:\n{}",
            self.log()
        );
        body
    }

    pub async fn post_wait(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(Method::POST, &format!("{path}?wait=true"), body)
            .await
    }

    pub async fn delete_service(&self, id: i64) {
        let (status, body) = self
            .call(
                Method::DELETE,
                &format!("/api/external-services/{id}?wait=true"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "delete {id}: {body}");
    }

    pub async fn password(&self, id: i64) -> String {
        let (_, body) = self
            .get(&format!("/api/external-services/{id}/reveal"))
            .await;
        body["parameters"]["password"].as_str().unwrap().to_string()
    }

    /// Polls an operation until it has finished (neither queued nor running).
    pub async fn wait_operation(&self, op_id: i64, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, op) = self.get(&format!("/api/operations/{op_id}")).await;
            if op["status"] != "running" && op["status"] != "queued" {
                return op;
            }
            assert!(
                Instant::now() < deadline,
                "operation {op_id} still running: {op}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Berth {
    /// Stops the server and removes every container and volume this instance made, so a failed
    /// test leaves nothing running for the next one.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let Ok(instance) = std::fs::read_to_string(self.data_dir.join("instance-id")) else {
            return;
        };
        let filter = format!("label=berth.instance={}", instance.trim());
        let (_, containers) = docker(&["ps", "-aq", "--filter", &filter]);
        for id in containers.split_whitespace() {
            let _ = docker(&["rm", "-f", id]);
        }
        let (_, volumes) = docker(&["volume", "ls", "-q", "--filter", &filter]);
        for name in volumes.split_whitespace() {
            let _ = docker(&["volume", "rm", "-f", name]);
        }
    }
}

pub fn port_of(service: &Value) -> u16 {
    service["parameters"]["port"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// `docker` CLI, for assertions from the outside (what a user would check by hand).
pub fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

pub fn container_exists(name: &str) -> bool {
    docker(&["container", "inspect", name]).0
}

pub fn volume_exists(name: &str) -> bool {
    docker(&["volume", "inspect", name]).0
}

pub async fn pg_connect(
    port: u16,
    user: &str,
    password: &str,
    db: &str,
) -> Result<sqlx::PgConnection, sqlx::Error> {
    use sqlx::Connection;
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{port}/{db}",
        urlencode(user),
        urlencode(password)
    );
    sqlx::PgConnection::connect(&url).await
}

pub async fn redis_conn(port: u16, password: &str) -> redis::aio::MultiplexedConnection {
    let url = format!("redis://:{}@127.0.0.1:{port}/0", urlencode(password));
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Percent-encodes a URL userinfo component (what Berth's own URLs do).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The bytes of the SQLite state database with its WAL and shared-memory files.
pub fn read_state_files(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("berth.db") {
            out.extend(std::fs::read(entry.path()).unwrap_or_default());
        }
    }
    out
}

/// Creates a project with these environments; panics unless 201.
pub async fn create_project(berth: &Berth, name: &str, envs: &[&str]) -> i64 {
    let (status, body) = berth
        .call(
            Method::POST,
            "/api/projects",
            Some(json!({ "name": name, "environments": envs })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

/// Links a service to a project; the answer as is.
pub async fn link_project(berth: &Berth, service: i64, project: i64) -> (StatusCode, Value) {
    berth
        .call(
            Method::POST,
            &format!("/api/external-services/{service}/projects"),
            Some(json!({ "project_id": project })),
        )
        .await
}

/// Creates an API token with this request body (`name`, `scope`, `project_id`); panics unless
/// 201. Returns the created token's JSON (with `id` and the `token` itself).
pub async fn create_token(berth: &Berth, body: Value) -> Value {
    let (status, created) = berth
        .call(Method::POST, "/api/tokens", Some(body.clone()))
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "create token {body}: {created}"
    );
    created
}

/// The variables a linked project environment gets from a service (`GET
/// /api/external-services/{id}/projects/{project_id}/environment`), asserting 200.
pub async fn project_env(
    berth: &Berth,
    service: i64,
    project: i64,
    environment: &str,
) -> std::collections::BTreeMap<String, String> {
    let (status, body) = berth
        .get(&format!(
            "/api/external-services/{service}/projects/{project}/environment?environment={environment}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}
