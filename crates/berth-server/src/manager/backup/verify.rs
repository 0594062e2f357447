//! Verification by restore: a backup is restored into a throwaway service of its type (same
//! image, ports chosen freely, named `verify-{backup}-{random}`), every object checked against
//! the manifest's SHA-256 and every database's counts against the manifest's, then the
//! throwaway service is deleted with its volume. The outcome is recorded on the backup
//! (`verify_state`, `verify_message`, `verified_at`), so a backup that only looked fine on
//! the destination is known to restore.
//!
//! The intent comes first: `running`, with the throwaway service's name in the message, is
//! written before that service is created, so after a crash the startup reconciler fails the
//! verification and deletes exactly that service (`fail_interrupted_verifications`).

use std::sync::Arc;

use berth_core::Parameters;

use super::super::{CreateRequest, ManagerError, ManagerResult, ServiceManager};
use super::restore::restorable_manifest;
use crate::store::{BackupRecord, OpKind};

/// How a running verification names its throwaway service (read back after a crash).
const RESTORING_INTO: &str = "restoring into the throwaway service ";

/// A verification going on in the background.
pub struct StartedVerify {
    pub record: BackupRecord,
    pub done: tokio::task::JoinHandle<(BackupRecord, Option<ManagerError>)>,
}

impl ServiceManager {
    pub async fn start_verify(self: &Arc<Self>, backup_id: i64) -> ManagerResult<StartedVerify> {
        self.refuse_if_shutting_down()?;
        let backup =
            self.store.backup(backup_id).await?.ok_or_else(|| {
                ManagerError::NotFound(format!("backup {backup_id} does not exist"))
            })?;
        restorable_manifest(&backup)?;
        let suffix: [u8; 3] = rand::random();
        let throwaway = format!("verify-{}-{}", backup.id, hex::encode(suffix));
        self.store
            .set_backup_verify(
                backup.id,
                "running",
                &format!("{RESTORING_INTO}{throwaway}"),
            )
            .await?;
        let record = self.store.backup(backup.id).await?.unwrap_or(backup);
        let manager = self.clone();
        let verifying = record.clone();
        let done = tokio::spawn(async move {
            let result = manager.verify_by_restore(&verifying, throwaway).await;
            let (state, message, error) = match result {
                Ok(summary) => ("succeeded", summary, None),
                Err(e) => ("failed", e.to_string(), Some(e)),
            };
            if let Err(e) = manager
                .store
                .set_backup_verify(verifying.id, state, &message)
                .await
            {
                tracing::error!(backup = verifying.id, "recording a verification: {e}");
            }
            let ended = manager
                .store
                .backup(verifying.id)
                .await
                .ok()
                .flatten()
                .unwrap_or(verifying);
            (ended, error)
        });
        Ok(StartedVerify { record, done })
    }

    async fn verify_by_restore(
        self: &Arc<Self>,
        backup: &BackupRecord,
        name: String,
    ) -> ManagerResult<String> {
        let manifest = restorable_manifest(backup)?;
        let mut parameters = Parameters::new();
        if !manifest.service.image.is_empty() {
            parameters.insert(
                berth_core::params::DOCKER_IMAGE.to_string(),
                manifest.service.image.clone(),
            );
        }
        let (service, started) = self
            .create(CreateRequest {
                name: name.clone(),
                service_type: backup.service_type.clone(),
                version: None,
                parameters,
            })
            .await?;
        let result = async {
            started
                .done
                .await
                .map_err(|e| ManagerError::Internal(format!("create task: {e}")))??;
            crate::crashpoint::hit("verify.after_throwaway_created");
            let _claim = self.claim(service.id, OpKind::Restore).await?;
            let service = self.service(service.id).await?;
            self.restore_parts(None, backup, &manifest, &service, None)
                .await
        }
        .await;
        // The throwaway service goes whatever happened.
        match self
            .delete(
                service.id,
                crate::manager::DeleteOptions {
                    force: true,
                    ..Default::default()
                },
            )
            .await
        {
            Ok(deleting) => {
                let _ = deleting.done.await;
            }
            Err(e) => tracing::warn!(service = %name, "removing a verification service: {e}"),
        }
        result?;
        let counted: u64 = manifest
            .objects
            .iter()
            .flat_map(|o| o.counts.values())
            .sum();
        Ok(format!(
            "restored {} object(s) into a throwaway service; checksums and counts ({counted} \
             rows/keys) match the manifest",
            manifest.objects.len()
        ))
    }

    /// Verifications a crash cut off: recorded failed, their throwaway services deleted with
    /// their volumes. Called by the startup reconciler once interrupted operations are
    /// resolved (the throwaway's own create may have been one of them).
    pub async fn fail_interrupted_verifications(self: &Arc<Self>) -> ManagerResult<()> {
        let services = self.store.list_services().await?;
        for backup in self.store.verifying_backups().await? {
            let throwaway = backup
                .verify_message
                .as_deref()
                .and_then(|m| m.strip_prefix(RESTORING_INTO));
            self.store
                .set_backup_verify(
                    backup.id,
                    "failed",
                    &format!(
                        "berth stopped during the verification; nothing is known of this \
                         backup's restorability: verify it again (POST /api/backups/{}/verify)",
                        backup.id
                    ),
                )
                .await?;
            let Some(service) = services.iter().find(|s| Some(s.name.as_str()) == throwaway) else {
                continue;
            };
            match self
                .delete(
                    service.id,
                    crate::manager::DeleteOptions {
                        force: true,
                        ..Default::default()
                    },
                )
                .await
            {
                Ok(deleting) => {
                    let _ = deleting.done.await;
                }
                Err(e) => tracing::warn!(
                    service = %service.name,
                    "removing an interrupted verification's service: {e}"
                ),
            }
        }
        Ok(())
    }
}
