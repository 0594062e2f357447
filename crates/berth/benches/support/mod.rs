//! What both benches share: the server under test (image, process, API client), the cleanup
//! guard, and small helpers. Kept in one place so both benches measure the same way.
//!
//! Only items both benches use live here: each bench is its own crate, so anything used by one
//! of them alone would be dead code in the other's compilation.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

// Not every bench uses it (each compiles `support` on its own).
#[allow(dead_code)]
pub mod pg;

use anyhow::{Context, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const IMAGE: &str = "berth/postgres:15";
/// Same interval as Berth's readiness loop, so neither side wins by polling more eagerly.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Synchronous requests (the default) block for the whole operation, readiness included.
const HTTP_TIMEOUT: Duration = Duration::from_secs(180);
const HEALTHZ_TIMEOUT: Duration = Duration::from_secs(60);
const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);
pub const IMAGE_BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Time the server gets to exit on SIGTERM before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// `BENCH_REPS` if set (a positive integer), else the bench's own default.
pub fn reps_from_env(default: usize) -> anyhow::Result<usize> {
    match std::env::var("BENCH_REPS") {
        Ok(value) => match value.trim().parse() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("BENCH_REPS must be a positive integer, got {value:?}"),
        },
        Err(_) => Ok(default),
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------------------------

fn berth_binary() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

/// Where `spawn_server` sends the server's stderr.
fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("serve.stderr")
}

/// Builds the image with Berth's own builder if it is missing (nothing is ever pulled).
pub async fn ensure_image(data_dir: &Path) -> anyhow::Result<()> {
    let inspect = docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE]).await?;
    if inspect.status.success() {
        return Ok(());
    }
    eprintln!("{IMAGE} is missing; building it with `berth images build postgres`");
    let mut build = tokio::process::Command::new(berth_binary());
    build
        .args(["images", "build", "postgres"])
        .env("BERTH_DATA_DIR", data_dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let status = tokio::time::timeout(IMAGE_BUILD_TIMEOUT, build.status())
        .await
        .context("building the image timed out")??;
    if !status.success() {
        bail!("`berth images build postgres` failed: {status}");
    }
    Ok(())
}

pub fn spawn_server(data_dir: &Path, port: u16) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log_path(data_dir))?;
    Command::new(berth_binary())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("BERTH_DATA_DIR", data_dir)
        // A config file or external state database from the caller's shell would make the run
        // measure something else (and touch real state).
        .env_remove("BERTH_CONFIG")
        .env_remove("BERTH_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting `berth serve`")
}

/// A minimal client for the Berth HTTP API.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>`, for the unauthenticated `/healthz`; `/api` routes hang below
    /// it (see `url`).
    pub root: String,
    pub token: String,
}

impl Api {
    /// Waits for `/healthz`, then reads the admin token the server wrote on first start.
    pub async fn connect(
        port: u16,
        data_dir: &Path,
        cleanup: &mut Cleanup,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .no_proxy() // everything is on loopback; a proxy from the environment must not interfere
            .build()?;
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + HEALTHZ_TIMEOUT;
        loop {
            if let Ok(resp) = http.get(format!("{root}/healthz")).send().await
                && resp.status() == StatusCode::OK
            {
                break;
            }
            cleanup.fail_if_server_exited()?;
            if Instant::now() >= deadline {
                bail!("/healthz not OK within {}s", HEALTHZ_TIMEOUT.as_secs());
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        let token_path = data_dir.join("admin-token");
        let token = std::fs::read_to_string(&token_path)
            .with_context(|| format!("reading {}", token_path.display()))?
            .trim()
            .to_string();
        Ok(Self { http, root, token })
    }

    /// The absolute URL of an `/api` route (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/api{path}", self.root)
    }

    /// Sends a request to an absolute URL and returns the status with the body parsed as JSON
    /// (a JSON string if it is not JSON, Null if empty).
    /// Extra request `headers` (`Prefer: respond-async`) are sent as given.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        authenticated: bool,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self.http.request(method.clone(), url);
        if authenticated {
            request = request.bearer_auth(&self.token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let text = response.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// An authenticated `/api` request; anything other than `expected` is an error with the body.
    pub async fn expect(
        &self,
        expected: StatusCode,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.expect_with(expected, method, path, body, &[]).await
    }

    /// [`Self::expect`] with extra request headers.
    pub async fn expect_with(
        &self,
        expected: StatusCode,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let (status, value) = self
            .send(method.clone(), &self.url(path), true, body, headers)
            .await?;
        if status != expected {
            bail!("{method} {path}: expected {expected}, got {status}: {value}");
        }
        Ok(value)
    }
}

/// Parameters are strings in the API; accept a number too rather than fail on a format detail.
pub fn param_port(service: &Value) -> anyhow::Result<u16> {
    let port = &service["parameters"]["port"];
    port.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| port.as_u64().and_then(|n| u16::try_from(n).ok()))
        .ok_or_else(|| anyhow!("service has no usable parameters.port: {service}"))
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs the docker CLI with a bound, so a stuck daemon cannot hang the bench.
pub async fn docker(args: &[&str]) -> anyhow::Result<std::process::Output> {
    let mut cmd = tokio::process::Command::new("docker");
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    tokio::time::timeout(DOCKER_TIMEOUT, cmd.output())
        .await
        .with_context(|| format!("docker {} timed out", args.join(" ")))?
        .context("running docker")
}

/// A port nothing listens on right now (the kernel picks it; there is a small race, accepted).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Lowercase hex, so it is valid in service, container and volume names, SQL literals and
/// passwords.
pub fn random_hex(len: usize) -> String {
    let mut out = String::new();
    while out.len() < len {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        // RandomState is seeded randomly per instance: enough for names and a throwaway password.
        out.push_str(&format!("{:016x}", RandomState::new().hash_one(nanos)));
    }
    out.truncate(len);
    out
}

pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    let mid = samples.len() / 2;
    if samples.len().is_multiple_of(2) {
        (samples[mid - 1] + samples[mid]) / 2
    } else {
        samples[mid]
    }
}

// ---------------------------------------------------------------------------------------------
// Cleanup
// ---------------------------------------------------------------------------------------------

/// Stops the server and removes every container and volume the bench may have made, by their
/// exact names (so nothing else on the host is touched), however the bench ends (error or
/// panic). The bench registers the names up front, before anything can create them.
pub struct Cleanup {
    pub server: Option<Child>,
    /// Containers to remove (`docker rm -f -v`, so with their anonymous volumes).
    pub containers: Vec<String>,
    /// Named volumes to remove.
    pub volumes: Vec<String>,
    /// Dropped after `drop` has run, i.e. once the server is gone.
    pub data_dir: tempfile::TempDir,
}

impl Cleanup {
    pub fn new(data_dir: tempfile::TempDir) -> Self {
        Self {
            server: None,
            containers: Vec::new(),
            volumes: Vec::new(),
            data_dir,
        }
    }

    /// Registers the container and data volume of a Berth postgres service, named as Berth
    /// derives them (`berth_core::names`).
    pub fn add_postgres_service(&mut self, service_name: &str) {
        let container = format!("berth-postgres-{service_name}");
        self.volumes.push(format!("{container}-data"));
        self.containers.push(container);
    }

    /// Turns an early server exit into an error that shows the server's own words.
    fn fail_if_server_exited(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.server.as_mut() else {
            return Ok(());
        };
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(log_path(self.data_dir.path())).unwrap_or_default();
            bail!("`berth serve` exited early ({status}); its stderr:\n{log}");
        }
        Ok(())
    }

    /// SIGTERM first (the server shuts down gracefully), SIGKILL if it does not go in time.
    fn stop_server(&mut self) {
        let Some(mut child) = self.server.take() else {
            return;
        };
        let pid = child.id().to_string();
        let mut term = Command::new("kill");
        term.args(["-TERM", &pid]);
        if run_bounded(&mut term, Duration::from_secs(5))
            && wait_child(&mut child, SHUTDOWN_GRACE).is_some()
        {
            return;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Errors are expected and ignored: the bench normally deleted most of these already.
    fn remove_docker_objects(&self) {
        if !self.containers.is_empty() {
            let mut rm = Command::new("docker");
            rm.args(["rm", "-f", "-v"]).args(&self.containers);
            run_bounded(&mut rm, DOCKER_TIMEOUT);
        }
        if !self.volumes.is_empty() {
            let mut rm_volumes = Command::new("docker");
            rm_volumes.args(["volume", "rm", "-f"]).args(&self.volumes);
            run_bounded(&mut rm_volumes, DOCKER_TIMEOUT);
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Server first, so it cannot create anything while we remove what it made.
        self.stop_server();
        self.remove_docker_objects();
    }
}

/// Runs a command quietly with a time bound; true if it ran and exited successfully.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> bool {
    let spawned = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = spawned else {
        return false;
    };
    if let Some(status) = wait_child(&mut child, timeout) {
        return status.success();
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// Waits up to `timeout` for `child` to exit; its exit status if it did.
fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
