//! Backing services: a Berth feature (KV, Blob) keeps its data in an ordinary Berth service of
//! its own (health, start/stop, upgrade and the reconciler apply to it), recorded in the store
//! under the feature's key. `enable` creates it through the ordinary create (or starts it
//! again), `update` changes it through the ordinary update, `disable` stops it keeping its
//! data (as Temps does) or, only when asked explicitly, deletes it with its data. Each returns
//! the operation it started, for the API to wait on; the store is written before that
//! operation runs, so the record and the service never disagree for long (and the record goes
//! with the service if the create is undone). The ordinary routes refuse to delete or link a
//! backing service (`refusal`).

use std::sync::Arc;

use berth_core::Parameters;
use berth_core::params::DOCKER_IMAGE;

use super::{CreateRequest, ManagerError, ManagerResult, ServiceManager, Started};
use crate::store::Backing;

/// A feature kept in a backing service: its store key and the words its messages use.
#[derive(Debug)]
pub struct Feature {
    /// Store key, API prefix (`/api/{key}/`) and CLI noun (`berth {key}`).
    pub key: &'static str,
    /// `KV`, `Blob`.
    pub label: &'static str,
    pub service_type: &'static str,
    /// The service type as the messages name it (`Redis`, `S3`).
    pub kind: &'static str,
    /// What deleting the service loses.
    pub data: &'static str,
}

pub const KV: Feature = Feature {
    key: "kv",
    label: "KV",
    service_type: "redis",
    kind: "Redis",
    data: "every project's KV data",
};

pub const BLOB: Feature = Feature {
    key: "blob",
    label: "Blob",
    service_type: "s3",
    kind: "S3",
    data: "every project's blobs",
};

const FEATURES: &[&Feature] = &[&KV, &BLOB];

/// What an enable, update or disable did: the operation to wait for, if one was started.
pub struct BackingChange {
    pub started: Option<Started>,
    pub message: String,
}

/// What an enable asks of a backing service beyond its defaults.
#[derive(Debug, Default)]
pub struct BackingRequest {
    pub docker_image: Option<String>,
    pub port: Option<String>,
}

impl Feature {
    /// 404 for management routes when the feature has never been enabled.
    pub fn not_enabled(&self) -> ManagerError {
        ManagerError::NotFound(self.not_enabled_text())
    }

    pub fn not_enabled_text(&self) -> String {
        format!(
            "{label} is not enabled; enable it with POST /api/{key}/enable (`berth {key} enable`)",
            label = self.label,
            key = self.key
        )
    }

    /// 404 for data requests while the feature is off with its data kept.
    pub fn disabled(&self, service_name: &str) -> ManagerError {
        // 404 like "not enabled": the feature is off, not out of order (KV answers the same).
        ManagerError::NotFound(format!(
            "{label} is disabled; its data is kept in {kind} service {service_name:?}. Enable \
             it again with POST /api/{key}/enable (`berth {key} enable`)",
            label = self.label,
            kind = self.kind,
            key = self.key
        ))
    }

    /// 503 for data requests while the backing service is stopped.
    pub fn stopped(&self, service_name: &str, service_id: i64) -> ManagerError {
        ManagerError::Unavailable(format!(
            "{label} is enabled but its {kind} service {name:?} (id {id}) is stopped; start it \
             with `berth service start {name}` (POST /api/external-services/{id}/start) or \
             POST /api/{key}/enable",
            label = self.label,
            kind = self.kind,
            key = self.key,
            name = service_name,
            id = service_id
        ))
    }
}

impl ServiceManager {
    /// The id of `feature`'s backing service, enabled or not.
    pub async fn backing_service(&self, feature: &Feature) -> ManagerResult<Option<i64>> {
        Ok(self.store.backing(feature.key).await?.map(|b| b.service_id))
    }

    /// Why service `id` may not be `action` ("deleted through this route") through the ordinary
    /// routes, when it backs a feature: its data is every project's.
    pub async fn backing_refusal(&self, id: i64, action: &str) -> ManagerResult<Option<String>> {
        let Some(backing) = self.store.backing_of(id).await? else {
            return Ok(None);
        };
        let feature = FEATURES
            .iter()
            .find(|f| f.key == backing.feature)
            .copied()
            .unwrap_or(&KV);
        Ok(Some(format!(
            "service {id} is {label}'s {kind} service (see GET /api/{key}/status) and cannot be \
             {action}: it holds {data}. To delete it with that data, use \
             DELETE /api/{key}/disable?delete_data=true",
            label = feature.label,
            kind = feature.kind,
            key = feature.key,
            data = feature.data
        )))
    }

    /// The feature's recorded backing once neither a create nor a delete of its service is
    /// under way, since either can take the record away: a delete (`disable` with
    /// `delete_data`, answered 202 while it goes on) always does, a create (an enable answered
    /// 202) does when it fails and is undone. Without this, management arriving meanwhile acted
    /// on a service about to vanish (a 404 naming it, a 409 "already backed by" it, or a write
    /// referring to a row deleted meanwhile). Called under `backing_admin`, so no new create
    /// or delete starts.
    async fn settled_backing(
        self: &Arc<Self>,
        feature: &Feature,
    ) -> ManagerResult<Option<Backing>> {
        // Bounded: a service left `deleting` by a failed delete (the reconciler finishes it)
        // must not spin this loop.
        for _ in 0..3 {
            let Some(recorded) = self.store.backing(feature.key).await? else {
                return Ok(None);
            };
            match self.store.service(recorded.service_id).await? {
                // Only these two are waited for: other operations on the service (a long
                // upgrade) are queued behind by the operation this request starts, which
                // keeps `Prefer: respond-async` answering at once.
                Some(service) if !matches!(service.status.as_str(), "creating" | "deleting") => {
                    return Ok(Some(recorded));
                }
                // Being created or deleted, or just gone (its record with it): the operation
                // holds the service's claim until it ends; wait for that, then look again.
                _ => drop(self.claim_shared(recorded.service_id).await?),
            }
        }
        Err(ManagerError::Conflict(format!(
            "{}'s {} service is still being created or deleted; try again once that is done",
            feature.label, feature.kind
        )))
    }

    /// Creates `feature`'s service named `name` (or starts the recorded one again).
    pub async fn backing_enable(
        self: &Arc<Self>,
        feature: &Feature,
        name: &str,
        request: BackingRequest,
    ) -> ManagerResult<BackingChange> {
        let _admin = self.backing_admin.lock().await;
        // Bounded like `settled_backing`: each pass follows a service that vanished.
        for _ in 0..3 {
            let Some(recorded) = self.settled_backing(feature).await? else {
                return self.backing_enable_new(feature, name, request).await;
            };
            let enabled = self
                .backing_enable_again(feature, recorded.service_id, recorded.enabled, &request)
                .await;
            match self.vanished(recorded.service_id, enabled).await? {
                Some(change) => return Ok(change),
                // Its create failed and was undone while this request waited behind it
                // (record and all): enable from scratch, as if it had never been.
                None => continue,
            }
        }
        Err(ManagerError::Conflict(format!(
            "{}'s {} service keeps changing under this request; try again",
            feature.label, feature.kind
        )))
    }

    /// `result` of an operation on backing service `id`, or `None` if it failed because the
    /// service vanished while the request waited for it: a create that failed is undone with
    /// its row, and the backing record goes with the row.
    async fn vanished<T>(&self, id: i64, result: ManagerResult<T>) -> ManagerResult<Option<T>> {
        match result {
            Err(ManagerError::NotFound(_)) if self.store.service(id).await?.is_none() => Ok(None),
            other => other.map(Some),
        }
    }

    /// Enable with nothing recorded: a new service named `name`.
    async fn backing_enable_new(
        self: &Arc<Self>,
        feature: &Feature,
        name: &str,
        request: BackingRequest,
    ) -> ManagerResult<BackingChange> {
        if let Some(taken) = self
            .store
            .list_services()
            .await?
            .into_iter()
            .find(|s| s.name == name)
        {
            return Err(ManagerError::Conflict(format!(
                "a service named {name:?} (id {}) already exists and is not {label}'s: {label} \
                 creates its own {kind} service under that name. Delete or rename yours, or \
                 start Berth with another `{key}_service_name` (--{key}-service-name)",
                taken.id,
                label = feature.label,
                kind = feature.kind,
                key = feature.key
            )));
        }
        let mut parameters = Parameters::new();
        if let Some(image) = request.docker_image {
            parameters.insert(DOCKER_IMAGE.into(), image);
        }
        if let Some(port) = request.port {
            parameters.insert("port".into(), port);
        }
        let (service, started) = self
            .create(CreateRequest {
                name: name.to_string(),
                service_type: feature.service_type.into(),
                version: None,
                parameters,
            })
            .await?;
        if let Err(e) = self.store.set_backing(feature.key, service.id, true).await {
            // The create failed and was undone before it could be recorded: its error says why.
            return Err(match started.done.await {
                Ok(Err(create_error)) => create_error,
                _ => e.into(),
            });
        }
        tracing::info!(
            service_id = service.id,
            feature = feature.key,
            "enabled on a new service"
        );
        Ok(BackingChange {
            started: Some(started),
            message: format!(
                "{label} enabled: its data is kept in the new {kind} service {name:?}",
                label = feature.label,
                kind = feature.kind
            ),
        })
    }

    /// Enable with a backing already recorded: idempotent, and starts it if it does not run.
    async fn backing_enable_again(
        self: &Arc<Self>,
        feature: &Feature,
        service_id: i64,
        was_enabled: bool,
        request: &BackingRequest,
    ) -> ManagerResult<BackingChange> {
        let service = self.service(service_id).await?;
        let (label, kind, key) = (feature.label, feature.kind, feature.key);
        if request.port.is_some() {
            return Err(ManagerError::Conflict(format!(
                "{label} is backed by {kind} service {:?} already; change its port with \
                 PATCH /api/{key}/update",
                service.name
            )));
        }
        let current = service.parameters.get(DOCKER_IMAGE);
        if let Some(image) = &request.docker_image
            && current != Some(image)
        {
            return Err(ManagerError::Conflict(format!(
                "{label} is backed by {kind} service {:?} with image {:?}; change its image \
                 with PATCH /api/{key}/update",
                service.name,
                current.map(String::as_str).unwrap_or_default()
            )));
        }
        if !was_enabled
            && !self
                .store
                .set_backing_enabled(key, service_id, true)
                .await?
        {
            return Err(ManagerError::NotFound(format!(
                "service {service_id} does not exist"
            )));
        }
        let started = if service.desired_state == "stopped" || service.status != "running" {
            Some(self.start(service_id).await?)
        } else {
            None
        };
        let message = match (was_enabled, &started) {
            (true, None) => format!("{label} was already enabled"),
            (true, Some(_)) => format!(
                "{label} was enabled; its {kind} service {:?} was started",
                service.name
            ),
            (false, _) => format!(
                "{label} enabled again with the data kept in {kind} service {:?}",
                service.name
            ),
        };
        tracing::info!(service_id, feature = key, "enabled");
        Ok(BackingChange { started, message })
    }

    /// Changes the backing's parameters (`docker_image`, `port`) through the ordinary update.
    pub async fn backing_update(
        self: &Arc<Self>,
        feature: &Feature,
        changes: Parameters,
    ) -> ManagerResult<BackingChange> {
        let _admin = self.backing_admin.lock().await;
        let recorded = self
            .settled_backing(feature)
            .await?
            .ok_or_else(|| feature.not_enabled())?;
        let updated = self.update(recorded.service_id, changes).await;
        let started = self
            .vanished(recorded.service_id, updated)
            .await?
            .ok_or_else(|| feature.not_enabled())?;
        Ok(BackingChange {
            started: Some(started),
            message: format!("{}'s {} service updated", feature.label, feature.kind),
        })
    }

    /// Turns the feature off. Its data is kept in the stopped backing service (Temps'
    /// behaviour; enable brings it back), unless `delete_data`, which deletes the service and
    /// its volume.
    pub async fn backing_disable(
        self: &Arc<Self>,
        feature: &Feature,
        delete_data: bool,
    ) -> ManagerResult<BackingChange> {
        let _admin = self.backing_admin.lock().await;
        let (label, kind, key) = (feature.label, feature.kind, feature.key);
        let recorded = self
            .settled_backing(feature)
            .await?
            .ok_or_else(|| feature.not_enabled())?;
        let service = self.service(recorded.service_id).await?;
        // Requests are refused from now on, before the service goes away under them.
        if !self
            .store
            .set_backing_enabled(key, service.id, false)
            .await?
        {
            return Err(feature.not_enabled());
        }
        tracing::info!(
            service_id = service.id,
            feature = key,
            delete_data,
            "disabled"
        );
        if delete_data {
            let deleted = self
                .delete(service.id, super::DeleteOptions::default())
                .await;
            let started = self
                .vanished(service.id, deleted)
                .await?
                .ok_or_else(|| feature.not_enabled())?;
            return Ok(BackingChange {
                started: Some(started),
                message: format!(
                    "{label} disabled; {kind} service {:?} and {} are deleted",
                    service.name, feature.data
                ),
            });
        }
        let already_stopped = service.desired_state == "stopped" && service.status == "stopped";
        let started = if already_stopped {
            None
        } else {
            let stopped = self.stop(service.id).await;
            Some(
                self.vanished(service.id, stopped)
                    .await?
                    .ok_or_else(|| feature.not_enabled())?,
            )
        };
        Ok(BackingChange {
            started,
            message: format!(
                "{label} disabled; its data is kept in the stopped {kind} service {:?}: POST \
                 /api/{key}/enable brings it back, DELETE /api/{key}/disable?delete_data=true \
                 deletes it",
                service.name
            ),
        })
    }
}
