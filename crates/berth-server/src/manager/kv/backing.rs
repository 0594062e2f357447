//! KV's backing service: Temps' enable request and status over the shared backing-service
//! mechanism (`manager/backing.rs`), plus what only Redis has (the PING of the status).

use std::sync::Arc;
use std::time::Duration;

use berth_core::Parameters;
use berth_core::params::DOCKER_IMAGE;
use serde::{Deserialize, Serialize};

use super::super::backing::{BackingRequest, KV};
use super::super::{ManagerError, ManagerResult, ParamValue, ServiceManager};

/// How long the status waits for the backing's PING.
const STATUS_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Temps' `EnableKvRequest`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableRequest {
    /// Image of the Redis service (default: Berth's Redis image, or `images.redis` from the
    /// server's configuration). Must accept `redis-server` flags (the official image's
    /// contract).
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$",
        min_length = 1,
        max_length = 255
    )]
    pub docker_image: Option<String>,
    /// Host port on 127.0.0.1 (Temps' `port`); auto-assigned from 6379 by default.
    #[schema(value_type = Option<ParamValue>)]
    pub port: Option<ParamValue>,
    /// Temps' memory cap (`256mb`). Berth's Redis has no such parameter yet: refused if given.
    pub max_memory: Option<String>,
    /// Temps' switch for persistence. Berth's Redis always keeps an append-only file, so only
    /// `true` (the default) is accepted.
    #[serde(default = "persistence_default")]
    pub persistence: bool,
}

fn persistence_default() -> bool {
    true
}

/// Temps' `KvStatusResponse`, plus which service backs KV.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KvStatus {
    /// KV answers requests (it may still be unhealthy).
    pub enabled: bool,
    /// Enabled and its Redis answers a PING now.
    pub healthy: bool,
    /// The Redis major version of the backing's image.
    pub version: Option<String>,
    pub docker_image: Option<String>,
    /// The backing Redis service (also when KV is disabled with its data kept).
    pub service_id: Option<i64>,
    pub service_name: Option<String>,
    /// The backing service's status (`running`, `stopped` ...).
    pub service_status: Option<String>,
}

/// What an enable, update or disable did (shared with every backing service).
pub use super::super::backing::BackingChange as KvChange;

impl ServiceManager {
    pub async fn kv_enable(self: &Arc<Self>, request: EnableRequest) -> ManagerResult<KvChange> {
        if request.max_memory.is_some() {
            return Err(ManagerError::BadRequest(
                "max_memory is not supported: Berth's Redis has no memory cap parameter yet; \
                 leave it out"
                    .into(),
            ));
        }
        if !request.persistence {
            return Err(ManagerError::BadRequest(
                "persistence: false is not supported: Berth's Redis always keeps an \
                 append-only file"
                    .into(),
            ));
        }
        let name = self.config.kv_service_name.clone();
        let request = BackingRequest {
            docker_image: request.docker_image,
            port: request.port.map(ParamValue::into_text),
        };
        self.backing_enable(&KV, &name, request).await
    }

    /// Changes the backing's parameters (`docker_image`, `port`) through the ordinary update.
    pub async fn kv_update(self: &Arc<Self>, changes: Parameters) -> ManagerResult<KvChange> {
        self.backing_update(&KV, changes).await
    }

    /// Turns KV off. Its data is kept in the stopped backing service (Temps' behaviour; enable
    /// brings it back), unless `delete_data`, which deletes the service and its volume.
    pub async fn kv_disable(self: &Arc<Self>, delete_data: bool) -> ManagerResult<KvChange> {
        self.backing_disable(&KV, delete_data).await
    }

    pub async fn kv_status(&self) -> ManagerResult<KvStatus> {
        let Some(recorded) = self.store.backing(KV.key).await? else {
            return Ok(KvStatus {
                enabled: false,
                healthy: false,
                version: None,
                docker_image: None,
                service_id: None,
                service_name: None,
                service_status: None,
            });
        };
        let service = self.service(recorded.service_id).await?;
        let healthy = recorded.enabled && self.kv_ping().await;
        Ok(KvStatus {
            enabled: recorded.enabled,
            healthy,
            version: self.image_version(&service).await,
            docker_image: service.parameters.get(DOCKER_IMAGE).cloned(),
            service_id: Some(service.id),
            service_name: Some(service.name),
            service_status: Some(service.status),
        })
    }

    /// PING through the pooled connection: what a KV request would see now.
    async fn kv_ping(&self) -> bool {
        let cmd = redis::cmd("PING");
        let ping = self.kv_query_idempotent::<String>(&cmd);
        matches!(
            tokio::time::timeout(STATUS_PING_TIMEOUT, ping).await,
            Ok(Ok(pong)) if pong == "PONG"
        )
    }
}
