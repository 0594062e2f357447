//! The CLI as a user runs it: tables by default, `--json`, one-line errors with a non-zero exit.

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn berth_cli(berth: &Berth, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("BERTH_API_URL", berth.url(""))
        .env("BERTH_DATA_DIR", &berth.data_dir)
        .env_remove("BERTH_TOKEN")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[tokio::test]
async fn cli_service_and_token_flows() {
    let berth = Berth::start().await;
    let name = unique("cli");
    let out = berth_cli(&berth, &["service", "create", "redis", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&name));

    let out = berth_cli(&berth, &["--json", "service", "list"]);
    assert!(out.status.success());
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list[0]["name"], name.as_str());
    assert_eq!(list[0]["parameters"]["password"], "********");

    let out = berth_cli(&berth, &["service", "list"]);
    assert!(
        stdout(&out).contains("NAME") && stdout(&out).contains(&name),
        "table output"
    );

    let out = berth_cli(&berth, &["service", "health", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = berth_cli(&berth, &["service", "stop", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = berth_cli(&berth, &["service", "health", &name]);
    assert!(
        !out.status.success(),
        "health of a stopped service exits non-zero"
    );
    let out = berth_cli(&berth, &["service", "start", &name]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Errors: one line on stderr, exit code 1.
    for args in [
        vec!["service", "create", "postgres", "Bad Name"],
        vec!["service", "create", "nosuch", "x"],
        vec!["service", "show", "no-such-service"],
        vec!["service", "create", "redis", "y", "--param", "notkeyvalue"],
        vec![
            "service",
            "update",
            &name,
            "--param",
            "password=abcdefghijk",
        ],
    ] {
        let out = berth_cli(&berth, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("berth: error: "), "{err}");
    }

    // Tokens: created once, listed without values, revoked.
    let out = berth_cli(&berth, &["--json", "token", "create", "deploy"]);
    assert!(out.status.success());
    let created: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_i64().unwrap().to_string();
    let out = berth_cli(&berth, &["token", "list"]);
    assert!(stdout(&out).contains("deploy") && !stdout(&out).contains(&token));
    let out = Command::new(BIN)
        .args(["project", "list"])
        .env("BERTH_API_URL", berth.url(""))
        .env("BERTH_TOKEN", &token)
        .output()
        .unwrap();
    assert!(out.status.success(), "the new token works");
    let out = berth_cli(&berth, &["token", "revoke", &id]);
    assert!(out.status.success());
    let out = Command::new(BIN)
        .args(["project", "list"])
        .env("BERTH_API_URL", berth.url(""))
        .env("BERTH_TOKEN", &token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("401"));

    // Projects.
    let out = berth_cli(
        &berth,
        &[
            "--json",
            "project",
            "create",
            "Web Shop",
            "--env",
            "production",
            "--env",
            "staging",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let project: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(project["slug"], "web-shop");
    assert_eq!(project["environments"].as_array().unwrap().len(), 2);

    let out = berth_cli(&berth, &["service", "delete", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The server being down is a clear one-line error too.
    let out = Command::new(BIN)
        .args(["service", "list"])
        .env("BERTH_API_URL", format!("http://127.0.0.1:{}", free_port()))
        .env("BERTH_TOKEN", "berth_x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is `berth serve` running?"));
}

/// `berth run` hands the program the project's variables, never Berth's own credentials.
#[tokio::test]
async fn berth_run_keeps_berth_credentials_from_the_program() {
    let berth = Berth::start().await;
    let slug = unique("runenv");
    let (status, body) = berth
        .call(
            reqwest::Method::POST,
            "/api/projects",
            Some(serde_json::json!({ "name": slug })),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let out = Command::new(BIN)
        .args(["run", "-p", &slug, "--", "env"])
        .env("BERTH_API_URL", berth.url(""))
        .env("BERTH_TOKEN", &berth.token)
        .env("BERTH_DATA_DIR", &berth.data_dir)
        .env("APP_SETTING", "passed-through")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let env = stdout(&out);
    assert!(
        env.lines().any(|l| l == "APP_SETTING=passed-through"),
        "the program sees the caller's own environment:\n{env}"
    );
    // Names only in the messages: the values are credentials.
    let leaked: Vec<&str> = env
        .lines()
        .filter(|l| l.starts_with("BERTH_"))
        .filter_map(|l| l.split('=').next())
        .collect();
    assert!(
        leaked.is_empty(),
        "Berth variables reached the program: {leaked:?}"
    );
    assert!(
        !env.contains(&berth.token),
        "the API token reached the program"
    );
}

/// `show`, `types`, `link` and `links` read Temps' bodies (details, type names + parameter
/// schemas, `{id, project, service}` links).
#[tokio::test]
async fn cli_reads_service_details_types_and_links() {
    let berth = Berth::start().await;
    let out = berth_cli(&berth, &["service", "types"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    for expected in [
        "postgres (default image berth/postgres:17)",
        "redis (default image berth/redis:8)",
        "max_connections",
        "tenant_connection_limit",
        "EDITABLE",
    ] {
        assert!(table.contains(expected), "{expected:?} in:\n{table}");
    }
    let out = berth_cli(&berth, &["--json", "service", "types"]);
    let types: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        types["postgres"]["properties"]["password"]["x-secret"], true,
        "{types}"
    );

    let name = unique("clishow");
    berth.create("redis", &name, serde_json::json!({})).await;
    let out = berth_cli(&berth, &["service", "show", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains(&name)
            && shown.contains("parameters.password")
            && shown.contains("********"),
        "the service's fields, secrets masked:\n{shown}"
    );
    assert!(!shown.contains("parameter_schema"), "{shown}");
    let out = berth_cli(&berth, &["--json", "service", "show", &name]);
    let details: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(details["service"]["name"], name.as_str(), "{details}");
    assert_eq!(details["current_parameters"]["password"], "********");

    let slug = unique("cliproj");
    let (status, _) = berth
        .call(
            reqwest::Method::POST,
            "/api/projects",
            Some(serde_json::json!({ "name": slug })),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let out = berth_cli(&berth, &["service", "link", &name, &slug]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("production"), "{}", stdout(&out));
    let out = berth_cli(&berth, &["service", "links", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&slug), "{}", stdout(&out));

    // A linked service is not deleted by accident; the error names the CLI's flag, not the
    // API's query parameter, and that flag does it.
    let out = berth_cli(&berth, &["service", "delete", &name]);
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    assert!(
        said.contains("--force") && said.contains("--keep-data"),
        "{said}"
    );
    assert!(
        !said.contains("?force") && !said.contains("?keep_data"),
        "{said}"
    );
    assert_eq!(said.trim().lines().count(), 1, "one line: {said}");
    let out = berth_cli(&berth, &["service", "delete", &name, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `berth token create --read-only | --project SLUG_OR_ID`; the list shows each scope, and the
/// tokens work as scoped from the CLI.
#[tokio::test]
async fn cli_creates_scoped_tokens() {
    let berth = Berth::start().await;
    let slug = unique("clitok");
    let out = berth_cli(&berth, &["--json", "project", "create", &slug]);
    assert!(out.status.success(), "{}", stderr(&out));
    let project: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let project_id = project["id"].as_i64().unwrap();

    let out = berth_cli(&berth, &["--json", "token", "create", "ro", "--read-only"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let read_only: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(read_only["scope"], "read_only", "{read_only}");
    let mut bound = Value::Null;
    for project_arg in [slug.clone(), project_id.to_string()] {
        let out = berth_cli(
            &berth,
            &[
                "--json",
                "token",
                "create",
                "deploy",
                "--project",
                &project_arg,
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        bound = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(bound["scope"], "project", "{bound}");
        assert_eq!(bound["project_id"], project_id, "{bound}");
    }
    let out = berth_cli(
        &berth,
        &["token", "create", "x", "--project", "no-such-project"],
    );
    assert_eq!(out.status.code(), Some(1));
    let out = berth_cli(
        &berth,
        &["token", "create", "x", "--read-only", "--project", &slug],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap refuses both: {}",
        stderr(&out)
    );

    let out = berth_cli(&berth, &["token", "list"]);
    let table = stdout(&out);
    assert!(table.contains("SCOPE"), "{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("no row {name}:\n{table}"))
            .to_string()
    };
    assert!(row("ro").contains("read_only"), "{table}");
    assert!(row("deploy").contains("project"), "{table}");
    assert!(
        row("deploy").contains(&format!(" {project_id} ")),
        "{table}"
    );
    assert!(row("admin").contains("admin"), "{table}");

    let as_read_only = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("BERTH_API_URL", berth.url(""))
            .env("BERTH_TOKEN", read_only["token"].as_str().unwrap())
            .output()
            .unwrap()
    };
    let out = as_read_only(&["project", "list"]);
    assert!(
        out.status.success(),
        "a read-only token reads: {}",
        stderr(&out)
    );
    let out = as_read_only(&["project", "create", &unique("nope")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));

    // A project token is what a deploy of that project runs `berth env` with.
    let as_project = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("BERTH_API_URL", berth.url(""))
            .env("BERTH_TOKEN", bound["token"].as_str().unwrap())
            .output()
            .unwrap()
    };
    let id = project_id.to_string();
    let out = as_project(&["env", "-p", &id, "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "{}", "nothing linked yet");
    let out = as_project(&["project", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
}

/// `berth backup`: a destination in a Berth S3 service, a run, the list, verify, a restore into
/// a new service, and a one-line error for a destination that does not exist.
#[tokio::test]
async fn cli_backup_flows() {
    let berth = Berth::start().await;
    let s3 = unique("cli-s3");
    let pg = unique("cli-pg");
    for (kind, name) in [("s3", &s3), ("postgres", &pg)] {
        let out = berth_cli(&berth, &["service", "create", kind, name]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = berth_cli(
        &berth,
        &[
            "backup",
            "source",
            "add",
            "nightly",
            "--bucket",
            "cli-backups",
            "--service",
            &s3,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = berth_cli(&berth, &["backup", "source", "test", "nightly"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("probe object"), "{}", stderr(&out));

    let out = berth_cli(&berth, &["--json", "backup", "run", &pg, "--to", "nightly"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let done: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");
    let id = done["id"].as_i64().unwrap().to_string();

    let out = berth_cli(&berth, &["backup", "list", "--service", &pg]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("succeeded"), "{}", stdout(&out));
    let out = berth_cli(&berth, &["backup", "verify", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let restored = unique("cli-back");
    let out = berth_cli(&berth, &["backup", "restore", &id, "--new", &restored]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&restored), "{}", stderr(&out));

    let out = berth_cli(&berth, &["backup", "run", &pg, "--to", "nowhere"]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert_eq!(said.trim().lines().count(), 1, "one line: {said}");
    assert!(said.contains("nowhere"), "{said}");
}

/// Completions and man pages come from the commands themselves: every command is in them.
#[test]
fn completions_and_man_pages_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for command in ["service", "backup", "state", "doctor", "docker"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let main = std::fs::read_to_string(dir.path().join("berth.1")).unwrap();
    assert!(main.contains(".TH berth 1"), "{main}");
    for page in [
        "berth-doctor.1",
        "berth-state-restore.1",
        "berth-docker-run.1",
    ] {
        assert!(dir.path().join(page).exists(), "no {page}");
    }
    let out = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}
