//! The backup scheduler: a loop that ticks every second until shutdown, recording and
//! dispatching the schedule runs that are due (`manager/backup/schedule.rs`, where the
//! restart-safety of each step is described). Started by `app::run` after the interrupted
//! backups of a previous process were read, so its new runs are never mistaken for them.

use std::sync::Arc;
use std::time::Duration;

use crate::manager::ServiceManager;

/// How often schedules are looked at. A run starts within this of its time.
const TICK: Duration = Duration::from_secs(1);

/// Ticks until `shutdown` fires. A tick in progress finishes (it only records runs and starts
/// backups); a run it could not dispatch because Berth is stopping is dispatched at the next
/// start.
pub async fn run(manager: Arc<ServiceManager>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => return,
        }
        match manager.schedule_tick().await {
            Ok(()) => failing = false,
            // One warning per stretch of failures, not one a second.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!("backup scheduler: {e}");
            }
            Err(e) => tracing::debug!("backup scheduler: {e}"),
        }
    }
}
