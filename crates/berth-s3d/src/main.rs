//! berth-s3d: the S3 server of Berth's `berth/s3` image. s3s-fs stores the objects as files
//! under `<data>/buckets`; on top of it this binary adds what s3s-fs' own binary lacks: an admin
//! key that must be set (see `config`), per-project keys picked up from `<data>/keys.d` while
//! running (see `keys`, `access`), a status page on the console port, TCP_NODELAY and a
//! graceful stop on SIGTERM. HTTPS is stunnel's job in the image.

mod access;
mod config;
mod console;
mod keys;
mod serve;
mod storage;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hyper::service::service_fn;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// S3 server for Berth: s3s-fs storage, an admin key and per-project keys.
#[derive(Debug, Parser)]
#[command(version = console::VERSION)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    address: IpAddr,
    /// S3 API port (plain HTTP; the image's stunnel serves HTTPS in front of it).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Status page port.
    #[arg(long, default_value_t = 9001)]
    console_port: u16,
    /// Data directory: objects in `buckets/`, tenant key files in `keys.d/`.
    #[arg(long, default_value = "/data")]
    data_dir: PathBuf,
    /// On SIGTERM, how long requests in flight may take to finish before the server exits
    /// anyway (Docker's own stop timeout still applies).
    #[arg(long, default_value = "25", value_parser = parse_secs)]
    drain_secs: Duration,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|e| format!("{s:?}: {e}"))
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_S3D_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let admin = config::admin_key(|name| std::env::var(name).ok())?;
    let buckets_dir = args.data_dir.join("buckets");
    let keys_dir = args.data_dir.join("keys.d");
    for dir in [&buckets_dir, &keys_dir] {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let keys = Arc::new(keys::KeyStore::new(admin, keys_dir));
    let fs = s3s_fs::FileSystem::new(&buckets_dir)
        .map_err(|e| format!("opening {}: {e:?}", buckets_dir.display()))?;
    let s3 = {
        let guard = access::Guard::new(keys.clone());
        let mut builder = S3ServiceBuilder::new(storage::Storage::new(fs, keys.clone()));
        builder.set_auth(guard.clone());
        builder.set_access(guard);
        builder.build()
    };
    let console = console::Console::new(buckets_dir);
    let console = service_fn(move |req| console.clone().handle(req));

    let bind = |port| async move {
        TcpListener::bind((args.address, port))
            .await
            .map_err(|e| format!("listening on {}:{port}: {e}", args.address))
    };
    let s3_listener = bind(args.port).await?;
    let console_listener = bind(args.console_port).await?;
    tracing::info!(
        s3 = %s3_listener.local_addr().map_err(|e| e.to_string())?,
        console = %console_listener.local_addr().map_err(|e| e.to_string())?,
        keys = %keys.dir().display(),
        "{} ready", console::VERSION
    );

    let shutdown = CancellationToken::new();
    let s3_task = tokio::spawn(serve::serve(
        "s3",
        s3_listener,
        s3,
        shutdown.clone(),
        args.drain_secs,
    ));
    let console_task = tokio::spawn(serve::serve(
        "console",
        console_listener,
        console,
        shutdown.clone(),
        args.drain_secs,
    ));
    wait_for_signal().await?;
    tracing::info!("stopping: finishing requests in flight");
    shutdown.cancel();
    let _ = tokio::join!(s3_task, console_task);
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM (docker stop) or SIGINT (Ctrl-C).
async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
