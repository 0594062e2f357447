//! `berth doctor` as an operator runs it: every check passes beside a healthy server, and each
//! thing broken on purpose (Docker unreachable, key removed, port taken, an image missing,
//! a readable data directory) fails on its own line with its fix and a non-zero exit.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

/// `berth doctor --json` with these extra arguments and environment: exit code and report.
fn doctor(args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let mut cmd = Command::new(BIN);
    cmd.args(["--json", "doctor"]).args(args);
    cmd.env_remove("BERTH_CONFIG").env_remove("BERTH_LISTEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

fn failed_with(report: &Value, name: &str, fix_mentions: &str) {
    let c = check(report, name);
    assert_eq!(c["status"], "fail", "{report}");
    let fix = c["fix"].as_str().unwrap_or_default();
    assert!(
        fix.contains(fix_mentions),
        "{name}: fix {fix:?} in {report}"
    );
}

fn dir_arg(dir: &Path) -> String {
    dir.display().to_string()
}

#[tokio::test]
async fn every_check_passes_beside_a_healthy_server() {
    let berth = Berth::start().await;
    let listen = format!("127.0.0.1:{}", berth.port);
    let data = dir_arg(&berth.data_dir);
    let (code, report) = doctor(&["--data-dir", &data, "--listen", &listen], &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ok"], true);
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "pass", "{c}");
    }
    assert!(
        check(&report, "port")["detail"]
            .as_str()
            .unwrap()
            .contains("held by berth serve")
    );
    assert!(
        check(&report, "key")["detail"]
            .as_str()
            .unwrap()
            .contains("matches the state database")
    );
}

#[tokio::test]
async fn each_broken_check_fails_on_its_line_with_its_fix() {
    let mut berth = Berth::start().await;
    let listen = format!("127.0.0.1:{}", berth.port);
    let data = dir_arg(&berth.data_dir);

    // Docker unreachable: its checks fail or are skipped, the rest still run.
    let (code, report) = doctor(
        &["--data-dir", &data, "--listen", &listen],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(code, 1, "{report}");
    failed_with(&report, "docker", "systemctl start docker");
    assert_eq!(check(&report, "images")["status"], "skip", "{report}");
    assert_eq!(check(&report, "server")["status"], "pass", "{report}");

    // An image the configuration names is missing.
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("config.toml");
    std::fs::write(
        &config,
        "[images]\npostgres = \"berth/postgres:not-built-here\"\n",
    )
    .unwrap();
    let (code, report) = doctor(
        &[
            "--data-dir",
            &data,
            "--listen",
            &listen,
            "--config",
            &dir_arg(&config),
        ],
        &[],
    );
    assert_eq!(code, 1, "{report}");
    failed_with(&report, "images", "berth images build");
    assert!(
        check(&report, "images")["detail"]
            .as_str()
            .unwrap()
            .contains("berth/postgres:not-built-here")
    );

    // The port is held by something that is not Berth.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().to_string();
    let (code, report) = doctor(&["--data-dir", &data, "--listen", &taken], &[]);
    assert_eq!(code, 1, "{report}");
    failed_with(&report, "port", "listen");
    failed_with(&report, "server", "berth serve");

    // The key removed (from a copy of the stopped server's data directory).
    berth.kill9();
    let copy = scratch.path().join("data");
    std::fs::create_dir(&copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(&berth.data_dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
    }
    let copy_arg = dir_arg(&copy);
    let (code, report) = doctor(&["--data-dir", &copy_arg, "--listen", &listen], &[]);
    assert_eq!(check(&report, "key")["status"], "pass", "{report}");
    assert_eq!(check(&report, "state")["status"], "pass", "{report}");
    assert_eq!(code, 1, "the server is stopped: {report}");
    std::fs::remove_file(copy.join("secret.key")).unwrap();
    let (code, report) = doctor(&["--data-dir", &copy_arg, "--listen", &listen], &[]);
    assert_eq!(code, 1, "{report}");
    failed_with(&report, "key", "restore secret.key");

    // A data directory others can read.
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_, report) = doctor(&["--data-dir", &copy_arg, "--listen", &listen], &[]);
    failed_with(&report, "data dir", "chmod 700");
}
