//! Waiting until a service accepts work: the engine's real client probe through the published
//! port, polled until it succeeds, the container dies, or the deadline passes. Never a sleep
//! standing in for readiness.

use std::time::{Duration, Instant};

use super::{ManagerError, ManagerResult, ServiceManager, redact};
use crate::engines::Engine;
use crate::store::Service;

const POLL_INTERVAL: Duration = Duration::from_millis(100);

impl ServiceManager {
    /// The host port of the engine's first published port.
    pub fn host_port(engine: &dyn Engine, service: &Service) -> ManagerResult<u16> {
        let (_, param) = engine
            .ports()
            .first()
            .ok_or_else(|| ManagerError::Internal("engine publishes no port".into()))?;
        service
            .param(param)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| ManagerError::Internal(format!("service {} has no {param}", service.id)))
    }

    pub async fn wait_ready(&self, engine: &dyn Engine, service: &Service) -> ManagerResult<()> {
        let port = Self::host_port(engine, service)?;
        let params = service.all_parameters();
        let timeout = Duration::from_secs(self.config.readiness_timeout_secs);
        let deadline = Instant::now() + timeout;
        let mut last_error;
        loop {
            match engine.probe(port, &params).await {
                Ok(()) => return Ok(()),
                Err(e) => last_error = e,
            }
            match self
                .docker
                .inspect_container(&service.container_name)
                .await?
            {
                None => {
                    return Err(ManagerError::Internal(format!(
                        "container {} disappeared while starting",
                        service.container_name
                    )));
                }
                // `restarting`: it exited and its restart policy is bringing it back, which
                // for a server still starting means a crash loop; waiting out the deadline
                // would only delay the same answer.
                Some(info)
                    if info.state == "restarting"
                        || (!info.running && matches!(info.state.as_str(), "exited" | "dead")) =>
                {
                    let logs = self
                        .docker
                        .container_logs_tail(&service.container_name, 8)
                        .await
                        .unwrap_or_default();
                    return Err(ManagerError::NotStarted(redact(
                        &format!(
                            "container {} exited while starting ({}); last log lines: {}",
                            service.container_name,
                            info.state,
                            logs.trim()
                        ),
                        service,
                    )));
                }
                Some(_) => {}
            }
            if Instant::now() >= deadline {
                return Err(ManagerError::NotStarted(redact(
                    &format!(
                        "{} did not accept connections within {}s: {last_error}",
                        service.name,
                        timeout.as_secs()
                    ),
                    service,
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}
