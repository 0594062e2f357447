//! Startup of `berth serve`: data directory, secret key, instance id, first admin token, state
//! store, reconciler, then the HTTP API until SIGINT/SIGTERM.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth_core::secrets::{self, SecretBox};

use crate::api::{self, AppState};
use crate::config::ServerConfig;
use crate::docker::DockerClient;
use crate::manager::ServiceManager;
use crate::reconciler::Reconciler;
use crate::store::{Scope, Store};

/// Name of the file the first admin token is written to, inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
pub const KEY_FILE: &str = "secret.key";
pub const INSTANCE_FILE: &str = "instance-id";

/// Writes `contents` to a new file readable only by its owner.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

/// Where the key that encrypts secrets at rest is stored in the state database's `meta`.
pub const KEY_FINGERPRINT: &str = "secret_key_fingerprint";

/// The key that encrypts secrets at rest: read from `secret.key`, or generated in memory when
/// the file is missing (written only once the state database agrees, see [`check_key`]).
struct LoadedKey {
    key: Vec<u8>,
    generated: bool,
}

fn load_key(data_dir: &Path) -> anyhow::Result<LoadedKey> {
    let path = data_dir.join(KEY_FILE);
    if !path.exists() {
        return Ok(LoadedKey {
            key: secrets::generate_key().to_vec(),
            generated: true,
        });
    }
    let key = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(LoadedKey {
        key,
        generated: false,
    })
}

/// A short public digest of the key: tells keys apart without revealing them.
pub fn key_fingerprint(key: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(b"berth secret.key fingerprint\0")
        .chain_update(key)
        .finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses to run with a key other than the one the state database's secrets were encrypted
/// under (a lost or replaced `secret.key` would make every credential unreadable), then
/// writes a newly generated key and records its fingerprint.
async fn check_key(store: &Store, data_dir: &Path, loaded: &LoadedKey) -> anyhow::Result<()> {
    let path = data_dir.join(KEY_FILE);
    let fingerprint = key_fingerprint(&loaded.key);
    match store.meta(KEY_FINGERPRINT).await? {
        Some(recorded) if loaded.generated => anyhow::bail!(
            "{} is missing, but the state database holds secrets encrypted under key {recorded}; \
             restore secret.key from your backup (a new key cannot decrypt them)",
            path.display()
        ),
        Some(recorded) if recorded != fingerprint => anyhow::bail!(
            "{} (key {fingerprint}) is not the key the state database's secrets were encrypted \
             under (key {recorded}); restore the right secret.key",
            path.display()
        ),
        Some(_) => return Ok(()),
        None if loaded.generated && store.count_encrypted_rows().await? > 0 => anyhow::bail!(
            "{} is missing, but the state database holds encrypted secrets; restore secret.key \
             from your backup (a new key cannot decrypt them)",
            path.display()
        ),
        None => {}
    }
    if loaded.generated {
        write_private(&path, &loaded.key)?;
        tracing::info!(path = %path.display(), "generated the secret key (keep it: without it stored credentials cannot be decrypted)");
    }
    store.set_meta(KEY_FINGERPRINT, &fingerprint).await?;
    Ok(())
}

fn load_or_create_instance_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(INSTANCE_FILE);
    if !path.exists() {
        write_private(
            &path,
            secrets::generate_password(12).to_lowercase().as_bytes(),
        )?;
    }
    Ok(std::fs::read_to_string(&path)?.trim().to_string())
}

/// On first start (no tokens at all), creates the admin token, stores its hash and writes the
/// token itself once to a 0600 file whose path is printed.
async fn bootstrap_admin_token(store: &Store, data_dir: &Path) -> anyhow::Result<()> {
    if store.count_tokens().await? > 0 {
        return Ok(());
    }
    let token = secrets::generate_token();
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let _ = std::fs::remove_file(&path);
    write_private(&path, format!("{token}\n").as_bytes())?;
    store
        .insert_token("admin", &secrets::hash_token(&token), Scope::Admin)
        .await?
        .context("the admin token was not stored")?;
    eprintln!("berth: admin API token written to {}", path.display());
    Ok(())
}

/// Everything `berth serve` needs, built but not yet listening (tests use this too).
pub struct Server {
    pub state: AppState,
    pub reconciler: Arc<Reconciler>,
    pub config: ServerConfig,
}

pub async fn build(config: ServerConfig) -> anyhow::Result<Server> {
    berth_core::names::validate_service_name(&config.kv_service_name)
        .with_context(|| format!("kv_service_name {:?}", config.kv_service_name))?;
    berth_core::names::validate_service_name(&config.blob_service_name)
        .with_context(|| format!("blob_service_name {:?}", config.blob_service_name))?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))?;
    let key = load_key(&config.data_dir)?;
    let secret_box = SecretBox::new(&key.key).with_context(|| {
        format!(
            "{} is not a valid key",
            config.data_dir.join(KEY_FILE).display()
        )
    })?;
    let instance_id = load_or_create_instance_id(&config.data_dir)?;
    let url = config
        .database_url
        .clone()
        .unwrap_or_else(|| Store::sqlite_url(&config.data_dir));
    let store = Store::open(&url, secret_box)
        .await
        .context("opening the state database")?;
    check_key(&store, &config.data_dir, &key).await?;
    bootstrap_admin_token(&store, &config.data_dir).await?;
    let docker = Arc::new(DockerClient::new());
    let manager = ServiceManager::new(store.clone(), docker, config.clone(), instance_id);
    let reconciler = Reconciler::new(manager.clone());
    let state = AppState {
        store,
        manager,
        reconciler: reconciler.clone(),
    };
    Ok(Server {
        state,
        reconciler,
        config,
    })
}

/// After the operations drained, how long open requests get to finish before Berth exits.
const REQUEST_GRACE: Duration = Duration::from_secs(10);

/// Runs the server until SIGINT or SIGTERM, then shuts down gracefully: new operations are
/// refused (503) while the API keeps answering, in-flight operations get
/// `shutdown_timeout_secs` to finish, and whatever is still running after that stays recorded
/// for the reconciler of the next start.
pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    // A bad certificate or key stops the start before anything else happens.
    let tls = config
        .tls
        .as_ref()
        .map(crate::tls::server_config)
        .transpose()?;
    let server = build(config).await?;
    let listener = tokio::net::TcpListener::bind(server.config.listen)
        .await
        .with_context(|| format!("listening on {}", server.config.listen))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("berth: listening on {scheme}://{}", listener.local_addr()?);
    if tls.is_none() && !server.config.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %server.config.listen,
            "plain HTTP beyond loopback: API tokens cross the network in clear; set [tls] in \
             the configuration (or put a TLS proxy in front and listen on 127.0.0.1)"
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    // Startup reconciliation runs in the background so the API answers at once; the services
    // it is resolving are claimed first, so requests touching them get 409 until it is done.
    let interrupted = server.reconciler.claim_interrupted().await?;
    let reconciler = server.reconciler.clone();
    let interval = Duration::from_secs(server.config.reconcile_interval_secs.max(1));
    let reconciler_stop = stop_rx.clone();
    tokio::spawn(async move {
        reconciler.startup(interrupted).await;
        reconciler.run_periodic(interval, reconciler_stop).await;
    });
    // Backup schedules: started after the interrupted backups were read (above).
    tokio::spawn(crate::scheduler::run(
        server.state.manager.clone(),
        stop_rx.clone(),
    ));

    let manager = server.state.manager.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        manager.begin_shutdown();
        tracing::info!("shutting down: new operations are refused while running ones drain");
        let _ = stop_tx.send(true);
    });

    let deadline = Duration::from_secs(server.config.shutdown_timeout_secs);
    let mut graceful = stop_rx.clone();
    let mut hard = stop_rx.clone();
    let app = api::router(server.state.clone());
    let draining = server.state.manager.clone();
    let stopped = async move {
        let _ = graceful.wait_for(|stop| *stop).await;
        // Keep listening while operations drain: clients can still poll them, and a new
        // operation gets a 503 saying why instead of a refused connection.
        draining.wait_idle(deadline).await;
    };
    let serve = async move {
        match tls {
            Some(tls) => {
                let listener = crate::tls::TlsListener::new(listener, tls)?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
        }
    };
    tokio::select! {
        result = serve => result?,
        _ = async {
            let _ = hard.wait_for(|stop| *stop).await;
            tokio::time::sleep(deadline + REQUEST_GRACE).await;
        } => tracing::warn!(
            "requests still open after {}s; exiting anyway",
            (deadline + REQUEST_GRACE).as_secs()
        ),
    }
    let parked = server.state.manager.wait_idle(Duration::ZERO).await;
    if parked.is_empty() {
        tracing::info!("shut down cleanly");
    } else {
        tracing::warn!(
            ?parked,
            "operations still running at the deadline are parked for the next start"
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutdown requested");
}
