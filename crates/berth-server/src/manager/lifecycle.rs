//! Start and stop. Stop keeps the container and its volume; start recreates the container
//! from the row if it went missing, then waits for readiness.

use std::sync::Arc;

use super::{ManagerError, ManagerResult, ServiceManager, Started};
use crate::store::{OpKind, Service};

/// Seconds Docker waits for a clean shutdown before SIGKILL.
const STOP_TIMEOUT_SECS: i32 = 30;

impl ServiceManager {
    pub async fn start(self: &Arc<Self>, id: i64) -> ManagerResult<Started> {
        let engine = Self::engine_for(&self.service(id).await?)?;
        let guard = self.claim(id, OpKind::Start).await?;
        // Read under the claim: requests queued before this one may have changed the row.
        let service = self.service(id).await?;
        self.docker.ping().await?;
        let op = self
            .store
            .begin_operation(
                id,
                guard.queued_operation(),
                OpKind::Start,
                "starting",
                Some("running"),
                None,
                &serde_json::json!({}),
            )
            .await?;
        let manager = self.clone();
        let op_id = op.id;
        Ok(self.spawn_operation(op, guard, async move {
            let result = manager.bring_up(engine, &service, op_id).await;
            manager.record_observed_status(&service).await;
            if result.is_ok() {
                // Environments added while the service was stopped get their tenants now.
                manager.step(op_id, "provisioning linked projects").await;
                manager.provision_links(&service).await;
            }
            result.map_err(|e| e.map_message(|m| super::redact(&m, &service)))
        }))
    }

    pub async fn stop(self: &Arc<Self>, id: i64) -> ManagerResult<Started> {
        self.service(id).await?;
        let guard = self.claim(id, OpKind::Stop).await?;
        let service = self.service(id).await?;
        self.docker.ping().await?;
        let op = self
            .store
            .begin_operation(
                id,
                guard.queued_operation(),
                OpKind::Stop,
                "stopping",
                Some("stopped"),
                None,
                &serde_json::json!({}),
            )
            .await?;
        let manager = self.clone();
        let op_id = op.id;
        Ok(self.spawn_operation(op, guard, async move {
            manager.step(op_id, "stopping container").await;
            let result = manager.stop_gracefully(&service).await;
            manager.record_observed_status(&service).await;
            result
        }))
    }

    /// Stops the service's container the way its server wants (STOPSIGNAL, then up to
    /// `STOP_TIMEOUT_SECS` to flush) before anything removes it: removing with force alone
    /// would SIGKILL a database mid-write. A missing container is fine.
    pub(super) async fn stop_gracefully(&self, service: &Service) -> ManagerResult<()> {
        // An imported container is stopped in place (asked for by a stop, or a delete that
        // removes it); any other container of that name that is not Berth's is left alone.
        if !service.is_imported() && !self.own_container_exists(service).await? {
            return Ok(());
        }
        match self
            .docker
            .stop_container(&service.container_name, STOP_TIMEOUT_SECS)
            .await
        {
            Ok(()) | Err(crate::docker::DockerError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Ensures the container exists (adopting or recreating it from the row), starts it and
    /// waits until it accepts connections.
    pub async fn bring_up(
        &self,
        engine: &dyn crate::engines::Engine,
        service: &Service,
        op_id: i64,
    ) -> ManagerResult<()> {
        if service.is_imported() {
            return self.bring_up_imported(engine, service, op_id).await;
        }
        let spec = self.container_spec(engine, service);
        if self.docker.inspect_container(&spec.name).await?.is_none() {
            self.step(op_id, "recreating missing container").await;
            self.images.ensure(&spec.image, &|_| {}).await?;
            self.create_container_on_volume(engine, service).await?;
        }
        self.step(op_id, "starting container").await;
        self.docker.start_container(&spec.name).await?;
        self.step(op_id, "waiting for readiness").await;
        self.wait_ready(engine, service).await?;
        if service.volume_marker.is_none() {
            self.stamp_volume(engine, service).await?;
        }
        Ok(())
    }

    /// Starts an imported container in place; one that is gone is not recreated.
    async fn bring_up_imported(
        &self,
        engine: &dyn crate::engines::Engine,
        service: &Service,
        op_id: i64,
    ) -> ManagerResult<()> {
        if self
            .docker
            .inspect_container(&service.container_name)
            .await?
            .is_none()
        {
            return Err(ManagerError::Conflict(format!(
                "container {} that service {:?} was imported from no longer exists, and Berth                  never recreates a container it did not make: recreate it yourself (same                  volume, same published port), or delete the service",
                service.container_name, service.name
            )));
        }
        self.step(op_id, "starting container").await;
        self.docker.start_container(&service.container_name).await?;
        self.step(op_id, "waiting for readiness").await;
        self.wait_ready(engine, service).await
    }

    /// Sets the row's status from what Docker and a probe say now.
    pub async fn record_observed_status(&self, service: &Service) {
        let status = match self.observe(service).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(service_id = service.id, "observing status failed: {e}");
                return;
            }
        };
        if let Err(e) = self.store.set_service_status(service.id, status).await {
            tracing::warn!(service_id = service.id, "recording status failed: {e}");
        }
    }

    /// running (container up and probe answers), unhealthy (up, probe fails), stopped, missing.
    pub async fn observe(&self, service: &Service) -> ManagerResult<&'static str> {
        let engine = Self::engine_for(service)?;
        // The row's status now, not the caller's copy: an operation may have found the data
        // missing since that copy was read.
        let recorded = self.store.service(service.id).await?;
        let data_missing = recorded.is_some_and(|s| s.status == super::volume::DATA_MISSING);
        Ok(
            match self
                .docker
                .inspect_container(&service.container_name)
                .await?
            {
                // A service whose data is gone stays marked so until the user decides.
                None if data_missing => super::volume::DATA_MISSING,
                None => "missing",
                Some(info) if !info.running => "stopped",
                Some(_) => {
                    let (probe, _) = self.health_probe(engine, service).await?;
                    if probe.is_ok() {
                        "running"
                    } else {
                        "unhealthy"
                    }
                }
            },
        )
    }
}
