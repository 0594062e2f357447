//! Containers: create-or-adopt by deterministic name, start, stop, remove, inspect, list.

use std::collections::{HashMap, HashSet};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountType, NetworkingConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use futures_util::StreamExt;

use super::{
    DockerClient, DockerError, DockerResult, LABEL_INSTANCE, LABEL_MANAGED, LABEL_SERVICE_ID,
};

/// Everything needed to create a service container.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// `KEY=value` pairs. May hold credentials (the official images' contract); never logged.
    pub env: Vec<String>,
    /// Arguments to the image's entrypoint.
    pub cmd: Vec<String>,
    pub labels: HashMap<String, String>,
    pub volume: String,
    pub data_path: String,
    /// (container port, host port) pairs, published on 127.0.0.1 only.
    pub ports: Vec<(u16, u16)>,
    pub network: String,
    /// Written into the container after it is created, before it starts (secrets).
    pub files: Vec<super::ContainerFile>,
}

/// What `inspect` tells us about a container.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    pub running: bool,
    /// Docker's state word: created, running, exited, restarting, ...
    pub state: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    /// Host ports bound, with the host IP they are bound to.
    pub bindings: Vec<(String, u16)>,
    /// Names of the volumes mounted.
    pub volumes: Vec<String>,
}

impl ContainerInfo {
    /// How this container differs from `spec` in what matters to the service (image, published
    /// ports, data volume); `None` if it matches. Other differences (env, labels) are left
    /// alone, so a healthy service is never restarted for them.
    pub fn drift_from(&self, spec: &ContainerSpec) -> Option<String> {
        let mut differences = Vec::new();
        if self.image != spec.image {
            differences.push(format!("image {} instead of {}", self.image, spec.image));
        }
        let mut have: Vec<u16> = self.bindings.iter().map(|(_, p)| *p).collect();
        let mut want: Vec<u16> = spec.ports.iter().map(|(_, host)| *host).collect();
        have.sort_unstable();
        want.sort_unstable();
        if have != want {
            differences.push(format!("host ports {have:?} instead of {want:?}"));
        }
        if !self.volumes.contains(&spec.volume) {
            differences.push(format!(
                "volumes {:?} instead of {}",
                self.volumes, spec.volume
            ));
        }
        (!differences.is_empty()).then(|| differences.join(", "))
    }

    /// Whether the container was made by this Berth instance for service `service_id`.
    pub fn belongs_to(&self, spec: &ContainerSpec) -> bool {
        [LABEL_SERVICE_ID, LABEL_INSTANCE]
            .iter()
            .all(|label| self.labels.get(*label) == spec.labels.get(*label))
    }
}

/// A Berth-labelled container found by listing.
#[derive(Debug, Clone)]
pub struct ManagedContainer {
    pub name: String,
    pub service_id: Option<i64>,
    pub instance: Option<String>,
    pub state: String,
}

impl DockerClient {
    /// Creates the container, or adopts an existing container of the same name (the name is
    /// deterministic per service, so a retry after a crash finds what the first try made).
    /// Returns `true` if it was newly created.
    /// A container of the same name that this Berth did not make for this service (another
    /// program's, another Berth instance's) is refused, never adopted.
    pub async fn create_or_adopt_container(&self, spec: &ContainerSpec) -> DockerResult<bool> {
        let created = self.create_container(spec).await?;
        if !created
            && let Some(existing) = self.inspect_container(&spec.name).await?
            && !existing.belongs_to(spec)
        {
            return Err(DockerError::Conflict(format!(
                "a container named {} already exists and was not made by Berth for this service \
                 (labels {}={:?}, {}={:?}); rename or remove it, Berth will not take it over",
                spec.name,
                LABEL_SERVICE_ID,
                existing.labels.get(LABEL_SERVICE_ID),
                LABEL_INSTANCE,
                existing.labels.get(LABEL_INSTANCE),
            )));
        }
        self.write_files(&spec.name, &spec.files).await?;
        Ok(created)
    }

    async fn create_container(&self, spec: &ContainerSpec) -> DockerResult<bool> {
        let mut mounts = vec![Mount {
            target: Some(spec.data_path.clone()),
            source: Some(spec.volume.clone()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        }];
        for path in self.image_declared_volumes(&spec.image).await? {
            // Only the data path itself is covered: Docker gives a declared path below it
            // (the mongo image's /data/db under a /data mount) an anonymous volume too.
            if path.trim_end_matches('/') == spec.data_path.trim_end_matches('/') {
                continue;
            }
            let name = super::resources::image_volume_name(&spec.volume, &path);
            self.ensure_volume(&name, spec.labels.clone()).await?;
            mounts.push(Mount {
                target: Some(path),
                source: Some(name),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            });
        }
        let spec = spec.clone();
        self.with(|d| async move {
            let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
                .ports
                .iter()
                .map(|(inner, host)| {
                    (
                        format!("{inner}/tcp"),
                        Some(vec![PortBinding {
                            host_ip: Some("127.0.0.1".into()),
                            host_port: Some(host.to_string()),
                        }]),
                    )
                })
                .collect();
            let exposed: Vec<String> = spec.ports.iter().map(|(p, _)| format!("{p}/tcp")).collect();
            let body = ContainerCreateBody {
                image: Some(spec.image.clone()),
                env: Some(spec.env.clone()),
                cmd: if spec.cmd.is_empty() {
                    None
                } else {
                    Some(spec.cmd.clone())
                },
                labels: Some(spec.labels.clone()),
                hostname: Some(spec.name.clone()),
                exposed_ports: Some(exposed),
                host_config: Some(HostConfig {
                    port_bindings: Some(port_bindings),
                    mounts: Some(mounts),
                    restart_policy: Some(RestartPolicy {
                        name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                        maximum_retry_count: None,
                    }),
                    network_mode: Some(spec.network.clone()),
                    ..Default::default()
                }),
                networking_config: Some(NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(
                        spec.network.clone(),
                        EndpointSettings {
                            aliases: Some(vec![spec.name.clone()]),
                            ..Default::default()
                        },
                    )])),
                }),
                ..Default::default()
            };
            let options = CreateContainerOptions {
                name: Some(spec.name.clone()),
                ..Default::default()
            };
            match d.create_container(Some(options), body).await {
                Ok(_) => Ok(true),
                Err(e) => match DockerError::from(e) {
                    DockerError::Conflict(_) => Ok(false),
                    other => Err(other),
                },
            }
        })
        .await
    }

    /// The paths `image` declares with `VOLUME` (empty if the image is not present: creating
    /// the container will then fail with Docker's own message).
    async fn image_declared_volumes(&self, image: &str) -> DockerResult<Vec<String>> {
        let image = image.to_string();
        self.with(|d| async move {
            match d.inspect_image(&image).await {
                Ok(inspected) => {
                    // Docker keeps them in a map: sorted, so every container of a service gets
                    // its mounts in the same order.
                    let mut paths = inspected.config.and_then(|c| c.volumes).unwrap_or_default();
                    paths.sort();
                    Ok(paths)
                }
                Err(e) => match DockerError::from(e) {
                    DockerError::NotFound(_) => Ok(Vec::new()),
                    other => Err(other),
                },
            }
        })
        .await
    }

    /// Starts a container; already running is fine.
    pub async fn start_container(&self, name: &str) -> DockerResult<()> {
        let name = name.to_string();
        self.with(|d| async move {
            match d.start_container(&name, None).await {
                Ok(()) => Ok(()),
                // 304 Not Modified: already started.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 304, ..
                }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Stops a container gracefully (SIGTERM/STOPSIGNAL, then SIGKILL after `timeout_secs`).
    pub async fn stop_container(&self, name: &str, timeout_secs: i32) -> DockerResult<()> {
        let name = name.to_string();
        self.with(|d| async move {
            let options = StopContainerOptions {
                t: Some(timeout_secs),
                signal: None,
            };
            match d.stop_container(&name, Some(options)).await {
                Ok(()) => Ok(()),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 304, ..
                }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Force-removes a container; a missing container is not an error.
    pub async fn remove_container(&self, name: &str) -> DockerResult<()> {
        let name = name.to_string();
        self.with(|d| async move {
            let options = RemoveContainerOptions {
                force: true,
                v: false,
                link: false,
            };
            match d.remove_container(&name, Some(options)).await {
                Ok(()) => Ok(()),
                Err(e) => match DockerError::from(e) {
                    DockerError::NotFound(_) => Ok(()),
                    // "removal already in progress"
                    DockerError::Conflict(_) => Ok(()),
                    other => Err(other),
                },
            }
        })
        .await
    }

    /// Inspects a container; `None` if it does not exist.
    pub async fn inspect_container(&self, name: &str) -> DockerResult<Option<ContainerInfo>> {
        let name = name.to_string();
        self.with(|d| async move {
            let info = match d.inspect_container(&name, None).await {
                Ok(info) => info,
                Err(e) => {
                    return match DockerError::from(e) {
                        DockerError::NotFound(_) => Ok(None),
                        other => Err(other),
                    };
                }
            };
            let state = info.state.as_ref();
            let bindings = info
                .host_config
                .as_ref()
                .and_then(|h| h.port_bindings.as_ref())
                .map(|map| {
                    map.values()
                        .flatten()
                        .flatten()
                        .filter_map(|b| {
                            let port = b.host_port.as_deref()?.parse().ok()?;
                            Some((b.host_ip.clone().unwrap_or_default(), port))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(Some(ContainerInfo {
                id: info.id.clone().unwrap_or_default(),
                running: state.and_then(|s| s.running).unwrap_or(false),
                state: state
                    .and_then(|s| s.status)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                image: info
                    .config
                    .as_ref()
                    .and_then(|c| c.image.clone())
                    .unwrap_or_default(),
                labels: info
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.clone())
                    .unwrap_or_default(),
                bindings,
                volumes: info
                    .mounts
                    .as_ref()
                    .map(|mounts| mounts.iter().filter_map(|m| m.name.clone()).collect())
                    .unwrap_or_default(),
            }))
        })
        .await
    }

    /// All containers (running or not) carrying `berth.managed=true`.
    pub async fn list_managed_containers(&self) -> DockerResult<Vec<ManagedContainer>> {
        self.with(|d| async move {
            let options = ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([(
                    "label".to_string(),
                    vec![format!("{LABEL_MANAGED}=true")],
                )])),
                ..Default::default()
            };
            let list = d.list_containers(Some(options)).await?;
            Ok(list
                .into_iter()
                .map(|c| {
                    let labels = c.labels.unwrap_or_default();
                    ManagedContainer {
                        name: c
                            .names
                            .and_then(|n| n.first().cloned())
                            .unwrap_or_default()
                            .trim_start_matches('/')
                            .to_string(),
                        service_id: labels.get(LABEL_SERVICE_ID).and_then(|v| v.parse().ok()),
                        instance: labels.get(LABEL_INSTANCE).cloned(),
                        state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    }
                })
                .collect())
        })
        .await
    }

    /// Host ports published by any container (running or not: a stopped container gets its
    /// ports back when it starts, so they count as taken).
    pub async fn published_ports(&self) -> DockerResult<HashSet<u16>> {
        self.with(|d| async move {
            let options = ListContainersOptions {
                all: true,
                ..Default::default()
            };
            let mut ports = HashSet::new();
            for c in d.list_containers(Some(options)).await? {
                for p in c.ports.unwrap_or_default() {
                    if let Some(public) = p.public_port {
                        ports.insert(public);
                    }
                }
                // Stopped containers list no ports; their bindings live in the host config.
                if let Some(id) = c.id
                    && c.state.map(|s| s.to_string()) != Some("running".into())
                    && let Ok(info) = d.inspect_container(&id, None).await
                    && let Some(map) = info.host_config.and_then(|h| h.port_bindings)
                {
                    for binding in map.values().flatten().flatten() {
                        if let Some(port) =
                            binding.host_port.as_deref().and_then(|p| p.parse().ok())
                        {
                            ports.insert(port);
                        }
                    }
                }
            }
            Ok(ports)
        })
        .await
    }

    /// The last `lines` lines of a container's output, to explain a failed start.
    pub async fn container_logs_tail(&self, name: &str, lines: usize) -> DockerResult<String> {
        let name = name.to_string();
        self.with(|d| async move {
            let options = LogsOptions {
                stdout: true,
                stderr: true,
                tail: lines.to_string(),
                ..Default::default()
            };
            let mut stream = d.logs(&name, Some(options));
            let mut out = String::new();
            while let Some(chunk) = stream.next().await {
                out.push_str(&chunk?.to_string());
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "berth-redis-a".into(),
            image: "berth/redis:7".into(),
            env: vec!["A=1".into()],
            cmd: vec![],
            labels: HashMap::from([
                (LABEL_SERVICE_ID.to_string(), "3".to_string()),
                (LABEL_INSTANCE.to_string(), "abc".to_string()),
            ]),
            volume: "berth-redis-a-data".into(),
            data_path: "/data".into(),
            ports: vec![(6379, 6380)],
            network: "berth".into(),
            files: vec![],
        }
    }

    fn matching() -> ContainerInfo {
        ContainerInfo {
            id: "x".into(),
            running: true,
            state: "running".into(),
            image: "berth/redis:7".into(),
            labels: spec().labels,
            bindings: vec![("127.0.0.1".into(), 6380)],
            volumes: vec!["berth-redis-a-data".into()],
        }
    }

    #[test]
    fn only_image_ports_and_volume_count_as_drift() {
        assert_eq!(matching().drift_from(&spec()), None);
        let mut other_env = spec();
        other_env.env = vec!["A=2".into()];
        assert_eq!(
            matching().drift_from(&other_env),
            None,
            "env never restarts"
        );
        let mut moved = matching();
        moved.bindings = vec![("127.0.0.1".into(), 7000)];
        assert!(moved.drift_from(&spec()).unwrap().contains("host ports"));
        let mut retagged = matching();
        retagged.image = "redis:7".into();
        assert!(retagged.drift_from(&spec()).unwrap().contains("image"));
        let mut other_volume = matching();
        other_volume.volumes = vec!["elsewhere".into()];
        assert!(
            other_volume
                .drift_from(&spec())
                .unwrap()
                .contains("volumes")
        );
    }

    #[test]
    fn ownership_needs_both_service_and_instance_labels() {
        assert!(matching().belongs_to(&spec()));
        let mut foreign = matching();
        foreign.labels.clear();
        assert!(!foreign.belongs_to(&spec()));
        let mut other_instance = matching();
        other_instance
            .labels
            .insert(LABEL_INSTANCE.to_string(), "zzz".into());
        assert!(!other_instance.belongs_to(&spec()));
    }
}
