//! Adopt: an imported service handed over to Berth. Berth stops the user's container, keeps it
//! (renamed `<name>-before-berth`, restart policy `no`, so neither a reboot nor Docker brings
//! it back onto the same data), and makes its own container on the same volume, published on
//! 127.0.0.1 like every Berth service. From then on the service is Berth's: updates, upgrades
//! and the reconciler recreate it as they do any other.
//!
//! Crash safety: the operation records the user's container name, the name it is kept under
//! and its restart policy before the first Docker call; the row's `origin` turns to `berth` in
//! one write once the user's container is out of the way. An adopt that does not end with the
//! service running is undone (`undo_adopt`): Berth's container removed, the user's renamed back,
//! its restart policy restored and started; the reconciler does the same after a crash.

use std::sync::Arc;

use berth_core::names;

use super::{ManagerError, ManagerResult, ServiceManager, Started};
use crate::store::{OpKind, Operation, Origin, Service};

/// Seconds the user's server gets to shut down cleanly before Docker kills it.
const STOP_TIMEOUT_SECS: i32 = 30;

/// What an adopt must remember to undo itself (the operation's payload).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct AdoptIntent {
    /// The user's container as it was imported.
    from_container: String,
    /// The name it is kept under, stopped, while Berth's runs.
    kept_as: String,
    /// Its restart policy before the adopt (`no`, `always`, ...), put back by an undo.
    restart_policy: String,
}

impl ServiceManager {
    /// `POST /external-services/{id}/adopt`.
    pub async fn adopt(self: &Arc<Self>, id: i64) -> ManagerResult<Started> {
        self.service(id).await?;
        let guard = self.claim(id, OpKind::Adopt).await?;
        let service = self.service(id).await?;
        if !service.is_imported() {
            return Err(ManagerError::Conflict(format!(
                "service {:?} already runs in Berth's own container {}",
                service.name, service.container_name
            )));
        }
        let engine = Self::engine_for(&service)?;
        let facts = self
            .docker
            .container_facts(&service.container_name)
            .await?
            .ok_or_else(|| {
                ManagerError::Conflict(format!(
                    "container {} that service {:?} was imported from no longer exists; there \
                     is nothing to adopt",
                    service.container_name, service.name
                ))
            })?;
        let data_on_volume = !service.volume_name.is_empty()
            && facts
                .mounts
                .iter()
                .any(|(_, volume)| volume.as_deref() == Some(service.volume_name.as_str()));
        if !data_on_volume {
            return Err(ManagerError::Conflict(format!(
                "container {} keeps its data in a bind mount or in no volume at {}: Berth \
                 adopts only data in a Docker volume. Move the data into a named volume \
                 (`docker volume create`, copy, recreate the container with `-v VOLUME:{}`), \
                 import that container, then adopt it",
                facts.name,
                engine.data_path(),
                engine.data_path()
            )));
        }
        let target = names::container_name(engine.service_type(), &service.name);
        if self.docker.inspect_container(&target).await?.is_some() {
            return Err(ManagerError::Conflict(format!(
                "a container named {target} already exists; Berth needs that name for the \
                 adopted service. Remove or rename it first"
            )));
        }
        let kept_as = format!("{}-before-berth", facts.name);
        if self.docker.inspect_container(&kept_as).await?.is_some() {
            return Err(ManagerError::Conflict(format!(
                "a container named {kept_as} already exists; Berth keeps the adopted container \
                 under that name. Remove or rename it first"
            )));
        }
        self.docker.ping().await?;
        let intent = AdoptIntent {
            from_container: facts.name.clone(),
            kept_as,
            restart_policy: "no".into(),
        };
        let op = self
            .store
            .begin_operation(
                id,
                guard.queued_operation(),
                OpKind::Adopt,
                "adopting",
                Some("running"),
                None,
                &serde_json::to_value(&intent).expect("plain struct"),
            )
            .await?;
        tracing::info!(service_id = id, container = %facts.name, "adopting an imported container");
        let manager = self.clone();
        let op_id = op.id;
        Ok(self.spawn_operation(op, guard, async move {
            match manager.run_adopt(&service, intent, &target, op_id).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    manager.step(op_id, "giving the container back").await;
                    let undone = manager.undo_adopt_of(service.id, op_id).await;
                    let suffix = match undone {
                        Ok(()) => "; the imported container runs again as before".to_string(),
                        Err(u) => format!("; putting the imported container back also failed: {u}"),
                    };
                    Err(e.map_message(|m| format!("{m}{suffix}")))
                }
            }
        }))
    }

    async fn run_adopt(
        &self,
        service: &Service,
        mut intent: AdoptIntent,
        target: &str,
        op_id: i64,
    ) -> ManagerResult<()> {
        let engine = Self::engine_for(service)?;
        self.step(op_id, "stopping the imported container").await;
        self.docker
            .stop_container(&intent.from_container, STOP_TIMEOUT_SECS)
            .await?;
        // Its policy goes first (recorded before the rename), so no restart of Docker brings it
        // back onto the data Berth's container is about to use.
        intent.restart_policy = self
            .docker
            .set_restart_policy(&intent.from_container, "no")
            .await?;
        self.store
            .set_operation_payload(op_id, &serde_json::to_value(&intent).expect("plain struct"))
            .await?;
        self.docker
            .rename_container(&intent.from_container, &intent.kept_as)
            .await?;
        crate::crashpoint::hit("adopt.after_rename");
        self.store
            .set_origin(service.id, Origin::Berth, target)
            .await?;
        let adopted = self.service(service.id).await?;
        self.step(op_id, "starting Berth's container on the same volume")
            .await;
        self.bring_up(engine, &adopted, op_id).await?;
        self.store.set_service_status(service.id, "running").await?;
        Ok(())
    }

    /// Undoes adopt operation `op_id` of service `id` from what it recorded, whatever step it
    /// reached: Berth's container removed, the user's back under its name with its restart
    /// policy, started, and the row imported again. Idempotent.
    pub async fn undo_adopt_of(&self, id: i64, op_id: i64) -> ManagerResult<()> {
        let op = self.store.operation(op_id).await?.ok_or_else(|| {
            ManagerError::Internal(format!("adopt operation {op_id} is not recorded"))
        })?;
        let intent: AdoptIntent = serde_json::from_value(op.payload.clone())
            .map_err(|e| ManagerError::Internal(format!("adopt operation {op_id}: {e}")))?;
        let service = self.service(id).await?;
        if !service.is_imported() {
            self.stop_gracefully(&service).await?;
            self.remove_own_container(&service).await?;
        }
        if self
            .docker
            .inspect_container(&intent.kept_as)
            .await?
            .is_some()
        {
            self.docker
                .rename_container(&intent.kept_as, &intent.from_container)
                .await?;
        }
        self.store
            .set_origin(id, Origin::Imported, &intent.from_container)
            .await?;
        if self
            .docker
            .inspect_container(&intent.from_container)
            .await?
            .is_some()
        {
            self.docker
                .set_restart_policy(&intent.from_container, &intent.restart_policy)
                .await?;
            self.docker.start_container(&intent.from_container).await?;
        }
        let service = self.service(id).await?;
        self.record_observed_status(&service).await;
        Ok(())
    }

    /// The reconciler's resolution of an adopt cut off by a crash: finished if Berth's
    /// container runs on the data, else undone.
    pub async fn resolve_adopt(&self, op: &Operation, service: &Service) -> ManagerResult<bool> {
        if !service.is_imported() {
            let engine = Self::engine_for(service)?;
            if self.bring_up(engine, service, op.id).await.is_ok() {
                self.store.set_service_status(service.id, "running").await?;
                return Ok(true);
            }
        }
        self.undo_adopt_of(service.id, op.id).await?;
        Ok(false)
    }
}
