//! The only code that talks to Docker, through bollard. The connection is made lazily and
//! retried on every call, so `berth serve` starts (and answers 503 with a clear message) while
//! the engine is down, and recovers by itself when it comes back.

mod containers;
mod files;
mod images;
mod resources;

use bollard::Docker;
use thiserror::Error;
use tokio::sync::Mutex;

pub use containers::{ContainerInfo, ContainerSpec, ManagedContainer};
pub use files::ContainerFile;
pub use images::BuildProgress;

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

/// A lazily connected, version-negotiated Docker client.
pub struct DockerClient {
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
        let mut cached = self.cached.lock().await;
        if let Some(docker) = cached.as_ref() {
            return Ok(docker.clone());
        }
        let docker =
            Docker::connect_with_defaults().map_err(|e| DockerError::Unavailable(e.to_string()))?;
        let docker = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            docker.negotiate_version(),
        )
        .await
        .map_err(|_| DockerError::Unavailable("timed out negotiating the API version".into()))?
        .map_err(|e| DockerError::Unavailable(e.to_string()))?;
        *cached = Some(docker.clone());
        Ok(docker)
    }

    /// Forget the connection after an `Unavailable` error so the next call reconnects.
    pub async fn reset(&self) {
        *self.cached.lock().await = None;
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
