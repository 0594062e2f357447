//! PostgreSQL inside a bench's containers: psql and shell scripts run as the `postgres` OS
//! user over the local socket, with room for minutes of work (filling or dumping a gigabyte).

use std::time::Duration;

use anyhow::{Context, bail};

/// `docker` with room for minutes of work (filling or dumping a gigabyte).
pub async fn docker(args: &[&str]) -> anyhow::Result<std::process::Output> {
    let mut cmd = tokio::process::Command::new("docker");
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(1800), cmd.output())
        .await
        .context("docker timed out")?
        .context("running docker")
}

pub async fn psql(container: &str, database: &str, sql: &str) -> anyhow::Result<String> {
    let out = docker(&[
        "exec",
        "-u",
        "postgres",
        container,
        "psql",
        "-X",
        "-qAt",
        "-h",
        "/var/run/postgresql",
        "-U",
        "postgres",
        "-d",
        database,
        "-c",
        sql,
    ])
    .await?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub async fn in_container(container: &str, script: &str) -> anyhow::Result<()> {
    let out = docker(&["exec", "-u", "postgres", container, "sh", "-c", script]).await?;
    if !out.status.success() {
        bail!("{script}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
