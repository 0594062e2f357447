//! Restore runs (Temps' restore framework): a verified backup into the service it came from
//! (`in_place`: a safety backup of the service is taken first, and a backup of another service
//! needs `confirm_cross_service`), or into a new service (`new_service`). The whole backup or
//! one database of it; never into a database other than the one named. Each object is
//! streamed from the destination, checked against the manifest's SHA-256 as it passes, and
//! loaded by the engine; the counts of every restored database are compared with those the
//! backup took in its own snapshot. The run row is written first and follows each phase.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use async_compression::tokio::bufread::ZstdDecoder;
use berth_core::Parameters;
use berth_core::backup::{BackupManifest, ManifestObject, ObjectKind};
use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio_util::io::{ReaderStream, StreamReader};

use super::super::{CreateRequest, ManagerError, ManagerResult, ServiceManager};
use super::BackupRequest;
use crate::engines::backup::{DumpPart, PartKind, RestoreStream};
use crate::engines::tenancy::ServiceAccess;
use crate::store::{BackupRecord, BackupState, NewRestoreRun, OpKind, RestoreRun, Service};

/// Where a restore goes.
#[derive(Debug, Clone)]
pub enum RestoreMode {
    /// Over the service the request names (destructive).
    InPlace { confirm_cross_service: bool },
    /// Into a new service of the backup's type.
    NewService {
        name: String,
        parameter_overrides: Parameters,
    },
}

#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The service in the route (`/external-services/{id}/restore`); `None` for a restore
    /// into a new service from the backup alone (its own service may be gone).
    pub service_id: Option<i64>,
    pub backup_id: i64,
    pub mode: RestoreMode,
    /// One database of the backup; all of it when `None`.
    pub database: Option<String>,
}

/// Running restores, so one can be cancelled.
#[derive(Default)]
pub struct RestoreTasks {
    running: StdMutex<HashMap<i64, tokio::task::AbortHandle>>,
}

impl ServiceManager {
    /// Checks the request, records the run and starts it; answers at once with the run.
    pub async fn start_restore(
        self: &Arc<Self>,
        request: RestoreRequest,
    ) -> ManagerResult<RestoreRun> {
        self.refuse_if_shutting_down()?;
        let service = match request.service_id {
            Some(id) => Some(self.service(id).await?),
            None => None,
        };
        let backup = self.store.backup(request.backup_id).await?.ok_or_else(|| {
            ManagerError::NotFound(format!("backup {} does not exist", request.backup_id))
        })?;
        let manifest = restorable_manifest(&backup)?;
        if let Some(service) = &service
            && backup.service_type != service.service_type
        {
            return Err(ManagerError::BadRequest(format!(
                "backup {} is of a {} service; it cannot be restored with a {} service",
                backup.id, backup.service_type, service.service_type
            )));
        }
        crate::engines::engine(&backup.service_type)
            .and_then(|engine| engine.backup())
            .ok_or_else(|| {
                ManagerError::BadRequest(format!(
                    "{} services cannot be restored",
                    backup.service_type
                ))
            })?;
        if let Some(database) = &request.database
            && !manifest.objects.iter().any(|o| {
                o.kind == ObjectKind::Database && o.database.as_deref() == Some(database.as_str())
            })
        {
            return Err(ManagerError::BadRequest(format!(
                "backup {} has no database {database:?}; it has {}",
                backup.id,
                manifest.databases().join(", ")
            )));
        }
        let (target_id, target_name) = match &request.mode {
            RestoreMode::InPlace {
                confirm_cross_service,
            } => {
                let service = service.as_ref().ok_or_else(|| {
                    ManagerError::BadRequest("an in-place restore names its service".into())
                })?;
                if backup.service_id != Some(service.id) && !confirm_cross_service {
                    return Err(ManagerError::Conflict(format!(
                        "backup {} is of service {:?}, not of {:?}: restoring it in place replaces \
                         {:?}'s data with another service's; send confirm_cross_service: true if \
                         that is what you want",
                        backup.id, backup.service_name, service.name, service.name
                    )));
                }
                (Some(service.id), Some(service.name.clone()))
            }
            RestoreMode::NewService { name, .. } => (None, Some(name.clone())),
        };
        if let Some(target) = target_id
            && let Some(active) = self
                .store
                .restore_runs_of_service(target)
                .await?
                .into_iter()
                .find(|r| r.status == "running" && r.target_service_id == Some(target))
        {
            return Err(ManagerError::Conflict(format!(
                "restore-already-active: restore run {} is still running on service {target} \
                 (active_restore_run_id {}); wait for it or cancel it",
                active.id, active.id
            )));
        }
        let run = self
            .store
            .insert_restore_run(&NewRestoreRun {
                source_backup_id: backup.id,
                source_service_id: backup.service_id,
                target_service_id: target_id,
                target_service_name: target_name.as_deref(),
                mode: match request.mode {
                    RestoreMode::InPlace { .. } => "in_place",
                    RestoreMode::NewService { .. } => "new_service",
                },
                database: request.database.as_deref(),
            })
            .await?;
        let manager = self.clone();
        let started = run.clone();
        let task = tokio::spawn(async move {
            manager
                .restore_in_turn(started, backup, manifest, request)
                .await
        });
        self.restore_tasks
            .running
            .lock()
            .expect("restores")
            .insert(run.id, task.abort_handle());
        Ok(run)
    }

    /// Cancels a running restore: its task stops where it is (a database being loaded is left
    /// as far as it got; the run says so).
    pub async fn cancel_restore(&self, id: i64) -> ManagerResult<RestoreRun> {
        let run =
            self.store.restore_run(id).await?.ok_or_else(|| {
                ManagerError::NotFound(format!("restore run {id} does not exist"))
            })?;
        if run.status != "running" {
            return Err(ManagerError::Conflict(format!(
                "restore run {id} is {}, not running",
                run.status
            )));
        }
        if let Some(handle) = self
            .restore_tasks
            .running
            .lock()
            .expect("restores")
            .remove(&id)
        {
            handle.abort();
        }
        self.store
            .finish_restore_run(
                id,
                "cancelled",
                Some(&format!(
                    "cancelled during {:?}; what was restored until then stays (run the restore \
                     again, or restore the safety backup)",
                    run.phase
                )),
            )
            .await?;
        Ok(self.store.restore_run(id).await?.unwrap_or(run))
    }

    /// Startup: restores a crash cut off are failed, saying what they may have left.
    pub async fn fail_interrupted_restores(&self) -> ManagerResult<()> {
        for run in self.store.running_restore_runs().await? {
            let message = format!(
                "berth stopped during {:?}; the target may be partly restored: run the restore \
                 again{}",
                run.phase,
                run.safety_backup_id
                    .map(|b| format!(" (safety backup {b} holds the data from before)"))
                    .unwrap_or_default()
            );
            self.store
                .finish_restore_run(run.id, "failed", Some(&message))
                .await?;
        }
        Ok(())
    }

    async fn restore_in_turn(
        self: Arc<Self>,
        run: RestoreRun,
        backup: BackupRecord,
        manifest: BackupManifest,
        request: RestoreRequest,
    ) {
        let result = match &request.mode {
            RestoreMode::InPlace { .. } => {
                let target = request.service_id.unwrap_or_default();
                self.restore_in_place(
                    &run,
                    &backup,
                    &manifest,
                    target,
                    request.database.as_deref(),
                )
                .await
            }
            RestoreMode::NewService {
                name,
                parameter_overrides,
            } => {
                self.restore_new_service(
                    &run,
                    &backup,
                    &manifest,
                    name,
                    parameter_overrides,
                    request.database.as_deref(),
                )
                .await
            }
        };
        let (status, error) = match &result {
            Ok(()) => ("succeeded", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
        tracing::info!(
            restore = run.id,
            status,
            error = error.as_deref().unwrap_or(""),
            "restore finished"
        );
        if let Err(e) = self
            .store
            .finish_restore_run(run.id, status, error.as_deref())
            .await
        {
            tracing::error!(restore = run.id, "recording a restore's outcome: {e}");
        }
        self.restore_tasks
            .running
            .lock()
            .expect("restores")
            .remove(&run.id);
    }

    async fn restore_in_place(
        self: &Arc<Self>,
        run: &RestoreRun,
        backup: &BackupRecord,
        manifest: &BackupManifest,
        target_id: i64,
        database: Option<&str>,
    ) -> ManagerResult<()> {
        self.restore_phase(run.id, "taking a safety backup").await;
        let safety = self
            .start_backup(BackupRequest {
                service_id: target_id,
                destination_id: backup.destination_id,
                backup_type: None,
                created_by: format!("restore run {}", run.id),
                schedule_id: None,
                tags: vec!["safety".into(), format!("restore-run-{}", run.id)],
                expires_at: None,
            })
            .await
            .map_err(|e| {
                e.map_message(|m| {
                    format!("the safety backup could not start, nothing was restored: {m}")
                })
            })?;
        self.store
            .set_restore_safety_backup(run.id, safety.record.id)
            .await?;
        let (_, error) = safety
            .done
            .await
            .map_err(|e| ManagerError::Internal(format!("safety backup task: {e}")))?;
        if let Some(e) = error {
            return Err(
                e.map_message(|m| format!("the safety backup failed, nothing was restored: {m}"))
            );
        }
        self.restore_phase(run.id, "waiting for the service").await;
        let _claim = self.claim(target_id, OpKind::Restore).await?;
        let service = self.service(target_id).await?;
        self.restore_parts(Some(run.id), backup, manifest, &service, database)
            .await
    }

    async fn restore_new_service(
        self: &Arc<Self>,
        run: &RestoreRun,
        backup: &BackupRecord,
        manifest: &BackupManifest,
        name: &str,
        overrides: &Parameters,
        database: Option<&str>,
    ) -> ManagerResult<()> {
        self.restore_phase(run.id, "creating the service").await;
        let mut parameters = overrides.clone();
        if !manifest.service.image.is_empty() {
            parameters
                .entry(berth_core::params::DOCKER_IMAGE.to_string())
                .or_insert_with(|| manifest.service.image.clone());
        }
        let (service, started) = self
            .create(CreateRequest {
                name: name.to_string(),
                service_type: backup.service_type.clone(),
                version: None,
                parameters,
            })
            .await?;
        self.store.set_restore_target(run.id, service.id).await?;
        started
            .done
            .await
            .map_err(|e| ManagerError::Internal(format!("create task: {e}")))??;
        let result = async {
            let _claim = self.claim(service.id, OpKind::Restore).await?;
            let service = self.service(service.id).await?;
            self.restore_parts(Some(run.id), backup, manifest, &service, database)
                .await
        }
        .await;
        if let Err(e) = result {
            // A half-restored new service is no use to anyone: it goes, the error says why.
            if let Ok(deleting) = self
                .delete(
                    service.id,
                    crate::manager::DeleteOptions {
                        force: true,
                        ..Default::default()
                    },
                )
                .await
            {
                let _ = deleting.done.await;
            }
            return Err(e.map_message(|m| format!("{m} (the new service {name:?} was removed)")));
        }
        Ok(())
    }

    /// Loads the backup's objects into `service`: shared definitions first, then each
    /// database (or only `database`), each checked against the manifest's counts. Phases are
    /// recorded on restore run `run_id` when there is one.
    pub(super) async fn restore_parts(
        &self,
        run_id: Option<i64>,
        backup: &BackupRecord,
        manifest: &BackupManifest,
        service: &Service,
        database: Option<&str>,
    ) -> ManagerResult<()> {
        if service.status != "running" {
            return Err(ManagerError::Unavailable(format!(
                "service {:?} is {}, not running; start it to restore into it",
                service.name, service.status
            )));
        }
        let engine = Self::engine_for(service)?;
        let backup_engine = engine
            .backup()
            .ok_or_else(|| ManagerError::Internal("engine lost its backup support".into()))?;
        let port = Self::host_port(engine, service)?;
        let params = service.all_parameters();
        let access = ServiceAccess::new(&self.docker, &service.container_name, port, &params);
        let destination = self.destination(backup.destination_id).await?;
        let target = self.destination_target(&destination).await?;
        let folder = backup
            .location
            .strip_prefix(&format!("s3://{}/", target.bucket))
            .ok_or_else(|| {
                ManagerError::BadRequest(format!(
                    "backup {} lies at {}, which is no longer in destination {:?}",
                    backup.id, backup.location, destination.name
                ))
            })?
            .to_string();
        // A bucket that now holds Berth's backups is never overwritten by a restore: it would
        // delete the backups made since, under records that still list them.
        let holding_backups = self.destination_buckets_in(service.id).await?;
        let chosen: Vec<&ManifestObject> = manifest
            .objects
            .iter()
            .filter(|o| match o.kind {
                ObjectKind::Globals | ObjectKind::Snapshot => true,
                ObjectKind::Database => database.is_none_or(|d| o.database.as_deref() == Some(d)),
                _ => false,
            })
            .filter(|o| {
                o.database
                    .as_ref()
                    .is_none_or(|bucket| !holding_backups.contains(bucket))
            })
            .collect();
        for object in &chosen {
            self.restore_phase_of(run_id, &format!("restoring {}", object.key))
                .await;
            let key = format!("{folder}{}", object.key);
            let response = target
                .client
                .get_object(&target.bucket, &key, None)
                .await
                .map_err(|e| ManagerError::Unavailable(format!("reading {key}: {e}")))?
                .ok_or_else(|| {
                    ManagerError::Unavailable(format!("{key} is missing from the destination"))
                })?;
            let body = response.bytes_stream().map_err(|e| e.to_string());
            let checked = checked_stream(Box::pin(body), object.sha256.clone(), object.size_bytes);
            let stream = match object.compression {
                Some(_) => checked,
                None => unzstd(checked),
            };
            let part = DumpPart {
                file: object.key.clone(),
                kind: match object.kind {
                    ObjectKind::Globals => PartKind::Globals,
                    ObjectKind::Snapshot => PartKind::Snapshot,
                    _ => PartKind::Database,
                },
                database: object.database.clone(),
                compressed_by_tool: None,
            };
            backup_engine
                .restore(&access, &part, stream)
                .await
                .map_err(|e| ManagerError::Unavailable(format!("restoring {}: {e}", object.key)))?;
        }
        self.restore_phase_of(run_id, "comparing counts with the backup")
            .await;
        for object in chosen.iter().filter(|o| o.kind != ObjectKind::Globals) {
            let now = backup_engine
                .counts(&access, object.database.as_deref())
                .await
                .map_err(|e| {
                    ManagerError::Unavailable(format!("counting what was restored: {e}"))
                })?;
            if let Err(difference) = backup_engine.counts_match(&object.counts, &now) {
                return Err(ManagerError::Unavailable(format!(
                    "restored {} does not hold what the backup counted: {difference}",
                    object.database.as_deref().unwrap_or(&object.key),
                )));
            }
        }
        Ok(())
    }

    async fn restore_phase_of(&self, run_id: Option<i64>, phase: &str) {
        if let Some(id) = run_id {
            self.restore_phase(id, phase).await;
        }
    }

    async fn restore_phase(&self, id: i64, phase: &str) {
        if let Err(e) = self.store.set_restore_phase(id, phase).await {
            tracing::warn!(restore = id, "recording a restore phase: {e}");
        }
    }
}

/// The manifest of a backup that may be restored: succeeded, with a readable manifest.
pub(super) fn restorable_manifest(backup: &BackupRecord) -> ManagerResult<BackupManifest> {
    if backup.service_type == crate::store::STATE_SERVICE_TYPE {
        return Err(ManagerError::BadRequest(format!(
            "backup {} is of Berth's own state, sealed to your passphrase: the server cannot \
             open it; restore it offline with `berth state restore` (README: \"Rebuild a server\")",
            backup.id
        )));
    }
    if backup.state != BackupState::Succeeded {
        return Err(ManagerError::BadRequest(format!(
            "backup {} is {}; only a succeeded (verified) backup can be restored",
            backup.id,
            backup.state.as_str()
        )));
    }
    let text = backup.manifest.as_deref().unwrap_or_default();
    BackupManifest::from_json(text.as_bytes())
        .map_err(|e| ManagerError::Internal(format!("backup {}'s manifest: {e}", backup.id)))
}

/// Passes the bytes through and fails at the end if they are not what the manifest recorded.
fn checked_stream(stream: RestoreStream, sha256: String, size: u64) -> RestoreStream {
    let state = Arc::new(StdMutex::new((Sha256::new(), 0u64)));
    let tap = state.clone();
    let data = stream.map(move |chunk| {
        if let Ok(bytes) = &chunk {
            let mut s = tap.lock().expect("digest");
            s.0.update(bytes);
            s.1 += bytes.len() as u64;
        }
        chunk
    });
    let check = futures_util::stream::once(async move {
        let (hasher, read) = {
            let s = state.lock().expect("digest");
            (s.0.clone(), s.1)
        };
        let got = hex::encode(hasher.finalize());
        if got == sha256 && read == size {
            None
        } else {
            Some(Err(format!(
                "the object read ({read} bytes, sha256 {got}) is not the one backed up ({size} \
                 bytes, sha256 {sha256})"
            )))
        }
    })
    .filter_map(|r| async move { r });
    Box::pin(data.chain(check))
}

fn unzstd(stream: RestoreStream) -> RestoreStream {
    let reader = StreamReader::new(stream.map_err(std::io::Error::other));
    Box::pin(ReaderStream::new(ZstdDecoder::new(reader)).map(|r| r.map_err(|e| e.to_string())))
}
