//! Work on a service's data that its server must not see happen: the service's container is
//! stopped (gracefully), a one-shot container of the same image with the same volumes runs a
//! fixed argv (never a shell line built from input), and the service's container is started
//! again whatever the command did. A restore that swaps data files in uses it.

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;

use super::{DockerClient, DockerError, DockerResult};

impl DockerClient {
    /// Stops `container`, runs `argv` in a one-shot container with its image and volumes as
    /// `user`, starts `container` again. `Ok(Err(why))` if the command failed.
    pub async fn run_offline(
        &self,
        container: &str,
        argv: &[&str],
        user: Option<&str>,
        stop_timeout_secs: i32,
    ) -> DockerResult<Result<(), String>> {
        let info = self
            .inspect_container(container)
            .await?
            .ok_or_else(|| DockerError::NotFound(format!("container {container}")))?;
        self.stop_container(container, stop_timeout_secs).await?;
        let outcome = self.one_shot(container, &info.image, argv, user).await;
        // Started again in every case: the service must not stay down because of its data work.
        let started = self.start_container(container).await;
        let outcome = outcome?;
        started?;
        Ok(outcome)
    }

    async fn one_shot(
        &self,
        container: &str,
        image: &str,
        argv: &[&str],
        user: Option<&str>,
    ) -> DockerResult<Result<(), String>> {
        let name = format!("{container}-offline");
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(argv.iter().map(|s| s.to_string()).collect()),
            cmd: Some(Vec::new()),
            user: user.map(str::to_string),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                volumes_from: Some(vec![container.to_string()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        // A leftover from an interrupted run of the same work goes first.
        self.remove_container(&name).await?;
        let created_name = name.clone();
        self.with(|d| async move {
            d.create_container(
                Some(CreateContainerOptions {
                    name: Some(created_name),
                    platform: String::new(),
                }),
                body,
            )
            .await?;
            Ok(())
        })
        .await?;
        let run = async {
            self.start_container(&name).await?;
            let waited_name = name.clone();
            let code = self
                .with(|d| async move {
                    let mut waits = d.wait_container(&waited_name, None::<WaitContainerOptions>);
                    let mut code = -1;
                    while let Some(next) = waits.next().await {
                        match next {
                            Ok(response) => code = response.status_code,
                            // bollard reports a non-zero exit as an error carrying the code.
                            Err(bollard::errors::Error::DockerContainerWaitError {
                                code: c,
                                ..
                            }) => code = c,
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Ok(code)
                })
                .await?;
            if code == 0 {
                return Ok(Ok(()));
            }
            let logs = self.container_logs_tail(&name, 8).await.unwrap_or_default();
            Ok(Err(format!("exit code {code}: {}", logs.trim())))
        }
        .await;
        let removed_name = name.clone();
        let _ = self
            .with(|d| async move {
                d.remove_container(
                    &removed_name,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: false,
                        link: false,
                    }),
                )
                .await?;
                Ok(())
            })
            .await;
        run
    }
}
