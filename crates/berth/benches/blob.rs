//! Blob benchmark, in one run against the real `berth serve` binary and its Blob S3 service:
//! a 100 MB put and get through Berth (`POST /api/blob`, `GET /api/blob/{project}/{path}`)
//! against the same transfer straight to the S3 server (`s3client`, Berth's admin keys of
//! the backing service), as throughput ratios; and the growth of Berth's resident memory
//! during the transfers (VmHWM of the server process: its peak, before and after), which
//! shows the body is streamed, never held.
//!
//! Run with `cargo bench -p berth --bench blob` (`BLOB_BENCH_MB=N`, default 100). Needs Docker
//! and the `berth/s3` image (built locally if missing). It only prints: goals are >= 0.8x
//! throughput and < 32 MB RSS growth, for a human to read.

#[allow(dead_code)] // shared with the other benches, which use the rest
mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_server::s3client::{S3Client, S3Endpoint};
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::json;

use support::{Api, Cleanup, free_port, random_hex, spawn_server};

const CHUNK: usize = 1 << 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mb: usize = std::env::var("BLOB_BENCH_MB")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(100);
    let size = mb * CHUNK;
    let mut cleanup = Cleanup::new(tempfile::tempdir()?);
    let data_dir = cleanup.data_dir.path().to_path_buf();
    let port = free_port()?;
    let server = spawn_server(&data_dir, port)?;
    let pid = server.id();
    cleanup.server = Some(server);
    let api = Api::connect(port, &data_dir, &mut cleanup).await?;
    let enabled = api
        .expect(
            StatusCode::OK,
            Method::POST,
            "/blob/enable",
            Some(json!({"port": free_port()?})),
        )
        .await?;
    let service_id = enabled["status"]["service_id"]
        .as_i64()
        .context("service id")?;
    let service_name = enabled["status"]["service_name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    cleanup.containers.push(format!("berth-s3-{service_name}"));
    cleanup
        .volumes
        .push(format!("berth-s3-{service_name}-data"));
    let project = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/projects",
            Some(
                json!({"name": format!("bench-{}", random_hex(6)), "environments": ["production"]}),
            ),
        )
        .await?["id"]
        .as_i64()
        .context("project id")?;
    let revealed = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("/external-services/{service_id}/reveal"),
            None,
        )
        .await?;
    let params = &revealed["parameters"];
    let s3_port = params["port"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| params["port"].to_string());
    let direct = S3Client::new(S3Endpoint {
        url: format!("http://127.0.0.1:{s3_port}"),
        region: "us-east-1".into(),
        access_key: params["access_key"].as_str().unwrap_or_default().into(),
        secret_key: params["secret_key"].as_str().unwrap_or_default().into(),
    });
    let chunk = Bytes::from(vec![0x5au8; CHUNK]);
    let body = move || {
        futures_util::stream::iter((0..mb).map({
            let c = chunk.clone();
            move |_| Ok::<_, std::io::Error>(c.clone())
        }))
    };

    // Direct: put and get of the same size straight to S3.
    let t = Instant::now();
    direct
        .put_stream(
            "berth-blob",
            "bench/direct.bin",
            "application/octet-stream",
            Box::pin(body()),
            u64::MAX,
        )
        .await?;
    let direct_put = t.elapsed();
    let t = Instant::now();
    let got = drain(
        direct
            .get_object("berth-blob", "bench/direct.bin", None)
            .await?
            .context("direct get")?,
    )
    .await?;
    let direct_get = t.elapsed();
    if got != size {
        bail!("direct get returned {got} bytes");
    }

    // Through Berth.
    let hwm_before = vm_kb(pid, "VmHWM")?;
    let http = reqwest::Client::new();
    let t = Instant::now();
    let response = http
        .post(api.url(&format!(
            "/blob?pathname=bench/berth.bin&project_id={project}"
        )))
        .bearer_auth(&api.token)
        .body(reqwest::Body::wrap_stream(body()))
        .send()
        .await?;
    if response.status() != StatusCode::CREATED {
        bail!("put: {}", response.text().await?);
    }
    let berth_put = t.elapsed();
    let t = Instant::now();
    let response = http
        .get(api.url(&format!("/blob/{project}/bench/berth.bin")))
        .bearer_auth(&api.token)
        .send()
        .await?;
    let got = drain(response).await?;
    let berth_get = t.elapsed();
    if got != size {
        bail!("berth get returned {got} bytes");
    }
    let hwm_after = vm_kb(pid, "VmHWM")?;
    let rss_after = vm_kb(pid, "VmRSS")?;

    let mbps = |d: Duration| mb as f64 / d.as_secs_f64();
    println!("blob {mb} MB   direct S3        through Berth    ratio (>= 0.8)");
    println!(
        "put           {:8.1} MB/s    {:8.1} MB/s    {:.2}x",
        mbps(direct_put),
        mbps(berth_put),
        direct_put.as_secs_f64() / berth_put.as_secs_f64()
    );
    println!(
        "get           {:8.1} MB/s    {:8.1} MB/s    {:.2}x",
        mbps(direct_get),
        mbps(berth_get),
        direct_get.as_secs_f64() / berth_get.as_secs_f64()
    );
    println!(
        "berth peak RSS (VmHWM) {} -> {} kB: growth {:.1} MB (< 32); RSS after {} kB",
        hwm_before,
        hwm_after,
        (hwm_after - hwm_before) as f64 / 1024.0,
        rss_after
    );
    Ok(())
}

/// Reads a response's body to the end, counting bytes, holding one chunk at a time.
async fn drain(mut response: reqwest::Response) -> anyhow::Result<usize> {
    let mut n = 0;
    while let Some(chunk) = response.chunk().await? {
        n += chunk.len();
    }
    Ok(n)
}

fn vm_kb(pid: u32, field: &str) -> anyhow::Result<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .and_then(|r| r.trim_start_matches(':').trim().strip_suffix("kB"))
                .map(|v| v.trim().parse::<i64>())
        })
        .context("no such field")?
        .map_err(Into::into)
}
