//! Provisioning benchmark: how long `berth serve` takes to hand out a ready PostgreSQL compared
//! with a bare `docker run` of the same image, and how much memory the idle server holds.
//!
//! Run with `cargo bench -p berth --bench provision` (`BENCH_REPS=N`, default 5). It needs a
//! Docker daemon; the image `berth/postgres:15` is built locally if missing, never pulled. It
//! only prints: the goals (ratio <= 1.15x, idle RSS < 40 MB) are for a human to read.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection};

const IMAGE: &str = "berth/postgres:15";
const DEFAULT_REPS: usize = 5;
/// Same interval as Berth's readiness loop, so neither side wins by polling more eagerly.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Per-wait bound: Berth's own readiness timeout is 120 s too.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// A single connection attempt, as in Berth's probe.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP requests with `?wait=true` block for the whole operation, readiness included.
const HTTP_TIMEOUT: Duration = Duration::from_secs(180);
const HEALTHZ_TIMEOUT: Duration = Duration::from_secs(60);
const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);
const IMAGE_BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Time the server gets to exit on SIGTERM before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn main() -> anyhow::Result<()> {
    let reps = reps_from_env()?;
    let run_id = random_hex(8);
    let data_dir = tempfile::tempdir().context("creating the data directory")?;
    // The guard owns everything that must go away however the bench ends (error or panic).
    let mut cleanup = Cleanup {
        server: None,
        run_id: run_id.clone(),
        reps,
        data_dir,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    // A global bound on top of the per-step ones: image build plus a generous slot per rep.
    let budget = IMAGE_BUILD_TIMEOUT + Duration::from_secs(60 + 600 * reps as u64);
    runtime.block_on(async {
        tokio::time::timeout(budget, bench(&mut cleanup, reps, &run_id))
            .await
            .map_err(|_| anyhow!("benchmark exceeded its {}s budget", budget.as_secs()))?
    })
}

/// The whole benchmark; `cleanup` receives the server process as soon as it exists.
async fn bench(cleanup: &mut Cleanup, reps: usize, run_id: &str) -> anyhow::Result<()> {
    let data_dir = cleanup.data_dir.path().to_path_buf();
    ensure_image(&data_dir).await?;

    let listen_port = free_port()?;
    let child = spawn_server(&data_dir, listen_port)?;
    let pid = child.id();
    cleanup.server = Some(child);
    let api = Api::connect(listen_port, &data_dir, cleanup).await?;
    // Read before the first /api request: what a freshly started server holds.
    println!("startup RSS: {:.1} MB", rss_mb(pid)?);

    let mut berth_times = Vec::with_capacity(reps);
    let mut raw_times = Vec::with_capacity(reps);
    for i in 0..reps {
        // Alternate which side goes first so caches and background noise hit both alike.
        let berth_first = i.is_multiple_of(2);
        let (berth, raw) = if berth_first {
            let berth = berth_provision(&api, i, run_id).await?;
            (berth, raw_provision(i, run_id).await?)
        } else {
            let raw = raw_provision(i, run_id).await?;
            (berth_provision(&api, i, run_id).await?, raw)
        };
        println!(
            "rep {}/{reps} ({} first): berth {}, raw docker {}",
            i + 1,
            if berth_first { "berth" } else { "raw" },
            secs(berth),
            secs(raw),
        );
        berth_times.push(berth);
        raw_times.push(raw);
    }

    let (berth_median, raw_median) = (median(&mut berth_times), median(&mut raw_times));
    println!(
        "provision: berth median {}, raw docker median {}, ratio {:.2}x (goal <= 1.15x)",
        secs(berth_median),
        secs(raw_median),
        berth_median.as_secs_f64() / raw_median.as_secs_f64(),
    );

    // Let the server settle (dropped buffers, finished background tasks) before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("idle RSS: {:.1} MB (goal < 40 MB)", rss_mb(pid)?);
    Ok(())
}

fn reps_from_env() -> anyhow::Result<usize> {
    match std::env::var("BENCH_REPS") {
        Ok(value) => match value.trim().parse() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("BENCH_REPS must be a positive integer, got {value:?}"),
        },
        Err(_) => Ok(DEFAULT_REPS),
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------------------------

fn berth_binary() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

/// Builds the image with Berth's own builder if it is missing (nothing is ever pulled).
async fn ensure_image(data_dir: &Path) -> anyhow::Result<()> {
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

fn spawn_server(data_dir: &Path, port: u16) -> anyhow::Result<Child> {
    let log_path = data_dir.join("serve.stderr");
    let log = std::fs::File::create(&log_path)?;
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

/// Resident set size of `pid` in MB (MiB: /proc reports kibibytes).
fn rss_mb(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))?;
    Ok(kib / 1024.0)
}

/// A minimal client for the Berth HTTP API.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// Waits for `/healthz`, then reads the admin token the server wrote on first start.
    async fn connect(port: u16, data_dir: &Path, cleanup: &mut Cleanup) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .no_proxy() // everything is on loopback; a proxy from the environment must not interfere
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + HEALTHZ_TIMEOUT;
        loop {
            if let Ok(resp) = http.get(format!("{base}/healthz")).send().await
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
        Ok(Self {
            http,
            base: format!("{base}/api"),
            token,
        })
    }

    /// Sends a request and returns the status with the body parsed as JSON (Null if empty).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// Like `send`, but anything other than `expected` is an error carrying the body.
    async fn expect(
        &self,
        expected: StatusCode,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.send(method.clone(), path, body).await?;
        if status != expected {
            bail!("{method} {path}: expected {expected}, got {status}: {value}");
        }
        Ok(value)
    }
}

// ---------------------------------------------------------------------------------------------
// The two ways of getting a database
// ---------------------------------------------------------------------------------------------

fn berth_service_name(i: usize, run_id: &str) -> String {
    format!("bench-pg-{i}-{run_id}")
}

fn raw_container_name(i: usize, run_id: &str) -> String {
    format!("bench-raw-{i}-{run_id}")
}

/// Times one Berth create (201 only once PostgreSQL accepts logins), then checks the database
/// really works with the revealed password and deletes it. Only the create is timed.
async fn berth_provision(api: &Api, i: usize, run_id: &str) -> anyhow::Result<Duration> {
    let body = json!({
        "name": berth_service_name(i, run_id),
        "service_type": "postgres",
        "parameters": {},
    });
    let start = Instant::now();
    let created = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/external-services?wait=true",
            Some(body),
        )
        .await?;
    let elapsed = start.elapsed();

    let id = created["id"]
        .as_i64()
        .ok_or_else(|| anyhow!("create answered without an id: {created}"))?;
    let port = param_port(&created)?;
    let revealed = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("/external-services/{id}/reveal"),
            None,
        )
        .await?;
    let password = revealed["parameters"]["password"]
        .as_str()
        .ok_or_else(|| anyhow!("reveal answered without a password"))?;
    // One attempt: Berth promised the database is ready, so a failure here is a real finding.
    select_one(port, password)
        .await
        .context("Berth said ready, but connecting with the revealed password failed")?;

    api.expect(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        &format!("/external-services/{id}?wait=true"),
        None,
    )
    .await?;
    Ok(elapsed)
}

/// Parameters are strings in the API; accept a number too rather than fail on a format detail.
fn param_port(service: &Value) -> anyhow::Result<u16> {
    let port = &service["parameters"]["port"];
    port.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| port.as_u64().and_then(|n| u16::try_from(n).ok()))
        .ok_or_else(|| anyhow!("service has no usable parameters.port: {service}"))
}

/// Times the baseline: `docker run` of the same image with the same command line Berth uses,
/// until `SELECT 1` succeeds. Then removes the container and its anonymous volume.
async fn raw_provision(i: usize, run_id: &str) -> anyhow::Result<Duration> {
    let name = raw_container_name(i, run_id);
    let password = random_hex(16);
    let port = free_port()?;
    let password_env = format!("POSTGRES_PASSWORD={password}");
    let publish = format!("127.0.0.1:{port}:5432");
    // Berth's postgres engine sets the same env contract and command line.
    let args = [
        "run",
        "-d",
        "--name",
        &name,
        "-e",
        &password_env,
        "-e",
        "POSTGRES_USER=postgres",
        "-e",
        "POSTGRES_DB=postgres",
        "-p",
        &publish,
        IMAGE,
        "postgres",
        "-c",
        "max_connections=100",
    ];

    let start = Instant::now();
    let run = docker(&args).await?;
    if !run.status.success() {
        bail!(
            "docker run failed: {}",
            String::from_utf8_lossy(&run.stderr).trim()
        );
    }
    wait_for_postgres(port, &password).await?;
    let elapsed = start.elapsed();

    let removed = docker(&["rm", "-f", "-v", &name]).await?;
    if !removed.status.success() {
        bail!(
            "docker rm {name} failed: {}",
            String::from_utf8_lossy(&removed.stderr).trim()
        );
    }
    Ok(elapsed)
}

/// Polls like Berth's readiness loop: a real login and query, every POLL_INTERVAL.
async fn wait_for_postgres(port: u16, password: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let last_error = match select_one(port, password).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            bail!(
                "postgres on port {port} not ready within {}s: {last_error:#}",
                READY_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// One connection as user postgres to database postgres on 127.0.0.1, running `SELECT 1`.
/// Options match Berth's probe (sslmode prefer, bounded attempt).
async fn select_one(port: u16, password: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("postgres")
        .password(password)
        .database("postgres")
        .ssl_mode(PgSslMode::Prefer)
        .disable_statement_logging();
    let attempt = async {
        let mut conn = options.connect().await?;
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        conn.close().await?;
        anyhow::Ok(())
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| anyhow!("connection attempt timed out"))?
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs the docker CLI with a bound, so a stuck daemon cannot hang the bench.
async fn docker(args: &[&str]) -> anyhow::Result<std::process::Output> {
    let mut cmd = tokio::process::Command::new("docker");
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    tokio::time::timeout(DOCKER_TIMEOUT, cmd.output())
        .await
        .with_context(|| format!("docker {} timed out", args.join(" ")))?
        .context("running docker")
}

/// A port nothing listens on right now (the kernel picks it; there is a small race, accepted).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Lowercase hex, so it is valid in service, container and volume names.
fn random_hex(len: usize) -> String {
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

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    let mid = samples.len() / 2;
    if samples.len().is_multiple_of(2) {
        (samples[mid - 1] + samples[mid]) / 2
    } else {
        samples[mid]
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// Cleanup
// ---------------------------------------------------------------------------------------------

/// Stops the server and removes every container and volume the bench may have made, by their
/// exact names (so nothing else on the host is touched), however the bench ends.
struct Cleanup {
    server: Option<Child>,
    run_id: String,
    reps: usize,
    /// Dropped after `drop` has run, i.e. once the server is gone.
    data_dir: tempfile::TempDir,
}

impl Cleanup {
    /// Turns an early server exit into an error that shows the server's own words.
    fn fail_if_server_exited(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.server.as_mut() else {
            return Ok(());
        };
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            bail!("`berth serve` exited early ({status}); its stderr:\n{log}");
        }
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.path().join("serve.stderr")
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

    fn remove_docker_objects(&self) {
        let mut containers = Vec::new();
        let mut volumes = Vec::new();
        for i in 0..self.reps {
            let service = berth_service_name(i, &self.run_id);
            containers.push(format!("berth-postgres-{service}"));
            volumes.push(format!("berth-postgres-{service}-data"));
            containers.push(raw_container_name(i, &self.run_id));
        }
        // Errors are expected and ignored: most of these were already deleted by the bench.
        let mut rm = Command::new("docker");
        rm.args(["rm", "-f", "-v"]).args(&containers);
        run_bounded(&mut rm, DOCKER_TIMEOUT);
        let mut rm_volumes = Command::new("docker");
        rm_volumes.args(["volume", "rm", "-f"]).args(&volumes);
        run_bounded(&mut rm_volumes, DOCKER_TIMEOUT);
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
