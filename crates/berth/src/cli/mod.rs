//! Command-line interface: argument definitions and dispatch. Each noun has its own module.

mod backups;
mod blob;
mod client;
mod docker_run;
mod docs;
mod doctor;
mod env;
mod images;
mod import;
mod kv;
mod output;
mod projects;
mod schedules;
mod serve;
mod services;
mod state;
mod state_restore;
mod tokens;
mod wording;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use client::ApiClient;

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Self-hosted managed PostgreSQL, Redis, MongoDB and S3 on Docker"
)]
pub struct Cli {
    /// Base URL of the Berth API.
    #[arg(
        long,
        global = true,
        env = "BERTH_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub api_url: String,
    /// CA certificate (PEM) to trust for an https:// API URL instead of the system's CA
    /// bundle: the server's self-signed certificate, or the CA that issued it.
    #[arg(long, global = true, env = "BERTH_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// API token; defaults to the admin token file in the data directory.
    #[arg(long, global = true, env = "BERTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data directory (where `berth serve` keeps its state and the admin token file).
    #[arg(long, global = true, env = "BERTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Berth server (HTTP API, reconciler).
    Serve(serve::ServeArgs),
    /// Check this machine for what Berth needs (Docker, network, images, port, data directory,
    /// key, disk, state database, the running server), each failure with its fix.
    Doctor {
        /// The server's configuration file (listen address, data directory, network, images).
        #[arg(long, env = "BERTH_CONFIG")]
        config: Option<PathBuf>,
        /// The address berth serve listens on, if not the config's.
        #[arg(long, env = "BERTH_LISTEN")]
        listen: Option<std::net::SocketAddr>,
        /// The state database URL, if not the config's (or SQLite in the data directory).
        #[arg(long, env = "BERTH_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Build Berth's own images locally (no registry needed).
    Images {
        #[command(subcommand)]
        command: images::ImagesCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: tokens::TokenCommand,
    },
    /// Manage projects and their environments.
    Project {
        #[command(subcommand)]
        command: projects::ProjectCommand,
    },
    /// Manage services (PostgreSQL, Redis, ...).
    Service {
        #[command(subcommand)]
        command: services::ServiceCommand,
    },
    /// A project's keys in KV, and KV's Redis service.
    Kv {
        #[command(subcommand)]
        command: kv::KvCommand,
    },
    /// Backups to S3: run, list, show, their destinations, schedules and retention.
    Backup {
        #[command(subcommand)]
        command: backups::BackupCommand,
    },
    /// Backups of Berth's own state (sealed to a passphrase) and rebuilding a server from one.
    State {
        #[command(subcommand)]
        command: state::StateCommand,
    },
    /// A project's blobs in Blob (streamed files).
    Blob {
        #[command(subcommand)]
        command: blob::BlobCommand,
    },
    /// Print the variables linked services inject into a project environment.
    Env(env::EnvArgs),
    /// Run a local command with a project environment's variables (host-side addresses).
    Run(env::RunArgs),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (berth.1 and one per command) into DIR, or print berth.1.
    Man {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Docker with a project environment's variables: `berth docker run --project P -- ...`.
    Docker {
        #[command(subcommand)]
        command: DockerCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum DockerCommand {
    /// `docker run` on Berth's network with the project environment's variables (through a
    /// private env file, never on the command line). Long flags only, so they never read as
    /// docker's own `-p`/`-e`; docker's arguments go after `--`.
    Run(docker_run::DockerRunArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args, cli.data_dir).await,
        Command::Images { command } => images::run(command, cli.data_dir).await,
        Command::Doctor {
            ref config,
            listen,
            ref database_url,
        } => {
            let mut config = serve::load_config(config.as_deref(), cli.data_dir.clone())?;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            if let Some(url) = database_url {
                config.database_url = Some(url.clone());
            }
            if doctor::run(&config, cli.json).await? {
                Ok(())
            } else {
                // The report says what failed; the exit code is for scripts.
                std::process::exit(1)
            }
        }
        Command::Token { ref command } => tokens::run(command, &client(&cli)?, cli.json).await,
        Command::Project { ref command } => projects::run(command, &client(&cli)?, cli.json).await,
        Command::Service { ref command } => services::run(command, &client(&cli)?, cli.json).await,
        Command::Kv { ref command } => kv::run(command, &client(&cli)?, cli.json).await,
        Command::Blob { ref command } => blob::run(command, &client(&cli)?).await,
        Command::Backup { ref command } => backups::run(command, &client(&cli)?, cli.json).await,
        Command::State { ref command } => {
            // A restore works offline, before any server or token exists.
            let api = match command {
                state::StateCommand::Restore { .. } => None,
                _ => Some(client(&cli)?),
            };
            let data_dir = cli
                .data_dir
                .clone()
                .unwrap_or_else(berth_server::config::default_data_dir);
            state::run(command, api.as_ref(), &data_dir, cli.json).await
        }
        Command::Env(ref args) => env::print(args, &client(&cli)?).await,
        Command::Run(ref args) => env::run(args, &client(&cli)?).await,
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { ref dir } => docs::man(dir.as_deref()),
        Command::Docker {
            command: DockerCommand::Run(ref args),
        } => docker_run::run(args, &client(&cli)?).await,
    }
}

fn client(cli: &Cli) -> anyhow::Result<ApiClient> {
    let token = match &cli.token {
        Some(t) => t.clone(),
        None => {
            let dir = cli
                .data_dir
                .clone()
                .unwrap_or_else(berth_server::config::default_data_dir);
            let path = dir.join(berth_server::app::ADMIN_TOKEN_FILE);
            std::fs::read_to_string(&path)
                .map(|t| t.trim().to_string())
                .map_err(|e| {
                    anyhow::anyhow!(
                        "no API token: pass --token or BERTH_TOKEN, or make {} readable ({e})",
                        path.display()
                    )
                })?
        }
    };
    ApiClient::new(&cli.api_url, token, cli.ca_cert.as_deref())
}
