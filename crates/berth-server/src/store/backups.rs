//! Backup records (migration 0007). A row is written `running` before the first byte is read
//! from the service (the intent: where the objects go), and becomes `succeeded` only with the
//! verified manifest, or `failed` with the reason. At startup, rows still `running` were cut
//! off by a crash: the reconciler cleans their objects up and marks them failed. Retention
//! (migration 0009) makes a finished backup `deleted` before removing its objects.

use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreResult, now, optional};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupState {
    Running,
    Succeeded,
    Failed,
    /// Removed from its destination by retention (migration 0009): nothing to restore.
    Deleted,
}

impl BackupState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupState::Running => "running",
            BackupState::Succeeded => "succeeded",
            BackupState::Failed => "failed",
            BackupState::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => BackupState::Running,
            "succeeded" => BackupState::Succeeded,
            "failed" => BackupState::Failed,
            "deleted" => BackupState::Deleted,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct BackupRecord {
    pub id: i64,
    /// The sortable name of its folder on the destination (`20261128T051700Z-a1b2c3`).
    pub backup_id: String,
    pub service_id: Option<i64>,
    pub service_name: String,
    pub service_type: String,
    pub destination_id: i64,
    pub schedule_id: Option<i64>,
    pub backup_type: String,
    pub state: BackupState,
    pub step: String,
    /// `s3://bucket/prefix/.../backup_id/`
    pub location: String,
    pub size_bytes: i64,
    pub file_count: i64,
    /// sha256 of the manifest as stored.
    pub checksum: Option<String>,
    pub compression_type: String,
    pub error_message: Option<String>,
    /// The manifest (JSON) of a succeeded backup.
    pub manifest: Option<String>,
    pub verify_state: Option<String>,
    pub verify_message: Option<String>,
    pub verified_at: Option<String>,
    pub created_by: String,
    pub tags: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub expires_at: Option<String>,
    /// When retention deleted it, and why (state `deleted`).
    pub deleted_at: Option<String>,
    pub deleted_reason: Option<String>,
}

/// A multipart upload a backup began and has not finished.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
}

/// `service_type` of a backup of Berth's own state (it has no service).
pub const STATE_SERVICE_TYPE: &str = "berth-state";

/// What is known when a backup starts.
#[derive(Debug, Clone)]
pub struct NewBackup<'a> {
    pub backup_id: &'a str,
    /// `None` for a backup of Berth's own state.
    pub service_id: Option<i64>,
    pub service_name: &'a str,
    pub service_type: &'a str,
    pub destination_id: i64,
    pub schedule_id: Option<i64>,
    pub backup_type: &'a str,
    pub location: &'a str,
    pub compression_type: &'a str,
    pub created_by: &'a str,
    pub tags: &'a [String],
    pub expires_at: Option<&'a str>,
}

/// What a verified backup records.
#[derive(Debug, Clone)]
pub struct BackupOutcome<'a> {
    pub size_bytes: i64,
    pub file_count: i64,
    pub checksum: &'a str,
    pub manifest: &'a str,
    pub compression_type: &'a str,
}

const COLUMNS: &str = "id, backup_id, service_id, service_name, service_type, destination_id, \
                       schedule_id, backup_type, state, step, location, size_bytes, file_count, \
                       checksum, compression_type, error_message, manifest, verify_state, \
                       verify_message, verified_at, created_by, tags, started_at, finished_at, \
                       expires_at, deleted_at, deleted_reason";

/// Which backups a listing returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackupFilter {
    pub service_id: Option<i64>,
    pub destination_id: Option<i64>,
    pub schedule_id: Option<i64>,
    pub service_type: Option<&'static str>,
}

impl Store {
    pub async fn insert_backup(&self, new: &NewBackup<'_>) -> StoreResult<BackupRecord> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO backups (backup_id, service_id, service_name, service_type, \
             destination_id, schedule_id, backup_type, state, step, location, compression_type, \
             created_by, tags, started_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', 'starting', $8, $9, $10, $11, $12, $13) \
             RETURNING {COLUMNS}"
        )))
        .bind(new.backup_id)
        .bind(new.service_id)
        .bind(new.service_name)
        .bind(new.service_type)
        .bind(new.destination_id)
        .bind(new.schedule_id)
        .bind(new.backup_type)
        .bind(new.location)
        .bind(new.compression_type)
        .bind(new.created_by)
        .bind(serde_json::to_string(new.tags).expect("strings serialise"))
        .bind(now())
        .bind(new.expires_at)
        .fetch_one(&self.pool)
        .await?;
        from_row(&row)
    }

    pub async fn set_backup_step(&self, id: i64, step: &str) -> StoreResult<()> {
        sqlx::query("UPDATE backups SET step = $1 WHERE id = $2 AND state = 'running'")
            .bind(step)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a running backup succeeded with its verified manifest.
    pub async fn succeed_backup(&self, id: i64, outcome: &BackupOutcome<'_>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE backups SET state = 'succeeded', step = 'done', size_bytes = $1, \
             file_count = $2, checksum = $3, manifest = $4, finished_at = $5, \
             compression_type = $6, pending_uploads = '[]' WHERE id = $7 AND state = 'running'",
        )
        .bind(outcome.size_bytes)
        .bind(outcome.file_count)
        .bind(outcome.checksum)
        .bind(outcome.manifest)
        .bind(now())
        .bind(outcome.compression_type)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a running backup failed with the reason. `cleaned`: everything it stored is
    /// gone; otherwise its pending uploads are kept and reconciler passes retry the cleanup.
    pub async fn fail_backup(&self, id: i64, error: &str, cleaned: bool) -> StoreResult<()> {
        sqlx::query(
            "UPDATE backups SET state = 'failed', step = 'done', error_message = $1, \
             finished_at = $2, needs_cleanup = $3, \
             pending_uploads = CASE WHEN $3 = 0 THEN '[]' ELSE pending_uploads END \
             WHERE id = $4 AND state = 'running'",
        )
        .bind(error)
        .bind(now())
        .bind(i64::from(!cleaned))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Failed runs whose leftovers are still to be removed.
    pub async fn backups_needing_cleanup(&self) -> StoreResult<Vec<BackupRecord>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM backups WHERE state = 'failed' AND needs_cleanup = 1 ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn cleaned_up_backup(&self, id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE backups SET needs_cleanup = 0, pending_uploads = '[]' WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a multipart upload begun for a backup (before its first part is sent).
    pub async fn add_pending_upload(&self, id: i64, key: &str, upload_id: &str) -> StoreResult<()> {
        let mut pending = self.pending_uploads(id).await?;
        pending.push(PendingUpload {
            key: key.to_string(),
            upload_id: upload_id.to_string(),
        });
        self.set_pending_uploads(id, &pending).await
    }

    /// Forgets the uploads of `key` (completed, or aborted by the uploader itself).
    pub async fn clear_pending_uploads(&self, id: i64, key: &str) -> StoreResult<()> {
        let mut pending = self.pending_uploads(id).await?;
        pending.retain(|p| p.key != key);
        self.set_pending_uploads(id, &pending).await
    }

    pub async fn pending_uploads(&self, id: i64) -> StoreResult<Vec<PendingUpload>> {
        let text: Option<String> = optional(
            sqlx::query_scalar("SELECT pending_uploads FROM backups WHERE id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await,
        )?;
        match text {
            Some(text) => serde_json::from_str(&text)
                .map_err(|_| super::StoreError::Corrupt("backup pending uploads".into())),
            None => Ok(Vec::new()),
        }
    }

    async fn set_pending_uploads(&self, id: i64, pending: &[PendingUpload]) -> StoreResult<()> {
        sqlx::query("UPDATE backups SET pending_uploads = $1 WHERE id = $2")
            .bind(serde_json::to_string(pending).expect("serialises"))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a verification's state (`running`, `succeeded`, `failed`) and what it found.
    pub async fn set_backup_verify(&self, id: i64, state: &str, message: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE backups SET verify_state = $1, verify_message = $2, verified_at = $3 \
             WHERE id = $4",
        )
        .bind(state)
        .bind(message)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn backup(&self, id: i64) -> StoreResult<Option<BackupRecord>> {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM backups WHERE id = $1"
            )))
            .bind(id)
            .fetch_one(&self.pool)
            .await,
        )?;
        row.as_ref().map(from_row).transpose()
    }

    /// Backups, newest first.
    pub async fn list_backups(&self, filter: BackupFilter) -> StoreResult<Vec<BackupRecord>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM backups WHERE ($1 IS NULL OR service_id = $1) \
             AND ($2 IS NULL OR destination_id = $2) AND ($3 IS NULL OR schedule_id = $3) \
             AND ($4 IS NULL OR service_type = $4) \
             ORDER BY started_at DESC, id DESC"
        )))
        .bind(filter.service_id)
        .bind(filter.destination_id)
        .bind(filter.schedule_id)
        .bind(filter.service_type)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Retention's intent, written before a backup's objects are deleted: the backup is
    /// `deleted` (never restorable again) with the time and the reason. Only a finished
    /// backup can be; `false` if it is running or unknown.
    pub async fn mark_backup_deleted(&self, backup_id: &str, reason: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE backups SET state = 'deleted', deleted_at = $1, deleted_reason = $2 \
             WHERE backup_id = $3 AND state IN ('succeeded', 'failed')",
        )
        .bind(now())
        .bind(reason)
        .bind(backup_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn running_backups(&self) -> StoreResult<Vec<BackupRecord>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM backups WHERE state = 'running' ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Backups whose verification was going on (a crash cut it off if none runs now).
    pub async fn verifying_backups(&self) -> StoreResult<Vec<BackupRecord>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM backups WHERE verify_state = 'running' ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn count_backups_in_destination(&self, destination_id: i64) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM backups WHERE destination_id = $1")
                .bind(destination_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The newest succeeded backup's finish time per service (for `/metrics`), Berth's own
    /// state as service 0.
    pub async fn last_backup_successes(&self) -> StoreResult<Vec<(i64, String, String)>> {
        let rows = sqlx::query(
            "SELECT COALESCE(service_id, 0) AS service_id, service_name, \
             MAX(finished_at) AS last FROM backups \
             WHERE state = 'succeeded' AND (service_id IS NOT NULL OR service_type = $1) \
             GROUP BY 1, 2",
        )
        .bind(STATE_SERVICE_TYPE)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("service_id")?,
                    r.try_get("service_name")?,
                    r.try_get("last")?,
                ))
            })
            .collect()
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<BackupRecord> {
    let state: String = row.try_get("state")?;
    let tags: String = row.try_get("tags")?;
    let corrupt = |what: &str| super::StoreError::Corrupt(format!("backup {what}"));
    Ok(BackupRecord {
        id: row.try_get("id")?,
        backup_id: row.try_get("backup_id")?,
        service_id: row.try_get("service_id")?,
        service_name: row.try_get("service_name")?,
        service_type: row.try_get("service_type")?,
        destination_id: row.try_get("destination_id")?,
        schedule_id: row.try_get("schedule_id")?,
        backup_type: row.try_get("backup_type")?,
        state: BackupState::parse(&state).ok_or_else(|| corrupt("state"))?,
        step: row.try_get("step")?,
        location: row.try_get("location")?,
        size_bytes: row.try_get("size_bytes")?,
        file_count: row.try_get("file_count")?,
        checksum: row.try_get("checksum")?,
        compression_type: row.try_get("compression_type")?,
        error_message: row.try_get("error_message")?,
        manifest: row.try_get("manifest")?,
        verify_state: row.try_get("verify_state")?,
        verify_message: row.try_get("verify_message")?,
        verified_at: row.try_get("verified_at")?,
        created_by: row.try_get("created_by")?,
        tags: serde_json::from_str(&tags).map_err(|_| corrupt("tags"))?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        expires_at: row.try_get("expires_at")?,
        deleted_at: row.try_get("deleted_at")?,
        deleted_reason: row.try_get("deleted_reason")?,
    })
}
