//! Create: validate, choose ports, record the intent, then image -> network -> volume ->
//! container -> start -> readiness. Any failure undoes everything, so a failed create leaves
//! neither a row nor a container nor a volume.

use std::collections::HashMap;
use std::sync::Arc;

use berth_core::{Parameters, names, params};
use serde::Deserialize;

use super::{ManagerError, ManagerResult, ServiceManager, Started};
use crate::docker::LABEL_MANAGED;
use crate::engines::{self, Engine};
use crate::store::{self, NewService, Service};

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub name: String,
    pub service_type: String,
    #[serde(default)]
    pub parameters: Parameters,
}

impl ServiceManager {
    /// Validates and records a create, then runs it in the background.
    pub async fn create(
        self: &Arc<Self>,
        request: CreateRequest,
    ) -> ManagerResult<(Service, Started)> {
        // Before the row is written: the claim below would refuse too, but too late.
        self.refuse_if_shutting_down()?;
        let engine = engines::engine(&request.service_type).ok_or_else(|| {
            ManagerError::BadRequest(format!(
                "unknown service_type {:?}; supported: {}",
                request.service_type,
                engines::service_types().join(", ")
            ))
        })?;
        names::validate_name(&request.name)
            .map_err(|e| ManagerError::BadRequest(format!("invalid service name: {e}")))?;
        let mut params = params::validate_create(engine.params(), &request.parameters)?;
        params
            .entry("docker_image".to_string())
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
        let guard = self.claim(service.id).await?;
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
        self.docker.remove_volume(&service.volume_name).await?;
        self.store.delete_service(service.id).await?;
        Ok(())
    }
}

fn duplicate(name: &str) -> ManagerError {
    ManagerError::Conflict(format!("a service named {name:?} already exists"))
}
