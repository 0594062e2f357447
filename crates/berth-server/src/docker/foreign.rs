//! Containers Berth did not make (no `berth.managed` label): what Docker says about each, for
//! import to recognise the server inside and to take it over in place; and attaching one to
//! Berth's network so linked applications reach it by name.

use std::collections::HashMap;

use bollard::models::{
    ContainerUpdateBody, EndpointSettings, NetworkConnectRequest, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{ListContainersOptions, RenameContainerOptions};

use super::{DockerClient, DockerError, DockerResult, LABEL_MANAGED};

/// What Docker tells about a container, as import needs it. `env` may hold credentials (the
/// official images' `POSTGRES_PASSWORD`): it is read for version variables only and never
/// returned, logged or stored.
#[derive(Debug, Clone, Default)]
pub struct ContainerFacts {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub image: String,
    pub running: bool,
    pub labels: HashMap<String, String>,
    /// `KEY=value`, the image's and the container's own together.
    pub env: Vec<String>,
    /// Entrypoint then command, as one argv.
    pub command: Vec<String>,
    /// TCP ports the container exposes (the image's EXPOSE and `--expose`), ascending.
    pub exposed_ports: Vec<u16>,
    /// `(container port, host ip, host port)` for every TCP port published on the host.
    pub published: Vec<(u16, String, u16)>,
    /// `(mount point inside, volume name)`; a bind mount has no volume name.
    pub mounts: Vec<(String, Option<String>)>,
    pub networks: Vec<String>,
}

impl ContainerFacts {
    /// The value of environment variable `name`, if set.
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find_map(|e| e.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
    }

    /// Host ports publishing container port `port` (any host ip).
    pub fn host_ports_of(&self, port: u16) -> Vec<u16> {
        self.published
            .iter()
            .filter(|(inside, _, _)| *inside == port)
            .map(|(_, _, host)| *host)
            .collect()
    }
}

/// `5432/tcp` -> 5432; other protocols are not servers Berth speaks to.
fn tcp_port(key: &str) -> Option<u16> {
    key.strip_suffix("/tcp")?.parse().ok()
}

impl DockerClient {
    /// Every container without Berth's label, running or not, inspected.
    pub async fn foreign_containers(&self) -> DockerResult<Vec<ContainerFacts>> {
        let ids = self
            .with(|d| async move {
                let options = ListContainersOptions {
                    all: true,
                    ..Default::default()
                };
                Ok(d.list_containers(Some(options))
                    .await?
                    .into_iter()
                    .filter(|c| {
                        !c.labels
                            .as_ref()
                            .is_some_and(|l| l.contains_key(LABEL_MANAGED))
                    })
                    .filter_map(|c| c.id)
                    .collect::<Vec<_>>())
            })
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            // Removed between the list and the inspect: not a candidate any more.
            if let Some(facts) = self.container_facts(&id).await?
                && !facts.labels.contains_key(LABEL_MANAGED)
            {
                out.push(facts);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// What Docker says about container `name_or_id`; `None` if there is none.
    pub async fn container_facts(&self, name_or_id: &str) -> DockerResult<Option<ContainerFacts>> {
        let key = name_or_id.to_string();
        self.with(|d| async move {
            let info = match d.inspect_container(&key, None).await {
                Ok(info) => info,
                Err(e) => {
                    return match DockerError::from(e) {
                        DockerError::NotFound(_) => Ok(None),
                        other => Err(other),
                    };
                }
            };
            let config = info.config.unwrap_or_default();
            let mut command = config.entrypoint.unwrap_or_default();
            command.extend(config.cmd.unwrap_or_default());
            let mut exposed_ports: Vec<u16> = config
                .exposed_ports
                .unwrap_or_default()
                .iter()
                .filter_map(|k| tcp_port(k))
                .collect();
            exposed_ports.sort_unstable();
            exposed_ports.dedup();
            let mut published = Vec::new();
            let bindings = info.host_config.and_then(|h| h.port_bindings);
            for (key, list) in bindings.unwrap_or_default() {
                let Some(inside) = tcp_port(&key) else {
                    continue;
                };
                for binding in list.unwrap_or_default() {
                    if let Some(host) = binding.host_port.as_deref().and_then(|p| p.parse().ok()) {
                        published.push((inside, binding.host_ip.unwrap_or_default(), host));
                    }
                }
            }
            published.sort();
            Ok(Some(ContainerFacts {
                id: info.id.unwrap_or_default(),
                name: info
                    .name
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                image: config.image.unwrap_or_default(),
                running: info.state.and_then(|s| s.running).unwrap_or(false),
                labels: config.labels.unwrap_or_default(),
                env: config.env.unwrap_or_default(),
                command,
                exposed_ports,
                published,
                mounts: info
                    .mounts
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|m| Some((m.destination?, m.name)))
                    .collect(),
                networks: info
                    .network_settings
                    .and_then(|n| n.networks)
                    .map(|n| n.into_keys().collect())
                    .unwrap_or_default(),
            }))
        })
        .await
    }

    /// Attaches container `name` to `network` (idempotent), so containers on that network
    /// reach it by its name. Its other networks and its published ports are left as they are.
    pub async fn connect_to_network(&self, network: &str, name: &str) -> DockerResult<()> {
        let (network, name) = (network.to_string(), name.to_string());
        self.with(|d| async move {
            let request = NetworkConnectRequest {
                container: name.clone(),
                endpoint_config: Some(EndpointSettings::default()),
            };
            match d.connect_network(&network, request).await {
                Ok(()) => Ok(()),
                Err(e) => match DockerError::from(e) {
                    // Already attached.
                    DockerError::Conflict(_) => Ok(()),
                    DockerError::Other(m) if m.contains("already exists") => Ok(()),
                    other => Err(other),
                },
            }
        })
        .await
    }

    /// Renames container `from` to `to`.
    pub async fn rename_container(&self, from: &str, to: &str) -> DockerResult<()> {
        let (from, to) = (from.to_string(), to.to_string());
        self.with(|d| async move {
            d.rename_container(&from, RenameContainerOptions { name: to })
                .await
                .map_err(Into::into)
        })
        .await
    }

    /// Sets container `name`'s restart policy (`no`, `always`, `unless-stopped`,
    /// `on-failure`), returning the one it had, so it can be put back.
    pub async fn set_restart_policy(&self, name: &str, policy: &str) -> DockerResult<String> {
        let name = name.to_string();
        let wanted = match policy {
            "always" => RestartPolicyNameEnum::ALWAYS,
            "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
            "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
            _ => RestartPolicyNameEnum::NO,
        };
        self.with(|d| async move {
            let info = d.inspect_container(&name, None).await?;
            let previous = info
                .host_config
                .and_then(|h| h.restart_policy)
                .and_then(|p| p.name)
                .map(|n| n.to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "no".into());
            let body = ContainerUpdateBody {
                restart_policy: Some(RestartPolicy {
                    name: Some(wanted),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            };
            d.update_container(&name, body).await?;
            Ok(previous)
        })
        .await
    }

    /// Names of the containers (running or not) that mount volume `volume`.
    pub async fn containers_using_volume(&self, volume: &str) -> DockerResult<Vec<String>> {
        let volume = volume.to_string();
        self.with(|d| async move {
            let options = ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([("volume".to_string(), vec![volume])])),
                ..Default::default()
            };
            Ok(d.list_containers(Some(options))
                .await?
                .into_iter()
                .filter_map(|c| c.names?.first().cloned())
                .map(|n| n.trim_start_matches('/').to_string())
                .collect())
        })
        .await
    }
}
