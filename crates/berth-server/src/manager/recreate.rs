//! Recreate: the explicit way out of `data_missing`. The user accepts that the service starts
//! again with EMPTY data: whatever the current volume holds is discarded, a fresh volume is
//! initialised with the service's recorded credentials, stamped with a new marker, and every
//! tenant that still has a login (linked projects, and unlinked ones not revoked) is
//! provisioned again with its stored credentials, so applications reconnect unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use super::{ManagerError, ManagerResult, ServiceManager, Started, redact};
use crate::docker::{LABEL_INSTANCE, LABEL_MANAGED, LABEL_SERVICE_ID};
use crate::store::{OpKind, Service};

impl ServiceManager {
    /// `POST /external-services/{id}/recreate`. Only for a service whose data is missing: for
    /// any other, recreating would destroy data that is there.
    pub async fn recreate(self: &Arc<Self>, id: i64) -> ManagerResult<Started> {
        self.service(id).await?;
        let guard = self.claim(id, OpKind::Recreate).await?;
        let service = self.service(id).await?;
        super::import::refuse_if_imported(&service, "recreating it")?;
        if service.status != super::volume::DATA_MISSING {
            return Err(ManagerError::Conflict(format!(
                "service {:?} is {}, not data_missing: its data is in place, and recreating would \
                 discard it (delete it and create a new one if that is what you want)",
                service.name, service.status
            )));
        }
        self.docker.ping().await?;
        let op = self
            .store
            .begin_operation(
                id,
                guard.queued_operation(),
                OpKind::Recreate,
                "recreating",
                Some("running"),
                None,
                &serde_json::json!({}),
            )
            .await?;
        // The old marker names data that is gone; the new volume gets a new one.
        self.store.clear_volume_marker(id).await?;
        tracing::warn!(service_id = id, "recreating service with empty data");
        let manager = self.clone();
        let op_id = op.id;
        Ok(self.spawn_operation(op, guard, async move {
            let result = manager.finish_recreate(&service, op_id).await;
            manager.record_observed_status(&service).await;
            result.map_err(|e| e.map_message(|m| redact(&m, &service)))
        }))
    }

    /// Runs (or, after a crash, resumes) a recreate. A volume already stamped by this recreate
    /// is kept, so resuming never wipes data written since.
    pub async fn finish_recreate(&self, service: &Service, op_id: i64) -> ManagerResult<()> {
        let engine = Self::engine_for(service)?;
        let mut service = self
            .store
            .service(service.id)
            .await?
            .ok_or_else(|| ManagerError::NotFound(format!("service {} is gone", service.id)))?;
        if service.volume_marker.is_none() {
            self.step(op_id, "discarding the old container and volume")
                .await;
            self.remove_own_container(&service).await?;
            self.docker
                .remove_service_volumes(&service.volume_name)
                .await?;
            self.docker
                .ensure_volume(
                    &service.volume_name,
                    HashMap::from([
                        (LABEL_MANAGED.to_string(), "true".to_string()),
                        (LABEL_SERVICE_ID.to_string(), service.id.to_string()),
                        (LABEL_INSTANCE.to_string(), self.instance_id.clone()),
                    ]),
                )
                .await?;
        }
        self.bring_up(engine, &service, op_id).await?;
        service = self.service(service.id).await?;
        self.store.set_service_status(service.id, "running").await?;
        self.step(op_id, "provisioning tenants with their stored credentials")
            .await;
        self.repair_tenants(&service).await?;
        Ok(())
    }
}
