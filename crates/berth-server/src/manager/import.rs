//! Import: a server the user already runs in a container of their own becomes a Berth service
//! (health, links, backups) without Berth recreating anything. Berth cannot read credentials
//! out of a container, so the given ones are verified by connecting before anything is
//! recorded; the container is attached to Berth's network so linked applications reach it by
//! name, and recorded with `origin = imported`, which every path that would recreate or remove
//! a container honours (`lifecycle.rs`, `delete.rs`, `reconfigure.rs`, the reconciler).

use std::sync::Arc;

use berth_core::Parameters;
use berth_core::params::{self, DOCKER_IMAGE};
use serde::{Deserialize, Serialize};

use super::{ManagerError, ManagerResult, ServiceManager};
use crate::docker::{ContainerFacts, LABEL_MANAGED};
use crate::engines::{Engine, recognize};
use crate::store::{self, NewService, Service};

/// A container that could be imported (Temps' `AvailableContainerInfo`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AvailableContainer {
    /// Docker's full container id (its name is accepted too).
    pub container_id: String,
    pub container_name: String,
    pub image: String,
    /// The server version its image says it runs (`PG_MAJOR`, `REDIS_VERSION`, else the image
    /// tag's leading number); empty if neither tells.
    pub version: String,
    /// The service type it was recognised as, from what it runs, its image's environment and
    /// its exposed ports (not from the image name alone).
    pub service_type: String,
    pub is_running: bool,
    /// TCP ports the container exposes.
    pub exposed_ports: Vec<u16>,
}

/// `POST /external-services/import` (Temps' body).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ImportRequest {
    /// The container's id (or a unique prefix of it) or name.
    pub container_id: String,
    /// The service's name in Berth (same rules as a create's).
    pub name: String,
    pub service_type: String,
    /// The major version the caller expects it to run; refused if the container says another.
    #[serde(default)]
    pub version: Option<String>,
    /// The server's credentials and where it listens on this host: `port` (the host port
    /// its container publishes; found by Berth if omitted), `host` (`localhost`), and the
    /// engine's credential parameters (`username`, `password`, `database` for PostgreSQL).
    #[serde(default, deserialize_with = "berth_core::params::deserialize_loose")]
    #[schema(value_type = std::collections::BTreeMap<String, super::ParamValue>)]
    pub parameters: Parameters,
}

/// Hosts under which a server published on this machine is reached: Berth connects through
/// 127.0.0.1 to the port the container publishes.
const LOCAL_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1", "0.0.0.0"];

impl ServiceManager {
    /// Containers Berth did not make that run a server it knows, running or not.
    pub async fn available_containers(&self) -> ManagerResult<Vec<AvailableContainer>> {
        let imported = self.imported_container_names().await?;
        Ok(self
            .docker
            .foreign_containers()
            .await?
            .into_iter()
            .filter(|c| !imported.contains(&c.name))
            .filter_map(|c| {
                let found = recognize::recognize(&c)?;
                Some(AvailableContainer {
                    version: recognize::detected_version(found.engine, &c),
                    service_type: found.engine.service_type().to_string(),
                    container_id: c.id,
                    container_name: c.name,
                    image: c.image,
                    is_running: c.running,
                    exposed_ports: c.exposed_ports,
                })
            })
            .collect())
    }

    async fn imported_container_names(&self) -> ManagerResult<Vec<String>> {
        Ok(self
            .store
            .list_services()
            .await?
            .into_iter()
            .filter(Service::is_imported)
            .map(|s| s.container_name)
            .collect())
    }

    /// Verifies and records an import. Nothing is written before every check passed; the
    /// only change to the container is joining Berth's network.
    pub async fn import(self: &Arc<Self>, request: ImportRequest) -> ManagerResult<Service> {
        self.refuse_if_shutting_down()?;
        let engine = super::create::engine_for_new_service(&request.service_type, &request.name)?;
        let facts = self
            .importable_container(engine, &request.container_id)
            .await?;
        let mut given = request.parameters.clone();
        check_host(given.remove("host"), &facts)?;
        if let Some(image) = given.remove(DOCKER_IMAGE)
            && image != facts.image
        {
            return Err(ManagerError::BadRequest(format!(
                "docker_image {image:?} is not what container {} runs ({}); leave it out",
                facts.name, facts.image
            )));
        }
        let port = published_port(engine, &facts, given.get("port"))?;
        given.insert("port".into(), port.to_string());
        let mut parameters = params::validate_import(engine.params(), &given)?;
        parameters.insert(DOCKER_IMAGE.into(), facts.image.clone());
        check_version(engine, &facts, request.version.as_deref())?;

        // The name is checked again by the insert's unique key; this gives the clear message.
        if self
            .store
            .list_services()
            .await?
            .iter()
            .any(|s| s.name == request.name)
        {
            return Err(super::create::duplicate(&request.name));
        }
        engine.probe(port, &parameters).await.map_err(|reason| {
            ManagerError::BadRequest(format!(
                "could not verify the credentials: connecting to {} in container {} through \
                 127.0.0.1:{port} with the given parameters failed: {reason}",
                engine.display_name(),
                facts.name
            ))
        })?;
        self.docker.ensure_network(&self.config.network).await?;
        self.docker
            .connect_to_network(&self.config.network, &facts.name)
            .await?;
        let (public, secret): (Parameters, Parameters) = parameters
            .into_iter()
            .partition(|(k, _)| !engine.params().iter().any(|s| s.name == k && s.is_secret()));
        let service = self
            .store
            .insert_imported_service(NewService {
                name: &request.name,
                service_type: engine.service_type(),
                parameters: &public,
                secrets: &secret,
                container_name: &facts.name,
                volume_name: &data_volume(engine, &facts),
            })
            .await
            .map_err(|e| {
                if store::is_unique_violation(&e) {
                    super::create::duplicate(&request.name)
                } else {
                    e.into()
                }
            })?;
        tracing::info!(
            service_id = service.id,
            container = %facts.name,
            service_type = engine.service_type(),
            "imported a container"
        );
        Ok(service)
    }

    /// The container to import: it exists, is not Berth's or already imported, runs a server
    /// of `engine`'s type and is running (its credentials can only be checked then).
    async fn importable_container(
        &self,
        engine: &dyn Engine,
        container_id: &str,
    ) -> ManagerResult<ContainerFacts> {
        let unknown = || {
            ManagerError::BadRequest(format!(
                "no container {container_id:?} on this Docker engine; GET \
                 /api/external-services/available-containers lists what can be imported"
            ))
        };
        if !is_container_reference(container_id) {
            return Err(unknown());
        }
        let facts = self
            .docker
            .container_facts(container_id)
            .await?
            .ok_or_else(unknown)?;
        if facts.labels.contains_key(LABEL_MANAGED) {
            return Err(ManagerError::Conflict(format!(
                "container {} was made by Berth; it is a Berth service already",
                facts.name
            )));
        }
        if let Some(existing) = self
            .store
            .list_services()
            .await?
            .into_iter()
            .find(|s| s.container_name == facts.name)
        {
            return Err(ManagerError::Conflict(format!(
                "container {} is already imported as service {:?} (id {})",
                facts.name, existing.name, existing.id
            )));
        }
        if recognize::score(engine, &facts) < recognize::THRESHOLD {
            let actually = recognize::recognize(&facts)
                .map(|r| format!(" (it looks like {})", r.engine.display_name()))
                .unwrap_or_default();
            return Err(ManagerError::BadRequest(format!(
                "container {} ({}) does not run a {} server{actually}: neither its command, its \
                 image's environment nor its exposed ports say so",
                facts.name,
                facts.image,
                engine.display_name()
            )));
        }
        if !facts.running {
            return Err(ManagerError::BadRequest(format!(
                "container {} is not running; start it (`docker start {}`) so Berth can verify \
                 the credentials",
                facts.name, facts.name
            )));
        }
        Ok(facts)
    }
}

/// A container id (or prefix) or name as Docker writes them (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`):
/// anything else never reaches Docker's API, whose paths it would otherwise become part of.
fn is_container_reference(text: &str) -> bool {
    let mut bytes = text.bytes();
    text.len() <= 128
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `host` must name this machine: Berth reaches the server through the port its container
/// publishes here. The container's own name is accepted too.
fn check_host(host: Option<String>, facts: &ContainerFacts) -> ManagerResult<()> {
    match host {
        None => Ok(()),
        Some(h) if h.is_empty() || LOCAL_HOSTS.contains(&h.as_str()) || h == facts.name => Ok(()),
        Some(h) => Err(ManagerError::BadRequest(format!(
            "host {h:?}: Berth imports containers on its own Docker engine and reaches them \
             through the port they publish on this machine; use \"localhost\""
        ))),
    }
}

/// The host port publishing the engine's server port: the given one, which must be among the
/// container's, or the container's first.
fn published_port(
    engine: &dyn Engine,
    facts: &ContainerFacts,
    given: Option<&String>,
) -> ManagerResult<u16> {
    let (inside, _) = engine.ports().first().copied().unwrap_or((0, ""));
    let published = facts.host_ports_of(inside);
    let listed = published
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match given {
        Some(text) => {
            let port: u16 = text.parse().map_err(|_| {
                ManagerError::BadRequest(format!("port {text:?} is not a port number"))
            })?;
            if published.contains(&port) {
                Ok(port)
            } else if published.is_empty() {
                Err(not_published(engine, facts, inside))
            } else {
                Err(ManagerError::BadRequest(format!(
                    "container {} does not publish port {port} for {}'s port {inside}; it \
                     publishes {listed}",
                    facts.name,
                    engine.display_name()
                )))
            }
        }
        None => published
            .first()
            .copied()
            .ok_or_else(|| not_published(engine, facts, inside)),
    }
}

fn not_published(engine: &dyn Engine, facts: &ContainerFacts, inside: u16) -> ManagerError {
    ManagerError::BadRequest(format!(
        "container {} publishes no host port for {}'s port {inside}; Berth reaches servers \
         through a port published on this machine: recreate the container with \
         `-p 127.0.0.1:<port>:{inside}` on the same volume, then import it",
        facts.name,
        engine.display_name()
    ))
}

/// A `version` the caller expects must match the container's major version, when known.
fn check_version(
    engine: &dyn Engine,
    facts: &ContainerFacts,
    expected: Option<&str>,
) -> ManagerResult<()> {
    let Some(expected) = expected.filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let detected = recognize::detected_version(engine, facts);
    let major = |v: &str| v.split('.').next().unwrap_or_default().to_string();
    if detected.is_empty() || major(&detected) == major(expected) {
        Ok(())
    } else {
        Err(ManagerError::BadRequest(format!(
            "version {expected:?} was given, but container {} runs {} {detected}",
            facts.name,
            engine.display_name()
        )))
    }
}

/// The volume holding the server's data (mounted at the engine's data path or above it);
/// empty for a bind mount or none, which Berth then never touches either.
fn data_volume(engine: &dyn Engine, facts: &ContainerFacts) -> String {
    let data = engine.data_path();
    facts
        .mounts
        .iter()
        .filter(|(inside, _)| data == inside || data.starts_with(&format!("{inside}/")))
        .max_by_key(|(inside, _)| inside.len())
        .and_then(|(_, volume)| volume.clone())
        .unwrap_or_default()
}

/// 409 for a change that needs a new container when `service` is an imported one: Berth
/// never recreates a container it did not make. `Ok` for Berth's own.
pub(super) fn refuse_if_imported(service: &Service, change: &str) -> ManagerResult<()> {
    if !service.is_imported() {
        return Ok(());
    }
    Err(ManagerError::Conflict(format!(
        "service {:?} runs in container {}, which you imported: {change} needs a new container, \
         and Berth never recreates a container it did not make. Hand it over first with POST \
         /api/external-services/{id}/adopt (`berth service adopt {name}`: Berth runs its own \
         container on the same volume and keeps yours, stopped), or make the change on your \
         container yourself",
        service.name,
        service.container_name,
        id = service.id,
        name = service.name
    )))
}

#[cfg(test)]
mod tests {
    use super::is_container_reference;

    #[test]
    fn only_docker_shaped_references_reach_docker() {
        for good in ["my-postgres", "abc123def456", "db_1.main", "A"] {
            assert!(is_container_reference(good), "{good}");
        }
        for bad in [
            "",
            "-x",
            ".",
            "x/../../images/json",
            "a?b",
            "a b",
            "ü",
            &"a".repeat(129),
        ] {
            assert!(!is_container_reference(bad), "{bad}");
        }
    }
}
