//! Facts about the Docker engine itself, for `berth doctor`.

use super::{DockerClient, DockerError, DockerResult};

/// The engine's version, its API version, and where it keeps volumes.
#[derive(Debug, Clone)]
pub struct EngineFacts {
    pub version: String,
    pub api_version: String,
    /// `DockerRootDir` (volumes live under it).
    pub root_dir: Option<String>,
}

impl DockerClient {
    pub async fn engine_facts(&self) -> DockerResult<EngineFacts> {
        self.with(|d| async move {
            let version = d.version().await?;
            let info = d.info().await?;
            Ok(EngineFacts {
                version: version.version.unwrap_or_default(),
                api_version: version.api_version.unwrap_or_default(),
                root_dir: info.docker_root_dir,
            })
        })
        .await
    }

    /// A network's driver, or `None` if there is no network of that name.
    pub async fn network_driver(&self, name: &str) -> DockerResult<Option<String>> {
        let name = name.to_string();
        self.with(|d| async move {
            match d.inspect_network(&name, None).await {
                Ok(network) => Ok(Some(network.driver.unwrap_or_default())),
                Err(e) => match DockerError::from(e) {
                    DockerError::NotFound(_) => Ok(None),
                    other => Err(other),
                },
            }
        })
        .await
    }
}
