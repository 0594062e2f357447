//! `berth serve`: configuration from file, environment and flags (in rising precedence).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use berth_server::config::ServerConfig;
use clap::Args;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (any ServerConfig field).
    #[arg(long, env = "BERTH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "BERTH_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// State database URL (default: SQLite in the data directory; postgres://... also works).
    #[arg(long, env = "BERTH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Docker network for services (default `berth`).
    #[arg(long, env = "BERTH_NETWORK")]
    pub network: Option<String>,
    /// Seconds between reconciler passes (default 30).
    #[arg(long, env = "BERTH_RECONCILE_INTERVAL")]
    pub reconcile_interval: Option<u64>,
    /// Seconds a synchronous request waits for its operation before answering 202 with it
    /// (default 120).
    #[arg(long, env = "BERTH_SYNC_WAIT")]
    pub sync_wait: Option<u64>,
    /// Name of the Redis service KV keeps its data in (default `berth-kv`).
    #[arg(long, env = "BERTH_KV_SERVICE_NAME")]
    pub kv_service_name: Option<String>,
    /// Name of the S3 service Blob keeps its data in (default `berth-blob`).
    #[arg(long, env = "BERTH_BLOB_SERVICE_NAME")]
    pub blob_service_name: Option<String>,
    /// Largest blob accepted, in bytes (default 5 GiB); larger uploads get 413.
    #[arg(long, env = "BERTH_BLOB_MAX_BYTES")]
    pub blob_max_bytes: Option<u64>,
    /// Shortest interval between two runs of a backup schedule, in seconds (1 to 60, default
    /// 60). Lower it only for tests.
    #[arg(long, env = "BERTH_BACKUP_SCHEDULE_MIN_INTERVAL")]
    pub backup_schedule_min_interval: Option<u32>,
}

/// The configuration file (defaults without one), with the global `--data-dir` over it.
pub fn load_config(
    path: Option<&std::path::Path>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<ServerConfig> {
    let mut config = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            ServerConfig::from_toml(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => ServerConfig::default(),
    };
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    Ok(config)
}

pub async fn run(args: ServeArgs, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = load_config(args.config.as_deref(), data_dir)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(url) = args.database_url {
        config.database_url = Some(url);
    }
    if let Some(network) = args.network {
        config.network = network;
    }
    if let Some(secs) = args.reconcile_interval {
        config.reconcile_interval_secs = secs;
    }
    if let Some(secs) = args.sync_wait {
        config.sync_wait_secs = secs;
    }
    if let Some(name) = args.kv_service_name {
        config.kv_service_name = name;
    }
    if let Some(name) = args.blob_service_name {
        config.blob_service_name = name;
    }
    if let Some(bytes) = args.blob_max_bytes {
        config.blob_max_bytes = bytes;
    }
    if let Some(secs) = args.backup_schedule_min_interval {
        config.backup_schedule_min_interval_secs = secs;
    }
    init_logging();
    berth_server::app::run(config).await
}

/// Crates that log raw Docker API bodies (container env and command lines, which carry
/// credentials under the official images' contract) at debug level. They are capped at info
/// whatever `BERTH_LOG` says, so secrets never reach the log.
const CAPPED_TARGETS: &[&str] = &["bollard", "hyper", "hyper_util", "h2", "sqlx"];

fn log_directives(requested: &str) -> String {
    let mut directives: Vec<String> = requested
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !CAPPED_TARGETS.iter().any(|t| d.starts_with(t)))
        .map(str::to_string)
        .collect();
    if directives.is_empty() {
        directives.push("info".into());
    }
    directives.extend(CAPPED_TARGETS.iter().map(|t| format!("{t}=info")));
    directives.join(",")
}

fn init_logging() {
    let requested = std::env::var("BERTH_LOG").unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(log_directives(&requested))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_directives("info")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::log_directives;

    #[test]
    fn docker_body_loggers_are_capped() {
        assert_eq!(
            log_directives("debug,bollard=trace"),
            "debug,bollard=info,hyper=info,hyper_util=info,h2=info,sqlx=info"
        );
        assert!(log_directives("").starts_with("info,"));
    }
}
