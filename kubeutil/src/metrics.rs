//! Prometheus metrics for the operator and the webhook on `prometheus-client`:
//! a registry with the `keyward_` prefix and the series every process has,
//! the OpenMetrics text exposition, and label types that keep the series
//! count bounded: fixed label values (`&'static str` from a known set), or
//! the names of cluster objects (a namespace, a ManagedKey), which grow
//! only with what the cluster holds.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;

/// Labels whose values come from a fixed set in the code.
pub type Fixed<const N: usize> = [(&'static str, &'static str); N];
/// A counter per combination of fixed label values.
pub type CounterBy<const N: usize> = Family<Fixed<N>, Counter>;
/// Labels naming cluster objects, e.g. `[("namespace", ns), ("key", name)]`.
pub type Named<const N: usize> = [(&'static str, String); N];

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) for request and call latencies: 0.5 ms to 2.5 s.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A registry named `keyward_*` holding the series every Keyward process
/// exports (`keyward_memory_locked`).
pub fn registry() -> Registry {
    let mut registry = Registry::with_prefix("keyward");
    registry.register_collector(Box::new(MemoryLocked));
    registry
}

/// The registry in the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; a label that cannot be encoded
    // would be a bug caught by the tests of each binary's metrics.
    if let Err(error) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!(%error, "rendering metrics");
    }
    out
}

/// A latency histogram with [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The current value of one series of a fixed-label counter (0 if unseen).
pub fn count<const N: usize>(family: &CounterBy<N>, labels: Fixed<N>) -> u64 {
    family.get(&labels).map_or(0, |counter| counter.get())
}

/// `keyward_memory_locked`, read from the process's hardening state at
/// each scrape.
#[derive(Debug)]
struct MemoryLocked;

impl Collector for MemoryLocked {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let locked = keyward_core::hardening::memory_lock().all_locked();
        let gauge = ConstGauge::new(i64::from(locked));
        let metric = encoder.encode_descriptor(
            "memory_locked",
            "1 while every key and value buffer of this process is locked in RAM.",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_renders_openmetrics_with_the_process_series() {
        let mut registry = registry();
        let by_outcome = CounterBy::<1>::default();
        registry.register("things", "Things, by outcome.", by_outcome.clone());
        let per_key = Family::<Named<2>, Counter>::default();
        registry.register("uses", "Uses per key.", per_key.clone());
        by_outcome.get_or_create(&[("outcome", "ok")]).inc();
        per_key
            .get_or_create(&[("namespace", "apps".into()), ("key", "db".into())])
            .inc_by(3);
        let text = render(&registry);
        for line in [
            "# TYPE keyward_things counter\n",
            "keyward_things_total{outcome=\"ok\"} 1\n",
            "keyward_uses_total{namespace=\"apps\",key=\"db\"} 3\n",
            // Not hardened in this test process.
            "# TYPE keyward_memory_locked gauge\nkeyward_memory_locked 0\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(count(&by_outcome, [("outcome", "ok")]), 1);
        assert_eq!(count(&by_outcome, [("outcome", "no")]), 0);
    }
}
