//! `berth doctor`: checks what Berth needs on this machine and says how to fix what is wrong.
//! Read-only: it never creates, migrates or starts anything, so it is safe beside a live
//! server and before the first one. Exit 0 only if every check passes.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_server::config::ServerConfig;
use berth_server::docker::DockerClient;
use berth_server::image_builder::{ImageBuilder, own_images};
use berth_server::store::{STATE_DB_FILE, Store, state_facts};
use serde::Serialize;

/// Below this much free space where volumes live, a database can stop mid-write.
const MIN_FREE_BYTES: u64 = 1 << 30;
/// Longest wait for any one answer (Docker, the server): a hung engine is a finding too.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not checked because a check it depends on failed.
    Skip,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to do about a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Pass,
        detail: detail.into(),
        fix: None,
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn skip(name: &'static str, why: &str) -> Check {
    Check {
        name,
        status: Status::Skip,
        detail: format!("not checked: {why}"),
        fix: None,
    }
}

/// Runs every check; prints them (a table, or JSON); `Ok(false)` when one failed.
pub async fn run(config: &ServerConfig, as_json: bool) -> anyhow::Result<bool> {
    let started = Instant::now();
    let checks = checks(config).await;
    let ok = checks.iter().all(|c| c.status == Status::Pass);
    if as_json {
        super::output::json(&serde_json::json!({
            "ok": ok,
            "elapsed_ms": started.elapsed().as_millis() as u64,
            "checks": checks,
        }));
    } else {
        for check in &checks {
            let mark = match check.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skip => "SKIP",
            };
            println!("{mark}  {:<10} {}", check.name, check.detail);
            if let Some(fix) = &check.fix {
                println!("      {:<10} fix: {fix}", "");
            }
        }
    }
    Ok(ok)
}

async fn checks(config: &ServerConfig) -> Vec<Check> {
    let docker = Arc::new(DockerClient::new());
    let mut checks = Vec::new();
    let engine = tokio::time::timeout(ANSWER_TIMEOUT, docker.engine_facts()).await;
    let engine = match engine {
        Ok(Ok(facts)) => {
            checks.push(pass(
                "docker",
                format!("Docker {}, API {}", facts.version, facts.api_version),
            ));
            Some(facts)
        }
        Ok(Err(e)) => {
            checks.push(fail(
                "docker",
                format!("the Docker engine is unreachable: {e}"),
                "start it (systemctl start docker); check DOCKER_HOST and that this user may \
                 use /var/run/docker.sock (root, or the docker group)",
            ));
            None
        }
        Err(_) => {
            checks.push(fail(
                "docker",
                "the Docker engine did not answer within 5 s",
                "restart it (systemctl restart docker) and look at its log (journalctl -u docker)",
            ));
            None
        }
    };
    let state = state_check(config).await;
    let services = state.as_ref().ok().and_then(|s| s.1);
    if engine.is_some() {
        checks.push(network_check(&docker, config, services).await);
        checks.push(images_check(&docker, config).await);
    } else {
        checks.push(skip("network", "Docker is unreachable"));
        checks.push(skip("images", "Docker is unreachable"));
    }
    checks.push(port_check(config).await);
    checks.push(data_dir_check(&config.data_dir));
    checks.push(key_check(config, state.as_ref().ok().map(|s| &s.2)));
    let volumes_at = engine
        .as_ref()
        .and_then(|e| e.root_dir.clone())
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .unwrap_or_else(|| config.data_dir.clone());
    checks.push(disk_check(&volumes_at));
    checks.push(match state {
        Ok((check, _, _)) => check,
        Err(check) => check,
    });
    if let Some(tls) = &config.tls {
        checks.push(match berth_server::tls::server_config(tls) {
            Ok(_) => pass("tls", format!("HTTPS with {}", tls.cert_path.display())),
            Err(e) => fail(
                "tls",
                format!("{e:#}"),
                "point [tls] cert_path and key_path in the config at a PEM certificate chain \
                 and its private key, readable by berth serve",
            ),
        });
    }
    checks.push(server_check(config).await);
    checks
}

/// The server's own base URL, `https://` when `[tls]` is set.
fn local_url(config: &ServerConfig) -> String {
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", config.listen)
}

/// A client for the probes of the local server (`/healthz`, `/metrics`: no token is sent).
/// Over HTTPS it accepts whatever certificate answers: the certificate's names rarely include
/// the listen address, and the `tls` check reads the files themselves.
fn probe_client(config: &ServerConfig) -> Option<reqwest::Client> {
    let builder = reqwest::Client::builder().timeout(ANSWER_TIMEOUT);
    let builder = if config.tls.is_some() {
        builder.use_rustls_tls().danger_accept_invalid_certs(true)
    } else {
        builder
    };
    builder.build().ok()
}

/// The state database's integrity, with the number of services and the recorded key
/// fingerprint for the other checks; `Err` holds the failed check.
async fn state_check(config: &ServerConfig) -> Result<(Check, Option<i64>, Option<String>), Check> {
    let url = config
        .database_url
        .clone()
        .unwrap_or_else(|| Store::sqlite_url(&config.data_dir));
    let is_default_file = config.database_url.is_none();
    let file = config.data_dir.join(STATE_DB_FILE);
    if is_default_file && !file.exists() {
        return Ok((
            pass(
                "state",
                "no state database yet (the first `berth serve` creates it)",
            ),
            None,
            None,
        ));
    }
    match state_facts(&url, berth_server::app::KEY_FINGERPRINT).await {
        Ok(facts) if facts.integrity == "ok" => Ok((
            pass(
                "state",
                format!("state database intact ({} services)", facts.services),
            ),
            Some(facts.services),
            facts.key_fingerprint,
        )),
        Ok(facts) => Err(fail(
            "state",
            format!("the state database is damaged: {}", facts.integrity),
            "stop berth serve and restore the state from a backup (`berth state restore`)",
        )),
        Err(e) => Err(fail(
            "state",
            format!("the state database cannot be read: {e}"),
            "check the data directory's permissions and --database-url; restore it from a \
             backup if it is damaged (`berth state restore`)",
        )),
    }
}

async fn network_check(
    docker: &DockerClient,
    config: &ServerConfig,
    services: Option<i64>,
) -> Check {
    let name = config.network.as_str();
    match docker.network_driver(name).await {
        Ok(Some(driver)) if driver == "bridge" => {
            pass("network", format!("network {name:?} ({driver})"))
        }
        Ok(Some(driver)) => fail(
            "network",
            format!("network {name:?} is a {driver} network, not a bridge"),
            format!("use another name (network in the config) or recreate {name:?} as a bridge"),
        ),
        Ok(None) if services.unwrap_or(0) == 0 => pass(
            "network",
            format!("network {name:?} not created yet (the first service creates it)"),
        ),
        Ok(None) => fail(
            "network",
            format!("network {name:?} is missing, but services exist"),
            format!(
                "docker network create {name} (or start berth serve: its reconciler recreates services' containers on it)"
            ),
        ),
        Err(e) => fail(
            "network",
            format!("inspecting {name:?}: {e}"),
            "check the Docker engine",
        ),
    }
}

/// Berth's own images present and built from this binary's recipes, and any image the
/// configuration names instead present.
async fn images_check(docker: &Arc<DockerClient>, config: &ServerConfig) -> Check {
    let work = config.data_dir.join("images");
    let builder = ImageBuilder::new(docker.clone(), work);
    let mut problems = Vec::new();
    let mut fine = 0;
    for image in own_images() {
        let reference = image.recipe.reference();
        let labels = docker.image_labels(&reference).await;
        match (
            labels,
            builder.context(&image.recipe).map(|c| c.input_hash()),
        ) {
            (Err(e), _) => problems.push(format!("{reference}: {e}")),
            (Ok(None), _) => problems.push(format!("{reference} missing")),
            (Ok(Some(labels)), Ok(hash)) if labels.get("berth.input-hash") == Some(&hash) => {
                fine += 1
            }
            (Ok(Some(_)), Ok(_)) => problems.push(format!("{reference} outdated")),
            // Present, and this host cannot rebuild it (e.g. no berth-s3d beside the binary):
            // what runs is what is there.
            (Ok(Some(_)), Err(_)) => fine += 1,
        }
    }
    for (service_type, reference) in &config.images {
        match docker.image_labels(reference).await {
            Ok(Some(_)) => fine += 1,
            Ok(None) => problems.push(format!(
                "{reference} (configured for {service_type}) missing"
            )),
            Err(e) => problems.push(format!("{reference}: {e}")),
        }
    }
    if problems.is_empty() {
        pass("images", format!("{fine} images present and current"))
    } else {
        fail(
            "images",
            problems.join("; "),
            "berth images build (for a configured image: docker load or build it, or remove it \
             from [images] in the config)",
        )
    }
}

/// The API's address is free, or held by a Berth that answers.
async fn port_check(config: &ServerConfig) -> Check {
    let listen = config.listen;
    match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => {
            drop(listener);
            pass("port", format!("{listen} is free for berth serve"))
        }
        Err(_) if answers_as_berth(config).await => {
            pass("port", format!("{listen} is held by berth serve"))
        }
        Err(e) => fail(
            "port",
            format!("{listen} is taken by another program ({e})"),
            format!(
                "stop what listens there (ss -ltnp 'sport = :{}') or set `listen` in the config",
                listen.port()
            ),
        ),
    }
}

async fn answers_as_berth(config: &ServerConfig) -> bool {
    let Some(http) = probe_client(config) else {
        return false;
    };
    let url = format!("{}/metrics", local_url(config));
    let Ok(response) = http.get(url).send().await else {
        return false;
    };
    response
        .text()
        .await
        .is_ok_and(|body| body.contains("# HELP berth_"))
}

fn data_dir_check(dir: &Path) -> Check {
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return pass(
                "data dir",
                format!(
                    "{} not created yet (berth serve creates it, 0700)",
                    dir.display()
                ),
            );
        }
        Err(e) => {
            return fail(
                "data dir",
                format!("{}: {e}", dir.display()),
                "run as the user Berth runs as (root, or berth)",
            );
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return fail(
            "data dir",
            format!(
                "{} belongs to uid {}, not to this user ({me})",
                dir.display(),
                meta.uid()
            ),
            format!("chown -R {me} {} (or run as its owner)", dir.display()),
        );
    }
    if mode & 0o077 != 0 {
        return fail(
            "data dir",
            format!(
                "{} is mode {mode:o}: others can read Berth's secrets",
                dir.display()
            ),
            format!("chmod 700 {}", dir.display()),
        );
    }
    pass("data dir", format!("{} (mode {mode:o})", dir.display()))
}

/// `secret.key` present, private, and the key the state database's secrets were encrypted
/// under (`recorded`: the fingerprint the state holds, when the state could be read).
fn key_check(config: &ServerConfig, recorded: Option<&Option<String>>) -> Check {
    let path = config.data_dir.join(berth_server::app::KEY_FILE);
    let key = match std::fs::read(&path) {
        Ok(key) => key,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match recorded {
                Some(Some(fingerprint)) => fail(
                    "key",
                    format!(
                        "{} is missing, but the state database's secrets are encrypted under \
                         key {fingerprint}",
                        path.display()
                    ),
                    "restore secret.key from your backup (`berth state restore`); a new key \
                     cannot decrypt them",
                ),
                _ => pass(
                    "key",
                    "no secret key yet (the first `berth serve` creates it)",
                ),
            };
        }
        Err(e) => {
            return fail(
                "key",
                format!("{}: {e}", path.display()),
                "run as the user Berth runs as",
            );
        }
    };
    let fingerprint = berth_server::app::key_fingerprint(&key);
    let mode = std::fs::metadata(&path).map_or(0, |m| m.permissions().mode() & 0o777);
    match recorded {
        Some(Some(recorded)) if *recorded != fingerprint => fail(
            "key",
            format!(
                "{} is key {fingerprint}, but the state database's secrets are encrypted under \
                 key {recorded}",
                path.display()
            ),
            "put back the secret.key that belongs to this state database",
        ),
        _ if mode & 0o077 != 0 => fail(
            "key",
            format!("{} is mode {mode:o}", path.display()),
            format!("chmod 600 {}", path.display()),
        ),
        Some(Some(_)) => pass(
            "key",
            format!("key {fingerprint} matches the state database"),
        ),
        _ => pass("key", format!("key {fingerprint}")),
    }
}

fn disk_check(path: &Path) -> Check {
    match rustix::fs::statvfs(path) {
        Ok(stats) => {
            let free = stats.f_bavail.saturating_mul(stats.f_frsize);
            let total = stats.f_blocks.saturating_mul(stats.f_frsize);
            let detail = format!(
                "{} free of {} at {}",
                indicatif::HumanBytes(free),
                indicatif::HumanBytes(total),
                path.display()
            );
            if free < MIN_FREE_BYTES {
                fail(
                    "disk",
                    detail,
                    "free space there (docker system df shows what images and volumes hold)",
                )
            } else {
                pass("disk", detail)
            }
        }
        Err(e) => fail(
            "disk",
            format!("{}: {e}", path.display()),
            "check the path exists",
        ),
    }
}

async fn server_check(config: &ServerConfig) -> Check {
    let base = local_url(config);
    let answer = async {
        let http = probe_client(config)?;
        let response = http.get(format!("{base}/healthz")).send().await.ok()?;
        let ok = response.status().is_success();
        Some(ok && response.text().await.ok()? == "ok")
    };
    match answer.await {
        Some(true) => pass("server", format!("berth serve answers at {base}")),
        _ => fail(
            "server",
            format!("nothing answers /healthz at {base}"),
            "start it: berth serve (systemctl start berth where it is installed as a service)",
        ),
    }
}
