//! App integration as a user deploys with it: `berth docker run` starts their container on
//! Berth's network with the linked PostgreSQL's `DATABASE_URL`, and no secret appears in any
//! process's argv while it runs; `berth env --format env-file|compose` for Compose users.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Every process's command line that holds `secret`.
fn argv_holding(secret: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if line.contains(secret) {
            found.push(line);
        }
    }
    found
}

#[tokio::test]
async fn docker_run_reaches_the_linked_database_with_no_secret_in_any_argv() {
    let berth = Berth::start().await;
    let pg = berth.create("postgres", &unique("dr-pg"), json!({})).await;
    let pg_id = pg["id"].as_i64().unwrap();
    let slug = unique("dr-app");
    let project = create_project(&berth, &slug, &["production"]).await;
    let (status, body) = link_project(&berth, pg_id, project).await;
    assert!(status.is_success(), "{body}");
    let env = project_env(&berth, pg_id, project, "production").await;
    let password = env["POSTGRES_PASSWORD"].clone();
    assert!(password.len() >= 16, "{env:?}");

    let child = Command::new(BIN)
        .args(["docker", "run", "--project", &slug, "--"])
        .args(["--rm", "berth/postgres:15", "sh", "-c"])
        // The URL is checked with the shell's builtin `[` and the connection made from the
        // libpq variables, so the workload itself puts no secret in an argv either.
        .arg(
            "[ \"$DATABASE_URL\" = \"postgresql://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$PGDATABASE\" ] \
             && psql -tAc 'select 40 + 2'; sleep 3",
        )
        .env("BERTH_API_URL", berth.url(""))
        .env("BERTH_DATA_DIR", &berth.data_dir)
        .env_remove("BERTH_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Watch the process table while it runs (docker, its container's processes, berth).
    let started = Instant::now();
    let mut looked = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let holding = argv_holding(&password);
        assert!(holding.is_empty(), "a secret in argv: {holding:?}");
        looked += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "42",
        "DATABASE_URL is the server's, and it answers"
    );
    assert!(looked > 10, "the process table was watched while it ran");

    // For Compose: an env file (literal) and an `environment:` block.
    let out = Command::new(BIN)
        .args(["env", "--project", &slug, "--format", "env-file"])
        .env("BERTH_API_URL", berth.url(""))
        .env("BERTH_DATA_DIR", &berth.data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.lines()
            .any(|l| l == format!("POSTGRES_PASSWORD={password}")),
        "{text}"
    );
    let out = Command::new(BIN)
        .args(["env", "--project", &slug, "--format", "compose"])
        .env("BERTH_API_URL", berth.url(""))
        .env("BERTH_DATA_DIR", &berth.data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.starts_with("environment:\n"), "{text}");
    assert!(
        text.contains(&format!("  POSTGRES_PASSWORD: \"{password}\"")),
        "{text}"
    );
}
