//! Backup schedules: checked and stored (Temps' `/backups/schedules`), ticked by the
//! scheduler (`scheduler.rs`, once a second), and their runs dispatched: a backup started for
//! each service the schedule covers, one at a time per service (`start_backup` queues), each
//! watched for the schedule's runtime limit and followed by retention on the destination.
//!
//! A tick decides from the stored `next_run` alone (`berth_core::backup::schedule::tick`).
//! When a run is due, the new `next_run` and the run's record commit in one transaction
//! (`Store::record_due_run`); only then are backups started. What a crash leaves, at each point:
//!
//! 1. Before that commit: nothing changed; the stored `next_run` is still due, so the next
//!    start's first tick runs it (once, however many occurrences were missed).
//! 2. After the commit, before a backup started: the run is recorded and not dispatched; the
//!    next start's first tick dispatches it (`next_run` has moved, so no second run is made).
//! 3. After some backups started, before the run is marked dispatched: those backups were
//!    cut off and are marked failed at startup like any interrupted backup (their objects
//!    removed); each names its run in `created_by` (`schedule:{id}/run:{run}`), so dispatching
//!    the run again starts only the services it had not reached. One backup per service per
//!    run, never two.
//! 4. While a backup runs: the ordinary interrupted-backup recovery (failed, cleaned up); the
//!    run is not repeated.
//! 5. After a backup ended, before (or during) retention: the next run's retention, or a prune,
//!    does it (plans come from the destination's listing, see `retention.rs`).
//!
//! A new or re-enabled schedule is armed at the next occurrence after now (no catch-up for the
//! time it was off); a disabled one has no `next_run`; "run now" records a manual run and
//! leaves `next_run` alone.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_core::backup::schedule::{self as cron, CronSchedule};

use super::super::{ManagerError, ManagerResult, ServiceManager};
use super::run::{BackupRequest, StartedBackup, now_ms};
use super::state::StateBackupRequest;
use crate::store::{
    BackupRecord, BackupState, NewSchedule, Schedule, ScheduleRun, ScheduleTarget,
    is_unique_violation,
};

/// Longest schedule name.
pub const MAX_NAME_LEN: usize = 100;
const MAX_DESCRIPTION_LEN: usize = 1000;
const MAX_TAGS: usize = 20;
const MAX_TAG_LEN: usize = 100;
/// 100 years.
const MAX_RETENTION_DAYS: i64 = 36_500;
const MAX_KEEP_LAST: i64 = 10_000;
/// A week.
const MAX_RUNTIME_SECS: i64 = 7 * 86_400;
const DAY_MS: u64 = 86_400_000;

/// A schedule as asked for (Temps' fields, plus Berth's `service_id`, `keep_last` and
/// `max_runtime_secs`).
#[derive(Debug, Clone, Default)]
pub struct ScheduleRequest {
    pub name: String,
    /// `full` (the default; the only type these engines have).
    pub backup_type: Option<String>,
    /// Days a backup is kept; 0 or none: no age limit.
    pub retention_period: Option<i64>,
    pub s3_source_id: i64,
    pub schedule_expression: String,
    /// Default true.
    pub enabled: Option<bool>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// One service; none: every service that can be backed up.
    pub service_id: Option<i64>,
    /// Services (the default), or Berth's own state.
    pub target: ScheduleTarget,
    pub keep_last: Option<i64>,
    pub max_runtime_secs: Option<i64>,
    /// Verify each backup by a restore once it succeeded (default false).
    pub verify: bool,
}

/// What a run did for one service: the backup it started, or why it could not.
#[derive(Debug, Clone)]
pub struct ScheduledBackup {
    pub service_id: i64,
    pub backup: Option<BackupRecord>,
    pub error: Option<String>,
}

impl ServiceManager {
    /// Parses a cron expression under this server's frequency limit; 400 with croner's reason.
    fn parse_cron(&self, expression: &str) -> ManagerResult<CronSchedule> {
        CronSchedule::parse_with_min_interval(
            expression,
            self.config.backup_schedule_min_interval_secs,
        )
        .map_err(|e| ManagerError::BadRequest(e.to_string()))
    }

    pub async fn create_schedule(&self, request: ScheduleRequest) -> ManagerResult<Schedule> {
        let name = request.name.trim();
        check_text("name", name, 1, MAX_NAME_LEN)?;
        if let Some(description) = &request.description {
            check_text("description", description, 0, MAX_DESCRIPTION_LEN)?;
        }
        if request.tags.len() > MAX_TAGS {
            return Err(ManagerError::BadRequest(format!(
                "at most {MAX_TAGS} tags are allowed"
            )));
        }
        for tag in &request.tags {
            check_text("tag", tag, 1, MAX_TAG_LEN)?;
        }
        let backup_type = request.backup_type.as_deref().unwrap_or("full");
        if backup_type != "full" {
            return Err(ManagerError::BadRequest(format!(
                "backup_type {backup_type:?} is not supported; use \"full\""
            )));
        }
        let retention_period = request.retention_period.unwrap_or(0);
        check_range("retention_period", retention_period, 0, MAX_RETENTION_DAYS)?;
        if let Some(n) = request.keep_last {
            check_range("keep_last", n, 0, MAX_KEEP_LAST)?;
        }
        if let Some(secs) = request.max_runtime_secs {
            check_range("max_runtime_secs", secs, 1, MAX_RUNTIME_SECS)?;
        }
        let cron = self.parse_cron(&request.schedule_expression)?;
        let destination = self.destination(request.s3_source_id).await?;
        if request.target == ScheduleTarget::BerthState {
            if request.service_id.is_some() {
                return Err(ManagerError::BadRequest(
                    "a schedule of Berth's own state (target berth_state) names no service_id"
                        .into(),
                ));
            }
            if request.verify {
                return Err(ManagerError::BadRequest(
                    "a state backup is sealed to your passphrase, so Berth cannot verify it by \
                     restoring; check one offline with `berth state restore --check`"
                        .into(),
                ));
            }
            self.check_state_backup_possible().await?;
        }
        if let Some(service_id) = request.service_id {
            let service = self.service(service_id).await?;
            if Self::engine_for(&service)?.backup().is_none() {
                return Err(ManagerError::BadRequest(format!(
                    "{} services cannot be backed up yet",
                    service.service_type
                )));
            }
            if destination.service_id == Some(service_id) {
                return Err(ManagerError::BadRequest(
                    "a service cannot be backed up into itself".into(),
                ));
            }
        }
        if self.store.schedule_by_name(name).await?.is_some() {
            return Err(duplicate(name));
        }
        let enabled = request.enabled.unwrap_or(true);
        let next_run = enabled
            .then(|| cron.next_after(now_ms()).map(rfc3339))
            .flatten();
        self.store
            .insert_schedule(&NewSchedule {
                name,
                backup_type,
                retention_period,
                keep_last: request.keep_last,
                s3_source_id: destination.id,
                service_id: request.service_id,
                target: request.target,
                schedule_expression: cron.expression(),
                enabled,
                tags: &request.tags,
                description: request.description.as_deref(),
                max_runtime_secs: request.max_runtime_secs,
                verify: request.verify,
                next_run: next_run.as_deref(),
            })
            .await
            .map_err(|e| match is_unique_violation(&e) {
                true => duplicate(name),
                false => e.into(),
            })
    }

    pub async fn schedule(&self, id: i64) -> ManagerResult<Schedule> {
        self.store
            .schedule(id)
            .await?
            .ok_or_else(|| ManagerError::NotFound(format!("backup schedule {id} does not exist")))
    }

    /// Deletes a schedule; the backups it made stay (their `schedule_id` says where from).
    pub async fn delete_schedule(&self, id: i64) -> ManagerResult<()> {
        if !self.store.delete_schedule(id).await? {
            return Err(ManagerError::NotFound(format!(
                "backup schedule {id} does not exist"
            )));
        }
        Ok(())
    }

    /// Enables a schedule from the next occurrence on (no catch-up), or disables it. Enabling
    /// an enabled schedule changes nothing.
    pub async fn set_schedule_enabled(&self, id: i64, enabled: bool) -> ManagerResult<Schedule> {
        let current = self.schedule(id).await?;
        if current.enabled == enabled {
            return Ok(current);
        }
        let next_run = match enabled {
            true => self
                .parse_cron(&current.schedule_expression)?
                .next_after(now_ms())
                .map(rfc3339),
            false => None,
        };
        self.store
            .set_schedule_enabled(id, enabled, next_run.as_deref())
            .await?
            .ok_or_else(|| ManagerError::NotFound(format!("backup schedule {id} does not exist")))
    }

    /// Runs a schedule now (enabled or not), without moving its `next_run`.
    pub async fn run_schedule_now(
        self: &Arc<Self>,
        id: i64,
    ) -> ManagerResult<Vec<ScheduledBackup>> {
        self.refuse_if_shutting_down()?;
        let run = self.store.record_manual_run(id).await?.ok_or_else(|| {
            ManagerError::NotFound(format!("backup schedule {id} does not exist"))
        })?;
        self.dispatch_run(run).await
    }

    /// One scheduler tick: dispatches recorded runs not yet dispatched (after a crash), then
    /// records and dispatches the runs that are due.
    pub async fn schedule_tick(self: &Arc<Self>) -> ManagerResult<()> {
        for run in self.store.pending_schedule_runs().await? {
            self.dispatch_run(run).await?;
        }
        for schedule in self.store.list_schedules().await? {
            if !schedule.enabled {
                continue;
            }
            let cron = match self.parse_cron(&schedule.schedule_expression) {
                Ok(cron) => cron,
                Err(e) => {
                    tracing::warn!(schedule = schedule.id, "schedule cannot be evaluated: {e}");
                    continue;
                }
            };
            let stored = schedule.next_run.as_deref();
            let decided = cron::tick(stored.and_then(epoch_ms), now_ms(), &cron);
            let next_run = decided.next_run_ms.map(rfc3339);
            match stored {
                None => {
                    self.store
                        .arm_schedule(schedule.id, next_run.as_deref())
                        .await?
                }
                Some(due) if decided.run_now => {
                    let recorded = self
                        .store
                        .record_due_run(schedule.id, due, next_run.as_deref())
                        .await?;
                    if let Some(run) = recorded {
                        tracing::info!(
                            schedule = schedule.id,
                            run = run.id,
                            due,
                            "scheduled backup run is due"
                        );
                        crate::crashpoint::hit("schedule.after_run_recorded");
                        self.dispatch_run(run).await?;
                    }
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Starts a backup for every service a recorded run covers that it has not started yet,
    /// then marks the run dispatched. Left pending (for the next tick) only when Berth is
    /// shutting down.
    async fn dispatch_run(
        self: &Arc<Self>,
        run: ScheduleRun,
    ) -> ManagerResult<Vec<ScheduledBackup>> {
        let _dispatching = self.backup_runs.dispatch.lock().await;
        // Re-read under the lock: another dispatcher may have finished it meanwhile.
        let Some(run) = self.store.schedule_run(run.id).await? else {
            return Ok(Vec::new());
        };
        if run.dispatched_at.is_some() {
            return Ok(Vec::new());
        }
        // The run goes with its schedule (ON DELETE CASCADE).
        let Some(schedule) = self.store.schedule(run.schedule_id).await? else {
            return Ok(Vec::new());
        };
        let created_by = format!("schedule:{}/run:{}", schedule.id, run.id);
        let expires_at = (schedule.retention_period > 0).then(|| {
            let days = u64::try_from(schedule.retention_period).unwrap_or(0);
            humantime::format_rfc3339_seconds(
                SystemTime::now() + Duration::from_millis(days * DAY_MS),
            )
            .to_string()
        });
        let mut outcomes = Vec::new();
        let mut errors = Vec::new();
        for service_id in self.schedule_targets(&schedule).await? {
            if self
                .store
                .backup_started_by(&created_by, service_id)
                .await?
                .is_some()
            {
                continue;
            }
            let started = match service_id {
                Some(service_id) => {
                    self.start_backup(BackupRequest {
                        service_id,
                        destination_id: schedule.s3_source_id,
                        backup_type: Some(schedule.backup_type.clone()),
                        created_by: created_by.clone(),
                        schedule_id: Some(schedule.id),
                        tags: schedule.tags.clone(),
                        expires_at: expires_at.clone(),
                    })
                    .await
                }
                None => {
                    self.start_state_backup(StateBackupRequest {
                        destination_id: schedule.s3_source_id,
                        created_by: created_by.clone(),
                        schedule_id: Some(schedule.id),
                        tags: schedule.tags.clone(),
                        expires_at: expires_at.clone(),
                    })
                    .await
                }
            };
            let service_id = service_id.unwrap_or(0);
            match started {
                Ok(started) => {
                    crate::crashpoint::hit("schedule.after_backup_started");
                    tracing::info!(
                        schedule = schedule.id,
                        run = run.id,
                        service_id,
                        backup = started.record.id,
                        "scheduled backup started"
                    );
                    outcomes.push(ScheduledBackup {
                        service_id,
                        backup: Some(started.record.clone()),
                        error: None,
                    });
                    self.watch_scheduled_backup(started, &schedule);
                }
                Err(e) => {
                    // Shutting down: leave the run pending; the next start dispatches the rest.
                    self.refuse_if_shutting_down()?;
                    tracing::warn!(
                        schedule = schedule.id,
                        run = run.id,
                        service_id,
                        "scheduled backup not started: {e}"
                    );
                    errors.push(format!("service {service_id}: {e}"));
                    outcomes.push(ScheduledBackup {
                        service_id,
                        backup: None,
                        error: Some(e.to_string()),
                    });
                }
            }
        }
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        self.store
            .finish_dispatch(run.id, schedule.id, error.as_deref())
            .await?;
        Ok(outcomes)
    }

    /// What a schedule backs up now: its one service, or every service that can be backed up
    /// and is meant to run (not the destination's own S3 service); `None`: Berth's own state.
    async fn schedule_targets(&self, schedule: &Schedule) -> ManagerResult<Vec<Option<i64>>> {
        if schedule.target == ScheduleTarget::BerthState {
            return Ok(vec![None]);
        }
        if let Some(id) = schedule.service_id {
            return Ok(vec![Some(id)]);
        }
        let destination = self.destination(schedule.s3_source_id).await?;
        Ok(self
            .store
            .list_services()
            .await?
            .into_iter()
            .filter(|s| Some(s.id) != destination.service_id)
            .filter(|s| s.desired_state == "running")
            .filter(|s| !matches!(s.status.as_str(), "creating" | "deleting"))
            .filter(|s| Self::engine_for(s).is_ok_and(|e| e.backup().is_some()))
            .map(|s| Some(s.id))
            .collect())
    }

    /// Waits for a scheduled backup, stopping it at the schedule's runtime limit (counted
    /// from when it was recorded, a wait for an earlier backup of the service included),
    /// verifies it if the schedule asks (before retention, so the verified backup is the
    /// newest one retention always keeps), then applies retention to the service's backups on
    /// the destination.
    fn watch_scheduled_backup(self: &Arc<Self>, started: StartedBackup, schedule: &Schedule) {
        let manager = self.clone();
        let row = started.record.id;
        // Retention's scope: the service, or (0) Berth's own state.
        let service_id = started.record.service_id.unwrap_or_default();
        let destination_id = schedule.s3_source_id;
        let verify = schedule.verify;
        let limit = schedule
            .max_runtime_secs
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs);
        tokio::spawn(async move {
            let mut done = started.done;
            let ended = match limit {
                None => done.await,
                Some(limit) => tokio::select! {
                    ended = &mut done => ended,
                    _ = tokio::time::sleep(limit) => {
                        let reason = format!(
                            "aborted: the backup ran longer than its schedule's limit of {} s \
                             (max_runtime_secs)",
                            limit.as_secs()
                        );
                        tracing::warn!(backup = row, "{reason}");
                        manager.backup_runs.cancel(row, &reason);
                        done.await
                    }
                },
            };
            manager.backup_runs.forget_cancel(row);
            match ended {
                Ok((record, _)) if verify && record.state == BackupState::Succeeded => {
                    manager.verify_scheduled_backup(row).await
                }
                Ok(_) => {}
                Err(e) => tracing::error!(backup = row, "scheduled backup task failed: {e}"),
            }
            match manager.prune(destination_id, Some(service_id)).await {
                Ok(pruned) => {
                    for service in pruned {
                        for error in &service.errors {
                            tracing::warn!(service_id, "retention: {error}");
                        }
                    }
                }
                Err(e) => tracing::warn!(service_id, "retention after a scheduled backup: {e}"),
            }
        });
    }
}

impl ServiceManager {
    /// Verifies a backup a schedule made; the result is recorded on the backup (and logged).
    /// A verification cut off by a restart stays `running` on the backup until asked again,
    /// like one started through the API.
    async fn verify_scheduled_backup(self: &Arc<Self>, backup: i64) {
        let outcome = match self.start_verify(backup).await {
            Ok(started) => started.done.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok((record, None)) => tracing::info!(
                backup,
                "scheduled verification: {}",
                record.verify_message.unwrap_or_default()
            ),
            Ok((_, Some(e))) => tracing::warn!(backup, "scheduled verification failed: {e}"),
            Err(e) => tracing::warn!(backup, "scheduled verification not run: {e}"),
        }
    }
}

fn duplicate(name: &str) -> ManagerError {
    ManagerError::Conflict(format!("a backup schedule named {name:?} exists already"))
}

fn check_text(what: &str, value: &str, min: usize, max: usize) -> ManagerResult<()> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(ManagerError::BadRequest(format!(
            "{what} must be {min} to {max} characters long"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ManagerError::BadRequest(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

fn check_range(what: &str, value: i64, min: i64, max: i64) -> ManagerResult<()> {
    if !(min..=max).contains(&value) {
        return Err(ManagerError::BadRequest(format!(
            "{what} must be between {min} and {max}"
        )));
    }
    Ok(())
}

/// Epoch milliseconds (whole seconds, which is all cron fires on) as stored: RFC 3339.
fn rfc3339(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

fn epoch_ms(stored: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339_weak(stored).ok()?;
    i64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_round_trip() {
        let ms = 1_795_843_020_000;
        assert_eq!(rfc3339(ms), "2026-11-28T05:17:00Z");
        assert_eq!(epoch_ms(&rfc3339(ms)), Some(ms));
        assert_eq!(epoch_ms("not a time"), None);
    }

    #[test]
    fn text_and_ranges_are_checked() {
        assert!(check_text("name", "nightly", 1, 10).is_ok());
        assert!(check_text("name", "", 1, 10).is_err());
        assert!(check_text("name", "a\nb", 1, 10).is_err());
        assert!(check_text("name", &"x".repeat(11), 1, 10).is_err());
        assert!(check_range("keep_last", 0, 0, 5).is_ok());
        assert!(check_range("keep_last", -1, 0, 5).is_err());
    }
}
