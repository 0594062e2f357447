//! KV benchmark: get and set throughput through Berth's `/api/kv/{get,set}` at 16 concurrent
//! clients, against two baselines measured in the same run, on the same Redis:
//!
//! 1. a minimal axum handler in the same binary doing the same Redis call (same key layout,
//!    same JSON in and out, one multiplexed connection) but nothing else: no authentication,
//!    no validation, no backing lookup. Goal: Berth >= 0.8x of it.
//! 2. Redis itself, the same commands from 16 tasks on one multiplexed connection (reported).
//!
//! Berth runs in this process (`app::build` + `api::router`, as `berth serve` does), so both
//! HTTP servers share one runtime and one build; the bench client is the same for both.
//! Run with `cargo bench -p berth --bench kv` (`BENCH_ROUNDS`, default 6, of `BENCH_WINDOW_SECS`,
//! default 2, per side; the goal is read from the median round). It needs a
//! Docker daemon and the local image `berth/redis:7` (`berth images build redis`); nothing is
//! pulled. It only prints: the goal is for a human to read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use axum::Json;
use axum::extract::State;
use axum::routing::post;
use redis::aio::MultiplexedConnection;
use serde::Deserialize;
use serde_json::{Value, json};

const CONCURRENCY: usize = 16;
const DEFAULT_WINDOW_SECS: u64 = 2;
const DEFAULT_ROUNDS: u64 = 6;
/// Keys the clients cycle through (set before measuring, so every get finds a value).
const KEYS: usize = 256;
const RATIO_GOAL: f64 = 0.8;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const IMAGE: &str = "berth/redis:7";

fn main() -> anyhow::Result<()> {
    let window = Duration::from_secs(positive_env("BENCH_WINDOW_SECS", DEFAULT_WINDOW_SECS)?);
    let rounds = positive_env("BENCH_ROUNDS", DEFAULT_ROUNDS)? as usize;
    let data = tempfile::tempdir().context("creating the data directory")?;
    // Removes what this Berth instance made however the bench ends (error or panic).
    let _cleanup = Cleanup {
        data_dir: data.path().to_path_buf(),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(bench(data.path(), window, rounds))
}

/// A positive integer from the environment, or `default`.
fn positive_env(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("{name} must be a positive integer, got {v:?}")),
        Err(_) => Ok(default),
    }
}

async fn bench(data_dir: &std::path::Path, window: Duration, rounds: usize) -> anyhow::Result<()> {
    let image = std::process::Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .context("running docker")?;
    if !image.status.success() {
        bail!("{IMAGE} is missing; build it with `berth images build redis`");
    }
    let berth = start_berth(data_dir).await?;
    let project = berth.setup().await?;
    let backing = berth.backing_connection().await?;
    let baseline = start_baseline(backing.clone(), project.id).await?;
    seed(&backing, project.id).await?;

    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .no_proxy()
        .build()?;
    for op in [Op::Get, Op::Set] {
        let through_berth = Http {
            url: format!("{}/api/kv/{}", berth.root, op.name()),
            token: Some(project.token.clone()),
        };
        let minimal = Http {
            url: format!("{baseline}/{}", op.name()),
            token: None,
        };
        through_berth.check(&client, op).await?;
        minimal.check(&client, op).await?;
        let (mut b, mut m, mut d) = (Rate::default(), Rate::default(), Rate::default());
        let mut ratios = Vec::with_capacity(rounds);
        // Adjacent windows, the side going first alternating: the ratio of each round is taken
        // under the same background load (a shared machine drifts by far more than 20%).
        for round in 1..=rounds {
            let berth_first = round % 2 == 1;
            let (first, second) = if berth_first {
                (&through_berth, &minimal)
            } else {
                (&minimal, &through_berth)
            };
            let w1 = first.window(&client, op, window).await;
            let w2 = second.window(&client, op, window).await;
            let (wb, wm) = if berth_first { (w1, w2) } else { (w2, w1) };
            let wd = direct_window(&backing, project.id, op, window).await;
            print_round(op, round, rounds, &wb, &wm, &wd);
            ratios.push(wb.rate() / wm.rate());
            b.add(&wb);
            m.add(&wm);
            d.add(&wd);
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "{}: berth {:.0} ops/s, minimal handler {:.0} ops/s, direct redis {:.0} ops/s; \
             berth/minimal median of rounds {:.2}x (goal >= {RATIO_GOAL}x; all windows {:.2}x, \
             rounds {:.2}x..{:.2}x), berth/direct {:.2}x",
            op.name(),
            b.rate(),
            m.rate(),
            d.rate(),
            median(&ratios),
            b.rate() / m.rate(),
            ratios[0],
            ratios[ratios.len() - 1],
            b.rate() / d.rate(),
        );
    }
    berth.disable().await
}

#[derive(Clone, Copy)]
enum Op {
    Get,
    Set,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
        }
    }

    /// The body of request `i`, the same for Berth and the minimal handler.
    fn body(self, i: u64) -> Value {
        let key = format!("bench:{}", i % KEYS as u64);
        match self {
            Op::Get => json!({ "key": key }),
            Op::Set => json!({ "key": key, "value": {"n": i, "tag": "bench"} }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Berth, in this process
// ---------------------------------------------------------------------------------------------

struct Berth {
    root: String,
    admin: String,
    http: reqwest::Client,
}

struct Project {
    id: i64,
    token: String,
}

async fn start_berth(data_dir: &std::path::Path) -> anyhow::Result<Berth> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut config = berth_server::config::ServerConfig {
        data_dir: data_dir.to_path_buf(),
        listen: listener.local_addr()?,
        ..Default::default()
    };
    config.kv_service_name = format!("kv-bench-{}", std::process::id());
    let server = berth_server::app::build(config).await?;
    let router = berth_server::api::router(server.state);
    let root = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    let admin = std::fs::read_to_string(data_dir.join(berth_server::app::ADMIN_TOKEN_FILE))?
        .trim()
        .to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .no_proxy()
        .build()?;
    Ok(Berth { root, admin, http })
}

impl Berth {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let response = self
            .http
            .request(method.clone(), format!("{}/api{path}", self.root))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{method} {path}: {status} {answer}");
        }
        Ok(answer)
    }

    /// Enables KV, and makes a project with a project token (what an application holds).
    async fn setup(&self) -> anyhow::Result<Project> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        self.call(reqwest::Method::POST, "/kv/enable", json!({ "port": port }))
            .await?;
        let project = self
            .call(
                reqwest::Method::POST,
                "/projects",
                json!({ "name": format!("bench-{}", std::process::id()) }),
            )
            .await?;
        let id = project["id"].as_i64().context("project id")?;
        let token = self
            .call(
                reqwest::Method::POST,
                "/tokens",
                json!({ "name": "bench", "scope": "project", "project_id": id }),
            )
            .await?;
        let token = token["token"].as_str().context("token")?.to_string();
        Ok(Project { id, token })
    }

    /// An admin connection to KV's Redis, for the baselines.
    async fn backing_connection(&self) -> anyhow::Result<MultiplexedConnection> {
        let status = self
            .call(reqwest::Method::GET, "/kv/status", json!({}))
            .await?;
        let id = status["service_id"].as_i64().context("service id")?;
        let service = self
            .call(
                reqwest::Method::GET,
                &format!("/external-services/{id}/reveal"),
                json!({}),
            )
            .await?;
        let port = service["parameters"]["port"].as_str().context("port")?;
        let password = service["parameters"]["password"]
            .as_str()
            .context("password")?;
        let info = redis::ConnectionAddr::Tcp("127.0.0.1".into(), port.parse()?);
        let info = redis::IntoConnectionInfo::into_connection_info(info)?
            .set_redis_settings(redis::RedisConnectionInfo::default().set_password(password));
        Ok(redis::Client::open(info)?
            .get_multiplexed_async_connection()
            .await?)
    }

    async fn disable(&self) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::DELETE,
            "/kv/disable?delete_data=true",
            json!({}),
        )
        .await
        .map(drop)
    }
}

// ---------------------------------------------------------------------------------------------
// The minimal handler: the same Redis call behind axum, nothing else
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Minimal {
    conn: MultiplexedConnection,
    prefix: Arc<str>,
}

#[derive(Deserialize)]
struct GetBody {
    key: String,
}

#[derive(Deserialize)]
struct SetBody {
    key: String,
    value: Value,
}

async fn minimal_get(State(m): State<Minimal>, Json(body): Json<GetBody>) -> Json<Value> {
    let mut conn = m.conn.clone();
    let raw: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("{}{}", m.prefix, body.key))
        .query_async(&mut conn)
        .await
        .unwrap_or(None);
    let value = raw.map(|b| serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null));
    Json(json!({ "value": value }))
}

async fn minimal_set(State(m): State<Minimal>, Json(body): Json<SetBody>) -> Json<Value> {
    let mut conn = m.conn.clone();
    let reply: Option<String> = redis::cmd("SET")
        .arg(format!("{}{}", m.prefix, body.key))
        .arg(body.value.to_string())
        .query_async(&mut conn)
        .await
        .unwrap_or(None);
    Json(json!({ "result": reply }))
}

async fn start_baseline(conn: MultiplexedConnection, project: i64) -> anyhow::Result<String> {
    let state = Minimal {
        conn,
        prefix: format!("kv:p{project}:").into(),
    };
    let router = axum::Router::new()
        .route("/get", post(minimal_get))
        .route("/set", post(minimal_set))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let root = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(root)
}

async fn seed(conn: &MultiplexedConnection, project: i64) -> anyhow::Result<()> {
    let mut conn = conn.clone();
    for i in 0..KEYS {
        let _: () = redis::cmd("SET")
            .arg(format!("kv:p{project}:bench:{i}"))
            .arg(json!({"n": i}).to_string())
            .query_async(&mut conn)
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------

struct Http {
    url: String,
    token: Option<String>,
}

struct Window {
    ok: u64,
    failed: u64,
    elapsed: Duration,
}

#[derive(Default)]
struct Rate {
    ok: u64,
    elapsed: Duration,
}

impl Window {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

impl Rate {
    fn add(&mut self, w: &Window) {
        self.ok += w.ok;
        self.elapsed += w.elapsed;
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// The median of sorted values (the mean of the middle two for an even count).
fn median(sorted: &[f64]) -> f64 {
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

fn print_round(op: Op, round: usize, rounds: usize, b: &Window, m: &Window, d: &Window) {
    println!(
        "{} round {round}/{rounds}: berth {:.0} ops/s, minimal {:.0} ops/s ({:.2}x), direct {:.0} \
         ops/s; failed {}/{}/{}",
        op.name(),
        b.rate(),
        m.rate(),
        b.rate() / m.rate(),
        d.rate(),
        b.failed,
        m.failed,
        d.failed
    );
}

impl Http {
    async fn one(&self, client: &reqwest::Client, op: Op, i: u64) -> bool {
        let mut request = client.post(&self.url).json(&op.body(i));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => response
                .json::<Value>()
                .await
                .is_ok_and(|v| !v["value"].is_null() || v["result"] == "OK"),
            _ => false,
        }
    }

    /// One correct answer before measuring: a fast stream of errors is not throughput.
    async fn check(&self, client: &reqwest::Client, op: Op) -> anyhow::Result<()> {
        if !self.one(client, op, 1).await {
            bail!("{} {} did not answer as expected", op.name(), self.url);
        }
        Ok(())
    }

    async fn window(&self, client: &reqwest::Client, op: Op, length: Duration) -> Window {
        let http = Arc::new(Http {
            url: self.url.clone(),
            token: self.token.clone(),
        });
        let client = client.clone();
        let counter = Arc::new(AtomicU64::new(0));
        run_window(length, move || {
            let (http, client, counter) = (http.clone(), client.clone(), counter.clone());
            async move {
                http.one(&client, op, counter.fetch_add(1, Ordering::Relaxed))
                    .await
            }
        })
        .await
    }
}

/// The same commands straight to Redis, from the same number of tasks on one connection.
async fn direct_window(
    conn: &MultiplexedConnection,
    project: i64,
    op: Op,
    length: Duration,
) -> Window {
    let counter = Arc::new(AtomicU64::new(0));
    let conn = conn.clone();
    run_window(length, move || {
        let mut conn = conn.clone();
        let counter = counter.clone();
        async move {
            let i = counter.fetch_add(1, Ordering::Relaxed);
            let body = op.body(i);
            let key = format!("kv:p{project}:{}", body["key"].as_str().unwrap_or_default());
            match op {
                Op::Get => redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<Vec<u8>>>(&mut conn)
                    .await
                    .is_ok_and(|v| v.is_some()),
                Op::Set => redis::cmd("SET")
                    .arg(key)
                    .arg(body["value"].to_string())
                    .query_async::<Option<String>>(&mut conn)
                    .await
                    .is_ok_and(|v| v.is_some()),
            }
        }
    })
    .await
}

/// CONCURRENCY tasks run `attempt` back to back until the window closes.
async fn run_window<F, Fut>(length: Duration, attempt: F) -> Window
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let attempt = Arc::new(attempt);
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + length;
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (attempt, ok, failed) = (attempt.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let counter = if attempt().await { &ok } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    // To the last answer, not the nominal window: requests in flight end late.
    Window {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    }
}

/// Removes this instance's containers and volumes (by its instance label), however the
/// bench ends.
struct Cleanup {
    data_dir: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(instance) = std::fs::read_to_string(self.data_dir.join("instance-id")) else {
            return;
        };
        let filter = format!("label=berth.instance={}", instance.trim());
        for (list, remove) in [
            (vec!["ps", "-aq", "--filter", &filter], vec!["rm", "-f"]),
            (
                vec!["volume", "ls", "-q", "--filter", &filter],
                vec!["volume", "rm", "-f"],
            ),
        ] {
            let Ok(out) = std::process::Command::new("docker").args(&list).output() else {
                continue;
            };
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = std::process::Command::new("docker")
                    .args(&remove)
                    .arg(id)
                    .output();
            }
        }
    }
}
