//! One backup run. The record (`running`, with the folder its objects go to) is written before
//! the first byte is read: that is the intent a crash's cleanup needs. Then, under the
//! service's shared claim (no update or stop replaces the container mid-dump) and one run at
//! a time per service: each part the engine plans is dumped, uploaded and checked on the
//! destination (`upload.rs`); the manifest is written last and checked too. Only then is the run `succeeded`. Any failure
//! removes what the run stored and records why: nothing partial is ever listed as restorable.

use std::sync::Arc;

use berth_core::backup::layout::{self, BackupId};
use berth_core::backup::manifest::{MANIFEST_FORMAT, rfc3339_utc};
use berth_core::backup::{BackupManifest, ManifestObject, ManifestService, ObjectKind};
use bytes::Bytes;

use super::super::{ManagerError, ManagerResult, ServiceManager, redact};
use super::destination::Target;
use super::upload::{Stored, zstd};
use crate::engines::backup::{DumpPart, PartKind};
use crate::engines::tenancy::ServiceAccess;
use crate::store::{BackupOutcome, BackupRecord, NewBackup, STATE_SERVICE_TYPE};

/// What a user (or a schedule) asks for.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub service_id: i64,
    pub destination_id: i64,
    /// Only `full` exists for these engines.
    pub backup_type: Option<String>,
    pub created_by: String,
    pub schedule_id: Option<i64>,
    pub tags: Vec<String>,
    pub expires_at: Option<String>,
}

/// A run recorded and going on in the background.
pub struct StartedBackup {
    pub record: BackupRecord,
    /// The record as it ended, with the error when it failed.
    pub done: tokio::task::JoinHandle<(BackupRecord, Option<ManagerError>)>,
}

const COMPRESSION: &str = "zstd";

impl ServiceManager {
    /// Checks the request, records the run and starts it.
    pub async fn start_backup(
        self: &Arc<Self>,
        request: BackupRequest,
    ) -> ManagerResult<StartedBackup> {
        self.refuse_if_shutting_down()?;
        let service = self.service(request.service_id).await?;
        let engine = Self::engine_for(&service)?;
        if engine.backup().is_none() {
            return Err(ManagerError::BadRequest(format!(
                "{} services cannot be backed up yet",
                service.service_type
            )));
        }
        let backup_type = request.backup_type.as_deref().unwrap_or("full");
        if backup_type != "full" {
            return Err(ManagerError::BadRequest(format!(
                "backup_type {backup_type:?} is not supported for {} services; use \"full\"",
                service.service_type
            )));
        }
        let destination = self.destination(request.destination_id).await?;
        if destination.service_id == Some(service.id) {
            return Err(ManagerError::BadRequest(
                "a service cannot be backed up into itself".into(),
            ));
        }
        let target = self.destination_target(&destination).await?;
        let started = self
            .record_and_spawn(
                target,
                service.id,
                NewBackup {
                    backup_id: "",
                    service_id: Some(service.id),
                    service_name: &service.name,
                    service_type: &service.service_type,
                    destination_id: destination.id,
                    schedule_id: request.schedule_id,
                    backup_type,
                    location: "",
                    compression_type: COMPRESSION,
                    created_by: &request.created_by,
                    tags: &request.tags,
                    expires_at: request.expires_at.as_deref(),
                },
            )
            .await?;
        tracing::info!(backup = %started.record.backup_id, service_id = service.id, "backup started");
        Ok(started)
    }

    /// Names a run (its id from its start time), files it in its owner's folder (the
    /// record's type and name, and `folder_id`: the service's id, 0 for Berth's own state)
    /// and records it `running` before the first byte is read (the intent a crash's cleanup
    /// needs), then runs it in the background. `fields`' `backup_id` and `location` are
    /// filled in here.
    pub(super) async fn record_and_spawn(
        self: &Arc<Self>,
        target: Target,
        folder_id: i64,
        fields: NewBackup<'_>,
    ) -> ManagerResult<StartedBackup> {
        let started_ms = now_ms();
        let backup_id = BackupId::new(started_ms, rand::random())
            .map_err(|e| ManagerError::Internal(format!("backup id: {e}")))?;
        let folder = layout::backup_folder(
            &target.prefix,
            fields.service_type,
            fields.service_name,
            folder_id,
            &backup_id,
        )
        .map_err(|e| ManagerError::Internal(format!("backup folder: {e}")))?;
        let location = format!("s3://{}/{folder}", target.bucket);
        let record = self
            .store
            .insert_backup(&NewBackup {
                backup_id: backup_id.as_str(),
                location: &location,
                ..fields
            })
            .await?;
        Ok(self.spawn_backup(record, target, folder, backup_id, started_ms))
    }

    /// Runs a recorded backup in the background.
    pub(super) fn spawn_backup(
        self: &Arc<Self>,
        record: BackupRecord,
        target: Target,
        folder: String,
        backup_id: BackupId,
        started_ms: i64,
    ) -> StartedBackup {
        let manager = self.clone();
        let started = record.clone();
        let done = tokio::spawn(async move {
            manager
                .backup_in_turn(started, target, folder, backup_id, started_ms)
                .await
        });
        StartedBackup { record, done }
    }

    async fn backup_in_turn(
        self: Arc<Self>,
        record: BackupRecord,
        target: Target,
        folder: String,
        backup_id: BackupId,
        started_ms: i64,
    ) -> (BackupRecord, Option<ManagerError>) {
        let service_id = record.service_id.unwrap_or_default();
        let lock = self.backup_runs.lock_for(service_id);
        let turn = match lock.clone().try_lock_owned() {
            Ok(turn) => turn,
            Err(_) => {
                self.backup_step(record.id, "waiting for an earlier backup of this service")
                    .await;
                lock.lock_owned().await
            }
        };
        let started = std::time::Instant::now();
        let work = async {
            if record.service_type == STATE_SERVICE_TYPE {
                return self
                    .run_state_backup(&record, &target, &folder, &backup_id, started_ms)
                    .await;
            }
            let _claim = self.claim_shared(service_id).await?;
            self.run_backup(&record, &target, &folder, &backup_id, started_ms)
                .await
        };
        // A schedule's runtime limit stops the run here; it then fails like any other run.
        let result = tokio::select! {
            biased;
            reason = self.backup_runs.cancelled(record.id) => Err(ManagerError::Unavailable(reason)),
            result = work => result,
        };
        drop(turn);
        let error = match result {
            Ok((manifest, stored)) => {
                let compression = compression_label(&manifest);
                let json = String::from_utf8(manifest.to_json()).expect("JSON is UTF-8");
                let outcome = BackupOutcome {
                    size_bytes: i64::try_from(manifest.total_size() + stored.size)
                        .unwrap_or(i64::MAX),
                    file_count: i64::try_from(manifest.objects.len() + 1).unwrap_or(i64::MAX),
                    checksum: &stored.sha256,
                    manifest: &json,
                    compression_type: &compression,
                };
                match self.store.succeed_backup(record.id, &outcome).await {
                    Ok(()) => None,
                    Err(e) => Some(ManagerError::from(e)),
                }
            }
            Err(e) => Some(e),
        };
        if let Some(e) = &error {
            let service = self.store.service(service_id).await.ok().flatten();
            let message = match &service {
                Some(service) => redact(&e.to_string(), service),
                None => e.to_string(),
            };
            tracing::warn!(backup = %record.backup_id, service_id, "backup failed: {message}");
            let cleaned = match self
                .remove_backup_objects(&target, &folder, record.id)
                .await
            {
                Ok(()) => true,
                Err(cleanup) => {
                    tracing::warn!(backup = %record.backup_id, "removing a failed backup's objects (retried later): {cleanup}");
                    false
                }
            };
            if let Err(store) = self.store.fail_backup(record.id, &message, cleaned).await {
                tracing::error!(backup = %record.backup_id, "recording a failed backup: {store}");
            }
        }
        self.metrics.record_backup(
            &record.service_type,
            error.is_none(),
            started.elapsed().as_secs_f64(),
        );
        self.backup_runs.finished(record.id);
        let ended = self
            .store
            .backup(record.id)
            .await
            .ok()
            .flatten()
            .unwrap_or(record);
        (ended, error)
    }

    async fn run_backup(
        &self,
        record: &BackupRecord,
        target: &Target,
        folder: &str,
        backup_id: &BackupId,
        started_ms: i64,
    ) -> ManagerResult<(BackupManifest, Stored)> {
        let service = self.service(record.service_id.unwrap_or_default()).await?;
        if service.status != "running" {
            return Err(ManagerError::Unavailable(format!(
                "service {:?} is {}, not running; start it to back it up",
                service.name, service.status
            )));
        }
        let engine = Self::engine_for(&service)?;
        let backup = engine
            .backup()
            .ok_or_else(|| ManagerError::Internal("engine lost its backup support".into()))?;
        let port = Self::host_port(engine, &service)?;
        let params = service.all_parameters();
        let access = ServiceAccess::new(&self.docker, &service.container_name, port, &params);

        self.backup_step(record.id, "checking the destination")
            .await;
        Self::check_bucket(target).await?;
        let holding_backups = self.destination_buckets_in(service.id).await?;
        let parts: Vec<DumpPart> = backup
            .plan(&access)
            .await
            .map_err(|e| ManagerError::Unavailable(format!("reading what to back up: {e}")))?
            .into_iter()
            // Backups are not backed up into each other: a restore would roll them back.
            .filter(|p| {
                p.database
                    .as_ref()
                    .is_none_or(|bucket| !holding_backups.contains(bucket))
            })
            .collect();
        let mut objects = Vec::with_capacity(parts.len());
        for part in parts {
            self.backup_step(record.id, &format!("dumping {}", part.file))
                .await;
            let dump = backup
                .dump(&access, &part)
                .await
                .map_err(|e| ManagerError::Unavailable(format!("dumping {}: {e}", part.file)))?;
            let (file, stream) = match part.compressed_by_tool {
                Some(_) => (part.file.clone(), dump.stream),
                None => (format!("{}.zst", part.file), zstd(dump.stream)),
            };
            let key = layout::object_key(folder, &file)
                .map_err(|e| ManagerError::Internal(format!("object key: {e}")))?;
            let stored = self
                .upload_verified(record.id, target, &key, "application/octet-stream", stream)
                .await
                .map_err(|e| e.map_message(|m| format!("{}: {m}", part.file)))?;
            let counts = dump
                .counts
                .await
                .map_err(|e| ManagerError::Unavailable(format!("{}: {e}", part.file)))?;
            objects.push(ManifestObject {
                key: file,
                kind: match part.kind {
                    PartKind::Globals => ObjectKind::Globals,
                    PartKind::Database => ObjectKind::Database,
                    PartKind::Snapshot => ObjectKind::Snapshot,
                },
                database: part.database.clone(),
                size_bytes: stored.size,
                sha256: stored.sha256,
                compression: part.compressed_by_tool.map(str::to_string),
                counts,
            });
        }

        self.backup_step(record.id, "writing the manifest").await;
        let manifest = BackupManifest {
            format: MANIFEST_FORMAT,
            backup_id: backup_id.to_string(),
            service: ManifestService {
                id: service.id,
                name: service.name.clone(),
                service_type: service.service_type.clone(),
                image: service
                    .param(berth_core::params::DOCKER_IMAGE)
                    .unwrap_or_default()
                    .to_string(),
                version: self.image_version(&service).await,
            },
            started_at: rfc3339_utc(started_ms).unwrap_or_default(),
            finished_at: rfc3339_utc(now_ms()).unwrap_or_default(),
            compression: COMPRESSION.into(),
            objects,
        };
        self.upload_manifest(record.id, target, folder, manifest)
            .await
    }

    /// The destination's bucket is there and answers.
    pub(super) async fn check_bucket(target: &Target) -> ManagerResult<()> {
        match target.client.bucket_exists(&target.bucket).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ManagerError::Unavailable(format!(
                "bucket {:?} does not exist on the destination",
                target.bucket
            ))),
            Err(e) => Err(ManagerError::Unavailable(format!(
                "the destination refused or did not answer: {e}"
            ))),
        }
    }

    /// Writes the manifest, last (its presence is what marks a backup whole in a listing).
    pub(super) async fn upload_manifest(
        &self,
        backup_row: i64,
        target: &Target,
        folder: &str,
        manifest: BackupManifest,
    ) -> ManagerResult<(BackupManifest, Stored)> {
        manifest
            .validate()
            .map_err(|e| ManagerError::Internal(format!("manifest: {e}")))?;
        let bytes = Bytes::from(manifest.to_json());
        let stream = Box::pin(futures_util::stream::iter([Ok::<_, String>(bytes)]));
        let stored = self
            .upload_verified(
                backup_row,
                target,
                &layout::manifest_key(folder),
                "application/json",
                stream,
            )
            .await?;
        Ok((manifest, stored))
    }

    pub(super) async fn backup_step(&self, backup_row: i64, step: &str) {
        if let Err(e) = self.store.set_backup_step(backup_row, step).await {
            tracing::warn!(backup = backup_row, "recording a backup step: {e}");
        }
    }
}

/// `zstd`, or e.g. `pg_custom+zstd` when some objects are compressed by their tool.
fn compression_label(manifest: &BackupManifest) -> String {
    let mut kinds: Vec<&str> = manifest
        .objects
        .iter()
        .map(|o| o.compression.as_deref().unwrap_or(COMPRESSION))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    if kinds.is_empty() {
        COMPRESSION.to_string()
    } else {
        kinds.join("+")
    }
}

pub(super) fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}
