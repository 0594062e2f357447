//! Prometheus metrics in the text exposition format, kept by hand (a few counters and
//! gauges do not need a metrics framework). Counters are recorded where things happen; gauges
//! about services and Docker are computed once per reconciler pass and kept as a snapshot, so
//! a scrape reads memory only (no state store decryption, no Docker call).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::docker::DockerClient;
use crate::reconciler::ReconcilerStatus;
use crate::store::{Service, Store};

#[derive(Default)]
struct Totals {
    count: u64,
    seconds: f64,
}

#[derive(Default)]
struct Inner {
    /// (kind, status) -> count and total duration.
    operations: BTreeMap<(String, String), Totals>,
    /// (service_type, result) -> count and total probe latency.
    health_checks: BTreeMap<(String, String), Totals>,
    /// (service_type, result) -> count and total duration of backup runs.
    backups: BTreeMap<(String, String), Totals>,
}

/// The gauges of the reconciler's last pass.
#[derive(Default, Clone)]
struct Snapshot {
    /// (service_type, status) -> count.
    services: BTreeMap<(String, String), u64>,
    docker_reachable: bool,
    /// (service id, service name) -> Unix time its newest succeeded backup finished.
    last_backup_success: BTreeMap<(i64, String), f64>,
    /// Unix time the snapshot was taken.
    taken_at: f64,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    snapshot: Mutex<Option<Snapshot>>,
}

/// Escapes a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn record_operation(&self, kind: &str, status: &str, seconds: f64) {
        let mut inner = self.inner.lock().expect("metrics lock");
        let t = inner
            .operations
            .entry((kind.into(), status.into()))
            .or_default();
        t.count += 1;
        t.seconds += seconds;
    }

    pub fn record_health_check(&self, service_type: &str, healthy: bool, seconds: f64) {
        let result = if healthy { "healthy" } else { "unhealthy" };
        let mut inner = self.inner.lock().expect("metrics lock");
        let t = inner
            .health_checks
            .entry((service_type.into(), result.into()))
            .or_default();
        t.count += 1;
        t.seconds += seconds;
    }

    pub fn record_backup(&self, service_type: &str, succeeded: bool, seconds: f64) {
        let result = if succeeded { "succeeded" } else { "failed" };
        let mut inner = self.inner.lock().expect("metrics lock");
        let t = inner
            .backups
            .entry((service_type.into(), result.into()))
            .or_default();
        t.count += 1;
        t.seconds += seconds;
    }

    /// Computes the gauges (services by type and status, Docker reachability) and keeps them
    /// for scrapes. Called by the reconciler once per pass. If the store cannot be read, the
    /// previous service counts are kept.
    pub async fn refresh_gauges(&self, store: &Store, docker: &DockerClient) {
        let services = store.list_services().await;
        let docker_reachable = docker.ping().await.is_ok();
        let last_backup_success = match store.last_backup_successes().await {
            Ok(rows) => rows
                .into_iter()
                .filter_map(|(id, name, finished)| {
                    let at = humantime::parse_rfc3339(&finished).ok()?;
                    let secs = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
                    Some(((id, name), secs))
                })
                .collect(),
            Err(e) => {
                tracing::warn!("metrics: reading backup times failed: {e}");
                BTreeMap::new()
            }
        };
        let taken_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut snapshot = self.snapshot.lock().expect("metrics lock");
        let services = match services {
            Ok(services) => count_services(&services),
            Err(e) => {
                tracing::warn!("metrics: listing services failed, keeping the last counts: {e}");
                snapshot
                    .as_ref()
                    .map(|s| s.services.clone())
                    .unwrap_or_default()
            }
        };
        *snapshot = Some(Snapshot {
            services,
            docker_reachable,
            last_backup_success,
            taken_at,
        });
    }

    /// The exposition text: counters as they are now, gauges from the last reconciler pass
    /// (none before the first pass). Reads memory only.
    pub fn render(&self, reconciler: &ReconcilerStatus) -> String {
        let mut out = String::new();
        let snapshot = self.snapshot.lock().expect("metrics lock").clone();
        if let Some(snapshot) = &snapshot {
            out.push_str("# HELP berth_services Managed services by type and observed status, at the last reconciler pass.\n# TYPE berth_services gauge\n");
            for ((t, s), n) in &snapshot.services {
                let _ = writeln!(
                    out,
                    "berth_services{{service_type=\"{}\",status=\"{}\"}} {n}",
                    label(t),
                    label(s)
                );
            }
            out.push_str("# HELP berth_docker_reachable Whether the Docker engine answered a ping at the last reconciler pass.\n# TYPE berth_docker_reachable gauge\n");
            let _ = writeln!(
                out,
                "berth_docker_reachable {}",
                u8::from(snapshot.docker_reachable)
            );
            out.push_str("# HELP berth_backup_last_success_timestamp_seconds When each service's newest succeeded backup finished (Unix time); alert when it is too old or missing.\n# TYPE berth_backup_last_success_timestamp_seconds gauge\n");
            for ((id, name), at) in &snapshot.last_backup_success {
                let _ = writeln!(
                    out,
                    "berth_backup_last_success_timestamp_seconds{{service_id=\"{id}\",service_name=\"{}\"}} {at}",
                    label(name)
                );
            }
            out.push_str("# HELP berth_gauges_timestamp_seconds When the gauges above were computed (Unix time).\n# TYPE berth_gauges_timestamp_seconds gauge\n");
            let _ = writeln!(out, "berth_gauges_timestamp_seconds {}", snapshot.taken_at);
        }

        let inner = self.inner.lock().expect("metrics lock");
        out.push_str("# HELP berth_operations_total Finished operations by kind and outcome.\n# TYPE berth_operations_total counter\n");
        for ((kind, status), t) in &inner.operations {
            let _ = writeln!(
                out,
                "berth_operations_total{{kind=\"{}\",status=\"{}\"}} {}",
                label(kind),
                label(status),
                t.count
            );
        }
        out.push_str("# HELP berth_operation_duration_seconds Time operations took.\n# TYPE berth_operation_duration_seconds summary\n");
        for ((kind, status), t) in &inner.operations {
            let labels = format!("kind=\"{}\",status=\"{}\"", label(kind), label(status));
            let _ = writeln!(
                out,
                "berth_operation_duration_seconds_sum{{{labels}}} {}",
                t.seconds
            );
            let _ = writeln!(
                out,
                "berth_operation_duration_seconds_count{{{labels}}} {}",
                t.count
            );
        }
        out.push_str("# HELP berth_health_checks_total Health probes by service type and result.\n# TYPE berth_health_checks_total counter\n");
        for ((t, r), v) in &inner.health_checks {
            let _ = writeln!(
                out,
                "berth_health_checks_total{{service_type=\"{}\",result=\"{}\"}} {}",
                label(t),
                label(r),
                v.count
            );
        }
        out.push_str("# HELP berth_health_check_duration_seconds Latency of health probes.\n# TYPE berth_health_check_duration_seconds summary\n");
        for ((t, r), v) in &inner.health_checks {
            let labels = format!("service_type=\"{}\",result=\"{}\"", label(t), label(r));
            let _ = writeln!(
                out,
                "berth_health_check_duration_seconds_sum{{{labels}}} {}",
                v.seconds
            );
            let _ = writeln!(
                out,
                "berth_health_check_duration_seconds_count{{{labels}}} {}",
                v.count
            );
        }
        out.push_str("# HELP berth_backups_total Finished backup runs by service type and outcome.\n# TYPE berth_backups_total counter\n");
        for ((t, r), v) in &inner.backups {
            let _ = writeln!(
                out,
                "berth_backups_total{{service_type=\"{}\",result=\"{}\"}} {}",
                label(t),
                label(r),
                v.count
            );
        }
        drop(inner);
        out.push_str("# HELP berth_reconciler_passes_total Reconciler passes.\n# TYPE berth_reconciler_passes_total counter\n");
        let _ = writeln!(out, "berth_reconciler_passes_total {}", reconciler.passes);
        out.push_str("# HELP berth_reconciler_errors_total Reconciler errors.\n# TYPE berth_reconciler_errors_total counter\n");
        let _ = writeln!(out, "berth_reconciler_errors_total {}", reconciler.errors);
        out.push_str("# HELP berth_reconciler_orphans Labelled containers without a service row.\n# TYPE berth_reconciler_orphans gauge\n");
        let _ = writeln!(out, "berth_reconciler_orphans {}", reconciler.orphans.len());
        out.push_str("# HELP berth_reconciler_resolved_operations_total Interrupted operations resolved at startup.\n# TYPE berth_reconciler_resolved_operations_total counter\n");
        let _ = writeln!(
            out,
            "berth_reconciler_resolved_operations_total {}",
            reconciler.resolved_operations
        );
        out
    }
}

fn count_services(services: &[Service]) -> BTreeMap<(String, String), u64> {
    let mut counts = BTreeMap::new();
    for s in services {
        *counts
            .entry((s.service_type.clone(), s.status.clone()))
            .or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_escapes_labels() {
        let m = Metrics::default();
        m.record_operation("create", "succeeded", 2.5);
        m.record_operation("create", "succeeded", 1.5);
        m.record_health_check("postgres", true, 0.01);
        *m.snapshot.lock().unwrap() = Some(Snapshot {
            docker_reachable: true,
            ..Default::default()
        });
        let text = m.render(&ReconcilerStatus::default());
        assert!(text.contains("berth_operations_total{kind=\"create\",status=\"succeeded\"} 2"));
        assert!(text.contains(
            "berth_operation_duration_seconds_sum{kind=\"create\",status=\"succeeded\"} 4"
        ));
        assert!(
            text.contains(
                "berth_health_checks_total{service_type=\"postgres\",result=\"healthy\"} 1"
            )
        );
        assert!(text.contains("berth_docker_reachable 1"));
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }

    #[test]
    fn no_gauges_before_the_first_pass() {
        let text = Metrics::default().render(&ReconcilerStatus::default());
        assert!(!text.contains("berth_docker_reachable"), "{text}");
        assert!(!text.contains("berth_services"), "{text}");
        assert!(text.contains("berth_reconciler_passes_total 0"), "{text}");
    }
}
