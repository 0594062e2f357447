//! Restore runs (migration 0008): written before a restore touches anything, updated as it
//! goes (`phase`), finished `succeeded`, `failed` (with the reason) or `cancelled`.

use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreResult, now, optional};

#[derive(Debug, Clone)]
pub struct RestoreRun {
    pub id: i64,
    pub source_backup_id: i64,
    pub source_service_id: Option<i64>,
    pub target_service_id: Option<i64>,
    pub target_service_name: Option<String>,
    /// `in_place` or `new_service`.
    pub mode: String,
    /// One database of the backup, or `None` for all of it.
    pub database: Option<String>,
    /// `running`, `succeeded`, `failed`, `cancelled`.
    pub status: String,
    pub phase: String,
    pub safety_backup_id: Option<i64>,
    pub recovery_target: Option<String>,
    pub error_message: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub created_at: String,
}

/// What is known when a restore is asked for.
#[derive(Debug, Clone)]
pub struct NewRestoreRun<'a> {
    pub source_backup_id: i64,
    pub source_service_id: Option<i64>,
    pub target_service_id: Option<i64>,
    pub target_service_name: Option<&'a str>,
    pub mode: &'a str,
    pub database: Option<&'a str>,
}

const COLUMNS: &str = "id, source_backup_id, source_service_id, target_service_id, \
                       target_service_name, mode, database_name, status, phase, \
                       safety_backup_id, recovery_target, error_message, started_at, \
                       finished_at, created_at";

impl Store {
    pub async fn insert_restore_run(&self, new: &NewRestoreRun<'_>) -> StoreResult<RestoreRun> {
        let ts = now();
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO restore_runs (source_backup_id, source_service_id, target_service_id, \
             target_service_name, mode, database_name, status, phase, started_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'running', 'queued', $7, $7) RETURNING {COLUMNS}"
        )))
        .bind(new.source_backup_id)
        .bind(new.source_service_id)
        .bind(new.target_service_id)
        .bind(new.target_service_name)
        .bind(new.mode)
        .bind(new.database)
        .bind(ts)
        .fetch_one(&self.pool)
        .await?;
        from_row(&row)
    }

    pub async fn set_restore_phase(&self, id: i64, phase: &str) -> StoreResult<()> {
        sqlx::query("UPDATE restore_runs SET phase = $1 WHERE id = $2 AND status = 'running'")
            .bind(phase)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the service a `new_service` restore created (as soon as it exists).
    pub async fn set_restore_target(&self, id: i64, service_id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE restore_runs SET target_service_id = $1 WHERE id = $2")
            .bind(service_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_restore_safety_backup(&self, id: i64, backup_id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE restore_runs SET safety_backup_id = $1 WHERE id = $2")
            .bind(backup_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a running restore (`succeeded`, `failed`, `cancelled`).
    pub async fn finish_restore_run(
        &self,
        id: i64,
        status: &str,
        error: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE restore_runs SET status = $1, error_message = $2, finished_at = $3 \
             WHERE id = $4 AND status = 'running'",
        )
        .bind(status)
        .bind(error)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn restore_run(&self, id: i64) -> StoreResult<Option<RestoreRun>> {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM restore_runs WHERE id = $1"
            )))
            .bind(id)
            .fetch_one(&self.pool)
            .await,
        )?;
        row.as_ref().map(from_row).transpose()
    }

    /// Restore runs onto or from a service, newest first.
    pub async fn restore_runs_of_service(&self, service_id: i64) -> StoreResult<Vec<RestoreRun>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM restore_runs WHERE target_service_id = $1 \
             OR source_service_id = $1 ORDER BY id DESC"
        )))
        .bind(service_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn running_restore_runs(&self) -> StoreResult<Vec<RestoreRun>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM restore_runs WHERE status = 'running' ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<RestoreRun> {
    Ok(RestoreRun {
        id: row.try_get("id")?,
        source_backup_id: row.try_get("source_backup_id")?,
        source_service_id: row.try_get("source_service_id")?,
        target_service_id: row.try_get("target_service_id")?,
        target_service_name: row.try_get("target_service_name")?,
        mode: row.try_get("mode")?,
        database: row.try_get("database_name")?,
        status: row.try_get("status")?,
        phase: row.try_get("phase")?,
        safety_backup_id: row.try_get("safety_backup_id")?,
        recovery_target: row.try_get("recovery_target")?,
        error_message: row.try_get("error_message")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        created_at: row.try_get("created_at")?,
    })
}
