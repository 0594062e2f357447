//! The only code that talks to Docker, through bollard. The connection is made lazily and
//! retried on every call, so `berth serve` starts (and answers 503 with a clear message) while
//! the engine is down, and recovers by itself when it comes back.

mod containers;
mod exec;
mod exec_stream;
mod files;
mod foreign;
mod images;
mod offline;
mod resources;
mod system;

use std::sync::Mutex;
use std::time::Duration;

use bollard::Docker;
use thiserror::Error;

pub use containers::{ContainerInfo, ContainerSpec, ManagedContainer};
pub use exec::ExecOutput;
pub use exec_stream::ExecChunk;
pub use files::ContainerFile;
pub use foreign::ContainerFacts;
pub use images::BuildProgress;
pub use system::EngineFacts;

/// Labels on everything Berth creates.
pub const LABEL_MANAGED: &str = "berth.managed";
pub const LABEL_SERVICE_ID: &str = "berth.service_id";
pub const LABEL_SERVICE_TYPE: &str = "berth.service_type";
/// Which Berth instance (state database) owns a container.
pub const LABEL_INSTANCE: &str = "berth.instance";

#[derive(Debug, Error)]
pub enum DockerError {
    #[error("Docker engine is unreachable: {0}")]
    Unavailable(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// Docker refused the request as malformed (in practice: user input it did not accept).
    #[error("Docker refused the request: {0}")]
    BadRequest(String),
    #[error("Docker error: {0}")]
    Other(String),
}

pub type DockerResult<T> = Result<T, DockerError>;

impl From<bollard::errors::Error> for DockerError {
    fn from(err: bollard::errors::Error) -> Self {
        use bollard::errors::Error as E;
        match err {
            E::DockerResponseServerError {
                status_code: 404,
                message,
            } => DockerError::NotFound(message),
            E::DockerResponseServerError {
                status_code: 409,
                message,
            } => DockerError::Conflict(message),
            E::DockerResponseServerError {
                status_code: 400,
                message,
            } => DockerError::BadRequest(message),
            // Another program took a host port between Berth's check and the start: the
            // user's to resolve (choose another port), not an internal error.
            E::DockerResponseServerError { message, .. }
                if message.contains("port is already allocated")
                    || message.contains("address already in use") =>
            {
                DockerError::Conflict(format!(
                    "a host port of this service was taken by another program meanwhile; choose another \
                     port (Docker said: {message})"
                ))
            }
            E::DockerResponseServerError {
                status_code,
                message,
            } => DockerError::Other(format!("{status_code}: {message}")),
            E::IOError { .. }
            | E::HyperResponseError { .. }
            | E::HyperLegacyError { .. }
            | E::SocketNotFoundError(_)
            | E::HttpClientError { .. } => DockerError::Unavailable(err.to_string()),
            other => DockerError::Other(other.to_string()),
        }
    }
}

/// How long the first request to a (possibly hung) engine may take to negotiate the API version.
const NEGOTIATE_TIMEOUT: Duration = Duration::from_secs(10);

/// A lazily connected, version-negotiated Docker client.
pub struct DockerClient {
    /// Never held across an await: a hung engine must not make every caller queue behind one
    /// negotiation.
    cached: Mutex<Option<Docker>>,
}

impl Default for DockerClient {
    fn default() -> Self {
        Self::new()
    }
}

impl DockerClient {
    pub fn new() -> Self {
        Self {
            cached: Mutex::new(None),
        }
    }

    /// The connected client; connects (honouring `DOCKER_HOST`) and negotiates the API
    /// version on first use or after a failure.
    pub async fn get(&self) -> DockerResult<Docker> {
        self.get_or_connect(connect).await
    }

    /// The cached client, or a new one from `connect`, negotiated without holding the lock:
    /// callers arriving meanwhile negotiate in parallel (each bounded by its own timeout) and
    /// the first to finish is kept.
    async fn get_or_connect<F, Fut>(&self, connect: F) -> DockerResult<Docker>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = DockerResult<Docker>>,
    {
        if let Some(docker) = self.cached.lock().expect("docker lock").as_ref() {
            return Ok(docker.clone());
        }
        let docker = connect().await?;
        Ok(self
            .cached
            .lock()
            .expect("docker lock")
            .get_or_insert(docker)
            .clone())
    }

    /// Forget the connection after an `Unavailable` error so the next call reconnects.
    pub async fn reset(&self) {
        *self.cached.lock().expect("docker lock") = None;
    }

    /// Runs `f` with the client; drops the cached connection when Docker proved unreachable.
    async fn with<T, F, Fut>(&self, f: F) -> DockerResult<T>
    where
        F: FnOnce(Docker) -> Fut,
        Fut: std::future::Future<Output = DockerResult<T>>,
    {
        let docker = self.get().await?;
        let result = f(docker).await;
        if matches!(result, Err(DockerError::Unavailable(_))) {
            self.reset().await;
        }
        result
    }

    /// Whether the engine answers a ping.
    pub async fn ping(&self) -> DockerResult<()> {
        self.with(|d| async move {
            d.ping().await?;
            Ok(())
        })
        .await
    }
}

/// Connects (honouring `DOCKER_HOST`) and negotiates the API version, within
/// `NEGOTIATE_TIMEOUT`.
async fn connect() -> DockerResult<Docker> {
    let docker =
        Docker::connect_with_defaults().map_err(|e| DockerError::Unavailable(e.to_string()))?;
    tokio::time::timeout(NEGOTIATE_TIMEOUT, docker.negotiate_version())
        .await
        .map_err(|_| DockerError::Unavailable("timed out negotiating the API version".into()))?
        .map_err(|e| DockerError::Unavailable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_taken_host_port_is_a_conflict_not_an_internal_error() {
        let refused = bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "driver failed programming external connectivity on endpoint x: Bind for \
                      127.0.0.1:9001 failed: port is already allocated"
                .into(),
        };
        match DockerError::from(refused) {
            DockerError::Conflict(message) => assert!(message.contains("choose another port")),
            other => panic!("{other:?}"),
        }
    }

    /// A client value that is never used to connect (bollard connects lazily).
    fn unused_client() -> Docker {
        Docker::connect_with_http("http://127.0.0.1:9", 1, bollard::API_DEFAULT_VERSION).unwrap()
    }

    /// A hung engine: every negotiation takes its full timeout (here 500ms) and fails. Four
    /// callers must wait about one timeout, not four in a row.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_engine_does_not_serialise_callers() {
        let timeout = Duration::from_millis(500);
        let client = Arc::new(DockerClient::new());
        let started = std::time::Instant::now();
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move {
                    client
                        .get_or_connect(|| async move {
                            tokio::time::sleep(timeout).await;
                            Err::<Docker, _>(DockerError::Unavailable("timed out".into()))
                        })
                        .await
                })
            })
            .collect();
        for caller in callers {
            assert!(caller.await.unwrap().is_err());
        }
        let waited = started.elapsed();
        assert!(
            waited < timeout * 3,
            "4 callers took {waited:?}: they queued behind each other's negotiation"
        );
    }

    /// While one caller negotiates with a hung engine, a client cached meanwhile is served at
    /// once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cached_client_is_served_during_a_slow_negotiation() {
        let client = Arc::new(DockerClient::new());
        let slow = {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .get_or_connect(|| async {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(unused_client())
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        *client.cached.lock().unwrap() = Some(unused_client());
        let served = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_or_connect(|| async { panic!("connects although a client is cached") }),
        )
        .await;
        assert!(
            matches!(served, Ok(Ok(_))),
            "waited for the other negotiation"
        );
        slow.abort();
    }
}
