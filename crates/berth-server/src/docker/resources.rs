//! Networks and volumes.

use std::collections::HashMap;

use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{ListVolumesOptions, RemoveVolumeOptions};

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

    /// Removes a service's data volume and the volumes made for the other paths its image
    /// declares (see [`image_volume_name`]); missing ones are fine.
    pub async fn remove_service_volumes(&self, volume: &str) -> DockerResult<()> {
        for name in self.image_volumes_of(volume).await? {
            self.remove_volume(&name).await?;
        }
        self.remove_volume(volume).await
    }

    /// The image-declared volumes made beside `volume` (`{volume}.{path}`).
    pub async fn image_volumes_of(&self, volume: &str) -> DockerResult<Vec<String>> {
        let prefix = format!("{volume}.");
        let listed = self
            .with(|d| async move {
                let filters = HashMap::from([("name".to_string(), vec![prefix.clone()])]);
                Ok(d.list_volumes(Some(ListVolumesOptions {
                    filters: Some(filters),
                }))
                .await?)
            })
            .await?;
        // Docker's name filter matches substrings: keep exact prefixes only. Service names
        // never contain `.`, so no other service's volume starts with `{volume}.`.
        let prefix = format!("{volume}.");
        Ok(listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .filter(|n| n.starts_with(&prefix))
            .collect())
    }
}

/// The named volume for a path an image declares as a `VOLUME` besides the service's data
/// path (the mongo image's `/data/configdb`): `{volume}.{path as a slug}`. Without it Docker
/// would make an anonymous volume on every recreate and leak the old one.
pub fn image_volume_name(volume: &str, path: &str) -> String {
    let slug: String = path
        .trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{volume}.{slug}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_volume_names_stay_beside_their_service() {
        assert_eq!(
            image_volume_name("berth-mongodb-a-data", "/data/configdb"),
            "berth-mongodb-a-data.data-configdb"
        );
        // Another service's volume can never look like one of these.
        assert!(!"berth-mongodb-a-data-x-data".starts_with("berth-mongodb-a-data."));
    }
}
