//! Runs the TypeScript SDK's `node --test` files against a running Berth.

use std::path::Path;
use std::process::Command;

use crate::common::Berth;

/// Runs `node --test` on these files of `sdk/typescript/test` with Berth's address and `token`
/// in the environment; prints node's report and panics unless it exits 0.
pub fn node_test(berth: &Berth, token: &str, files: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/typescript");
    let out = Command::new("node")
        .arg("--test")
        .args(files.iter().map(|f| format!("test/{f}")))
        .current_dir(&dir)
        .env("BERTH_API_URL", berth.url(""))
        .env("BERTH_TOKEN", token)
        // Only what this test sets: a developer's own settings must not leak in.
        .env_remove("BERTH_PROJECT_ID")
        .env_remove("TEMPS_API_URL")
        .env_remove("TEMPS_TOKEN")
        .env_remove("TEMPS_PROJECT_ID")
        .output()
        .expect("running node (scripts/test.sh installs Debian's nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "node --test {files:?} failed ({}):\n{stdout}\n{stderr}\nberth log:\n{}",
        out.status,
        berth.log()
    );
}
