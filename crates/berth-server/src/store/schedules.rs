//! Backup schedules and their runs (migration 0009). A schedule's `next_run` says when it is
//! due; a run that becomes due is recorded in `backup_schedule_runs` in the same transaction
//! that moves `next_run` ([`Store::record_due_run`]), so a crash between the two is
//! impossible. A recorded run is then dispatched (a backup started per service it covers) and
//! marked so; see `manager/backup/schedule.rs` for what happens at each crash point.

use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreError, StoreResult, now, optional};

#[derive(Debug, Clone)]
pub struct Schedule {
    pub id: i64,
    pub name: String,
    pub backup_type: String,
    /// Days a backup is kept (Temps); 0: no age limit.
    pub retention_period: i64,
    /// Succeeded backups kept whatever their age (Berth); `None`: no count limit.
    pub keep_last: Option<i64>,
    /// The destination (Temps' "S3 source").
    pub s3_source_id: i64,
    /// The one service backed up; `None`: every service that can be backed up.
    pub service_id: Option<i64>,
    /// What the schedule backs up: services, or Berth's own state.
    pub target: ScheduleTarget,
    pub schedule_expression: String,
    pub enabled: bool,
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// A backup still running after this many seconds is aborted and recorded failed.
    pub max_runtime_secs: Option<i64>,
    /// Whether each backup a run makes is verified by a restore once it succeeded.
    pub verify: bool,
    /// When it is due next (RFC 3339); `None` while disabled, or armed at the next tick.
    pub next_run: Option<String>,
    pub last_run: Option<String>,
    /// Why the last run could not start a backup of some service.
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// What a create writes.
#[derive(Debug, Clone)]
pub struct NewSchedule<'a> {
    pub name: &'a str,
    pub backup_type: &'a str,
    pub retention_period: i64,
    pub keep_last: Option<i64>,
    pub s3_source_id: i64,
    pub service_id: Option<i64>,
    pub target: ScheduleTarget,
    pub schedule_expression: &'a str,
    pub enabled: bool,
    pub tags: &'a [String],
    pub description: Option<&'a str>,
    pub max_runtime_secs: Option<i64>,
    pub verify: bool,
    pub next_run: Option<&'a str>,
}

/// What a schedule backs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScheduleTarget {
    /// Its one service, or every service that can be backed up.
    #[default]
    Services,
    /// Berth's own state database and secret key, sealed to the state backup key.
    BerthState,
}

impl ScheduleTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleTarget::Services => "services",
            ScheduleTarget::BerthState => "berth_state",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "services" => Some(ScheduleTarget::Services),
            "berth_state" => Some(ScheduleTarget::BerthState),
            _ => None,
        }
    }
}

/// Why a run was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Its schedule's `next_run` came.
    Scheduled,
    /// `POST /backups/schedules/{id}/run`.
    Manual,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Scheduled => "scheduled",
            RunKind::Manual => "manual",
        }
    }
}

/// A recorded run of a schedule.
#[derive(Debug, Clone)]
pub struct ScheduleRun {
    pub id: i64,
    pub schedule_id: i64,
    pub kind: String,
    /// The occurrence that was due (for a manual run, when it was asked for).
    pub due_at: String,
    pub recorded_at: String,
    /// Set once a backup was started for every service the run covers.
    pub dispatched_at: Option<String>,
}

const COLUMNS: &str = "id, name, backup_type, retention_period, keep_last, s3_source_id, \
                       service_id, schedule_expression, enabled, tags, description, \
                       max_runtime_secs, verify, next_run, last_run, last_error, created_at, updated_at, \
                       target";

const RUN_COLUMNS: &str = "id, schedule_id, kind, due_at, recorded_at, dispatched_at";

impl Store {
    pub async fn insert_schedule(&self, new: &NewSchedule<'_>) -> StoreResult<Schedule> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO backup_schedules (name, backup_type, retention_period, keep_last, \
             s3_source_id, service_id, schedule_expression, enabled, tags, description, \
             max_runtime_secs, verify, next_run, created_at, updated_at, target) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15) \
             RETURNING {COLUMNS}"
        )))
        .bind(new.name)
        .bind(new.backup_type)
        .bind(new.retention_period)
        .bind(new.keep_last)
        .bind(new.s3_source_id)
        .bind(new.service_id)
        .bind(new.schedule_expression)
        .bind(i64::from(new.enabled))
        .bind(serde_json::to_string(new.tags).expect("strings serialise"))
        .bind(new.description)
        .bind(new.max_runtime_secs)
        .bind(i64::from(new.verify))
        .bind(new.next_run)
        .bind(now())
        .bind(new.target.as_str())
        .fetch_one(&self.pool)
        .await?;
        schedule_from_row(&row)
    }

    pub async fn schedule(&self, id: i64) -> StoreResult<Option<Schedule>> {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM backup_schedules WHERE id = $1"
            )))
            .bind(id)
            .fetch_one(&self.pool)
            .await,
        )?;
        row.as_ref().map(schedule_from_row).transpose()
    }

    pub async fn schedule_by_name(&self, name: &str) -> StoreResult<Option<Schedule>> {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM backup_schedules WHERE name = $1"
            )))
            .bind(name)
            .fetch_one(&self.pool)
            .await,
        )?;
        row.as_ref().map(schedule_from_row).transpose()
    }

    /// Every schedule, oldest first.
    pub async fn list_schedules(&self) -> StoreResult<Vec<Schedule>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM backup_schedules ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    /// The schedules writing to a destination (whose retention applies there).
    pub async fn schedules_in_destination(
        &self,
        destination_id: i64,
    ) -> StoreResult<Vec<Schedule>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM backup_schedules WHERE s3_source_id = $1 ORDER BY id"
        )))
        .bind(destination_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    pub async fn delete_schedule(&self, id: i64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM backup_schedules WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Enables (with its first `next_run`, so it does not catch up on the time it was off) or
    /// disables (no `next_run`) a schedule.
    pub async fn set_schedule_enabled(
        &self,
        id: i64,
        enabled: bool,
        next_run: Option<&str>,
    ) -> StoreResult<Option<Schedule>> {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE backup_schedules SET enabled = $1, next_run = $2, updated_at = $3 \
                 WHERE id = $4 RETURNING {COLUMNS}"
            )))
            .bind(i64::from(enabled))
            .bind(next_run)
            .bind(now())
            .bind(id)
            .fetch_one(&self.pool)
            .await,
        )?;
        row.as_ref().map(schedule_from_row).transpose()
    }

    /// Arms an enabled schedule that has no `next_run` yet (no run).
    pub async fn arm_schedule(&self, id: i64, next_run: Option<&str>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE backup_schedules SET next_run = $1 \
             WHERE id = $2 AND enabled = 1 AND next_run IS NULL",
        )
        .bind(next_run)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The restart-safe step: in one transaction, moves the schedule's `next_run` from `due`
    /// (the value the decision was made on; anything else means the schedule was disabled,
    /// re-enabled or already ticked meanwhile, and nothing is recorded) to `next_run`, sets
    /// `last_run`, and records the run. `None` when the schedule was not in that state.
    pub async fn record_due_run(
        &self,
        id: i64,
        due: &str,
        next_run: Option<&str>,
    ) -> StoreResult<Option<ScheduleRun>> {
        let ts = now();
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE backup_schedules SET next_run = $1, last_run = $2 \
             WHERE id = $3 AND enabled = 1 AND next_run = $4",
        )
        .bind(next_run)
        .bind(&ts)
        .bind(id)
        .bind(due)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(None);
        }
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO backup_schedule_runs (schedule_id, kind, due_at, recorded_at) \
             VALUES ($1, $2, $3, $4) RETURNING {RUN_COLUMNS}"
        )))
        .bind(id)
        .bind(RunKind::Scheduled.as_str())
        .bind(due)
        .bind(&ts)
        .fetch_one(&mut *tx)
        .await?;
        let run = run_from_row(&row)?;
        tx.commit().await?;
        Ok(Some(run))
    }

    /// Records a run asked for now; `next_run` stays as it is.
    pub async fn record_manual_run(&self, id: i64) -> StoreResult<Option<ScheduleRun>> {
        let ts = now();
        let mut tx = self.pool.begin().await?;
        let touched = sqlx::query("UPDATE backup_schedules SET last_run = $1 WHERE id = $2")
            .bind(&ts)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if touched.rows_affected() != 1 {
            return Ok(None);
        }
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO backup_schedule_runs (schedule_id, kind, due_at, recorded_at) \
             VALUES ($1, $2, $3, $3) RETURNING {RUN_COLUMNS}"
        )))
        .bind(id)
        .bind(RunKind::Manual.as_str())
        .bind(&ts)
        .fetch_one(&mut *tx)
        .await?;
        let run = run_from_row(&row)?;
        tx.commit().await?;
        Ok(Some(run))
    }

    pub async fn schedule_run(&self, id: i64) -> StoreResult<Option<ScheduleRun>> {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {RUN_COLUMNS} FROM backup_schedule_runs WHERE id = $1"
            )))
            .bind(id)
            .fetch_one(&self.pool)
            .await,
        )?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Runs recorded and not yet dispatched, oldest first.
    pub async fn pending_schedule_runs(&self) -> StoreResult<Vec<ScheduleRun>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM backup_schedule_runs WHERE dispatched_at IS NULL ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Marks a run dispatched and records the schedule's `last_error` (`None`: every backup
    /// started), in one transaction.
    pub async fn finish_dispatch(
        &self,
        run_id: i64,
        schedule_id: i64,
        error: Option<&str>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE backup_schedule_runs SET dispatched_at = $1 WHERE id = $2")
            .bind(now())
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE backup_schedules SET last_error = $1 WHERE id = $2")
            .bind(error)
            .bind(schedule_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The backup a run started for a service, if it did (`created_by` names the run).
    /// `service_id` `None`: the run's backup of Berth's own state.
    pub async fn backup_started_by(
        &self,
        created_by: &str,
        service_id: Option<i64>,
    ) -> StoreResult<Option<i64>> {
        optional(
            sqlx::query_scalar::<_, i64>(
                "SELECT id FROM backups WHERE created_by = $1 \
                 AND (service_id = $2 OR ($2 IS NULL AND service_id IS NULL)) \
                 ORDER BY id LIMIT 1",
            )
            .bind(created_by)
            .bind(service_id)
            .fetch_one(&self.pool)
            .await,
        )
    }

    pub async fn count_schedules_in_destination(&self, destination_id: i64) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM backup_schedules WHERE s3_source_id = $1")
                .bind(destination_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

fn schedule_from_row(row: &sqlx::any::AnyRow) -> StoreResult<Schedule> {
    let tags: String = row.try_get("tags")?;
    let enabled: i64 = row.try_get("enabled")?;
    let target: String = row.try_get("target")?;
    Ok(Schedule {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        backup_type: row.try_get("backup_type")?,
        retention_period: row.try_get("retention_period")?,
        keep_last: row.try_get("keep_last")?,
        s3_source_id: row.try_get("s3_source_id")?,
        service_id: row.try_get("service_id")?,
        target: ScheduleTarget::parse(&target)
            .ok_or_else(|| StoreError::Corrupt(format!("schedule target {target:?}")))?,
        schedule_expression: row.try_get("schedule_expression")?,
        enabled: enabled != 0,
        tags: serde_json::from_str(&tags)
            .map_err(|_| StoreError::Corrupt("schedule tags".into()))?,
        description: row.try_get("description")?,
        max_runtime_secs: row.try_get("max_runtime_secs")?,
        verify: row.try_get::<i64, _>("verify")? != 0,
        next_run: row.try_get("next_run")?,
        last_run: row.try_get("last_run")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn run_from_row(row: &sqlx::any::AnyRow) -> StoreResult<ScheduleRun> {
    Ok(ScheduleRun {
        id: row.try_get("id")?,
        schedule_id: row.try_get("schedule_id")?,
        kind: row.try_get("kind")?,
        due_at: row.try_get("due_at")?,
        recorded_at: row.try_get("recorded_at")?,
        dispatched_at: row.try_get("dispatched_at")?,
    })
}
