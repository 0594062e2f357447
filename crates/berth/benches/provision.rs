//! Provisioning benchmark: how long `berth serve` takes to hand out a ready PostgreSQL compared
//! with a bare `docker run` of the same image — synchronously (the default: 201 once it accepts
//! connections) and asynchronously (`Prefer: respond-async`, then polling the operation) —, what
//! queueing costs (10 stops/starts fired together at one service against the same 10 one after
//! another), and how much memory the idle server holds.
//!
//! Run with `cargo bench -p berth --bench provision` (`BENCH_REPS=N`, default 5). It needs a
//! Docker daemon; the image `berth/postgres:15` is built locally if missing, never pulled. It
//! only prints: the goals (sync ratio <= 1.15x and no worse than async + poll, queued ~ 1.0x of
//! sequential, idle RSS < 40 MB) are for a human to read.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection};

use support::{
    Api, Cleanup, IMAGE, IMAGE_BUILD_TIMEOUT, POLL_INTERVAL, docker, ensure_image, free_port,
    median, param_port, random_hex, reps_from_env, spawn_server,
};

const DEFAULT_REPS: usize = 5;
/// Per-wait bound: Berth's own readiness timeout is 120 s too.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// A single connection attempt, as in Berth's probe.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> anyhow::Result<()> {
    let reps = reps_from_env(DEFAULT_REPS)?;
    let run_id = random_hex(8);
    // The guard owns everything that must go away however the bench ends (error or panic).
    let mut cleanup = Cleanup::new(tempfile::tempdir().context("creating the data directory")?);
    for i in 0..reps {
        for mode in [Mode::Sync, Mode::Async] {
            cleanup.add_postgres_service(&berth_service_name(mode, i, &run_id));
        }
        cleanup.containers.push(raw_container_name(i, &run_id));
    }
    cleanup.add_postgres_service(&queue_service_name(&run_id));
    let runtime = tokio::runtime::Runtime::new()?;
    // A global bound on top of the per-step ones: image build plus a generous slot per rep.
    let budget = IMAGE_BUILD_TIMEOUT + Duration::from_secs(60 + 1200 * reps as u64);
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

    let mut sync_times = Vec::with_capacity(reps);
    let mut async_times = Vec::with_capacity(reps);
    let mut raw_times = Vec::with_capacity(reps);
    for i in 0..reps {
        // Rotate which side goes first so caches and background noise hit all three alike.
        let mut order = [Side::Berth(Mode::Sync), Side::Berth(Mode::Async), Side::Raw];
        order.rotate_left(i % 3);
        let mut line = Vec::new();
        for side in order {
            match side {
                Side::Berth(mode) => {
                    let t = berth_provision(&api, mode, i, run_id).await?;
                    line.push(format!("{} {}", mode.label(), secs(t)));
                    match mode {
                        Mode::Sync => sync_times.push(t),
                        Mode::Async => async_times.push(t),
                    }
                }
                Side::Raw => {
                    let t = raw_provision(i, run_id).await?;
                    line.push(format!("raw docker {}", secs(t)));
                    raw_times.push(t);
                }
            }
        }
        println!("rep {}/{reps}: {}", i + 1, line.join(", "));
    }

    let sync_median = median(&mut sync_times);
    let async_median = median(&mut async_times);
    let raw_median = median(&mut raw_times);
    println!(
        "provision: berth sync median {}, berth async+poll median {}, raw docker median {}",
        secs(sync_median),
        secs(async_median),
        secs(raw_median),
    );
    println!(
        "provision ratios: sync/raw {:.2}x (goal <= 1.15x), async+poll/raw {:.2}x, \
         sync/(async+poll) {:.2}x (goal <= 1.00x, noise aside)",
        sync_median.as_secs_f64() / raw_median.as_secs_f64(),
        async_median.as_secs_f64() / raw_median.as_secs_f64(),
        sync_median.as_secs_f64() / async_median.as_secs_f64(),
    );

    queue_bench(&api, reps, run_id).await?;

    // Let the server settle (dropped buffers, finished background tasks) before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("idle RSS: {:.1} MB (goal < 40 MB)", rss_mb(pid)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Memory of the server under test
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// The two ways of getting a database
// ---------------------------------------------------------------------------------------------

fn berth_service_name(mode: Mode, i: usize, run_id: &str) -> String {
    format!("bench-pg-{}-{i}-{run_id}", mode.label())
}

fn raw_container_name(i: usize, run_id: &str) -> String {
    format!("bench-raw-{i}-{run_id}")
}

fn queue_service_name(run_id: &str) -> String {
    format!("bench-queue-{run_id}")
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// The default: the create answers 201 once PostgreSQL accepts logins.
    Sync,
    /// `Prefer: respond-async`: 202 at once, then the operation is polled until it succeeds.
    Async,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Async => "async",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Side {
    Berth(Mode),
    Raw,
}

/// Times one Berth create until PostgreSQL accepts logins — the synchronous answer (201), or
/// 202 + polling the operation every POLL_INTERVAL until it has succeeded — then checks the
/// database really works with the revealed password and deletes it. Only the create is timed.
async fn berth_provision(
    api: &Api,
    mode: Mode,
    i: usize,
    run_id: &str,
) -> anyhow::Result<Duration> {
    let body = json!({
        "name": berth_service_name(mode, i, run_id),
        "service_type": "postgres",
        "parameters": {},
    });
    let start = Instant::now();
    let created = match mode {
        Mode::Sync => {
            api.expect(
                StatusCode::CREATED,
                Method::POST,
                "/external-services",
                Some(body),
            )
            .await?
        }
        Mode::Async => {
            let accepted = api
                .expect_with(
                    StatusCode::ACCEPTED,
                    Method::POST,
                    "/external-services",
                    Some(body),
                    &[("Prefer", "respond-async")],
                )
                .await?;
            let op = accepted["operation"]["id"]
                .as_i64()
                .ok_or_else(|| anyhow!("202 without an operation: {accepted}"))?;
            wait_operation(api, op).await?;
            accepted["service"].clone()
        }
    };
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
        &format!("/external-services/{id}"),
        None,
    )
    .await?;
    Ok(elapsed)
}

/// Polls an operation every POLL_INTERVAL (as a client following a 202 would) until it has
/// succeeded; any other end is an error.
async fn wait_operation(api: &Api, op: i64) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let polled = api
            .expect(
                StatusCode::OK,
                Method::GET,
                &format!("/operations/{op}"),
                None,
            )
            .await?;
        match polled["status"].as_str() {
            Some("succeeded") => return Ok(()),
            Some("running") if Instant::now() < deadline => tokio::time::sleep(POLL_INTERVAL).await,
            _ => bail!("operation {op} did not succeed: {polled}"),
        }
    }
}

/// Queueing overhead: the same 10 alternating stops and starts of one service, once one after
/// another (each sent when the previous answered) and once fired together (each a few ms after
/// the previous, so they queue in a known order). Queued should cost what sequential costs.
async fn queue_bench(api: &Api, reps: usize, run_id: &str) -> anyhow::Result<()> {
    const REQUESTS: usize = 10;
    let created = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/external-services",
            Some(json!({
                "name": queue_service_name(run_id),
                "service_type": "postgres",
                "parameters": {},
            })),
        )
        .await?;
    let id = created["id"]
        .as_i64()
        .ok_or_else(|| anyhow!("create answered without an id: {created}"))?;
    let path = |k: usize| {
        let action = if k.is_multiple_of(2) { "stop" } else { "start" };
        format!("/external-services/{id}/{action}")
    };
    let mut sequential_times = Vec::with_capacity(reps);
    let mut queued_times = Vec::with_capacity(reps);
    for rep in 0..reps {
        let start = Instant::now();
        for k in 0..REQUESTS {
            api.expect(StatusCode::OK, Method::POST, &path(k), None)
                .await?;
        }
        let sequential = start.elapsed();

        let start = Instant::now();
        let mut tasks = Vec::with_capacity(REQUESTS);
        for k in 0..REQUESTS {
            let api = api.clone();
            let path = path(k);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(5 * k as u64)).await;
                api.expect(StatusCode::OK, Method::POST, &path, None).await
            }));
        }
        for task in tasks {
            task.await??;
        }
        let queued = start.elapsed();
        println!(
            "queue rep {}/{reps}: {REQUESTS} sequential {}, {REQUESTS} queued {}",
            rep + 1,
            secs(sequential),
            secs(queued)
        );
        sequential_times.push(sequential);
        queued_times.push(queued);
    }
    let sequential = median(&mut sequential_times);
    let queued = median(&mut queued_times);
    println!(
        "queue: {REQUESTS} stops/starts sequential median {}, queued median {}, ratio {:.2}x \
         (queued/sequential; per request {:+.0} ms)",
        secs(sequential),
        secs(queued),
        queued.as_secs_f64() / sequential.as_secs_f64(),
        (queued.as_secs_f64() - sequential.as_secs_f64()) * 1000.0 / REQUESTS as f64,
    );
    api.expect(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        &format!("/external-services/{id}"),
        None,
    )
    .await?;
    Ok(())
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

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}
