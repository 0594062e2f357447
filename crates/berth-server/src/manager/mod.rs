//! The service manager: every multi-step change to a service (create, start, stop, update,
//! upgrade, delete) lives here, each in its own file. Each one records its intent in the store
//! (service status + an operation row) before touching Docker, runs as a background task that
//! reports its step, and on failure undoes what it did. The reconciler calls the same undo
//! and finish functions after a crash.

mod adopt;
pub mod backing;
pub mod backup;
pub mod blob;
mod create;
mod delete;
mod errors;
mod health;
mod import;
pub mod kv;
mod lifecycle;
mod links;
mod major_upgrade;
mod ports;
mod queue;
mod readiness;
mod reconfigure;
mod recreate;
mod volume;

use berth_core::params::DOCKER_IMAGE;
use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use berth_core::Parameters;

use crate::config::ServerConfig;
use crate::docker::{
    ContainerSpec, DockerClient, LABEL_MANAGED, LABEL_SERVICE_ID, LABEL_SERVICE_TYPE,
};
use crate::engines::{self, Engine};
use crate::image_builder::ImageBuilder;
use crate::store::{OpKind, OpStatus, Operation, Service, Store};

pub use create::{CreateRequest, ParamValue};
pub use delete::DeleteOptions;
pub use errors::{ManagerError, ManagerResult};
pub use health::HealthReport;
pub use import::{AvailableContainer, ImportRequest};
pub use links::{AddressKind, LinkInfo, RevokedTenant, TenantView};
pub use major_upgrade::{DUMP_RESTORE, is_major_upgrade};
pub use queue::Submitted;

pub use crate::docker::LABEL_INSTANCE;

pub struct ServiceManager {
    pub store: Store,
    pub docker: Arc<DockerClient>,
    pub images: ImageBuilder,
    pub config: ServerConfig,
    /// Random id of this Berth instance, so several instances can share one Docker engine.
    pub instance_id: String,
    /// Per-service claims: an operation or a reconciler pass holds its service exclusively,
    /// links and unlinks share it, so a link never interleaves with an update, a stop or a
    /// delete. Waiters queue in arrival order (tokio's RwLock is fair).
    claims: StdMutex<HashMap<i64, Arc<tokio::sync::RwLock<()>>>>,
    /// Held from choosing a port until the service row recording it is written.
    port_lock: tokio::sync::Mutex<()>,
    /// Per-service locks serialising tenant allocation (links wait instead of failing).
    link_locks: StdMutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    pub metrics: crate::metrics::Metrics,
    /// Rendered project variables, valid while the store's write generation is unchanged.
    variables_cache: StdMutex<VariablesCache>,
    /// Set by SIGTERM: no new operation starts; running ones finish or are parked.
    shutting_down: std::sync::atomic::AtomicBool,
    /// KV's backing as last read and its pooled connection (`kv/mod.rs`).
    kv_state: kv::KvState,
    /// Blob's S3 client, rebuilt when its backing's endpoint changes (`blob/mod.rs`).
    blob_state: blob::BlobState,
    /// Serialises enable, update and disable of every backing service (`backing.rs`).
    backing_admin: tokio::sync::Mutex<()>,
    /// Running backups: one per service at a time, and their progress (`backup/`).
    pub backup_runs: backup::BackupRuns,
    /// Running restores, to cancel one (`backup/restore.rs`).
    restore_tasks: backup::RestoreTasks,
}

type VariablesCache =
    HashMap<(i64, String, AddressKind), (u64, std::collections::BTreeMap<String, String>)>;

/// How long a request waits in a service's queue before it is refused.
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Holds a service (exclusively or shared) until dropped.
pub struct BusyGuard {
    _guard: Claim,
    /// The queued operation recorded while this request waited (`queue.rs`); the operation
    /// it begins takes that row over.
    queued: Option<i64>,
}

impl BusyGuard {
    pub fn queued_operation(&self) -> Option<i64> {
        self.queued
    }
}

enum Claim {
    Exclusive(#[allow(dead_code)] tokio::sync::OwnedRwLockWriteGuard<()>),
    Shared(#[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>),
}

/// An operation that has been recorded and started in the background.
pub struct Started {
    pub operation: Operation,
    /// Resolves when the operation has finished and its outcome is recorded.
    pub done: tokio::task::JoinHandle<ManagerResult<()>>,
    /// Something the caller should tell the user (e.g. what a forced delete unlinked).
    pub note: Option<String>,
}

impl ServiceManager {
    pub fn new(
        store: Store,
        docker: Arc<DockerClient>,
        config: ServerConfig,
        instance_id: String,
    ) -> Arc<Self> {
        let images = ImageBuilder::new(docker.clone(), config.data_dir.join("images"));
        Arc::new(Self {
            store,
            docker,
            images,
            config,
            instance_id,
            claims: StdMutex::new(HashMap::new()),
            port_lock: tokio::sync::Mutex::new(()),
            link_locks: StdMutex::new(HashMap::new()),
            metrics: Default::default(),
            variables_cache: Default::default(),
            shutting_down: Default::default(),
            kv_state: Default::default(),
            blob_state: Default::default(),
            backing_admin: Default::default(),
            backup_runs: Default::default(),
            restore_tasks: Default::default(),
        })
    }

    fn claim_lock(&self, id: i64) -> Arc<tokio::sync::RwLock<()>> {
        self.claims
            .lock()
            .expect("claims")
            .entry(id)
            .or_default()
            .clone()
    }

    fn refuse_if_shutting_down(&self) -> ManagerResult<()> {
        if self.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ManagerError::Unavailable(
                "berth is shutting down; retry when it is back".into(),
            ));
        }
        Ok(())
    }

    /// Claims a service exclusively for a user operation of `kind`, waiting behind earlier
    /// requests on the same service (in arrival order) instead of refusing. A submitted
    /// request that has to wait is recorded as queued first (`queue.rs`).
    pub async fn claim(self: &Arc<Self>, id: i64, kind: OpKind) -> ManagerResult<BusyGuard> {
        self.refuse_if_shutting_down()?;
        let lock = self.claim_lock(id);
        if let Ok(guard) = lock.clone().try_write_owned() {
            return Ok(BusyGuard {
                _guard: Claim::Exclusive(guard),
                queued: None,
            });
        }
        let queued = self.announce_queued(id, kind).await?.map(|op| op.id);
        let guard = tokio::time::timeout(CLAIM_WAIT, lock.write_owned())
            .await
            .map_err(|_| busy_for_too_long(id))?;
        self.refuse_if_shutting_down()?;
        Ok(BusyGuard {
            _guard: Claim::Exclusive(guard),
            queued,
        })
    }

    /// Claims a service shared with other links and unlinks, but never with an operation.
    pub async fn claim_shared(self: &Arc<Self>, id: i64) -> ManagerResult<BusyGuard> {
        self.refuse_if_shutting_down()?;
        let lock = self.claim_lock(id);
        let guard = tokio::time::timeout(CLAIM_WAIT, lock.read_owned())
            .await
            .map_err(|_| busy_for_too_long(id))?;
        self.refuse_if_shutting_down()?;
        Ok(BusyGuard {
            _guard: Claim::Shared(guard),
            queued: None,
        })
    }

    /// Claims a service for the reconciler; `None` if anything holds or awaits it.
    pub fn claim_for_reconciler(self: &Arc<Self>, id: i64) -> Option<BusyGuard> {
        let guard = self.claim_lock(id).try_write_owned().ok()?;
        Some(BusyGuard {
            _guard: Claim::Exclusive(guard),
            queued: None,
        })
    }

    pub fn engine_for(service: &Service) -> ManagerResult<&'static dyn Engine> {
        engines::engine(&service.service_type).ok_or_else(|| {
            ManagerError::Internal(format!(
                "service {} has unknown type {:?}",
                service.id, service.service_type
            ))
        })
    }

    /// The default image for an engine: configured override, else Berth's own.
    pub fn default_image(&self, engine: &dyn Engine) -> String {
        self.config
            .images
            .get(engine.service_type())
            .cloned()
            .unwrap_or_else(|| engine.default_image())
    }

    /// The engine version a service's image carries (`"15"`): from its tag, else from the
    /// image's version variable (`PG_MAJOR`) when the image is present; `None` if unknown.
    pub async fn image_version(&self, service: &Service) -> Option<String> {
        let engine = engines::engine(&service.service_type)?;
        let image = service.parameters.get(DOCKER_IMAGE)?;
        if let Some(major) = engines::image_major(engine, image, None) {
            return Some(major.to_string());
        }
        engine.version_env()?;
        let env = self.docker.image_env(image).await.ok()??;
        engines::image_major(engine, image, Some(&env)).map(|m| m.to_string())
    }

    pub async fn project(&self, id: i64) -> ManagerResult<crate::store::Project> {
        self.store
            .project(id)
            .await?
            .ok_or_else(|| ManagerError::NotFound(format!("project {id} does not exist")))
    }

    pub async fn service(&self, id: i64) -> ManagerResult<Service> {
        self.store
            .service(id)
            .await?
            .ok_or_else(|| ManagerError::NotFound(format!("service {id} does not exist")))
    }

    /// Whether a container with the service's name exists and was made by this Berth for this
    /// service. A foreign container of the same name is never stopped or removed.
    pub async fn own_container_exists(&self, service: &Service) -> ManagerResult<bool> {
        let Some(info) = self
            .docker
            .inspect_container(&service.container_name)
            .await?
        else {
            return Ok(false);
        };
        // One ownership rule for every path: the labels the service's own spec carries.
        let ours = info.belongs_to(&self.container_spec(Self::engine_for(service)?, service));
        if !ours {
            tracing::warn!(
                service_id = service.id,
                container = %service.container_name,
                "a container with this service's name is not Berth's; leaving it alone"
            );
        }
        Ok(ours)
    }

    /// Removes the service's container if it is its own (see [`Self::own_container_exists`]).
    pub async fn remove_own_container(&self, service: &Service) -> ManagerResult<()> {
        if self.own_container_exists(service).await? {
            self.docker
                .remove_container(&service.container_name)
                .await?;
        }
        Ok(())
    }

    /// The container a service should have, from its row.
    pub fn container_spec(&self, engine: &dyn Engine, service: &Service) -> ContainerSpec {
        container_spec(
            engine,
            service,
            &service.all_parameters(),
            &self.config.network,
            &self.instance_id,
        )
    }

    /// Runs `work` in the background as operation `op`, recording the outcome. `work` returns
    /// the final status to record (Failed carries the error).
    pub fn spawn_operation<F>(
        self: &Arc<Self>,
        operation: Operation,
        guard: BusyGuard,
        work: F,
    ) -> Started
    where
        F: std::future::Future<Output = ManagerResult<()>> + Send + 'static,
    {
        let manager = self.clone();
        let op_id = operation.id;
        let kind = operation.kind;
        let service_id = operation.service_id;
        let started_at = std::time::Instant::now();
        let done = tokio::spawn(async move {
            let _guard = guard;
            let result = work.await;
            let message = result.as_ref().err().map(|e| e.to_string());
            let status = if result.is_ok() {
                OpStatus::Succeeded
            } else {
                OpStatus::Failed
            };
            let error = message.as_deref();
            tracing::info!(
                op = op_id,
                service_id,
                kind = kind.as_str(),
                status = status.as_str(),
                elapsed_ms = started_at.elapsed().as_millis() as u64,
                error = error.unwrap_or(""),
                "operation finished"
            );
            manager.metrics.record_operation(
                kind.as_str(),
                status.as_str(),
                started_at.elapsed().as_secs_f64(),
            );
            if let Err(e) = manager.store.finish_operation(op_id, status, error).await {
                tracing::error!(op = op_id, "recording operation outcome failed: {e}");
            }
            result
        });
        Started {
            operation,
            done,
            note: None,
        }
    }

    /// Refuses new operations from now on (graceful shutdown).
    pub fn begin_shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Waits until no operation is in flight, up to `deadline`. Returns the ids of services
    /// whose operations are still running (parked: recorded as running, so the reconciler
    /// finishes or undoes them at the next start).
    pub async fn wait_idle(&self, deadline: std::time::Duration) -> Vec<i64> {
        let until = std::time::Instant::now() + deadline;
        loop {
            let busy: Vec<i64> = self
                .claims
                .lock()
                .expect("claims")
                .iter()
                .filter(|(_, lock)| lock.try_write().is_err())
                .map(|(id, _)| *id)
                .collect();
            if busy.is_empty() || std::time::Instant::now() >= until {
                return busy;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Records a step of an operation, for progress display.
    pub async fn step(&self, op_id: i64, step: &str) {
        tracing::debug!(op = op_id, step, "operation step");
        if let Err(e) = self.store.set_operation_step(op_id, step).await {
            tracing::warn!(op = op_id, "recording step failed: {e}");
        }
    }
}

fn busy_for_too_long(id: i64) -> ManagerError {
    ManagerError::Conflict(format!(
        "service {id} has been busy with earlier requests for {} s; retry later",
        CLAIM_WAIT.as_secs()
    ))
}

pub fn container_spec(
    engine: &dyn Engine,
    service: &Service,
    params: &Parameters,
    network: &str,
    instance_id: &str,
) -> ContainerSpec {
    let ports = engine
        .ports()
        .iter()
        .filter_map(|(inner, param)| Some((*inner, params.get(*param)?.parse().ok()?)))
        .collect();
    let labels = HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_SERVICE_ID.to_string(), service.id.to_string()),
        (LABEL_SERVICE_TYPE.to_string(), service.service_type.clone()),
        (LABEL_INSTANCE.to_string(), instance_id.to_string()),
    ]);
    ContainerSpec {
        name: service.container_name.clone(),
        image: params.get(DOCKER_IMAGE).cloned().unwrap_or_default(),
        env: engine.container_env(params),
        cmd: engine.container_cmd(params),
        labels,
        volume: service.volume_name.clone(),
        data_path: engine.data_path().to_string(),
        ports,
        network: network.to_string(),
        files: engine.secret_files(params),
    }
}

/// Removes every secret value from a message (container logs, driver errors) before it is
/// stored or returned.
pub fn redact(message: &str, service: &Service) -> String {
    let mut out = message.to_string();
    for secret in service.secrets.values() {
        if !secret.is_empty() {
            out = out.replace(secret.as_str(), berth_core::mask::MASK);
        }
    }
    out
}
