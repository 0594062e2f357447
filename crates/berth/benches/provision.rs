//! Provisioning benchmark: how long `berth serve` takes to hand out a ready PostgreSQL compared
//! with a bare `docker run` of the same image, and how much memory the idle server holds.
//!
//! Run with `cargo bench -p berth --bench provision` (`BENCH_REPS=N`, default 5). It needs a
//! Docker daemon; the image `berth/postgres:15` is built locally if missing, never pulled. It
//! only prints: the goals (ratio <= 1.15x, idle RSS < 40 MB) are for a human to read.

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
        cleanup.add_postgres_service(&berth_service_name(i, &run_id));
        cleanup.containers.push(raw_container_name(i, &run_id));
    }
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
