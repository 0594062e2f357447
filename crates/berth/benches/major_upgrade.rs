//! Major upgrade benchmark (issue 12), in one run: a PostgreSQL 15 service of
//! `UPGRADE_BENCH_MB` (default 1024) is upgraded to 17 through Berth (`mode: dump_restore`:
//! dump, restore into a new volume, row counts compared, switch) against the raw way in the
//! same run: `pg_dumpall` from a copy of the same data piped into `psql` of a fresh 17
//! container. Prints the total time ratio (goal <= 1.2x) and the window in which a writer
//! probing every 50 ms through the service's port failed (goal: as small as possible), beside
//! the `writes_held_ms` Berth itself reports.
//!
//! Run with `cargo bench -p berth --bench major_upgrade` (`UPGRADE_BENCH_MB=100` for a quick
//! one). Needs Docker and the `berth/postgres:15` and `berth/postgres:17` images. It only prints.

#[allow(dead_code)] // shared with the other benches, which use the rest
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Connection;

use support::pg::{docker, in_container, psql};
use support::{Api, Cleanup, free_port, random_hex, spawn_server};

const OLD: &str = "berth/postgres:15";
const NEW: &str = "berth/postgres:17";
const RAW_PASSWORD: &str = "bench-raw-password";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mb: u64 = std::env::var("UPGRADE_BENCH_MB")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(1024);
    let mut cleanup = Cleanup::new(tempfile::tempdir()?);
    let data_dir = cleanup.data_dir.path().to_path_buf();
    let port = free_port()?;
    cleanup.server = Some(spawn_server(&data_dir, port)?);
    let api = Api::connect(port, &data_dir, &mut cleanup).await?;

    let suffix = random_hex(6);
    let name = format!("bench-up-{suffix}");
    let raw_old = format!("bench-raw-old-{suffix}");
    let raw_new = format!("bench-raw-new-{suffix}");
    cleanup.add_postgres_service(&name);
    cleanup
        .containers
        .extend([raw_old.clone(), raw_new.clone()]);
    let service_port = free_port()?;
    let created = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/external-services",
            Some(json!({"name": name, "service_type": "postgres",
                        "parameters": {"docker_image": OLD, "port": service_port.to_string()}})),
        )
        .await?;
    let id = created["id"].as_i64().context("service id")?;
    let password = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("/external-services/{id}/reveal"),
            None,
        )
        .await?["parameters"]["password"]
        .as_str()
        .context("password")?
        .to_string();
    let container = format!("berth-postgres-{name}");

    eprintln!("filling database `bench` with about {mb} MB ...");
    psql(&container, "postgres", "CREATE DATABASE bench").await?;
    let rows = mb * 1024 * 1024 / 130;
    psql(
        &container,
        "bench",
        &format!(
            "CREATE TABLE t AS SELECT g AS id, md5(g::text) || md5((g * 3)::text) AS payload \
             FROM generate_series(1, {rows}) g"
        ),
    )
    .await?;
    psql(
        &container,
        "postgres",
        "CREATE TABLE probe (at timestamptz)",
    )
    .await?;

    // Baseline: the same data in a plain 15 container (a copy of the volume, taken while the
    // service is stopped), dumped with pg_dumpall into psql of a fresh 17 container.
    eprintln!("baseline: pg_dumpall | psql into a fresh 17 ...");
    stop_start(&api, id, "stop").await?;
    let copy_volume = format!("{raw_old}-data");
    cleanup.volumes.push(copy_volume.clone());
    let volume = format!("berth-postgres-{name}-data");
    run_ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/from"),
        "-v",
        &format!("{copy_volume}:/to"),
        OLD,
        "sh",
        "-c",
        "cp -a /from/. /to/",
    ])
    .await?;
    stop_start(&api, id, "start").await?;
    run_ok(&[
        "run",
        "-d",
        "--name",
        &raw_old,
        "-v",
        &format!("{copy_volume}:/var/lib/postgresql/data"),
        OLD,
    ])
    .await?;
    run_ok(&[
        "run",
        "-d",
        "--name",
        &raw_new,
        "-e",
        &format!("POSTGRES_PASSWORD={RAW_PASSWORD}"),
        NEW,
    ])
    .await?;
    for c in [&raw_old, &raw_new] {
        wait_ready(c).await?;
    }
    let t = Instant::now();
    let piped = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker exec -u postgres {raw_old} pg_dumpall -h /var/run/postgresql -U postgres | \
             docker exec -i -u postgres {raw_new} psql -X -q -h /var/run/postgresql -U postgres \
             -d postgres > /dev/null 2>&1"
        ))
        .status()
        .await?;
    let raw = t.elapsed();
    if !piped.success() {
        bail!("pg_dumpall | psql failed: {piped}");
    }
    let copied = psql(&raw_new, "bench", "SELECT count(*) FROM t").await?;
    if copied.trim() != rows.to_string() {
        bail!("the baseline copied {copied} rows of {rows}");
    }

    // Through Berth, with a writer probing through the service's port every 50 ms.
    eprintln!("through Berth: upgrade 15 -> 17 by dump and restore ...");
    let probing = Arc::new(AtomicBool::new(true));
    let prober = tokio::spawn(probe_writes(
        service_port,
        password.clone(),
        probing.clone(),
    ));
    let t = Instant::now();
    let accepted = api
        .expect_with(
            StatusCode::ACCEPTED,
            Method::POST,
            &format!("/external-services/{id}/upgrade"),
            Some(json!({"docker_image": NEW, "mode": "dump_restore"})),
            &[("Prefer", "respond-async")],
        )
        .await?;
    let op = accepted["operation"]["id"]
        .as_i64()
        .context("operation id")?;
    let done = loop {
        let now = api
            .expect(
                StatusCode::OK,
                Method::GET,
                &format!("/operations/{op}"),
                None,
            )
            .await?;
        if !matches!(now["status"].as_str(), Some("running" | "queued")) {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let berth = t.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    probing.store(false, Ordering::Relaxed);
    let window = prober.await??;
    if done["status"] != "succeeded" {
        bail!("upgrade failed: {done}");
    }
    let held = done["payload"]["writes_held_ms"]
        .as_u64()
        .unwrap_or_default();

    println!(
        "major upgrade 15 -> 17 of {mb} MB: raw pg_dumpall | psql {:.1} s   through Berth \
         (verified, switched) {:.1} s   ratio {:.2}x (<= 1.2)",
        raw.as_secs_f64(),
        berth.as_secs_f64(),
        berth.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "writes failed for {:.1} s as seen by a client probing every 50 ms (first to last \
         failure); Berth held writes for {:.1} s until the copy was verified",
        window.as_secs_f64(),
        held as f64 / 1000.0
    );
    Ok(())
}

async fn run_ok(args: &[&str]) -> anyhow::Result<()> {
    let out = docker(args).await?;
    if !out.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

async fn stop_start(api: &Api, id: i64, action: &str) -> anyhow::Result<()> {
    api.expect(
        StatusCode::OK,
        Method::POST,
        &format!("/external-services/{id}/{action}"),
        None,
    )
    .await
    .map(|_| ())
}

async fn wait_ready(container: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        if in_container(container, "pg_isready -q -h /var/run/postgresql")
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{container} never became ready")
}

/// Inserts a row every 50 ms until told to stop; returns the time from the first failed
/// write to the last (zero if none failed).
async fn probe_writes(
    port: u16,
    password: String,
    running: Arc<AtomicBool>,
) -> anyhow::Result<Duration> {
    let url = format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres");
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    while running.load(Ordering::Relaxed) {
        let attempt = async {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            sqlx::query("INSERT INTO probe VALUES (now())")
                .execute(&mut conn)
                .await?;
            conn.close().await
        };
        let ok = tokio::time::timeout(Duration::from_secs(2), attempt)
            .await
            .is_ok_and(|r| r.is_ok());
        if !ok {
            let now = Instant::now();
            first.get_or_insert(now);
            last = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(match (first, last) {
        (Some(f), Some(l)) => l - f,
        _ => Duration::ZERO,
    })
}
