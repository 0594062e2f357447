//! Backups to S3: destinations (`destination.rs`), a backup run (`run.rs`: intent recorded,
//! the engine's dumps streamed through `upload.rs`, every object and the manifest checked on
//! the destination before `succeeded`), and the cleanup of what a failed or interrupted run left
//! (`cleanup.rs`), restore runs (`restore.rs`) and verification by restoring into a
//! throwaway service (`verify.rs`). Berth's own state is backed up by the same runs
//! (`state.rs`: a snapshot sealed to the user's passphrase-derived key). Schedules (`schedule.rs`: CRUD, the restart-safe tick,
//! dispatch, runtime limits) and retention (`retention.rs`: plans from the destination's
//! listing, pruning) build on runs. The engine only says what to dump and how to load it back
//! (`engines/backup.rs`).

mod cleanup;
mod destination;
mod restore;
mod retention;
mod run;
mod schedule;
mod state;
mod upload;
mod verify;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

pub use destination::{DestinationRequest, Target};
pub use restore::{RestoreMode, RestoreRequest, RestoreTasks};
pub use retention::{PlannedBackup, ServiceRetention};
pub use run::{BackupRequest, StartedBackup};
pub use schedule::{ScheduleRequest, ScheduledBackup};
pub use state::{STATE_SERVICE_NAME, StateBackupKey, StateBackupRequest};
pub use verify::StartedVerify;

/// In-memory state of running backups.
#[derive(Default)]
pub struct BackupRuns {
    /// One backup at a time per service; later ones wait their turn.
    locks: StdMutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Bytes read from the service so far, per running backup row (for progress bars).
    progress: StdMutex<HashMap<i64, Arc<AtomicU64>>>,
    /// Asks a running backup to stop (its schedule's runtime limit): the reason it fails with.
    cancels: StdMutex<HashMap<i64, tokio::sync::watch::Sender<Option<String>>>>,
    /// Held while a schedule's run starts its backups, so a run is never dispatched twice at
    /// once (the scheduler's tick and `POST .../run` both dispatch).
    dispatch: tokio::sync::Mutex<()>,
}

/// Counts the bytes of one running backup.
#[derive(Clone)]
pub struct ProgressHandle(Arc<AtomicU64>);

impl ProgressHandle {
    pub fn add(&self, bytes: u64) {
        self.0.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl BackupRuns {
    fn lock_for(&self, service_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("backup locks")
            .entry(service_id)
            .or_default()
            .clone()
    }

    fn progress_handle(&self, backup_row: i64) -> ProgressHandle {
        ProgressHandle(
            self.progress
                .lock()
                .expect("progress")
                .entry(backup_row)
                .or_default()
                .clone(),
        )
    }

    /// Bytes read so far by a running backup; `None` when it is not running here.
    pub fn bytes_done(&self, backup_row: i64) -> Option<u64> {
        self.progress
            .lock()
            .expect("progress")
            .get(&backup_row)
            .map(|c| c.load(Ordering::Relaxed))
    }

    fn finished(&self, backup_row: i64) {
        self.progress.lock().expect("progress").remove(&backup_row);
        self.forget_cancel(backup_row);
    }

    fn cancel_sender(&self, backup_row: i64) -> tokio::sync::watch::Sender<Option<String>> {
        self.cancels
            .lock()
            .expect("cancels")
            .entry(backup_row)
            .or_insert_with(|| tokio::sync::watch::channel(None).0)
            .clone()
    }

    /// Stops a running backup: it fails with `reason`, its objects removed, as any failure.
    /// Asked before the run began, it fails as soon as it gets its turn.
    pub fn cancel(&self, backup_row: i64, reason: &str) {
        self.cancel_sender(backup_row)
            .send_replace(Some(reason.to_string()));
    }

    /// Resolves with the reason once [`BackupRuns::cancel`] is called for this backup.
    fn cancelled(&self, backup_row: i64) -> impl std::future::Future<Output = String> + use<> {
        let mut receiver = self.cancel_sender(backup_row).subscribe();
        async move {
            let reason = receiver
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|reason| reason.clone());
            match reason {
                Some(reason) => reason,
                // The sender lives in the map until the run ends: never cancelled.
                None => std::future::pending().await,
            }
        }
    }

    /// Drops a backup's cancellation slot (when it ended, or a cancel came too late).
    pub fn forget_cancel(&self, backup_row: i64) {
        self.cancels.lock().expect("cancels").remove(&backup_row);
    }
}
