//! Backup benchmark, in one run against the real `berth serve` binary, a Berth PostgreSQL
//! service and a Berth S3 service: a database of `BACKUP_BENCH_MB` (default 1024) is
//!
//! - backed up through Berth (dump streamed to S3, read back and verified) against
//!   `pg_dump -Fc > /dev/null` inside the same container (the raw dump, nothing stored), as a
//!   throughput ratio (goal >= 0.9x);
//! - restored in place through Berth (timed from the restore's loading phase to its end: the
//!   download, `pg_restore` and the row-count check) against `pg_restore` of a local dump file
//!   inside the container (goal >= 0.9x);
//!
//! and Berth's resident memory is sampled every 20 ms during both (goal: peak growth < 64 MB,
//! whatever the size — run with 100 and 1024 to compare).
//!
//! Run with `cargo bench -p berth --bench backup` (`BACKUP_BENCH_MB=100` for the small one).
//! Needs Docker and the `berth/postgres:15` and `berth/s3:0.14` images. It only prints.

#[allow(dead_code)] // shared with the other benches, which use the rest
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use support::pg::{in_container, psql};
use support::{Api, Cleanup, free_port, random_hex, spawn_server};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mb: u64 = std::env::var("BACKUP_BENCH_MB")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(1024);
    let mut cleanup = Cleanup::new(tempfile::tempdir()?);
    let data_dir = cleanup.data_dir.path().to_path_buf();
    let port = free_port()?;
    let server = spawn_server(&data_dir, port)?;
    let pid = server.id();
    cleanup.server = Some(server);
    let api = Api::connect(port, &data_dir, &mut cleanup).await?;

    let suffix = random_hex(6);
    let s3_name = format!("bench-s3-{suffix}");
    let pg_name = format!("bench-pg-{suffix}");
    cleanup.containers.push(format!("berth-s3-{s3_name}"));
    cleanup.volumes.push(format!("berth-s3-{s3_name}-data"));
    cleanup.add_postgres_service(&pg_name);
    let s3 = create(&api, "s3", &s3_name).await?;
    let pg = create(&api, "postgres", &pg_name).await?;
    let container = format!("berth-postgres-{pg_name}");
    let destination = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/backups/s3-sources",
            Some(json!({"name": "bench", "bucket_name": "bench", "service_id": s3})),
        )
        .await?["id"]
        .as_i64()
        .context("destination id")?;

    eprintln!("filling database `bench` with about {mb} MB ...");
    psql(&container, "postgres", "CREATE DATABASE bench").await?;
    psql(&container, "bench", "CREATE DATABASE bench_copy")
        .await
        .ok();
    // ~130 bytes per row on disk.
    let rows = mb * 1024 * 1024 / 130;
    psql(
        &container,
        "bench",
        &format!(
            "CREATE TABLE t AS SELECT g AS id, md5(g::text) || md5((g * 3)::text) || \
             substr(md5((g * 7)::text), 1, 16) AS payload FROM generate_series(1, {rows}) g"
        ),
    )
    .await?;
    let size = psql(&container, "bench", "SELECT pg_database_size('bench')").await?;
    eprintln!(
        "database size: {} MB",
        size.trim().parse::<u64>().unwrap_or(0) >> 20
    );

    // Baseline: the raw dump, nowhere stored. Best of two (the first also warms the cache).
    let mut raw_dump = Duration::MAX;
    for _ in 0..2 {
        let t = Instant::now();
        in_container(
            &container,
            "pg_dump -Fc -h /var/run/postgresql -U postgres -d bench > /dev/null",
        )
        .await?;
        raw_dump = raw_dump.min(t.elapsed());
    }

    // Through Berth.
    let sampler = RssSampler::start(pid);
    let t = Instant::now();
    let started = api
        .expect_with(
            StatusCode::ACCEPTED,
            Method::POST,
            &format!("/backups/external-services/{pg}/run"),
            Some(json!({"s3_source_id": destination})),
            &[("Prefer", "respond-async")],
        )
        .await?;
    let backup_id = started["id"].as_i64().context("backup id")?;
    let done = poll(&api, &format!("/backups/{backup_id}"), "state").await?;
    let berth_backup = t.elapsed();
    let backup_rss = sampler.stop();
    if done["state"] != "succeeded" {
        bail!("backup failed: {done}");
    }
    let stored_mb = done["size_bytes"].as_f64().unwrap_or(0.0) / 1048576.0;

    // Restore baseline: pg_restore of a local dump file into an empty database.
    in_container(
        &container,
        "pg_dump -Fc -h /var/run/postgresql -U postgres -d bench > /tmp/bench.dump",
    )
    .await?;
    let t = Instant::now();
    in_container(
        &container,
        "pg_restore -h /var/run/postgresql -U postgres -d bench_copy /tmp/bench.dump",
    )
    .await?;
    let raw_restore = t.elapsed();
    in_container(&container, "rm -f /tmp/bench.dump").await?;

    // Through Berth: in place, the one database (after a safety backup, not timed).
    let sampler = RssSampler::start(pid);
    let run = api
        .expect(
            StatusCode::ACCEPTED,
            Method::POST,
            &format!("/external-services/{pg}/restore"),
            Some(json!({"backup_id": backup_id, "mode": "in_place", "database": "bench"})),
        )
        .await?;
    let run_id = run["id"].as_i64().context("restore run id")?;
    let mut loading_since = None;
    let finished = loop {
        let now = api
            .expect(
                StatusCode::OK,
                Method::GET,
                &format!("/restore-runs/{run_id}"),
                None,
            )
            .await?;
        let phase = now["phase"].as_str().unwrap_or_default();
        if loading_since.is_none() && phase.starts_with("restoring db-") {
            loading_since = Some(Instant::now());
        }
        if now["status"] != "running" {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let berth_restore = loading_since
        .context("never saw the loading phase")?
        .elapsed();
    let restore_rss = sampler.stop();
    if finished["status"] != "succeeded" {
        bail!("restore failed: {finished}");
    }

    println!("backup bench, database of {mb} MB (stored: {stored_mb:.0} MB)");
    println!(
        "backup   raw pg_dump -Fc > /dev/null {:7.1} s   through Berth (to S3, verified) {:7.1} s   ratio {:.2}x (>= 0.9)",
        raw_dump.as_secs_f64(),
        berth_backup.as_secs_f64(),
        raw_dump.as_secs_f64() / berth_backup.as_secs_f64()
    );
    println!(
        "restore  raw pg_restore of a file    {:7.1} s   through Berth (from S3, counted) {:6.1} s   ratio {:.2}x (>= 0.9)",
        raw_restore.as_secs_f64(),
        berth_restore.as_secs_f64(),
        raw_restore.as_secs_f64() / berth_restore.as_secs_f64()
    );
    println!(
        "berth RSS: backup {} -> peak {} kB (+{:.1} MB), restore {} -> peak {} kB (+{:.1} MB) (< 64 MB)",
        backup_rss.0,
        backup_rss.1,
        (backup_rss.1 - backup_rss.0) as f64 / 1024.0,
        restore_rss.0,
        restore_rss.1,
        (restore_rss.1 - restore_rss.0) as f64 / 1024.0
    );
    Ok(())
}

async fn create(api: &Api, service_type: &str, name: &str) -> anyhow::Result<i64> {
    let created = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/external-services",
            Some(json!({"name": name, "service_type": service_type, "parameters": {"port": free_port()?.to_string()}})),
        )
        .await?;
    created["id"].as_i64().context("service id")
}

async fn poll(api: &Api, path: &str, field: &str) -> anyhow::Result<Value> {
    loop {
        let now = api.expect(StatusCode::OK, Method::GET, path, None).await?;
        if now[field] != "running" {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Samples the server's VmRSS every 20 ms on a thread until stopped: (before, peak) in kB.
struct RssSampler {
    before: i64,
    peak: Arc<AtomicI64>,
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let before = rss_kb(pid).unwrap_or(0);
        let peak = Arc::new(AtomicI64::new(before));
        let running = Arc::new(AtomicBool::new(true));
        let thread = std::thread::spawn({
            let (peak, running) = (peak.clone(), running.clone());
            move || {
                while running.load(Ordering::Relaxed) {
                    if let Some(kb) = rss_kb(pid) {
                        peak.fetch_max(kb, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Self {
            before,
            peak,
            running,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> (i64, i64) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        (self.before, self.peak.load(Ordering::Relaxed))
    }
}

fn rss_kb(pid: u32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
}
