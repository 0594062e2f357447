//! The reconciler: at startup it finishes or undoes operations a crash interrupted; then, and
//! every `reconcile_interval_secs`, it compares service rows with labelled containers, restores
//! missing containers, records observed status and reports orphans (labelled containers of this
//! instance with no row). It never touches a service with an operation in flight.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Mutex;

use crate::manager::{ManagerError, ManagerResult, ServiceManager};
use crate::store::{OpKind, OpStatus, Operation};

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ReconcilerStatus {
    pub passes: u64,
    pub errors: u64,
    pub last_pass_at: Option<String>,
    pub last_error: Option<String>,
    /// Containers labelled as ours with no service row. Reported, never removed automatically.
    pub orphans: Vec<String>,
    /// Interrupted operations resolved at startup.
    pub resolved_operations: u64,
}

/// Interrupted operations and the claims on their services.
pub struct Interrupted {
    ops: Vec<Operation>,
    /// Backup runs a crash cut off (read before serving, so no new run is mistaken for one).
    backups: Vec<crate::store::BackupRecord>,
    _guards: Vec<crate::manager::BusyGuard>,
}

pub struct Reconciler {
    manager: Arc<ServiceManager>,
    status: Mutex<ReconcilerStatus>,
}

impl Reconciler {
    pub fn new(manager: Arc<ServiceManager>) -> Arc<Self> {
        Arc::new(Self {
            manager,
            status: Mutex::new(ReconcilerStatus::default()),
        })
    }

    pub async fn status(&self) -> ReconcilerStatus {
        self.status.lock().await.clone()
    }

    /// Operations left `running` by a previous process, with their services claimed so no API
    /// request can touch them until they are resolved. Call before the API starts serving.
    pub async fn claim_interrupted(&self) -> ManagerResult<Interrupted> {
        // Requests still waiting for their turn when Berth stopped never ran: say so, so
        // nobody polls them forever (their callers' connections are gone).
        let never_ran = self
            .manager
            .store
            .fail_all_queued_operations(
                "berth stopped before this queued request ran; nothing was changed, send it again",
            )
            .await?;
        if never_ran > 0 {
            tracing::info!(
                never_ran,
                "queued requests of the previous run marked failed"
            );
        }
        let ops = self.manager.store.running_operations().await?;
        let mut guards = Vec::new();
        for op in &ops {
            if let Some(id) = op.service_id
                && let Some(guard) = self.manager.claim_for_reconciler(id)
            {
                guards.push(guard);
            }
        }
        let backups = self.manager.store.running_backups().await?;
        // Restores a crash cut off are over; what they may have left is said on each run.
        self.manager.fail_interrupted_restores().await?;
        Ok(Interrupted {
            ops,
            backups,
            _guards: guards,
        })
    }

    /// Resolves the interrupted operations, then runs a first pass.
    pub async fn startup(&self, interrupted: Interrupted) {
        match self.resolve_interrupted(&interrupted.ops).await {
            Ok(n) => self.status.lock().await.resolved_operations += n,
            Err(e) => {
                self.record_error(format!("resolving interrupted operations: {e}"))
                    .await
            }
        }
        let Interrupted {
            backups, _guards, ..
        } = interrupted;
        drop(_guards);
        if let Err(e) = self.manager.fail_interrupted_backups(&backups).await {
            self.record_error(format!("cleaning up interrupted backups: {e}"))
                .await
        }
        if let Err(e) = self.manager.fail_interrupted_verifications().await {
            self.record_error(format!("cleaning up interrupted verifications: {e}"))
                .await
        }
        self.pass().await;
    }

    /// Runs passes forever, every `interval`, until `shutdown` fires.
    pub async fn run_periodic(
        self: Arc<Self>,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => self.pass().await,
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn record_error(&self, message: String) {
        tracing::warn!("reconciler: {message}");
        let mut status = self.status.lock().await;
        status.errors += 1;
        status.last_error = Some(message);
    }

    async fn resolve_interrupted(&self, ops: &[Operation]) -> ManagerResult<u64> {
        let mut resolved = 0;
        for op in ops {
            // A finished operation carries no error; an undone or failed one says why.
            let (status, error) = match self.resolve(op).await {
                Ok(OpStatus::Succeeded) => (OpStatus::Succeeded, None),
                Ok(status) => (
                    status,
                    Some("interrupted by a restart of berth serve".to_string()),
                ),
                Err(e) => (
                    OpStatus::Failed,
                    Some(format!("interrupted; resolving failed: {e}")),
                ),
            };
            tracing::info!(
                op = op.id,
                kind = op.kind.as_str(),
                status = status.as_str(),
                "resolved interrupted operation"
            );
            self.manager
                .store
                .finish_operation(op.id, status, error.as_deref())
                .await?;
            resolved += 1;
        }
        Ok(resolved)
    }

    /// Finishes or undoes one interrupted operation; returns how it ended.
    async fn resolve(&self, op: &Operation) -> ManagerResult<OpStatus> {
        let m = &self.manager;
        let Some(service_id) = op.service_id else {
            return Ok(OpStatus::Failed);
        };
        let Some(service) = m.store.service(service_id).await? else {
            // The row is gone: a create already undone or a delete that got that far.
            return Ok(match op.kind {
                OpKind::Delete => OpStatus::Succeeded,
                _ => OpStatus::RolledBack,
            });
        };
        let engine = ServiceManager::engine_for(&service)?;
        match op.kind {
            OpKind::Create => {
                // Roll forward only if the container got made; otherwise undo.
                let exists = m
                    .docker
                    .inspect_container(&service.container_name)
                    .await?
                    .is_some();
                if exists && m.bring_up(engine, &service, op.id).await.is_ok() {
                    m.store.set_service_status(service.id, "running").await?;
                    Ok(OpStatus::Succeeded)
                } else {
                    m.undo_create(&service).await?;
                    Ok(OpStatus::RolledBack)
                }
            }
            OpKind::Delete => {
                // keep_data is read from the row, where the delete recorded it first.
                m.finish_delete(&service, op.id).await?;
                Ok(OpStatus::Succeeded)
            }
            OpKind::Recreate => {
                m.finish_recreate(&service, op.id).await?;
                Ok(OpStatus::Succeeded)
            }
            OpKind::Upgrade if crate::manager::is_major_upgrade(op) => {
                let on_new = m.resolve_major_upgrade(op, &service).await?;
                Ok(if on_new {
                    OpStatus::Succeeded
                } else {
                    OpStatus::RolledBack
                })
            }
            OpKind::Update | OpKind::Upgrade => {
                let previous = op
                    .payload
                    .get("previous")
                    .cloned()
                    .and_then(|v| serde_json::from_value(v).ok())
                    .ok_or_else(|| {
                        ManagerError::Internal(
                            "update operation lacks its previous parameters".into(),
                        )
                    })?;
                m.restore_parameters(&service, &previous).await?;
                m.record_observed_status(&service).await;
                Ok(OpStatus::RolledBack)
            }
            // Restore runs are tracked (and failed at startup) in restore_runs; an operation
            // of this kind only ever waits in a queue, so it never runs.
            OpKind::Restore => Ok(OpStatus::Failed),
            OpKind::Adopt => Ok(if m.resolve_adopt(op, &service).await? {
                OpStatus::Succeeded
            } else {
                OpStatus::RolledBack
            }),
            OpKind::Start | OpKind::Stop => {
                self.converge(&service).await?;
                Ok(OpStatus::Succeeded)
            }
        }
    }

    /// One comparison of rows and containers.
    pub async fn pass(&self) {
        if let Err(e) = self.pass_inner().await {
            self.record_error(e.to_string()).await;
        }
        if let Err(e) = self.manager.retry_backup_cleanups().await {
            self.record_error(format!("backup cleanup: {e}")).await;
        }
        let m = &self.manager;
        m.metrics.refresh_gauges(&m.store, &m.docker).await;
        let mut status = self.status.lock().await;
        status.passes += 1;
        status.last_pass_at = Some(crate::store::now());
    }

    async fn pass_inner(&self) -> ManagerResult<()> {
        let m = &self.manager;
        let services = m.store.list_services().await?;
        for service in &services {
            let Some(_guard) = m.claim_for_reconciler(service.id) else {
                continue;
            };
            // Re-read under the claim (an operation may have finished since the list was
            // taken), and leave alone a service whose operation is recorded as running: a
            // create writes its row and its operation in one transaction and claims the
            // service just after, so in that gap only the operation row tells it apart from
            // a create interrupted by a crash.
            let Some(service) = m.store.service(service.id).await? else {
                continue;
            };
            if m.store.has_running_operation(service.id).await? {
                continue;
            }
            let result = match service.status.as_str() {
                // Transitional states with no operation in flight: a crash between writes.
                "creating" => m.undo_create(&service).await,
                "deleting" => m.finish_delete(&service, 0).await,
                _ => self.converge(&service).await,
            };
            if let Err(e) = result {
                self.record_error(format!("service {}: {e}", service.id))
                    .await;
            }
        }
        let known: HashSet<&str> = services.iter().map(|s| s.container_name.as_str()).collect();
        let orphans = m
            .docker
            .list_managed_containers()
            .await?
            .into_iter()
            .filter(|c| c.instance.as_deref() == Some(m.instance_id.as_str()))
            .filter(|c| !known.contains(c.name.as_str()))
            .map(|c| c.name)
            .collect::<Vec<_>>();
        if !orphans.is_empty() {
            tracing::warn!(
                ?orphans,
                "labelled containers without a service row (left in place)"
            );
        }
        self.status.lock().await.orphans = orphans;
        Ok(())
    }

    /// Brings one service towards its desired state and records what is observed. Checks the
    /// container, its volume and its tenants independently, each from the row alone.
    async fn converge(&self, service: &crate::store::Service) -> ManagerResult<()> {
        match self.converge_container(service).await {
            // Marked data_missing: nothing more to do until the user decides.
            Err(ManagerError::DataMissing(_)) => return Ok(()),
            other => other?,
        }
        let m = &self.manager;
        m.record_observed_status(service).await;
        let Some(current) = m.store.service(service.id).await? else {
            return Ok(());
        };
        if current.status != "running" {
            return Ok(());
        }
        if current.volume_marker.is_none() {
            // A service that predates volume markers, now running with its data: stamp it.
            let engine = ServiceManager::engine_for(&current)?;
            m.stamp_volume(engine, &current).await?;
        }
        if m.has_unprovisioned_links(&current).await? {
            tracing::info!(
                service_id = service.id,
                "provisioning pending tenants of linked projects"
            );
            m.provision_links(&current).await;
        }
        m.repair_tenants(&current).await
    }

    async fn converge_container(&self, service: &crate::store::Service) -> ManagerResult<()> {
        if service.is_imported() {
            return self.converge_imported_container(service).await;
        }
        let m = &self.manager;
        let engine = ServiceManager::engine_for(service)?;
        let info = m.docker.inspect_container(&service.container_name).await?;
        let spec = m.container_spec(engine, service);
        match info {
            None if service.desired_state == "running" => {
                tracing::warn!(
                    service_id = service.id,
                    "container missing; recreating it from the service row"
                );
                m.bring_up(engine, service, 0).await?;
            }
            // Keep a stopped service startable: recreate its container without starting it.
            None => m.create_container_on_volume(engine, service).await?,
            Some(info) if !info.belongs_to(&spec) => {
                return Err(ManagerError::Conflict(format!(
                    "container {} was not made by Berth for this service; left alone",
                    service.container_name
                )));
            }
            Some(info) if let Some(drift) = info.drift_from(&spec) => {
                tracing::warn!(service_id = service.id, %drift, "container differs from the service row; replacing it");
                m.replace_container(engine, service).await?;
            }
            Some(info)
                if service.desired_state == "running"
                    && !info.running
                    && info.state != "restarting" =>
            {
                tracing::warn!(service_id = service.id, state = %info.state, "container not running; starting it");
                m.docker.start_container(&service.container_name).await?;
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// An imported container is never recreated or replaced (a missing one is only observed
    /// as `missing`); one that should run but stopped is started again in place, as Berth's
    /// own are.
    async fn converge_imported_container(
        &self,
        service: &crate::store::Service,
    ) -> ManagerResult<()> {
        let m = &self.manager;
        if let Some(info) = m.docker.inspect_container(&service.container_name).await?
            && service.desired_state == "running"
            && !info.running
            && info.state != "restarting"
        {
            tracing::warn!(service_id = service.id, state = %info.state, "imported container not running; starting it");
            m.docker.start_container(&service.container_name).await?;
        }
        Ok(())
    }
}
