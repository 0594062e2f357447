//! HTTPS for the API: `[tls]` in the config makes `berth serve` answer over rustls with the
//! given certificate (a self-signed one made here), and the CLI talks to it with `--ca-cert`
//! (or `BERTH_CA_CERT`), refusing a certificate it was not told to trust.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, free_port};
use serde_json::Value;

/// A self-signed certificate for `localhost` and 127.0.0.1, and its key, as PEM files.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// `berth serve --config FILE`, killed when dropped.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, port: u16, cert: &Path, key: &Path) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\n\n[tls]\ncert_path = {:?}\nkey_path = {:?}\n",
            dir.join("data"),
            cert,
            key
        ),
    )
    .unwrap();
    config
}

fn spawn(config: &Path, log: PathBuf) -> Server {
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("BERTH_DATA_DIR")
        .env_remove("BERTH_LISTEN")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Server { child, log }
}

fn trusting(cert: &Path) -> reqwest::Client {
    let pem = std::fs::read(cert).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn wait_healthy(http: &reqwest::Client, url: &str, server: &mut Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            assert_eq!(r.text().await.unwrap(), "ok");
            return;
        }
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!(
                "berth serve exited ({status}):\n{}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no answer at {url}; log:\n{}",
            std::fs::read_to_string(&server.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn berth(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("BERTH_CA_CERT")
        .env_remove("BERTH_API_URL")
        .env_remove("BERTH_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn the_api_answers_over_https_and_the_cli_trusts_only_the_ca_it_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(tmp.path());
    let port = free_port();
    let config = write_config(tmp.path(), port, &cert, &key);
    let mut server = spawn(&config, tmp.path().join("berth.log"));
    let http = trusting(&cert);
    wait_healthy(
        &http,
        &format!("https://localhost:{port}/healthz"),
        &mut server,
    )
    .await;
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains(&format!("listening on https://127.0.0.1:{port}")),
        "{log}"
    );

    // Plain HTTP gets no API answer on the TLS port.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP answered on the HTTPS port"
    );

    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let cert_arg = cert.to_str().unwrap();
    for (host, project) in [
        ("127.0.0.1", "tls-by-address"),
        ("localhost", "tls-by-name"),
    ] {
        let url = format!("https://{host}:{port}");
        // --ca-cert: the admin token (from the data directory) works over HTTPS.
        let out = berth(
            &[
                "--api-url",
                &url,
                "--ca-cert",
                cert_arg,
                "--data-dir",
                data,
                "--json",
            ]
            .into_iter()
            .chain(["project", "create", project])
            .collect::<Vec<_>>(),
            &[],
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    // BERTH_CA_CERT does the same.
    let url = format!("https://localhost:{port}");
    let out = berth(
        &[
            "--api-url",
            &url,
            "--data-dir",
            data,
            "--json",
            "project",
            "list",
        ],
        &[("BERTH_CA_CERT", cert_arg)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let projects: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(projects.as_array().unwrap().len(), 2, "{projects}");

    // Without it the system's CA bundle is used, which does not vouch for this certificate:
    // the CLI refuses to send its token.
    let out = berth(
        &["--api-url", &url, "--data-dir", data, "project", "list"],
        &[],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("cannot reach the Berth API"),
        "{}",
        text(&out)
    );
    // A CA file with no certificate in it is an error of its own.
    let empty = tmp.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let out = berth(
        &[
            "--api-url",
            &url,
            "--ca-cert",
            empty.to_str().unwrap(),
            "--data-dir",
            data,
            "project",
            "list",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("no PEM certificate"), "{}", text(&out));

    // berth doctor reads [tls] from the same config: the files load, the server answers.
    let out = berth(
        &["doctor", "--json", "--config", config.to_str().unwrap()],
        &[],
    );
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    for name in ["tls", "server", "port"] {
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check: {report}"));
        assert_eq!(check["status"], "pass", "{check}");
    }
    assert!(
        report
            .to_string()
            .contains(&format!("https://127.0.0.1:{port}")),
        "{report}"
    );

    // SIGTERM shuts the HTTPS server down as cleanly as the plain one.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "berth serve did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("shut down cleanly"), "{log}");
}

#[tokio::test]
async fn a_key_that_does_not_load_stops_the_start_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, _) = self_signed(tmp.path());
    let bad_key = tmp.path().join("bad-key.pem");
    std::fs::write(&bad_key, "not a key\n").unwrap();
    let config = write_config(tmp.path(), free_port(), &cert, &bad_key);
    let out = berth(&["serve", "--config", config.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("bad-key.pem"), "{}", text(&out));
    // Nothing was started: no state database, no key, no token.
    assert!(!tmp.path().join("data").exists());
}

#[tokio::test]
async fn plain_http_beyond_loopback_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"0.0.0.0:{port}\"\ndata_dir = {:?}\n",
            tmp.path().join("data")
        ),
    )
    .unwrap();
    let mut server = spawn(&config, tmp.path().join("berth.log"));
    let http = reqwest::Client::new();
    wait_healthy(
        &http,
        &format!("http://127.0.0.1:{port}/healthz"),
        &mut server,
    )
    .await;
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("plain HTTP beyond loopback"), "{log}");
}
