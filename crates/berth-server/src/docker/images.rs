//! Images: existence checks, builds from an in-memory tar context, and `docker import` of a
//! root filesystem tar stream (for the debootstrapped base image).

use std::collections::HashMap;

use bollard::query_parameters::{BuildImageOptions, CreateImageOptions};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{DockerClient, DockerError, DockerResult};

const PULL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One line of build output, forwarded to whoever shows progress.
#[derive(Debug, Clone)]
pub struct BuildProgress(pub String);

impl DockerClient {
    /// The image's labels, or `None` if the image is not present locally.
    pub async fn image_labels(&self, image: &str) -> DockerResult<Option<HashMap<String, String>>> {
        let image = image.to_string();
        self.with(|d| async move {
            match d.inspect_image(&image).await {
                Ok(info) => Ok(Some(info.config.and_then(|c| c.labels).unwrap_or_default())),
                Err(e) => match DockerError::from(e) {
                    DockerError::NotFound(_) => Ok(None),
                    other => Err(other),
                },
            }
        })
        .await
    }

    /// The image's environment (`PG_MAJOR=15`, ...), or `None` if absent locally.
    pub async fn image_env(&self, image: &str) -> DockerResult<Option<Vec<String>>> {
        let image = image.to_string();
        self.with(|d| async move {
            match d.inspect_image(&image).await {
                Ok(info) => Ok(Some(info.config.and_then(|c| c.env).unwrap_or_default())),
                Err(e) => match DockerError::from(e) {
                    DockerError::NotFound(_) => Ok(None),
                    other => Err(other),
                },
            }
        })
        .await
    }

    /// Builds `tag` from a tar build context. Uses the host network so `apt-get` inside the
    /// build reaches the same mirror the host does. `on_line` sees the build output.
    pub async fn build_image(
        &self,
        tag: &str,
        context_tar: Vec<u8>,
        build_args: HashMap<String, String>,
        labels: HashMap<String, String>,
        mut on_line: impl FnMut(BuildProgress) + Send,
    ) -> DockerResult<()> {
        let docker = self.get().await?;
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(tag.to_string()),
            rm: true,
            forcerm: true,
            buildargs: Some(build_args),
            labels: Some(labels),
            networkmode: Some("host".into()),
            ..Default::default()
        };
        let mut stream = docker.build_image(
            options,
            None,
            Some(bollard::body_full(Bytes::from(context_tar))),
        );
        while let Some(item) = stream.next().await {
            let info = item.map_err(DockerError::from)?;
            if let Some(detail) = info.error_detail {
                return Err(DockerError::Other(format!(
                    "building {tag}: {}",
                    detail.message.unwrap_or_default()
                )));
            }
            if let Some(line) = info.stream {
                let line = line.trim_end();
                if !line.is_empty() {
                    on_line(BuildProgress(line.to_string()));
                }
            }
        }
        Ok(())
    }

    /// `docker import`: makes image `repo:tag` from a root filesystem tar stream.
    pub async fn import_rootfs(
        &self,
        repo: &str,
        tag: &str,
        rootfs_tar: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> DockerResult<()> {
        let docker = self.get().await?;
        let options = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            ..Default::default()
        };
        let mut stream = docker.create_image(
            Some(options),
            Some(bollard::body_try_stream(rootfs_tar)),
            None,
        );
        while let Some(item) = stream.next().await {
            let info = item.map_err(DockerError::from)?;
            if let Some(detail) = info.error_detail {
                return Err(DockerError::Other(format!(
                    "importing {repo}:{tag}: {}",
                    detail.message.unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}

impl DockerClient {
    /// Pulls an image from its registry, giving up after `PULL_TIMEOUT` (an unreachable
    /// registry can otherwise keep a request waiting on DNS and TCP timeouts).
    pub async fn pull_image(&self, image: &str) -> DockerResult<()> {
        tokio::time::timeout(PULL_TIMEOUT, self.pull_image_inner(image))
            .await
            .map_err(|_| {
                DockerError::Other(format!(
                    "no answer from the registry within {}s",
                    PULL_TIMEOUT.as_secs()
                ))
            })?
    }

    async fn pull_image_inner(&self, image: &str) -> DockerResult<()> {
        let docker = self.get().await?;
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let mut stream = docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(DockerError::from)?;
            if let Some(detail) = info.error_detail {
                return Err(DockerError::Other(detail.message.unwrap_or_default()));
            }
        }
        Ok(())
    }
}
