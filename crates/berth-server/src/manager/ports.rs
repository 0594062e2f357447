//! Host port allocation. A port is taken if another service row records it, any container
//! publishes it (running or stopped), or something on the host is listening on it.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};

use berth_core::{ParamKind, Parameters};

use super::{ManagerError, ManagerResult, ServiceManager};
use crate::engines::Engine;

/// Whether nothing on the host listens on `port` (on loopback or all interfaces).
fn host_port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        && TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

impl ServiceManager {
    /// Ports recorded by service rows, except those of `except_service`, and every port an
    /// in-flight operation may still go back to (an update's previous parameters, which its
    /// rollback needs, are no longer in the row).
    async fn ports_in_rows(&self, except_service: Option<i64>) -> ManagerResult<HashSet<u16>> {
        let mut taken = HashSet::new();
        for op in self.store.running_operations().await? {
            for key in ["previous", "target"] {
                let Some(params) = op.payload.get(key).and_then(|p| p.as_object()) else {
                    continue;
                };
                let engine = match op.service_id {
                    Some(id) => match self.store.service(id).await? {
                        Some(s) => crate::engines::engine(&s.service_type),
                        None => None,
                    },
                    None => None,
                };
                let Some(engine) = engine else { continue };
                for (_, param) in engine.ports() {
                    if let Some(port) = params
                        .get(*param)
                        .and_then(|v| v.as_str())
                        .and_then(|p| p.parse().ok())
                    {
                        taken.insert(port);
                    }
                }
            }
        }
        for service in self.store.list_services().await? {
            if Some(service.id) == except_service {
                continue;
            }
            let Some(engine) = crate::engines::engine(&service.service_type) else {
                continue;
            };
            for (_, param) in engine.ports() {
                if let Some(port) = service.param(param).and_then(|p| p.parse().ok()) {
                    taken.insert(port);
                }
            }
        }
        Ok(taken)
    }

    /// Fills in missing port parameters and checks given ones. Must be called with the port
    /// lock held until the row recording the result is written.
    pub(super) async fn assign_ports(
        &self,
        engine: &dyn Engine,
        params: &mut Parameters,
        explicit: &Parameters,
        except_service: Option<i64>,
    ) -> ManagerResult<()> {
        let mut taken = self.ports_in_rows(except_service).await?;
        taken.extend(self.docker.published_ports().await?);
        for spec in engine.params() {
            let ParamKind::Port { base } = spec.kind else {
                continue;
            };
            if let Some(given) = explicit.get(spec.name) {
                let port: u16 = given
                    .parse()
                    .map_err(|_| ManagerError::BadRequest(format!("invalid port {given:?}")))?;
                if taken.contains(&port) || !host_port_free(port) {
                    return Err(ManagerError::Conflict(format!(
                        "port {port} (parameter {:?}) is already taken on this host; choose another or omit it to auto-assign",
                        spec.name
                    )));
                }
                taken.insert(port);
                params.insert(spec.name.to_string(), port.to_string());
            } else if !params.contains_key(spec.name) {
                let port = (base..=u16::MAX)
                    .find(|p| !taken.contains(p) && host_port_free(*p))
                    .ok_or_else(|| {
                        ManagerError::Conflict(format!("no free port at or above {base}"))
                    })?;
                taken.insert(port);
                params.insert(spec.name.to_string(), port.to_string());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_core::Parameters;
    use berth_core::secrets::{SecretBox, generate_key};

    use crate::config::ServerConfig;
    use crate::docker::DockerClient;
    use crate::manager::ServiceManager;
    use crate::store::{NewService, OpKind, Store};

    /// An update that moves a service from port 7001 to 7002 has 7002 in its row while it
    /// runs; its rollback needs 7001, so 7001 must not be handed to anyone else meanwhile.
    #[tokio::test]
    async fn ports_an_in_flight_update_may_roll_back_to_stay_taken() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &Store::sqlite_url(dir.path()),
            SecretBox::new(&generate_key()).unwrap(),
        )
        .await
        .unwrap();
        let previous = Parameters::from([("port".to_string(), "7001".to_string())]);
        let target = Parameters::from([("port".to_string(), "7002".to_string())]);
        let (service, create) = store
            .insert_service_intent(
                NewService {
                    name: "moving",
                    service_type: "redis",
                    parameters: &previous,
                    secrets: &Parameters::new(),
                    container_name: "berth-redis-moving",
                    volume_name: "berth-redis-moving-data",
                },
                &serde_json::json!({}),
            )
            .await
            .unwrap();
        store
            .finish_operation(create.id, crate::store::OpStatus::Succeeded, None)
            .await
            .unwrap();
        store
            .begin_operation(
                service.id,
                None,
                OpKind::Update,
                "updating",
                None,
                Some(&target),
                &serde_json::json!({ "previous": previous, "target": target }),
            )
            .await
            .unwrap();
        let manager = ServiceManager::new(
            store,
            Arc::new(DockerClient::new()),
            ServerConfig::default(),
            "test".into(),
        );
        let taken = manager.ports_in_rows(None).await.unwrap();
        assert!(taken.contains(&7002), "the row's new port");
        assert!(taken.contains(&7001), "the port the rollback needs");
    }
}
