//! Requests on one service queue behind each other instead of failing (the claim in
//! `mod.rs`). A request that has to wait is first recorded as a `queued` operation, so a
//! caller that cannot wait — `Prefer: respond-async`, or a synchronous request past its
//! bound — gets an operation to poll at once instead of hanging until the service is free.
//! The queued row becomes the operation itself when the request's turn comes
//! (`begin_operation` takes it over, same id), or records why the request never ran.
//!
//! Only requests submitted through [`ServiceManager::submit`] record a queued row: someone
//! can poll it. Internal callers (KV/Blob enabling their backing service) simply wait.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{ManagerResult, ServiceManager, Started};
use crate::store::{OpKind, Operation};

tokio::task_local! {
    /// Set for a submitted request: where its claim announces the queued operation.
    static QUEUE_WATCH: Arc<watch::Sender<Option<Operation>>>;
}

/// A request running in the background (so it keeps its place in the queue whatever its
/// caller does).
pub struct Submitted {
    /// Holds the queued operation once the request had to wait for its service.
    pub queued: watch::Receiver<Option<Operation>>,
    /// The request's outcome: the started operation, or why it was refused.
    pub task: JoinHandle<ManagerResult<Started>>,
}

impl ServiceManager {
    /// Runs `request` (`manager.start(id)`, ...) as a task of its own. If it fails before its
    /// operation starts (refused, validation, gave up waiting), a queued row it recorded gets
    /// the reason, so whoever polls it learns the outcome.
    pub fn submit<F>(self: &Arc<Self>, request: F) -> Submitted
    where
        F: Future<Output = ManagerResult<Started>> + Send + 'static,
    {
        let (sender, queued) = watch::channel(None);
        let sender = Arc::new(sender);
        let manager = self.clone();
        let announced = sender.clone();
        let task = tokio::spawn(QUEUE_WATCH.scope(sender, async move {
            let result = request.await;
            if let Err(e) = &result {
                let queued_id = announced.borrow().as_ref().map(|op| op.id);
                if let Some(id) = queued_id
                    && let Err(store_err) = manager
                        .store
                        .fail_queued_operation(id, &e.to_string())
                        .await
                {
                    tracing::warn!(op = id, "recording a refused request failed: {store_err}");
                }
            }
            result
        }));
        Submitted { queued, task }
    }

    /// Records that a submitted request waits for service `id`; `None` outside `submit`.
    pub(super) async fn announce_queued(
        &self,
        id: i64,
        kind: OpKind,
    ) -> ManagerResult<Option<Operation>> {
        if QUEUE_WATCH.try_with(|_| ()).is_err() {
            return Ok(None);
        }
        let operation = self.store.insert_queued_operation(id, kind).await?;
        tracing::debug!(op = operation.id, service_id = id, "request queued");
        let _ = QUEUE_WATCH.try_with(|w| w.send_replace(Some(operation.clone())));
        Ok(Some(operation))
    }
}
