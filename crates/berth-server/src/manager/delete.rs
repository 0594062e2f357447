//! Delete: marked `deleting` first, then container, volume (unless kept) and row. A crash at
//! any point leaves the `deleting` mark, and the reconciler finishes the job.

use std::sync::Arc;

use super::{ManagerResult, ServiceManager, Started};
use crate::store::{OpKind, Service};

impl ServiceManager {
    pub async fn delete(self: &Arc<Self>, id: i64, keep_data: bool) -> ManagerResult<Started> {
        let service = self.service(id).await?;
        let guard = self.try_claim(id)?;
        self.docker.ping().await?;
        let op = self
            .store
            .begin_operation(
                id,
                OpKind::Delete,
                "deleting",
                None,
                None,
                &serde_json::json!({ "keep_data": keep_data }),
            )
            .await?;
        tracing::info!(service_id = id, keep_data, "deleting service");
        let manager = self.clone();
        let op_id = op.id;
        Ok(self.spawn_operation(op, guard, async move {
            manager.finish_delete(&service, keep_data, op_id).await
        }))
    }

    /// Removes the container, the volume unless `keep_data`, then the row. Idempotent.
    pub async fn finish_delete(
        &self,
        service: &Service,
        keep_data: bool,
        op_id: i64,
    ) -> ManagerResult<()> {
        self.step(op_id, "removing container").await;
        self.docker
            .remove_container(&service.container_name)
            .await?;
        crate::crashpoint::hit("delete.after_container");
        if !keep_data {
            self.step(op_id, "removing volume").await;
            self.docker.remove_volume(&service.volume_name).await?;
        }
        self.store.delete_service(service.id).await?;
        Ok(())
    }
}
