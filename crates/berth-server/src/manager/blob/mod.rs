//! Blob: Temps' `/blob` object store for projects, kept in an S3 service of its own (a
//! backing service, `manager/backing.rs`), never a tenant's bucket. Every project's objects
//! live in one bucket (`berth-blob`) under `p{project_id}/` (`berth_core::blob_path`); Berth
//! talks to the backing as its admin (the service is Berth's).
//!
//! - `ops.rs`: the object operations of one project (put streamed, get, head, list, delete,
//!   copy).
//! - here: the backing's client, rebuilt when its port or keys change, and the 503s that say
//!   why Blob cannot answer; enable, update, disable and status.

mod ops;

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use berth_core::params::DOCKER_IMAGE;
use serde::{Deserialize, Serialize};

use super::backing::{BLOB, BackingChange, BackingRequest};
use super::{ManagerError, ManagerResult, ParamValue, ServiceManager};
use crate::s3client::{S3Client, S3Endpoint, S3Error};

pub use ops::{BlobInfo, BlobListing, ProjectBlob};

/// Limits the API checks before a request reaches S3.
pub mod ops_limits {
    pub use super::ops::{DEFAULT_LIST_LIMIT, MAX_DELETE, MAX_LIST_LIMIT};
}

/// The one bucket of the backing service that holds every project's blobs.
pub const BUCKET: &str = "berth-blob";
/// The region requests are signed for (Berth's S3 server, like the engine's clients, accepts any).
const REGION: &str = "us-east-1";
/// How long the status waits for the backing's answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// Shared by every Blob request (a field of the manager).
#[derive(Default)]
pub struct BlobState {
    /// The client of the backing as last built, and the endpoint it was built for.
    client: StdMutex<Option<(EndpointKey, Arc<S3Client>)>>,
}

/// What a client was built for: a new port or new keys mean a new client (and the bucket
/// checked again).
#[derive(Clone, PartialEq, Eq)]
struct EndpointKey {
    service_id: i64,
    port: u16,
    access_key: String,
}

/// Temps' `EnableBlobRequest`, plus the port.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableRequest {
    /// Image of the S3 service (default: Berth's `berth/s3`, or `images.s3` from the
    /// server's configuration).
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$",
        min_length = 1,
        max_length = 255
    )]
    pub docker_image: Option<String>,
    /// Host port on 127.0.0.1; auto-assigned from 9000 by default.
    #[schema(value_type = Option<ParamValue>)]
    pub port: Option<ParamValue>,
    /// Temps' admin user. Berth generates the admin keys itself: refused if given.
    pub root_user: Option<String>,
    /// Temps' admin password. Berth generates the admin keys itself: refused if given.
    pub root_password: Option<String>,
}

/// Temps' `BlobStatusResponse`, plus which service backs Blob.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BlobStatus {
    /// Blob answers requests (it may still be unhealthy).
    pub enabled: bool,
    /// Enabled and its S3 service answers now.
    pub healthy: bool,
    pub version: Option<String>,
    pub docker_image: Option<String>,
    /// The backing S3 service (also when Blob is disabled with its data kept).
    pub service_id: Option<i64>,
    pub service_name: Option<String>,
    /// The backing service's status (`running`, `stopped` ...).
    pub service_status: Option<String>,
}

impl ServiceManager {
    /// The Blob of project `project_id` (which must exist), or the 503 saying why there is
    /// none.
    pub async fn blob(&self, project_id: i64) -> ManagerResult<ProjectBlob> {
        if self.store.project(project_id).await?.is_none() {
            return Err(ManagerError::NotFound(format!(
                "project {project_id} does not exist"
            )));
        }
        let client = self.blob_client().await?;
        Ok(ProjectBlob::new(
            client,
            project_id,
            self.config.blob_max_bytes,
        ))
    }

    /// The admin client of the enabled, running backing, its bucket ensured.
    async fn blob_client(&self) -> ManagerResult<Arc<S3Client>> {
        let recorded = self
            .store
            .backing(BLOB.key)
            .await?
            .ok_or_else(|| BLOB.not_enabled())?;
        let service = self.service(recorded.service_id).await?;
        if !recorded.enabled {
            return Err(BLOB.disabled(&service.name));
        }
        if service.desired_state == "stopped" {
            return Err(BLOB.stopped(&service.name, service.id));
        }
        let port = service
            .param("port")
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| {
                ManagerError::Internal(format!("Blob's S3 service {} has no port", service.id))
            })?;
        let key = EndpointKey {
            service_id: service.id,
            port,
            access_key: service.param("access_key").unwrap_or_default().to_string(),
        };
        if let Some((built, client)) = self.blob_state.client.lock().expect("blob").as_ref()
            && *built == key
        {
            return Ok(client.clone());
        }
        let client = Arc::new(S3Client::new(S3Endpoint {
            url: format!("http://127.0.0.1:{port}"),
            region: REGION.into(),
            access_key: key.access_key.clone(),
            secret_key: service.param("secret_key").unwrap_or_default().to_string(),
        }));
        client
            .create_bucket(BUCKET)
            .await
            .map_err(|e| unreachable(&service.name, service.id, &service.status, &e))?;
        *self.blob_state.client.lock().expect("blob") = Some((key, client.clone()));
        Ok(client)
    }

    pub async fn blob_enable(
        self: &Arc<Self>,
        request: EnableRequest,
    ) -> ManagerResult<BackingChange> {
        if request.root_user.is_some() || request.root_password.is_some() {
            return Err(ManagerError::BadRequest(
                "root_user and root_password are not supported: Berth generates the S3 \
                 service's admin keys itself (a CSPRNG) and keeps them encrypted; leave them out"
                    .into(),
            ));
        }
        let name = self.config.blob_service_name.clone();
        let request = BackingRequest {
            docker_image: request.docker_image,
            port: request.port.map(ParamValue::into_text),
        };
        self.backing_enable(&BLOB, &name, request).await
    }

    pub async fn blob_update(
        self: &Arc<Self>,
        changes: berth_core::Parameters,
    ) -> ManagerResult<BackingChange> {
        self.backing_update(&BLOB, changes).await
    }

    pub async fn blob_disable(self: &Arc<Self>, delete_data: bool) -> ManagerResult<BackingChange> {
        self.backing_disable(&BLOB, delete_data).await
    }

    pub async fn blob_status(&self) -> ManagerResult<BlobStatus> {
        let Some(recorded) = self.store.backing(BLOB.key).await? else {
            return Ok(BlobStatus {
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
        let healthy = recorded.enabled
            && matches!(
                tokio::time::timeout(STATUS_TIMEOUT, self.blob_healthy()).await,
                Ok(true)
            );
        Ok(BlobStatus {
            enabled: recorded.enabled,
            healthy,
            version: self.image_version(&service).await,
            docker_image: service.parameters.get(DOCKER_IMAGE).cloned(),
            service_id: Some(service.id),
            service_name: Some(service.name),
            service_status: Some(service.status),
        })
    }

    /// What a Blob request would see now: the bucket answers.
    async fn blob_healthy(&self) -> bool {
        match self.blob_client().await {
            Ok(client) => matches!(client.bucket_exists(BUCKET).await, Ok(true)),
            Err(_) => false,
        }
    }
}

/// The 503 for a backing that does not answer (a restart, a crash).
fn unreachable(name: &str, id: i64, status: &str, e: &S3Error) -> ManagerError {
    ManagerError::Unavailable(format!(
        "Blob's S3 service {name:?} (id {id}, status {status}) does not answer ({e}); Berth \
         restarts it if it should run: see `berth service health {name}`"
    ))
}
