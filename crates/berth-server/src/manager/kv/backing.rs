//! KV's backing service: `enable` creates it through the ordinary create (or starts it again),
//! `update` changes it through the ordinary update, `disable` stops it keeping its data (as
//! Temps does) or, only when asked explicitly, deletes it with its data. Each returns the
//! operation it started, for the API to wait on; the store is written before that operation
//! runs, so KV's record and the service never disagree for long (and the record goes with the
//! service if the create is undone).

use std::sync::Arc;
use std::time::Duration;

use berth_core::Parameters;
use berth_core::params::DOCKER_IMAGE;
use serde::{Deserialize, Serialize};

use super::super::{
    CreateRequest, ManagerError, ManagerResult, ParamValue, ServiceManager, Started,
};
use super::not_enabled;

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

/// What an enable, update or disable did: the operation to wait for, if one was started.
pub struct KvChange {
    pub started: Option<Started>,
    pub message: String,
}

impl ServiceManager {
    /// The id of KV's backing service, enabled or not (the ordinary routes refuse to delete or
    /// link it).
    pub async fn kv_backing_service(&self) -> ManagerResult<Option<i64>> {
        Ok(self.store.kv_backing().await?.map(|b| b.service_id))
    }

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
        let _admin = self.kv_state.admin.lock().await;
        if let Some(recorded) = self.store.kv_backing().await? {
            return self
                .kv_enable_again(recorded.service_id, recorded.enabled, request)
                .await;
        }
        let name = self.config.kv_service_name.clone();
        if let Some(taken) = self
            .store
            .list_services()
            .await?
            .into_iter()
            .find(|s| s.name == name)
        {
            return Err(ManagerError::Conflict(format!(
                "a service named {name:?} (id {}) already exists and is not KV's: KV creates \
                 its own Redis service under that name. Delete or rename yours, or start Berth \
                 with another `kv_service_name` (--kv-service-name)",
                taken.id
            )));
        }
        let mut parameters = Parameters::new();
        if let Some(image) = request.docker_image {
            parameters.insert(DOCKER_IMAGE.into(), image);
        }
        if let Some(port) = request.port {
            parameters.insert("port".into(), port.into_text());
        }
        let (service, started) = self
            .create(CreateRequest {
                name: name.clone(),
                service_type: "redis".into(),
                version: None,
                parameters,
            })
            .await?;
        if let Err(e) = self.store.set_kv_backing(service.id, true).await {
            // The create failed and was undone before it could be recorded: its error says why.
            return Err(match started.done.await {
                Ok(Err(create_error)) => create_error,
                _ => e.into(),
            });
        }
        tracing::info!(service_id = service.id, "KV enabled on a new Redis service");
        Ok(KvChange {
            started: Some(started),
            message: format!("KV enabled: its data is kept in the new Redis service {name:?}"),
        })
    }

    /// Enable with a backing already recorded: idempotent, and starts it if it does not run.
    async fn kv_enable_again(
        self: &Arc<Self>,
        service_id: i64,
        was_enabled: bool,
        request: EnableRequest,
    ) -> ManagerResult<KvChange> {
        let service = self.service(service_id).await?;
        if request.port.is_some() {
            return Err(ManagerError::Conflict(format!(
                "KV is backed by Redis service {:?} already; change its port with \
                 PATCH /api/kv/update",
                service.name
            )));
        }
        let current = service.parameters.get(DOCKER_IMAGE);
        if let Some(image) = &request.docker_image
            && current != Some(image)
        {
            return Err(ManagerError::Conflict(format!(
                "KV is backed by Redis service {:?} with image {:?}; change its image with \
                 PATCH /api/kv/update",
                service.name,
                current.map(String::as_str).unwrap_or_default()
            )));
        }
        if !was_enabled {
            self.store.set_kv_backing(service_id, true).await?;
        }
        let started = if service.desired_state == "stopped" || service.status != "running" {
            Some(self.start(service_id).await?)
        } else {
            None
        };
        let message = match (was_enabled, &started) {
            (true, None) => "KV was already enabled".to_string(),
            (true, Some(_)) => format!(
                "KV was enabled; its Redis service {:?} was started",
                service.name
            ),
            (false, _) => format!(
                "KV enabled again with the data kept in Redis service {:?}",
                service.name
            ),
        };
        tracing::info!(service_id, "KV enabled");
        Ok(KvChange { started, message })
    }

    /// Changes the backing's parameters (`docker_image`, `port`) through the ordinary update.
    pub async fn kv_update(self: &Arc<Self>, changes: Parameters) -> ManagerResult<KvChange> {
        let _admin = self.kv_state.admin.lock().await;
        let recorded = self.store.kv_backing().await?.ok_or_else(not_enabled)?;
        let started = self.update(recorded.service_id, changes).await?;
        Ok(KvChange {
            started: Some(started),
            message: "KV's Redis service updated".into(),
        })
    }

    /// Turns KV off. Its data is kept in the stopped backing service (Temps' behaviour; enable
    /// brings it back), unless `delete_data`, which deletes the service and its volume.
    pub async fn kv_disable(self: &Arc<Self>, delete_data: bool) -> ManagerResult<KvChange> {
        let _admin = self.kv_state.admin.lock().await;
        let recorded = self.store.kv_backing().await?.ok_or_else(not_enabled)?;
        let service = self.service(recorded.service_id).await?;
        // Requests are refused from now on, before the service goes away under them.
        self.store.set_kv_backing(service.id, false).await?;
        tracing::info!(service_id = service.id, delete_data, "KV disabled");
        if delete_data {
            let started = self.delete(service.id, false, false).await?;
            return Ok(KvChange {
                started: Some(started),
                message: format!(
                    "KV disabled; Redis service {:?} and every project's KV data are deleted",
                    service.name
                ),
            });
        }
        let already_stopped = service.desired_state == "stopped" && service.status == "stopped";
        let started = if already_stopped {
            None
        } else {
            Some(self.stop(service.id).await?)
        };
        Ok(KvChange {
            started,
            message: format!(
                "KV disabled; its data is kept in the stopped Redis service {:?}: POST \
                 /api/kv/enable brings it back, DELETE /api/kv/disable?delete_data=true deletes it",
                service.name
            ),
        })
    }

    pub async fn kv_status(&self) -> ManagerResult<KvStatus> {
        let Some(recorded) = self.store.kv_backing().await? else {
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
