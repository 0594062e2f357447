//! Update (editable parameters) and upgrade (image swap): both recreate the container from new
//! parameters on the same volume. The previous parameters are recorded in the operation first;
//! if the new container does not become ready, the old one is restored.

use berth_core::params::DOCKER_IMAGE;
use std::sync::Arc;

use berth_core::{Parameters, params};

use super::{ManagerError, ManagerResult, ServiceManager, Started, redact};
use crate::engines::{self, Engine};
use crate::store::{OpKind, Service};

impl ServiceManager {
    /// `PUT /external-services/{id}`: change editable parameters.
    pub async fn update(self: &Arc<Self>, id: i64, changes: Parameters) -> ManagerResult<Started> {
        let service = self.service(id).await?;
        super::import::refuse_if_imported(&service, "changing its parameters")?;
        let engine = Self::engine_for(&service)?;
        params::validate_update(engine.params(), &changes)?;
        if changes.is_empty() {
            return Err(ManagerError::BadRequest("no parameters to change".into()));
        }
        self.reconfigure(service, engine, changes, OpKind::Update)
            .await
    }

    /// `POST /external-services/{id}/upgrade`: same-major image swap keeping the volume.
    pub async fn upgrade(
        self: &Arc<Self>,
        id: i64,
        docker_image: String,
    ) -> ManagerResult<Started> {
        let service = self.service(id).await?;
        super::import::refuse_if_imported(&service, "an image swap")?;
        let engine = Self::engine_for(&service)?;
        let changes = Parameters::from([(DOCKER_IMAGE.to_string(), docker_image)]);
        params::validate_update(engine.params(), &changes)?;
        self.reconfigure(service, engine, changes, OpKind::Upgrade)
            .await
    }

    async fn reconfigure(
        self: &Arc<Self>,
        service: Service,
        engine: &'static dyn Engine,
        changes: Parameters,
        kind: OpKind,
    ) -> ManagerResult<Started> {
        let guard = self.claim(service.id, kind).await?;
        // Read again under the claim: requests queued before this one may have changed it.
        let service = self.service(service.id).await?;
        let previous = service.parameters.clone();
        let mut target = previous.clone();
        target.extend(changes.clone());
        if let Some(image) = changes.get(DOCKER_IMAGE) {
            // Fast check with what is known now; repeated after the image is present.
            let current = previous.get(DOCKER_IMAGE).cloned().unwrap_or_default();
            self.check_major(engine, &current, image).await?;
        }
        let operation = {
            let _ports = self.port_lock.lock().await;
            let port_changes: Parameters = changes
                .iter()
                .filter(|(k, v)| {
                    engine.ports().iter().any(|(_, p)| p == k) && previous.get(*k) != Some(v)
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !port_changes.is_empty() {
                let mut scratch = Parameters::new();
                self.assign_ports(engine, &mut scratch, &port_changes, Some(service.id))
                    .await?;
            }
            self.store
                .begin_operation(
                    service.id,
                    guard.queued_operation(),
                    kind,
                    "updating",
                    None,
                    Some(&target),
                    &serde_json::json!({ "previous": previous, "target": target }),
                )
                .await?
        };
        tracing::info!(
            service_id = service.id,
            kind = kind.as_str(),
            "reconfiguring service"
        );
        let manager = self.clone();
        let op_id = operation.id;
        Ok(self.spawn_operation(operation, guard, async move {
            let mut updated = service.clone();
            updated.parameters = target;
            let result = manager
                .apply_parameters(engine, &updated, op_id, Some(&previous))
                .await;
            let outcome = match result {
                Ok(()) => Ok(()),
                Err(e) => {
                    manager
                        .step(op_id, "restoring previous configuration")
                        .await;
                    let restored = manager.restore_parameters(&service, &previous).await;
                    let suffix = match restored {
                        Ok(()) => "; the previous configuration was restored".to_string(),
                        Err(r) => {
                            format!("; restoring the previous configuration also failed: {r}")
                        }
                    };
                    Err(e.map_message(|m| redact(&format!("{m}{suffix}"), &service)))
                }
            };
            manager.record_observed_status(&service).await;
            outcome
        }))
    }

    /// Refuses a change of major version when both majors are known.
    async fn check_major(
        &self,
        engine: &dyn Engine,
        current: &str,
        target: &str,
    ) -> ManagerResult<()> {
        let current_env = self.docker.image_env(current).await?;
        let target_env = self.docker.image_env(target).await?;
        let from = engines::image_major(engine, current, current_env.as_deref());
        let to = engines::image_major(engine, target, target_env.as_deref());
        if let (Some(from), Some(to)) = (from, to) {
            engine.check_major_change(from, to).map_err(|why| {
                let safe_mode = engine
                    .backup()
                    .filter(|b| b.can_hold_writes() && to > from)
                    .map(|_| {
                        format!(
                            "; to move the data to {to}, upgrade with \"mode\": \"{}\" \
                             (`berth service upgrade --dump-restore`)",
                            super::DUMP_RESTORE
                        )
                    })
                    .unwrap_or_default();
                ManagerError::BadRequest(format!(
                    "{target} is major version {to}: {why}{safe_mode}"
                ))
            })?;
        }
        Ok(())
    }

    /// Recreates the container from `service`'s parameters and, if it should run, waits for it.
    async fn apply_parameters(
        &self,
        engine: &dyn Engine,
        service: &Service,
        op_id: i64,
        previous: Option<&Parameters>,
    ) -> ManagerResult<()> {
        let spec = self.container_spec(engine, service);
        self.step(op_id, &format!("preparing image {}", spec.image))
            .await;
        self.images.ensure(&spec.image, &|_| {}).await?;
        if let Some(previous) = previous {
            let current = previous.get(DOCKER_IMAGE).cloned().unwrap_or_default();
            self.check_major(engine, &current, &spec.image).await?;
        }
        self.step(op_id, "stopping the old container").await;
        self.stop_gracefully(service).await?;
        self.step(op_id, "replacing container").await;
        self.remove_own_container(service).await?;
        crate::crashpoint::hit("reconfigure.after_remove");
        self.docker.ensure_network(&self.config.network).await?;
        self.docker.create_or_adopt_container(&spec).await?;
        if service.desired_state == "running" {
            self.step(op_id, "starting container").await;
            self.docker.start_container(&spec.name).await?;
            self.step(op_id, "waiting for readiness").await;
            self.wait_ready(engine, service).await?;
        }
        Ok(())
    }

    /// Replaces the container with one built from the row (after it drifted from it), on the
    /// same volume, stopping the old one gracefully first.
    pub async fn replace_container(
        &self,
        engine: &dyn Engine,
        service: &Service,
    ) -> ManagerResult<()> {
        let spec = self.container_spec(engine, service);
        self.images.ensure(&spec.image, &|_| {}).await?;
        self.stop_gracefully(service).await?;
        self.remove_own_container(service).await?;
        self.create_container_on_volume(engine, service).await?;
        if service.desired_state == "running" {
            self.docker.start_container(&spec.name).await?;
            self.wait_ready(engine, service).await?;
        }
        Ok(())
    }

    /// Puts the previous parameters back in the row and recreates the container from them.
    pub async fn restore_parameters(
        &self,
        service: &Service,
        previous: &Parameters,
    ) -> ManagerResult<()> {
        let engine = Self::engine_for(service)?;
        self.store
            .set_service_parameters(service.id, previous)
            .await?;
        let mut restored = service.clone();
        restored.parameters = previous.clone();
        let spec = self.container_spec(engine, &restored);
        self.stop_gracefully(&restored).await?;
        self.remove_own_container(&restored).await?;
        self.docker.create_or_adopt_container(&spec).await?;
        if restored.desired_state == "running" {
            self.docker.start_container(&spec.name).await?;
            self.wait_ready(engine, &restored).await?;
        }
        Ok(())
    }
}
