//! Server configuration. Every field has a default; a TOML file (`--config`) can set any of
//! them, and command-line flags or `BERTH_*` environment variables override the file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP API listens on. Loopback by default: set `tls` (or put a TLS proxy in
    /// front) before listening on another address.
    pub listen: SocketAddr,
    /// HTTPS for the API (`[tls]`): served with these files instead of plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Directory for the state database, the secret key, the admin token and image build scratch.
    pub data_dir: PathBuf,
    /// State database URL; defaults to SQLite in `data_dir`. `postgres://...` also works.
    pub database_url: Option<String>,
    /// Docker network shared by services (container names resolve as hostnames on it).
    pub network: String,
    /// Seconds between reconciler passes.
    pub reconcile_interval_secs: u64,
    /// Seconds to wait for a service to accept connections after (re)starting it.
    pub readiness_timeout_secs: u64,
    /// Seconds SIGTERM waits for in-flight requests and operations before exiting; operations
    /// still running then are parked (left recorded) and resolved at the next start.
    pub shutdown_timeout_secs: u64,
    /// Seconds a synchronous request (the default; not `Prefer: respond-async`) waits for its
    /// operation before answering 202 with the operation, which keeps running.
    pub sync_wait_secs: u64,
    /// Default image per service type, overriding Berth's own (`postgres = "postgres:15"`).
    pub images: HashMap<String, String>,
    /// Name of the Redis service `POST /api/kv/enable` creates to hold KV's data. Change it if a
    /// service of yours already has this name, or if several Berth instances share one Docker
    /// engine (its container is `berth-redis-<name>`).
    pub kv_service_name: String,
    /// Name of the S3 service `POST /api/blob/enable` creates to hold every project's blobs
    /// (its container is `berth-s3-<name>`).
    pub blob_service_name: String,
    /// Largest blob a `POST /api/blob` accepts, in bytes; a larger body is refused with 413
    /// and nothing is stored. Uploads are streamed, so this bounds disk, not memory.
    pub blob_max_bytes: u64,
    /// Shortest interval between two runs of a backup schedule, in seconds (1 to 60; default
    /// 60: a cron expression firing more than once a minute is refused). Lower it only for
    /// tests: a backup takes longer than a few seconds.
    pub backup_schedule_min_interval_secs: u32,
}

/// `[tls]`: the API is served over HTTPS (rustls) with this certificate and key, read at start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server's certificate first, then any intermediates.
    pub cert_path: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
}

/// See [`ServerConfig::blob_service_name`].
pub const DEFAULT_BLOB_SERVICE_NAME: &str = "berth-blob";
/// See [`ServerConfig::blob_max_bytes`]: 5 GiB.
pub const DEFAULT_BLOB_MAX_BYTES: u64 = 5 << 30;

/// See [`ServerConfig::kv_service_name`].
pub const DEFAULT_KV_SERVICE_NAME: &str = "berth-kv";

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            data_dir: default_data_dir(),
            database_url: None,
            network: "berth".into(),
            reconcile_interval_secs: 30,
            readiness_timeout_secs: 120,
            shutdown_timeout_secs: 60,
            sync_wait_secs: 120,
            images: HashMap::new(),
            kv_service_name: DEFAULT_KV_SERVICE_NAME.into(),
            blob_service_name: DEFAULT_BLOB_SERVICE_NAME.into(),
            blob_max_bytes: DEFAULT_BLOB_MAX_BYTES,
            backup_schedule_min_interval_secs: berth_core::backup::schedule::MIN_INTERVAL_SECS,
        }
    }
}

impl ServerConfig {
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// `/var/lib/berth` for root, `~/.local/share/berth` otherwise.
pub fn default_data_dir() -> PathBuf {
    let is_root = std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::env::var("HOME").map(|h| h == "/root").unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib/berth");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/berth"),
        None => PathBuf::from("/var/lib/berth"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration the Debian package installs as /etc/berth/config.toml.
    const PACKAGED: &str = include_str!("../../../packaging/config.toml");

    /// The packaged file with every commented setting (`# key = ...`, `# [table]`) switched on.
    fn uncommented(text: &str) -> String {
        text.lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with('[')
                        || rest.split_once(" = ").is_some_and(|(key, _)| {
                            key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        }) =>
                {
                    rest
                }
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn as_json(config: &ServerConfig) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(config).unwrap() {
            serde_json::Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn packaged_config_is_the_defaults_on_loopback_in_var_lib() {
        let config = ServerConfig::from_toml(PACKAGED).unwrap();
        let expected = ServerConfig {
            data_dir: PathBuf::from("/var/lib/berth"),
            ..ServerConfig::default()
        };
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(as_json(&config), as_json(&expected));
    }

    #[test]
    fn packaged_config_shows_every_field_with_its_default() {
        let text = uncommented(PACKAGED);
        // Parses: every shown setting is a real field (unknown fields are refused).
        let shown = ServerConfig::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let table: toml::Table = toml::from_str(&text).unwrap();
        let defaults = as_json(&ServerConfig {
            data_dir: PathBuf::from("/var/lib/berth"),
            ..ServerConfig::default()
        });
        let shown = as_json(&shown);
        for (field, default) in &defaults {
            assert!(
                table.contains_key(field),
                "{field} is missing from config.toml"
            );
            // Optional settings and tables show an example; the others their default.
            if !default.is_null() && !default.is_object() {
                assert_eq!(&shown[field], default, "{field} does not show its default");
            }
        }
    }
}
