//! Images: existence checks, builds from an in-memory tar context, and `docker import` of a
//! root filesystem tar stream (for the debootstrapped base image).

use std::collections::HashMap;

use bollard::query_parameters::{BuildImageOptions, CreateImageOptions};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{DockerClient, DockerError, DockerResult};

use std::time::Duration;

/// A pull gives up when the registry sends no progress for this long (an unreachable registry
/// otherwise keeps a request waiting on DNS and TCP timeouts) ...
const PULL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// ... or when it takes longer than this in total, however steady its progress.
const PULL_TOTAL_TIMEOUT: Duration = Duration::from_secs(60 * 60);

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
    /// Pulls an image from its registry. A large image may take long: the pull fails only when
    /// no progress message arrives for `PULL_IDLE_TIMEOUT`, or after `PULL_TOTAL_TIMEOUT`.
    pub async fn pull_image(&self, image: &str) -> DockerResult<()> {
        let docker = self.get().await?;
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let stream = docker.create_image(Some(options), None, None);
        drain_with_timeouts(stream, PULL_IDLE_TIMEOUT, PULL_TOTAL_TIMEOUT, |item| {
            let info = item.map_err(DockerError::from)?;
            match info.error_detail {
                Some(detail) => Err(DockerError::Other(detail.message.unwrap_or_default())),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| e.into_docker_error(image))
    }
}

/// Why a stream drained with [`drain_with_timeouts`] stopped early.
#[derive(Debug)]
enum DrainError {
    Idle(Duration),
    Total(Duration),
    Item(DockerError),
}

impl DrainError {
    fn into_docker_error(self, image: &str) -> DockerError {
        match self {
            DrainError::Idle(t) => DockerError::Other(format!(
                "pulling {image}: no progress from the registry for {}s",
                t.as_secs()
            )),
            DrainError::Total(t) => DockerError::Other(format!(
                "pulling {image}: not finished after {}s",
                t.as_secs()
            )),
            DrainError::Item(e) => e,
        }
    }
}

/// Reads `stream` to its end, handing each item to `on_item`; fails when no item arrives
/// for `idle` (inactivity) or when the whole takes longer than `total`.
async fn drain_with_timeouts<S, T>(
    stream: S,
    idle: Duration,
    total: Duration,
    mut on_item: impl FnMut(T) -> DockerResult<()>,
) -> Result<(), DrainError>
where
    S: Stream<Item = T>,
{
    let drain = async {
        let mut stream = std::pin::pin!(stream);
        loop {
            match tokio::time::timeout(idle, stream.next()).await {
                Err(_) => return Err(DrainError::Idle(idle)),
                Ok(None) => return Ok(()),
                Ok(Some(item)) => on_item(item).map_err(DrainError::Item)?,
            }
        }
    };
    tokio::time::timeout(total, drain)
        .await
        .map_err(|_| DrainError::Total(total))?
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_millis(300);
    const TOTAL: Duration = Duration::from_secs(20);

    /// `count` items, one every `every`.
    fn steady(count: usize, every: Duration) -> impl Stream<Item = ()> {
        futures_util::stream::unfold(count, move |left| async move {
            if left == 0 {
                return None;
            }
            tokio::time::sleep(every).await;
            Some(((), left - 1))
        })
    }

    #[tokio::test]
    async fn a_long_pull_with_steady_progress_succeeds() {
        // 20 progress messages 100ms apart: 2s in all, far longer than the idle timeout, which a
        // timeout on the total (as pulls had) of that length would have cut.
        let mut seen = 0;
        drain_with_timeouts(steady(20, Duration::from_millis(100)), IDLE, TOTAL, |()| {
            seen += 1;
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(seen, 20);
    }

    #[tokio::test]
    async fn a_stalled_pull_fails_after_the_idle_timeout() {
        let stalled =
            steady(2, Duration::from_millis(10)).chain(steady(1, Duration::from_secs(3600)));
        let started = std::time::Instant::now();
        let result = drain_with_timeouts(stalled, IDLE, TOTAL, |()| Ok(())).await;
        assert!(matches!(result, Err(DrainError::Idle(_))), "{result:?}");
        let waited = started.elapsed();
        assert!(waited >= IDLE && waited < TOTAL / 2, "{waited:?}");
    }

    #[tokio::test]
    async fn steady_progress_still_ends_at_the_total_cap() {
        let endless = steady(usize::MAX, Duration::from_millis(20));
        let result = drain_with_timeouts(
            endless,
            Duration::from_secs(5),
            Duration::from_millis(500),
            |()| Ok(()),
        )
        .await;
        assert!(matches!(result, Err(DrainError::Total(_))), "{result:?}");
    }

    #[tokio::test]
    async fn an_error_item_stops_the_drain() {
        let result = drain_with_timeouts(steady(3, Duration::from_millis(1)), IDLE, TOTAL, |()| {
            Err(DockerError::Other("manifest unknown".into()))
        })
        .await;
        assert!(matches!(result, Err(DrainError::Item(_))), "{result:?}");
    }

    #[test]
    fn pull_limits_are_generous() {
        assert!(PULL_IDLE_TIMEOUT >= Duration::from_secs(30));
        assert!(PULL_TOTAL_TIMEOUT >= Duration::from_secs(30 * 60));
    }
}
