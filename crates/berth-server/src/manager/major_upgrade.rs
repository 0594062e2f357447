//! Major upgrades by dump and restore (`{"docker_image": ..., "mode": "dump_restore"}`): the
//! new version starts beside the old on a NEW volume, writes are held on the old, every part
//! the engine's backup plan names (roles, then each database) is streamed from the old
//! server's dump tool into the new server's restore and its counts compared, and only then
//! does the service switch: same name, port, credentials and links, the new image on the new
//! volume. The old volume stays until `.../upgrade/finalize`; `.../upgrade/rollback` goes back
//! to it (writes made since the upgrade are left on the new volume, which is kept).
//!
//! Crash safety: the operation's payload ([`Plan`]) is written before the first Docker call.
//! Before the switch the service row still points at the old volume, and an interrupted
//! upgrade is undone (new container and volume removed, writes allowed again). The switch is
//! one transaction moving the row to the new volume together with the `meta` note that makes
//! a rollback possible; after it, the upgrade is finished (or, if the new server cannot come
//! up, rolled back). So a service ends on the old or the new version with all its data,
//! never neither.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use berth_core::Parameters;
use berth_core::params::DOCKER_IMAGE;
use serde::{Deserialize, Serialize};

use super::{ManagerError, ManagerResult, ServiceManager, Started};
use crate::docker::{LABEL_INSTANCE, LABEL_MANAGED, LABEL_SERVICE_ID};
use crate::engines::backup::PartKind;
use crate::engines::{self, Engine, tenancy::ServiceAccess};
use crate::store::{OpKind, Operation, Service};

/// The operation payload's `mode`, also the API's.
pub const DUMP_RESTORE: &str = "dump_restore";

/// What a major upgrade decided before it began, enough to finish or undo it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub mode: String,
    pub from_major: u32,
    pub to_major: u32,
    /// The service's parameters before the upgrade (public ones; secrets do not change).
    pub previous: Parameters,
    pub old_volume: String,
    pub old_marker: Option<String>,
    pub target_image: String,
    pub new_volume: String,
    /// The new version's container until the switch.
    pub staging_container: String,
    pub staging_port: u16,
    /// How long writes were held, once known.
    #[serde(default)]
    pub writes_held_ms: Option<u64>,
}

fn note_key(id: i64) -> String {
    format!("major_upgrade:{id}")
}

impl ServiceManager {
    /// Starts a major upgrade of service `id` to `docker_image` by dump and restore.
    pub async fn upgrade_major(
        self: &Arc<Self>,
        id: i64,
        docker_image: String,
    ) -> ManagerResult<Started> {
        let service = self.service(id).await?;
        super::import::refuse_if_imported(&service, "a major upgrade")?;
        let engine = Self::engine_for(&service)?;
        engine
            .backup()
            .filter(|b| b.can_hold_writes())
            .ok_or_else(|| cannot(engine))?;
        berth_core::params::validate_update(
            engine.params(),
            &Parameters::from([(DOCKER_IMAGE.to_string(), docker_image.clone())]),
        )?;
        let guard = self.claim(id, OpKind::Upgrade).await?;
        let service = self.service(id).await?;
        if service.status != "running" {
            return Err(ManagerError::Conflict(format!(
                "service {:?} is {}; a major upgrade copies its data from the running server: \
                 start it first",
                service.name, service.status
            )));
        }
        if let Some(pending) = self.store.meta(&note_key(id)).await? {
            let plan: Plan = serde_json::from_str(&pending)
                .map_err(|e| ManagerError::Internal(format!("upgrade note: {e}")))?;
            return Err(ManagerError::Conflict(format!(
                "service {:?} was upgraded from major {} and keeps that data in volume {} until \
                 you decide: POST /api/external-services/{id}/upgrade/finalize or \
                 .../upgrade/rollback first",
                service.name, plan.from_major, plan.old_volume
            )));
        }
        let current = service.param(DOCKER_IMAGE).unwrap_or_default().to_string();
        let from = self.major_of(engine, &current).await?;
        let to = self.major_of(engine, &docker_image).await?;
        if to <= from {
            return Err(ManagerError::BadRequest(format!(
                "{docker_image} is major {to} and the service runs {from}: mode {DUMP_RESTORE} \
                 moves to a newer major only{}",
                if to == from {
                    " (for the same major, upgrade without a mode)"
                } else {
                    ""
                }
            )));
        }
        let staging_port = {
            let _ports = self.port_lock.lock().await;
            let mut ports = Parameters::new();
            self.assign_ports(engine, &mut ports, &Parameters::new(), None)
                .await?;
            let (_, param) = engine.ports().first().copied().unwrap_or((0, "port"));
            ports
                .get(param)
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| ManagerError::Internal("no port for the new version".into()))?
        };
        let plan = Plan {
            mode: DUMP_RESTORE.into(),
            from_major: from,
            to_major: to,
            previous: service.parameters.clone(),
            old_volume: service.volume_name.clone(),
            old_marker: service.volume_marker.clone(),
            target_image: docker_image,
            // The operation id is not known yet; the clock keeps names unique per service.
            new_volume: format!("{}-v{to}-{}", service.volume_name, epoch_millis()),
            staging_container: format!("{}-next", service.container_name),
            staging_port,
            writes_held_ms: None,
        };
        let op = self
            .store
            .begin_operation(
                id,
                guard.queued_operation(),
                OpKind::Upgrade,
                "upgrading",
                None,
                None,
                &serde_json::to_value(&plan).expect("plain struct"),
            )
            .await?;
        tracing::info!(
            service_id = id,
            from,
            to,
            "major upgrade by dump and restore"
        );
        let manager = self.clone();
        let op_id = op.id;
        Ok(self.spawn_operation(op, guard, async move {
            manager
                .run_major_upgrade(engine, &service, plan, op_id)
                .await
                .map_err(|e| e.map_message(|m| super::redact(&m, &service)))
        }))
    }

    async fn major_of(&self, engine: &dyn Engine, image: &str) -> ManagerResult<u32> {
        let env = self.docker.image_env(image).await?;
        engines::image_major(engine, image, env.as_deref()).ok_or_else(|| {
            ManagerError::BadRequest(format!(
                "cannot tell the major version of {image:?} (neither its tag nor its \
                 environment says it)"
            ))
        })
    }

    async fn run_major_upgrade(
        &self,
        engine: &'static dyn Engine,
        service: &Service,
        mut plan: Plan,
        op_id: i64,
    ) -> ManagerResult<()> {
        let result = self
            .copy_into_new_version(engine, service, &mut plan, op_id)
            .await;
        if let Err(e) = result {
            self.step(op_id, "undoing: the service stays on the old version")
                .await;
            return Err(
                match self.undo_before_switch(engine, service, &plan).await {
                    Ok(()) => e.map_message(|m| {
                        format!("{m}; the service stays on major {}", plan.from_major)
                    }),
                    Err(u) => e.map_message(|m| format!("{m}; undoing also failed: {u}")),
                },
            );
        }
        crate::crashpoint::hit("upgrade.before_switch");
        self.step(op_id, "switching to the new version").await;
        self.stop_gracefully(service).await?;
        self.remove_own_container(service).await?;
        let mut target = plan.previous.clone();
        target.insert(DOCKER_IMAGE.into(), plan.target_image.clone());
        self.store
            .switch_service_data(
                service.id,
                &plan.new_volume,
                &target,
                None,
                &note_key(service.id),
                Some(&serde_json::to_string(&plan).expect("plain struct")),
            )
            .await?;
        crate::crashpoint::hit("upgrade.after_switch");
        let finished = self.finish_switch(engine, service.id, &plan, op_id).await;
        if let Err(e) = finished {
            self.step(op_id, "the new version did not start: going back")
                .await;
            let back = self.switch_back(engine, service.id, &plan, op_id).await;
            return Err(match back {
                Ok(()) => e.map_message(|m| {
                    format!(
                        "{m}; the service is back on major {} with its data",
                        plan.from_major
                    )
                }),
                Err(b) => e.map_message(|m| format!("{m}; going back also failed: {b}")),
            });
        }
        Ok(())
    }

    /// Starts the new version beside the old, holds writes on the old, and copies every part.
    async fn copy_into_new_version(
        &self,
        engine: &'static dyn Engine,
        service: &Service,
        plan: &mut Plan,
        op_id: i64,
    ) -> ManagerResult<()> {
        let backup = engine.backup().ok_or_else(|| cannot(engine))?;
        self.step(op_id, &format!("preparing image {}", plan.target_image))
            .await;
        self.images.ensure(&plan.target_image, &|_| {}).await?;
        self.step(
            op_id,
            &format!(
                "starting major {} beside {}",
                plan.to_major, plan.from_major
            ),
        )
        .await;
        let staging = self.staging_service(service, plan);
        self.docker.ensure_network(&self.config.network).await?;
        self.docker
            .ensure_volume(&plan.new_volume, self.volume_labels(service.id))
            .await?;
        self.create_container_on_volume(engine, &staging).await?;
        self.docker.start_container(&staging.container_name).await?;
        self.wait_ready(engine, &staging).await?;
        crate::crashpoint::hit("upgrade.after_staging");

        let old_port = Self::host_port(engine, service)?;
        let old_params = service.all_parameters();
        let old = ServiceAccess::new(&self.docker, &service.container_name, old_port, &old_params);
        let new_params = staging.all_parameters();
        let new = ServiceAccess::new(
            &self.docker,
            &staging.container_name,
            plan.staging_port,
            &new_params,
        );
        self.step(op_id, "holding writes on the old version").await;
        let held = Instant::now();
        backup
            .block_writes(&old, true)
            .await
            .map_err(|e| ManagerError::Unavailable(format!("holding writes: {e}")))?;
        let parts = backup
            .plan(&old)
            .await
            .map_err(|e| ManagerError::Unavailable(format!("listing what to copy: {e}")))?;
        for part in &parts {
            let what = part.database.as_deref().unwrap_or("roles");
            self.step(op_id, &format!("copying {what}")).await;
            let dump = backup
                .dump(&old, part)
                .await
                .map_err(|e| ManagerError::Unavailable(format!("dumping {what}: {e}")))?;
            backup
                .restore(&new, part, dump.stream)
                .await
                .map_err(|e| ManagerError::Unavailable(format!("loading {what}: {e}")))?;
            let counted = dump
                .counts
                .await
                .map_err(|e| ManagerError::Unavailable(format!("dumping {what}: {e}")))?;
            if part.kind == PartKind::Globals {
                continue;
            }
            let now = backup
                .counts(&new, part.database.as_deref())
                .await
                .map_err(|e| ManagerError::Unavailable(format!("counting {what}: {e}")))?;
            backup.counts_match(&counted, &now).map_err(|difference| {
                ManagerError::Unavailable(format!(
                    "the new version's {what} does not hold what the old one does: {difference}"
                ))
            })?;
        }
        plan.writes_held_ms = Some(held.elapsed().as_millis() as u64);
        self.store
            .set_operation_payload(op_id, &serde_json::to_value(&*plan).expect("plain struct"))
            .await?;
        Ok(())
    }

    /// After the switch: the new version in the service's own container on the new volume.
    async fn finish_switch(
        &self,
        engine: &dyn Engine,
        id: i64,
        plan: &Plan,
        op_id: i64,
    ) -> ManagerResult<()> {
        let staging = self.staging_service(&self.service(id).await?, plan);
        self.stop_gracefully(&staging).await?;
        self.remove_own_container(&staging).await?;
        let switched = self.service(id).await?;
        self.bring_up(engine, &switched, op_id).await?;
        self.store.set_service_status(id, "running").await?;
        self.step(
            op_id,
            &format!(
                "done: major {} -> {}; writes were held for {} ms; the old data stays in {} \
                 until upgrade/finalize",
                plan.from_major,
                plan.to_major,
                plan.writes_held_ms.unwrap_or_default(),
                plan.old_volume
            ),
        )
        .await;
        Ok(())
    }

    /// Before the switch: the new container and volume go, writes are allowed again.
    async fn undo_before_switch(
        &self,
        engine: &dyn Engine,
        service: &Service,
        plan: &Plan,
    ) -> ManagerResult<()> {
        let staging = self.staging_service(service, plan);
        self.stop_gracefully(&staging).await?;
        self.remove_own_container(&staging).await?;
        self.docker.remove_volume(&plan.new_volume).await?;
        let service = self.service(service.id).await?;
        if self
            .docker
            .inspect_container(&service.container_name)
            .await?
            .is_none()
            || service.status != "running"
        {
            self.bring_up(engine, &service, 0).await?;
        }
        self.allow_writes(engine, &service).await?;
        self.record_observed_status(&service).await;
        Ok(())
    }

    /// After the switch, back to the old volume and image (a failed start of the new version,
    /// or `upgrade/rollback`): the new volume is kept, with whatever was written to it.
    async fn switch_back(
        &self,
        engine: &dyn Engine,
        id: i64,
        plan: &Plan,
        op_id: i64,
    ) -> ManagerResult<()> {
        let current = self.service(id).await?;
        self.stop_gracefully(&current).await?;
        self.remove_own_container(&current).await?;
        let staging = self.staging_service(&current, plan);
        self.remove_own_container(&staging).await?;
        self.store
            .switch_service_data(
                id,
                &plan.old_volume,
                &plan.previous,
                plan.old_marker.as_deref(),
                &note_key(id),
                None,
            )
            .await?;
        let back = self.service(id).await?;
        self.bring_up(engine, &back, op_id).await?;
        self.store.set_service_status(id, "running").await?;
        self.allow_writes(engine, &back).await
    }

    async fn allow_writes(&self, engine: &dyn Engine, service: &Service) -> ManagerResult<()> {
        let backup = engine.backup().ok_or_else(|| cannot(engine))?;
        let port = Self::host_port(engine, service)?;
        let params = service.all_parameters();
        let access = ServiceAccess::new(&self.docker, &service.container_name, port, &params);
        backup
            .block_writes(&access, false)
            .await
            .map_err(|e| ManagerError::Unavailable(format!("allowing writes again: {e}")))
    }

    /// The new version's container until the switch: the service's row with another name,
    /// volume, port and image, and no marker (its volume is new).
    fn staging_service(&self, service: &Service, plan: &Plan) -> Service {
        let mut staging = service.clone();
        staging.container_name = plan.staging_container.clone();
        staging.volume_name = plan.new_volume.clone();
        staging.volume_marker = None;
        staging.parameters = plan.previous.clone();
        staging
            .parameters
            .insert(DOCKER_IMAGE.into(), plan.target_image.clone());
        if let Some((_, param)) = Self::engine_for(service)
            .ok()
            .and_then(|e| e.ports().first().copied())
        {
            staging
                .parameters
                .insert(param.into(), plan.staging_port.to_string());
        }
        staging
    }

    fn volume_labels(&self, id: i64) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_SERVICE_ID.to_string(), id.to_string()),
            (LABEL_INSTANCE.to_string(), self.instance_id.clone()),
        ])
    }

    /// `POST .../upgrade/rollback`: back to the version before the last major upgrade.
    pub async fn rollback_major_upgrade(self: &Arc<Self>, id: i64) -> ManagerResult<Started> {
        self.service(id).await?;
        let guard = self.claim(id, OpKind::Upgrade).await?;
        let service = self.service(id).await?;
        let plan = self.pending_plan(&service).await?;
        let engine = Self::engine_for(&service)?;
        let op = self
            .store
            .begin_operation(
                id,
                guard.queued_operation(),
                OpKind::Upgrade,
                "upgrading",
                None,
                None,
                &serde_json::json!({ "mode": "rollback", "plan": plan }),
            )
            .await?;
        let manager = self.clone();
        let op_id = op.id;
        Ok(self.spawn_operation(op, guard, async move {
            manager.step(op_id, "going back to the old version").await;
            manager.switch_back(engine, id, &plan, op_id).await
        }))
    }

    /// `POST .../upgrade/finalize`: the old version's volume is removed; no way back.
    pub async fn finalize_major_upgrade(self: &Arc<Self>, id: i64) -> ManagerResult<String> {
        self.service(id).await?;
        let _guard = self.claim(id, OpKind::Upgrade).await?;
        let service = self.service(id).await?;
        let plan = self.pending_plan(&service).await?;
        self.docker.remove_volume(&plan.old_volume).await?;
        self.store.delete_meta(&note_key(id)).await?;
        Ok(format!(
            "major {} is final; volume {} (major {}) is removed",
            plan.to_major, plan.old_volume, plan.from_major
        ))
    }

    async fn pending_plan(&self, service: &Service) -> ManagerResult<Plan> {
        let note = self
            .store
            .meta(&note_key(service.id))
            .await?
            .ok_or_else(|| {
                ManagerError::Conflict(format!(
                    "service {:?} has no major upgrade to roll back or finalize",
                    service.name
                ))
            })?;
        serde_json::from_str(&note)
            .map_err(|e| ManagerError::Internal(format!("upgrade note: {e}")))
    }

    /// The old volume a pending major upgrade keeps, removed with the service unless its data
    /// is kept.
    pub(super) async fn forget_major_upgrade(
        &self,
        id: i64,
        remove_volume: bool,
    ) -> ManagerResult<()> {
        if let Some(note) = self.store.meta(&note_key(id)).await?
            && let Ok(plan) = serde_json::from_str::<Plan>(&note)
        {
            if remove_volume {
                self.docker.remove_volume(&plan.old_volume).await?;
            }
            self.store.delete_meta(&note_key(id)).await?;
        }
        Ok(())
    }

    /// The reconciler's resolution of a major upgrade (or rollback) cut off by a crash.
    /// Returns whether it ended on the new version.
    pub async fn resolve_major_upgrade(
        &self,
        op: &Operation,
        service: &Service,
    ) -> ManagerResult<bool> {
        let engine = Self::engine_for(service)?;
        if op.payload.get("mode").and_then(|m| m.as_str()) == Some("rollback") {
            let plan: Plan = serde_json::from_value(op.payload["plan"].clone())
                .map_err(|e| ManagerError::Internal(format!("rollback payload: {e}")))?;
            if service.volume_name == plan.new_volume {
                self.switch_back(engine, service.id, &plan, op.id).await?;
            } else {
                self.bring_up(engine, service, op.id).await?;
                self.allow_writes(engine, service).await?;
            }
            return Ok(false);
        }
        let plan: Plan = serde_json::from_value(op.payload.clone())
            .map_err(|e| ManagerError::Internal(format!("upgrade payload: {e}")))?;
        if service.volume_name != plan.new_volume {
            self.undo_before_switch(engine, service, &plan).await?;
            return Ok(false);
        }
        if self
            .finish_switch(engine, service.id, &plan, op.id)
            .await
            .is_ok()
        {
            return Ok(true);
        }
        self.switch_back(engine, service.id, &plan, op.id).await?;
        Ok(false)
    }
}

fn cannot(engine: &dyn Engine) -> ManagerError {
    ManagerError::BadRequest(format!(
        "{} services cannot be upgraded by dump and restore: Berth cannot hold their writes \
         while it copies (PostgreSQL can). Back the service up and restore it into a new \
         service of the new version instead",
        engine.display_name()
    ))
}

/// Milliseconds since the epoch, to tell one upgrade's new volume from another's.
fn epoch_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// Whether an operation's payload is a major upgrade's (or its rollback's).
pub fn is_major_upgrade(op: &Operation) -> bool {
    matches!(
        op.payload.get("mode").and_then(|m| m.as_str()),
        Some(DUMP_RESTORE | "rollback")
    )
}
