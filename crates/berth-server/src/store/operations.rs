//! Operations: the intent log behind every multi-step change, and what `GET /api/operations/{id}`
//! shows while one runs. A row is written before the first Docker call; the reconciler finishes
//! or undoes any row still `running` after a crash.

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreResult, now, optional};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Create,
    Start,
    Stop,
    Update,
    Upgrade,
    Delete,
    /// Starting again with empty data after the volume was lost (`data_missing`).
    Recreate,
    /// Loading a backup into the service (restore runs track it; recorded here only while
    /// it waits in the service's queue).
    Restore,
    /// An imported service's container handed over to Berth (recreated as its own on the
    /// same volume).
    Adopt,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Start => "start",
            OpKind::Stop => "stop",
            OpKind::Update => "update",
            OpKind::Upgrade => "upgrade",
            OpKind::Delete => "delete",
            OpKind::Recreate => "recreate",
            OpKind::Restore => "restore",
            OpKind::Adopt => "adopt",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "create" => OpKind::Create,
            "start" => OpKind::Start,
            "stop" => OpKind::Stop,
            "update" => OpKind::Update,
            "upgrade" => OpKind::Upgrade,
            "delete" => OpKind::Delete,
            "recreate" => OpKind::Recreate,
            "restore" => OpKind::Restore,
            "adopt" => OpKind::Adopt,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpStatus {
    /// Recorded while the request waits for earlier ones on the same service to finish; it
    /// becomes `running` when its turn comes (the same operation id).
    Queued,
    Running,
    Succeeded,
    Failed,
    /// Interrupted (crash) and undone by the reconciler.
    RolledBack,
}

impl OpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OpStatus::Queued => "queued",
            OpStatus::Running => "running",
            OpStatus::Succeeded => "succeeded",
            OpStatus::Failed => "failed",
            OpStatus::RolledBack => "rolled_back",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => OpStatus::Queued,
            "running" => OpStatus::Running,
            "succeeded" => OpStatus::Succeeded,
            "failed" => OpStatus::Failed,
            "rolled_back" => OpStatus::RolledBack,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, OpStatus::Queued | OpStatus::Running)
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Operation {
    pub id: i64,
    pub service_id: Option<i64>,
    pub kind: OpKind,
    pub status: OpStatus,
    /// Human-readable current step ("creating container", "waiting for readiness", ...).
    pub step: String,
    /// Kind-specific intent (e.g. previous and target parameters of an update).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "id, service_id, kind, status, step, payload, error, created_at, updated_at";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<Operation> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let payload: String = row.try_get("payload")?;
    let corrupt = |what: &str| super::StoreError::Corrupt(format!("operation {what}"));
    Ok(Operation {
        id: row.try_get("id")?,
        service_id: row.try_get("service_id")?,
        kind: OpKind::parse(&kind).ok_or_else(|| corrupt("kind"))?,
        status: OpStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        step: row.try_get("step")?,
        payload: serde_json::from_str(&payload).map_err(|_| corrupt("payload"))?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Inserts a running operation inside the caller's transaction, or turns the request's
/// queued operation (`queued`) into it, keeping the id its caller polls.
pub(super) async fn insert_operation_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    service_id: i64,
    queued: Option<i64>,
    kind: OpKind,
    payload: &serde_json::Value,
) -> StoreResult<Operation> {
    let ts = now();
    if let Some(id) = queued {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE operations SET status = 'running', step = 'starting', payload = $1, \
                 updated_at = $2 WHERE id = $3 AND service_id = $4 AND status = 'queued' \
                 RETURNING {COLUMNS}"
            )))
            .bind(payload.to_string())
            .bind(ts.clone())
            .bind(id)
            .bind(service_id)
            .fetch_one(&mut **tx)
            .await,
        )?;
        if let Some(row) = row {
            return from_row(&row);
        }
    }
    let row = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO operations (service_id, kind, status, step, payload, created_at, updated_at) \
         VALUES ($1, $2, 'running', 'queued', $3, $4, $4) RETURNING {COLUMNS}"
    )))
    .bind(service_id)
    .bind(kind.as_str())
    .bind(payload.to_string())
    .bind(ts)
    .fetch_one(&mut **tx)
    .await?;
    from_row(&row)
}

impl Store {
    pub async fn operation(&self, id: i64) -> StoreResult<Option<Operation>> {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM operations WHERE id = $1"
            )))
            .bind(id)
            .fetch_one(&self.pool)
            .await,
        )?;
        row.as_ref().map(from_row).transpose()
    }

    /// Replaces a running operation's payload: intent it learned on the way (an adopt
    /// records the restart policy it changed), written before the step that needs undoing.
    pub async fn set_operation_payload(
        &self,
        id: i64,
        payload: &serde_json::Value,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE operations SET payload = $1, updated_at = $2 WHERE id = $3")
            .bind(payload.to_string())
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn running_operations(&self) -> StoreResult<Vec<Operation>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM operations WHERE status = 'running' ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn has_running_operation(&self, service_id: i64) -> StoreResult<bool> {
        let found = optional(
            sqlx::query(
                "SELECT id FROM operations WHERE service_id = $1 AND status = 'running' LIMIT 1",
            )
            .bind(service_id)
            .fetch_one(&self.pool)
            .await,
        )?;
        Ok(found.is_some())
    }

    pub async fn list_operations(&self, service_id: Option<i64>) -> StoreResult<Vec<Operation>> {
        let rows = match service_id {
            Some(id) => sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM operations WHERE service_id = $1 ORDER BY id DESC LIMIT 100"
            )))
            .bind(id)
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM operations ORDER BY id DESC LIMIT 100"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    /// Records a request that waits for its service (see `manager/queue.rs`).
    pub async fn insert_queued_operation(
        &self,
        service_id: i64,
        kind: OpKind,
    ) -> StoreResult<Operation> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO operations (service_id, kind, status, step, payload, created_at, updated_at) \
             VALUES ($1, $2, 'queued', 'waiting for earlier requests on this service', '{{}}', $3, $3) \
             RETURNING {COLUMNS}"
        )))
        .bind(service_id)
        .bind(kind.as_str())
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        from_row(&row)
    }

    /// Fails a queued operation that never started (its request was refused or gave up);
    /// a no-op once it runs, so it can never overwrite a real outcome.
    pub async fn fail_queued_operation(&self, id: i64, error: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE operations SET status = 'failed', error = $1, step = 'done', updated_at = $2 \
             WHERE id = $3 AND status = 'queued'",
        )
        .bind(error)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// At startup: requests that were still waiting when Berth stopped never ran.
    pub async fn fail_all_queued_operations(&self, error: &str) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE operations SET status = 'failed', error = $1, step = 'done', updated_at = $2 \
             WHERE status = 'queued'",
        )
        .bind(error)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn set_operation_step(&self, id: i64, step: &str) -> StoreResult<()> {
        sqlx::query("UPDATE operations SET step = $1, updated_at = $2 WHERE id = $3")
            .bind(step)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn finish_operation(
        &self,
        id: i64,
        status: OpStatus,
        error: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE operations SET status = $1, error = $2, step = 'done', updated_at = $3 WHERE id = $4",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
