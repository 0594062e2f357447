//! Networks and volumes.

use std::collections::HashMap;

use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::RemoveVolumeOptions;

use super::{DockerClient, DockerError, DockerResult, LABEL_MANAGED};

impl DockerClient {
    /// Creates the bridge network services share (container names resolve as hostnames on a
    /// user-defined bridge), or adopts it if it exists.
    pub async fn ensure_network(&self, name: &str) -> DockerResult<()> {
        let name = name.to_string();
        self.with(|d| async move {
            match d.inspect_network(&name, None).await {
                Ok(_) => return Ok(()),
                Err(e) => match DockerError::from(e) {
                    DockerError::NotFound(_) => {}
                    other => return Err(other),
                },
            }
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                labels: Some(HashMap::from([(LABEL_MANAGED.into(), "true".into())])),
                ..Default::default()
            };
            match d.create_network(request).await {
                Ok(_) => Ok(()),
                // Created concurrently by someone else: fine.
                Err(e) => match DockerError::from(e) {
                    DockerError::Conflict(_) => Ok(()),
                    other => Err(other),
                },
            }
        })
        .await
    }

    /// Creates a named volume, or adopts an existing one of the same name (volume creation is
    /// idempotent in Docker).
    pub async fn ensure_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> DockerResult<()> {
        let name = name.to_string();
        self.with(|d| async move {
            d.create_volume(VolumeCreateRequest {
                name: Some(name),
                labels: Some(labels),
                ..Default::default()
            })
            .await?;
            Ok(())
        })
        .await
    }

    /// Removes a volume; a missing volume is not an error.
    pub async fn remove_volume(&self, name: &str) -> DockerResult<()> {
        let name = name.to_string();
        self.with(|d| async move {
            match d
                .remove_volume(&name, Some(RemoveVolumeOptions { force: true }))
                .await
            {
                Ok(()) => Ok(()),
                Err(e) => match DockerError::from(e) {
                    DockerError::NotFound(_) => Ok(()),
                    other => Err(other),
                },
            }
        })
        .await
    }

    pub async fn volume_exists(&self, name: &str) -> DockerResult<bool> {
        let name = name.to_string();
        self.with(|d| async move {
            match d.inspect_volume(&name).await {
                Ok(_) => Ok(true),
                Err(e) => match DockerError::from(e) {
                    DockerError::NotFound(_) => Ok(false),
                    other => Err(other),
                },
            }
        })
        .await
    }
}
