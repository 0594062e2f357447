//! Prometheus metrics in the text exposition format, kept by hand (a few counters and
//! gauges do not need a metrics framework). Gauges about services are computed at scrape time
//! from the state store; counters are recorded where things happen.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::reconciler::ReconcilerStatus;
use crate::store::Service;

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
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
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

    pub fn render(
        &self,
        services: &[Service],
        reconciler: &ReconcilerStatus,
        docker_reachable: bool,
    ) -> String {
        let mut out = String::new();
        let mut by_type_status: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for s in services {
            *by_type_status
                .entry((&s.service_type, &s.status))
                .or_default() += 1;
        }
        out.push_str("# HELP berth_services Managed services by type and observed status.\n# TYPE berth_services gauge\n");
        for ((t, s), n) in &by_type_status {
            let _ = writeln!(
                out,
                "berth_services{{service_type=\"{}\",status=\"{}\"}} {n}",
                label(t),
                label(s)
            );
        }
        out.push_str("# HELP berth_docker_reachable Whether the Docker engine answered a ping.\n# TYPE berth_docker_reachable gauge\n");
        let _ = writeln!(out, "berth_docker_reachable {}", u8::from(docker_reachable));

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_escapes_labels() {
        let m = Metrics::default();
        m.record_operation("create", "succeeded", 2.5);
        m.record_operation("create", "succeeded", 1.5);
        m.record_health_check("postgres", true, 0.01);
        let text = m.render(&[], &ReconcilerStatus::default(), true);
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
}
