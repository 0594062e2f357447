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
}

pub async fn run(args: ServeArgs, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            ServerConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => ServerConfig::default(),
    };
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
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
    init_logging();
    berth_server::app::run(config).await
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
