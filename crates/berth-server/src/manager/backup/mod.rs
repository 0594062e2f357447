//! Backups to S3: destinations (`destination.rs`), a backup run (`run.rs`: intent recorded,
//! the engine's dumps streamed through `upload.rs`, every object and the manifest read back
//! and checked before `succeeded`), and the cleanup of what a failed or interrupted run left
//! (`cleanup.rs`), restore runs (`restore.rs`) and verification by restoring into a
//! throwaway service (`verify.rs`). The engine only says what to dump and how to load it back
//! (`engines/backup.rs`).

mod cleanup;
mod destination;
mod restore;
mod run;
mod upload;
mod verify;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

pub use destination::{DestinationRequest, Target};
pub use restore::{RestoreMode, RestoreRequest, RestoreTasks};
pub use run::{BackupRequest, StartedBackup};
pub use verify::StartedVerify;

/// In-memory state of running backups.
#[derive(Default)]
pub struct BackupRuns {
    /// One backup at a time per service; later ones wait their turn.
    locks: StdMutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Bytes read from the service so far, per running backup row (for progress bars).
    progress: StdMutex<HashMap<i64, Arc<AtomicU64>>>,
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
    }
}
