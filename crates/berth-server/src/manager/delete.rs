//! Delete: marked `deleting` first, then container, volume (unless kept) and row. A crash at
//! any point leaves the `deleting` mark, and the reconciler finishes the job.

use std::sync::Arc;

use super::{ManagerError, ManagerResult, ServiceManager, Started};
use crate::store::{OpKind, Service};

/// What a delete is asked to do beyond removing the service from Berth.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteOptions {
    /// Keep the data volume (Berth's own services; an imported one's is always kept).
    pub keep_data: bool,
    /// Unlink linked projects first instead of refusing.
    pub force: bool,
    /// An imported service: stop and remove the user's container too (never its volumes).
    pub remove_container: bool,
}

impl ServiceManager {
    /// Deletes a service. A linked service is refused unless `force`, which unlinks it first
    /// and says in the operation what happens to the linked projects' data.
    pub async fn delete(
        self: &Arc<Self>,
        id: i64,
        options: DeleteOptions,
    ) -> ManagerResult<Started> {
        let DeleteOptions {
            keep_data,
            force,
            remove_container,
        } = options;
        self.service(id).await?;
        // Links are read under the claim: a link waiting in the queue cannot slip in between
        // this check and the delete (it gets a 404 after it).
        let guard = self.claim(id, OpKind::Delete).await?;
        let service = self.service(id).await?;
        let linked = self.linked_project_slugs(id).await?;
        if !linked.is_empty() && !force {
            return Err(ManagerError::Conflict(format!(
                "service {:?} is linked to project(s) {}; unlink them first, or delete with ?force=true \
                 (which unlinks them; their databases go with the volume unless ?keep_data=true)",
                service.name,
                linked.join(", ")
            )));
        }
        if !keep_data && !service.is_imported() && !service.volume_name.is_empty() {
            // Another container on the same data (the one an adopt kept): removing the volume
            // would fail half way through the delete, and it is data someone still points at.
            let others: Vec<String> = self
                .docker
                .containers_using_volume(&service.volume_name)
                .await?
                .into_iter()
                .filter(|c| *c != service.container_name)
                .collect();
            if !others.is_empty() {
                return Err(ManagerError::Conflict(format!(
                    "volume {} of service {:?} is also used by container(s) {}; remove them \
                     first (`docker rm`), or delete with ?keep_data=true (`--keep-data`)",
                    service.volume_name,
                    service.name,
                    others.join(", ")
                )));
            }
        }
        let destinations = self.store.destinations_in_service(id).await?;
        if !destinations.is_empty() {
            return Err(ManagerError::Conflict(format!(
                "service {:?} holds backup destination(s) {}; delete those first (after moving \
                 or deleting their backups)",
                service.name,
                destinations.join(", ")
            )));
        }
        self.docker.ping().await?;
        let note = (!linked.is_empty()).then(|| {
            format!(
                "unlinked project(s) {}; their data {}",
                linked.join(", "),
                if keep_data {
                    format!("is kept in volume {}", service.volume_name)
                } else {
                    "is removed with the volume".to_string()
                }
            )
        });
        // The row carries keep_data (written before the delete is recorded) so every path that
        // finishes this delete, the reconciler's included, honours it.
        self.store.set_keep_data(id, keep_data).await?;
        self.store
            .set_remove_container(id, service.is_imported() && remove_container)
            .await?;
        let op = self
            .store
            .begin_operation(
                id,
                guard.queued_operation(),
                OpKind::Delete,
                "deleting",
                None,
                None,
                &serde_json::json!({ "keep_data": keep_data, "unlinked": linked, "note": note }),
            )
            .await?;
        tracing::info!(service_id = id, keep_data, "deleting service");
        for project in self.store.links_of_service(id).await? {
            self.store.delete_link(id, project.project_id).await?;
        }
        let manager = self.clone();
        let op_id = op.id;
        let mut started = self.spawn_operation(op, guard, async move {
            manager.finish_delete(&service, op_id).await
        });
        started.note = note;
        Ok(started)
    }

    /// Removes the container, the volume unless the row says keep_data, then the row.
    /// Idempotent.
    pub async fn finish_delete(&self, service: &Service, op_id: i64) -> ManagerResult<()> {
        let row = match self.store.service(service.id).await? {
            Some(row) => row,
            None => return Ok(()),
        };
        if row.is_imported() {
            // The user's container and volumes stay unless the delete asked for the container.
            if row.remove_container {
                self.step(op_id, "removing the imported container").await;
                self.stop_gracefully(&row).await?;
                match self.docker.remove_container(&row.container_name).await {
                    Ok(()) | Err(crate::docker::DockerError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.store.delete_service(service.id).await?;
            return Ok(());
        }
        let keep_data = row.keep_data;
        // The old version's volume a major upgrade kept goes (or stays) with the rest.
        self.forget_major_upgrade(service.id, !keep_data).await?;
        self.step(op_id, "removing container").await;
        self.stop_gracefully(service).await?;
        self.remove_own_container(service).await?;
        crate::crashpoint::hit("delete.after_container");
        if !keep_data {
            self.step(op_id, "removing volume").await;
            self.docker
                .remove_service_volumes(&service.volume_name)
                .await?;
        }
        self.store.delete_service(service.id).await?;
        Ok(())
    }
}
