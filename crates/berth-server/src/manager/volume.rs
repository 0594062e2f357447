//! The data volume's identity. A volume that went missing (removed by hand, a disk swapped)
//! must never be silently replaced by an empty one: Docker would create a fresh volume for a
//! new container and the service would come back "running" with none of its data, its linked
//! projects' logins gone. So once a service first runs, Berth writes a random marker into its
//! data directory and records it on the row; before a container is (re)created on the volume,
//! the volume must exist and hold that marker. If not, the service is marked `data_missing` and
//! nothing more is done until the user explicitly recreates it (or restores the volume).

use berth_core::secrets;

use super::{ManagerError, ManagerResult, ServiceManager};
use crate::docker::ContainerFile;
use crate::engines::Engine;
use crate::store::Service;

/// The marker's file name inside the engine's data path. Engines ignore unknown files there
/// (PostgreSQL's data directory, Redis' /data), and physical copies carry it along.
const MARKER_FILE: &str = ".berth-volume-id";
const MARKER_LEN: usize = 24;

/// Status of a service whose volume is gone or holds other data.
pub const DATA_MISSING: &str = "data_missing";

fn marker_path(engine: &dyn Engine) -> String {
    format!("{}/{MARKER_FILE}", engine.data_path().trim_end_matches('/'))
}

impl ServiceManager {
    /// Writes a new marker into the running container's volume and records it. Called once the
    /// service first accepts connections (and for services that predate markers). The file is
    /// written before the row, so a crash in between leaves an unrecorded marker, which the
    /// next stamp overwrites; never a recorded marker the volume lacks.
    pub async fn stamp_volume(&self, engine: &dyn Engine, service: &Service) -> ManagerResult<()> {
        if service.is_imported() {
            // Nothing is written into a user's data directory: Berth never recreates their
            // container, so there is no volume identity to check.
            return Ok(());
        }
        let marker = secrets::generate_password(MARKER_LEN);
        let file = ContainerFile {
            path: marker_path(engine),
            contents: marker.clone().into_bytes(),
            mode: 0o644,
        };
        self.docker
            .write_files(&service.container_name, &[file])
            .await?;
        self.store.set_volume_marker(service.id, &marker).await?;
        tracing::info!(service_id = service.id, "stamped the data volume");
        Ok(())
    }

    /// Creates (or adopts) the container of an existing service, after checking that its
    /// volume still holds this service's data. Returns `ManagerError::DataMissing` (and marks
    /// the service `data_missing`) if not; then no container is left behind and the volume is
    /// untouched.
    pub async fn create_container_on_volume(
        &self,
        engine: &dyn Engine,
        service: &Service,
    ) -> ManagerResult<()> {
        // The last line of defence: every path that makes a container comes through here.
        super::import::refuse_if_imported(service, "this")?;
        let spec = self.container_spec(engine, service);
        self.docker.ensure_network(&self.config.network).await?;
        let Some(expected) = service.volume_marker.as_deref() else {
            // Never stamped (created before markers, or a create still on its way): nothing to
            // compare with yet.
            self.docker.create_or_adopt_container(&spec).await?;
            return Ok(());
        };
        if !self.docker.volume_exists(&spec.volume).await? {
            return self
                .data_missing(
                    service,
                    format!("its volume {} no longer exists", spec.volume),
                )
                .await;
        }
        self.docker.create_or_adopt_container(&spec).await?;
        let found = self
            .docker
            .read_file(&spec.name, &marker_path(engine))
            .await?;
        if found.as_deref() != Some(expected.as_bytes()) {
            self.docker.remove_container(&spec.name).await?;
            let what = if found.is_some() {
                "holds another service's data"
            } else {
                "does not hold this service's data (no Berth marker: empty or replaced)"
            };
            return self
                .data_missing(service, format!("its volume {} {what}", spec.volume))
                .await;
        }
        Ok(())
    }

    async fn data_missing(&self, service: &Service, why: String) -> ManagerResult<()> {
        tracing::error!(service_id = service.id, "data missing: {why}");
        self.store
            .set_service_status(service.id, DATA_MISSING)
            .await?;
        Err(ManagerError::DataMissing(format!(
            "service {:?}: {why}. Berth did not recreate it, so nothing was overwritten. Restore the \
             volume and start the service, or accept EMPTY data with \
             POST /api/external-services/{}/recreate (`berth service recreate {}`)",
            service.name, service.id, service.name
        )))
    }
}
