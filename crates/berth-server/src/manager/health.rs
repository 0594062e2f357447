//! Health: the container's state plus a real client round-trip, with its latency.

use berth_core::params::DOCKER_IMAGE;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{ManagerResult, ServiceManager, redact};
use crate::engines::Engine;
use crate::store::Service;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    pub service_id: i64,
    /// healthy, unhealthy, stopped or missing.
    pub status: &'static str,
    pub healthy: bool,
    /// Docker's word for the container state (running, exited, ...), or null if missing.
    pub container_state: Option<String>,
    /// Round-trip of the probe (connect, authenticate, trivial command), when one ran.
    pub latency_ms: Option<f64>,
    pub message: String,
    /// Conditions a user should know about that do not make the service unhealthy (keys in
    /// Redis database 0, readable by every tenant).
    pub warnings: Vec<String>,
    pub checked_at: String,
}

impl ServiceManager {
    /// One probe of a running service, timed and counted in the health-check metrics. Every
    /// health observation (the endpoint, the reconciler's status) goes through here.
    pub(super) async fn health_probe(
        &self,
        engine: &dyn Engine,
        service: &Service,
    ) -> ManagerResult<(Result<(), String>, Duration)> {
        let port = Self::host_port(engine, service)?;
        let started = Instant::now();
        let probe = engine.probe(port, &service.all_parameters()).await;
        let latency = started.elapsed();
        self.metrics.record_health_check(
            &service.service_type,
            probe.is_ok(),
            latency.as_secs_f64(),
        );
        Ok((probe, latency))
    }

    pub async fn health(&self, id: i64) -> ManagerResult<HealthReport> {
        let service = self.service(id).await?;
        let engine = Self::engine_for(&service)?;
        let info = self
            .docker
            .inspect_container(&service.container_name)
            .await?;
        let mut report = HealthReport {
            service_id: id,
            status: "missing",
            healthy: false,
            container_state: info.as_ref().map(|i| i.state.clone()),
            latency_ms: None,
            message: String::new(),
            warnings: Vec::new(),
            checked_at: crate::store::now(),
        };
        match info {
            None if service.status == super::volume::DATA_MISSING => {
                report.status = super::volume::DATA_MISSING;
                report.message = data_missing_message(&service);
            }
            None => report.message = format!("container {} does not exist", service.container_name),
            Some(info) if !info.running => {
                report.status = "stopped";
                report.message = format!("container is {}", info.state);
            }
            Some(_) => {
                let (probe, latency) = self.health_probe(engine, &service).await?;
                report.latency_ms = Some(latency.as_secs_f64() * 1000.0);
                match probe {
                    Ok(()) => {
                        report.status = "healthy";
                        report.healthy = true;
                        report.message = "accepting connections".into();
                        report.warnings = self.warnings(&service).await;
                    }
                    Err(e) => {
                        report.status = "unhealthy";
                        report.message = redact(&e, &service);
                    }
                }
            }
        }
        Ok(report)
    }
}

fn data_missing_message(service: &Service) -> String {
    format!(
        "the data volume {} is missing or holds other data; Berth recreated nothing. Restore the \
         volume and start the service, or POST /api/external-services/{}/recreate to start again \
         with EMPTY data",
        service.volume_name, service.id
    )
}

impl ServiceManager {
    /// Warnings for the service view and the detailed health: a missing data volume, and
    /// whatever the engine reports about the running server's data.
    pub async fn warnings(&self, service: &Service) -> Vec<String> {
        let Ok(engine) = Self::engine_for(service) else {
            return Vec::new();
        };
        // What the image is (a test stand-in...) matters whatever the service's state.
        let mut out: Vec<String> = service
            .parameters
            .get(DOCKER_IMAGE)
            .and_then(|image| engine.image_notice(image))
            .into_iter()
            .collect();
        if service.status == super::volume::DATA_MISSING {
            out.push(data_missing_message(service));
            return out;
        }
        if service.status != "running" {
            return out;
        }
        let Ok(port) = Self::host_port(engine, service) else {
            return out;
        };
        out.extend(
            engine
                .data_warnings(port, &service.all_parameters())
                .await
                .into_iter()
                .map(|w| redact(&w, service)),
        );
        out
    }
}
