//! Create: validate, choose ports, record the intent, then image -> network -> volume ->
//! container -> start -> readiness. Any failure undoes everything, so a failed create leaves
//! neither a row nor a container nor a volume.

use berth_core::params::DOCKER_IMAGE;
use std::collections::HashMap;
use std::sync::Arc;

use berth_core::{Parameters, names, params};
use serde::Deserialize;

use super::{ManagerError, ManagerResult, ServiceManager, Started};
use crate::docker::LABEL_MANAGED;
use crate::engines::{self, Engine};
use crate::store::{self, NewService, OpKind, Service};

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// Service name: lowercase letters, digits and `-`, starting with a letter and not ending
    /// with `-`, at most 48 characters (`berth-<type>-<name>` must fit a DNS label).
    #[schema(
        pattern = "^[a-z]([a-z0-9-]*[a-z0-9])?$",
        min_length = 1,
        max_length = 48
    )]
    pub name: String,
    /// One of the service types `GET /external-services/types` lists.
    pub service_type: String,
    /// Engine version (Temps' field): a major version such as `15`, or `15.x`. Without
    /// `docker_image` it picks the image of that version (`GET
    /// /external-services/types/{service_type}/parameters` names the default image; an
    /// unavailable version is refused with the list of available ones); with `docker_image`
    /// it must match that image's tag.
    #[serde(default)]
    pub version: Option<String>,
    /// Parameter values as strings (`"5432"`); JSON numbers and booleans are accepted too.
    #[serde(default, deserialize_with = "berth_core::params::deserialize_loose")]
    #[schema(value_type = std::collections::BTreeMap<String, ParamValue>)]
    pub parameters: Parameters,
}

/// A parameter value on the wire: a string, or a number or boolean standing for its text.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ParamValue {
    Text(String),
    Integer(i64),
    Number(f64),
    Boolean(bool),
}

impl ParamValue {
    /// The text the value stands for (`5432` for `5432` and `"5432"`).
    pub fn into_text(self) -> String {
        match self {
            ParamValue::Text(text) => text,
            ParamValue::Integer(n) => n.to_string(),
            ParamValue::Number(n) => n.to_string(),
            ParamValue::Boolean(b) => b.to_string(),
        }
    }
}

impl ServiceManager {
    /// Validates and records a create, then runs it in the background.
    pub async fn create(
        self: &Arc<Self>,
        request: CreateRequest,
    ) -> ManagerResult<(Service, Started)> {
        // Before the row is written: the claim below would refuse too, but too late.
        self.refuse_if_shutting_down()?;
        let engine = engine_for_new_service(&request.service_type, &request.name)?;
        let mut params = params::validate_create(engine.params(), &request.parameters)?;
        if let Some(version) = &request.version {
            let image = self.image_for_version(engine, version, params.get(DOCKER_IMAGE))?;
            params.insert(DOCKER_IMAGE.to_string(), image);
        }
        params
            .entry(DOCKER_IMAGE.to_string())
            .or_insert_with(|| self.default_image(engine));

        let (service, operation) = {
            let _ports = self.port_lock.lock().await;
            if self
                .store
                .list_services()
                .await?
                .iter()
                .any(|s| s.name == request.name)
            {
                return Err(duplicate(&request.name));
            }
            self.assign_ports(engine, &mut params, &request.parameters, None)
                .await?;
            let volume = names::volume_name(engine.service_type(), &request.name);
            if self.docker.volume_exists(&volume).await? {
                // Kept from a deleted service (`?keep_data=true`): its data was written with
                // other credentials, so adopting it would never become ready.
                return Err(ManagerError::Conflict(format!(
                    "volume {volume} already exists (data kept from a deleted service?); remove it with \
                     `docker volume rm {volume}` or choose another name"
                )));
            }
            let (public, secret): (Parameters, Parameters) = params
                .into_iter()
                .partition(|(k, _)| !engine.params().iter().any(|s| s.name == k && s.is_secret()));
            let container = names::container_name(engine.service_type(), &request.name);
            let volume = names::volume_name(engine.service_type(), &request.name);
            self.store
                .insert_service_intent(
                    NewService {
                        name: &request.name,
                        service_type: engine.service_type(),
                        parameters: &public,
                        secrets: &secret,
                        container_name: &container,
                        volume_name: &volume,
                    },
                    &serde_json::json!({}),
                )
                .await
                .map_err(|e| {
                    if store::is_unique_violation(&e) {
                        duplicate(&request.name)
                    } else {
                        e.into()
                    }
                })?
        };
        tracing::info!(service_id = service.id, name = %service.name, service_type = %service.service_type, "creating service");
        let guard = self.claim(service.id, OpKind::Create).await?;
        let manager = self.clone();
        let svc = service.clone();
        let op_id = operation.id;
        let started = self.spawn_operation(operation, guard, async move {
            match manager.run_create(engine, &svc, op_id).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    manager.step(op_id, "rolling back").await;
                    if let Err(undo) = manager.undo_create(&svc).await {
                        tracing::error!(
                            service_id = svc.id,
                            "rolling back create failed, the reconciler will retry: {undo}"
                        );
                    }
                    Err(e.map_message(|m| super::redact(&m, &svc)))
                }
            }
        });
        Ok((service, started))
    }

    /// The versions a create's `version` may name, each with the image it picks: the major of
    /// the (configured) default image, then of Berth's own image when that differs, then of
    /// Berth's older images.
    pub fn available_versions(&self, engine: &dyn Engine) -> Vec<(u32, String)> {
        let mut out: Vec<(u32, String)> = Vec::new();
        let older = engine.older_images().iter().map(|(_, r)| r.reference());
        let images = [self.default_image(engine), engine.default_image()]
            .into_iter()
            .chain(older);
        for image in images {
            if let Some(major) = params::image_major(&image)
                && !out.iter().any(|(m, _)| *m == major)
            {
                out.push((major, image));
            }
        }
        out
    }

    /// The image a create's `version` picks; with an explicit `docker_image`, that image if its
    /// tag has the same major version.
    fn image_for_version(
        &self,
        engine: &dyn Engine,
        version: &str,
        docker_image: Option<&String>,
    ) -> ManagerResult<String> {
        let available = self.available_versions(engine);
        let listing = available
            .iter()
            .map(|(major, image)| format!("{major} ({image})"))
            .collect::<Vec<_>>()
            .join(", ");
        let major = parse_version(version).ok_or_else(|| {
            ManagerError::BadRequest(format!(
                "version {version:?} is not a major version such as \"15\" or \"15.x\"; \
                 available {} versions: {listing}",
                engine.service_type()
            ))
        })?;
        if let Some(image) = docker_image {
            return match params::image_major(image) {
                Some(m) if m == major => Ok(image.clone()),
                _ => Err(ManagerError::BadRequest(format!(
                    "version {version:?} does not match docker_image {image:?}; give one of them, \
                     or an image whose tag starts with {major}"
                ))),
            };
        }
        available
            .into_iter()
            .find(|(m, _)| *m == major)
            .map(|(_, image)| image)
            .ok_or_else(|| {
                ManagerError::BadRequest(format!(
                    "version {version:?} of {} is not available here; available versions: {listing} \
                     (or give docker_image)",
                    engine.service_type()
                ))
            })
    }

    async fn run_create(
        &self,
        engine: &dyn Engine,
        service: &Service,
        op_id: i64,
    ) -> ManagerResult<()> {
        let spec = self.container_spec(engine, service);
        self.step(op_id, &format!("preparing image {}", spec.image))
            .await;
        let images = &self.images;
        let progress = |line: &str| tracing::info!(service_id = service.id, "{line}");
        images.ensure(&spec.image, &progress).await?;
        self.step(op_id, "creating network and volume").await;
        self.docker.ensure_network(&self.config.network).await?;
        self.docker
            .ensure_volume(
                &spec.volume,
                HashMap::from([
                    (LABEL_MANAGED.to_string(), "true".to_string()),
                    (
                        crate::docker::LABEL_SERVICE_ID.to_string(),
                        service.id.to_string(),
                    ),
                    (
                        crate::docker::LABEL_INSTANCE.to_string(),
                        self.instance_id.clone(),
                    ),
                ]),
            )
            .await?;
        self.step(op_id, "creating container").await;
        self.docker.create_or_adopt_container(&spec).await?;
        crate::crashpoint::hit("create.after_container");
        self.step(op_id, "starting container").await;
        self.docker.start_container(&spec.name).await?;
        self.step(op_id, "waiting for readiness").await;
        self.wait_ready(engine, service).await?;
        self.step(op_id, "stamping the data volume").await;
        self.stamp_volume(engine, service).await?;
        self.store.set_service_status(service.id, "running").await?;
        Ok(())
    }

    /// Removes whatever a create made: container, volume, row. Idempotent.
    pub async fn undo_create(&self, service: &Service) -> ManagerResult<()> {
        self.remove_own_container(service).await?;
        self.docker
            .remove_service_volumes(&service.volume_name)
            .await?;
        self.store.delete_service(service.id).await?;
        Ok(())
    }
}

/// A major version as Temps' clients write it: `15`, `15.x` or `15.*`.
fn parse_version(version: &str) -> Option<u32> {
    let major = version
        .strip_suffix(".x")
        .or_else(|| version.strip_suffix(".*"))
        .unwrap_or(version);
    let canonical = !major.is_empty()
        && major.len() <= 4
        && major.bytes().all(|b| b.is_ascii_digit())
        && !major.starts_with('0');
    canonical.then(|| major.parse().ok()).flatten()
}

/// The engine of a service about to be created or imported, once its type and name are
/// known to be valid (400 otherwise).
pub(super) fn engine_for_new_service(
    service_type: &str,
    name: &str,
) -> ManagerResult<&'static dyn Engine> {
    let engine = engines::engine(service_type).ok_or_else(|| {
        ManagerError::BadRequest(format!(
            "unknown service_type {service_type:?}; supported: {}",
            engines::service_types().join(", ")
        ))
    })?;
    names::validate_service_name(name)
        .map_err(|e| ManagerError::BadRequest(format!("invalid service name: {e}")))?;
    Ok(engine)
}

pub(super) fn duplicate(name: &str) -> ManagerError {
    ManagerError::Conflict(format!("a service named {name:?} already exists"))
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_are_majors() {
        assert_eq!(parse_version("15"), Some(15));
        assert_eq!(parse_version("15.x"), Some(15));
        assert_eq!(parse_version("7.*"), Some(7));
        for bad in ["", "x", "15.4", "015", "-1", "15.x.x", "99999", " 15"] {
            assert_eq!(parse_version(bad), None, "{bad:?}");
        }
    }
}
