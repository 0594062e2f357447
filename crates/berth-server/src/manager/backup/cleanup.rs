//! What a failed or interrupted backup leaves on its destination is removed: unfinished
//! multipart uploads (their ids were recorded before their first part) are aborted and every
//! object under the backup's folder is deleted, so no partial backup can ever be listed or
//! restored. At startup, runs a crash cut off are cleaned this way and marked failed.

use super::super::{ManagerResult, ServiceManager};
use super::destination::Target;
use crate::store::BackupRecord;

impl ServiceManager {
    /// Aborts the backup's recorded multipart uploads and deletes its objects.
    pub(super) async fn remove_backup_objects(
        &self,
        target: &Target,
        folder: &str,
        backup_row: i64,
    ) -> Result<(), String> {
        let mut problems = Vec::new();
        for pending in self
            .store
            .pending_uploads(backup_row)
            .await
            .map_err(|e| e.to_string())?
        {
            if let Err(e) = target
                .client
                .abort_multipart(&target.bucket, &pending.key, &pending.upload_id)
                .await
            {
                problems.push(format!("aborting the upload of {}: {e}", pending.key));
            }
        }
        match target.client.list_all(&target.bucket, folder).await {
            Ok(objects) => {
                for object in objects {
                    if let Err(e) = target
                        .client
                        .delete_object(&target.bucket, &object.key)
                        .await
                    {
                        problems.push(format!("deleting {}: {e}", object.key));
                    }
                }
            }
            Err(e) => problems.push(format!("listing {folder}: {e}")),
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Startup: the runs recorded as running before this process began were cut off. Their
    /// objects are removed (as far as the destination answers) and they are marked failed.
    pub async fn fail_interrupted_backups(
        &self,
        interrupted: &[BackupRecord],
    ) -> ManagerResult<usize> {
        for record in interrupted {
            let reason = "berth stopped while this backup ran; nothing of it is kept, run it again";
            let cleaned = match self.remove_recorded_leftovers(record).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(backup = %record.backup_id, "cleanup of an interrupted backup (retried later): {e}");
                    false
                }
            };
            tracing::warn!(backup = %record.backup_id, "interrupted backup marked failed");
            self.store.fail_backup(record.id, reason, cleaned).await?;
        }
        Ok(interrupted.len())
    }

    /// Reconciler passes: retries removing what failed runs left while their destination
    /// did not answer.
    pub async fn retry_backup_cleanups(&self) -> ManagerResult<()> {
        for record in self.store.backups_needing_cleanup().await? {
            match self.remove_recorded_leftovers(&record).await {
                Ok(()) => {
                    tracing::info!(backup = %record.backup_id, "a failed backup's leftovers are removed");
                    self.store.cleaned_up_backup(record.id).await?;
                }
                Err(e) => {
                    tracing::debug!(backup = %record.backup_id, "cleanup still impossible: {e}")
                }
            }
        }
        Ok(())
    }

    async fn remove_recorded_leftovers(&self, record: &BackupRecord) -> Result<(), String> {
        let (target, folder) = self.interrupted_target(record).await?;
        self.remove_backup_objects(&target, &folder, record.id)
            .await
    }

    async fn interrupted_target(&self, record: &BackupRecord) -> Result<(Target, String), String> {
        let destination = self
            .destination(record.destination_id)
            .await
            .map_err(|e| e.to_string())?;
        let target = self
            .destination_target(&destination)
            .await
            .map_err(|e| e.to_string())?;
        let folder = record
            .location
            .strip_prefix(&format!("s3://{}/", target.bucket))
            .filter(|f| f.ends_with('/') && !f.is_empty())
            .ok_or_else(|| format!("location {} is not in this destination", record.location))?
            .to_string();
        Ok((target, folder))
    }
}
