//! What the plugin did, for Prometheus: publishes by outcome, how long
//! they took, unpublishes. Labels come from a fixed set (no pod, namespace
//! or secret names), so the number of series does not grow with the
//! cluster; which pod was refreshed is in its Events.

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::fmt::Write;
use std::sync::Arc;
use tonic::{Code, Status};

/// How one NodePublishVolume ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// A new volume was filled.
    Mounted,
    /// A republish replaced the files: a value changed in a running pod.
    Refreshed,
    /// A republish found the same values.
    Unchanged,
    /// The webhook refused to unseal for this pod.
    Denied,
    /// The webhook could not be reached or could not unseal now.
    Unavailable,
    /// The kubelet's request or the CSIDriver object is wrong.
    Invalid,
    /// Anything else (writing the volume, a bad answer).
    Failed,
}

impl Outcome {
    pub fn of_error(status: &Status) -> Self {
        match status.code() {
            Code::PermissionDenied => Outcome::Denied,
            Code::Unavailable => Outcome::Unavailable,
            Code::InvalidArgument | Code::FailedPrecondition => Outcome::Invalid,
            _ => Outcome::Failed,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Outcome::Mounted => "mounted",
            Outcome::Refreshed => "refreshed",
            Outcome::Unchanged => "unchanged",
            Outcome::Denied => "denied",
            Outcome::Unavailable => "unavailable",
            Outcome::Invalid => "invalid",
            Outcome::Failed => "failed",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.label())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: Outcome,
}

/// The plugin's series, registered once at start-up.
pub struct Metrics {
    registry: Registry,
    publishes: Family<OutcomeLabels, Counter>,
    publish_seconds: Histogram,
    unpublishes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keyward_csi");
        let publishes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "publishes",
            "NodePublishVolume calls by outcome (refreshed: a running pod's files replaced)",
            publishes.clone(),
        );
        // 1 ms .. 4 s: an unseal is milliseconds, a slow webhook seconds.
        let publish_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 13));
        registry.register(
            "publish_duration_seconds",
            "Time to answer a NodePublishVolume, unseal included",
            publish_seconds.clone(),
        );
        let unpublishes = Counter::default();
        registry.register(
            "unpublishes",
            "Volumes wiped and unmounted",
            unpublishes.clone(),
        );
        Metrics {
            registry,
            publishes,
            publish_seconds,
            unpublishes,
        }
    }
}

impl Metrics {
    pub fn published(&self, outcome: Outcome, seconds: f64) {
        self.publishes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.publish_seconds.observe(seconds);
    }

    pub fn unpublished(&self) {
        self.unpublishes.inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// `GET /metrics`, and `GET /healthz` for probes.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(
                        CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
                    .into_response()
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_is_its_own_series() {
        let metrics = Metrics::default();
        metrics.published(Outcome::Mounted, 0.004);
        metrics.published(Outcome::Refreshed, 0.003);
        metrics.published(Outcome::Refreshed, 0.002);
        metrics.published(Outcome::of_error(&Status::permission_denied("no")), 0.001);
        metrics.unpublished();
        let text = metrics.render();
        for line in [
            r#"keyward_csi_publishes_total{outcome="mounted"} 1"#,
            r#"keyward_csi_publishes_total{outcome="refreshed"} 2"#,
            r#"keyward_csi_publishes_total{outcome="denied"} 1"#,
            "keyward_csi_publish_duration_seconds_count 4",
            "keyward_csi_unpublishes_total 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn errors_map_to_what_an_operator_acts_on() {
        assert_eq!(
            Outcome::of_error(&Status::unavailable("x")),
            Outcome::Unavailable
        );
        assert_eq!(
            Outcome::of_error(&Status::failed_precondition("x")),
            Outcome::Invalid
        );
        assert_eq!(Outcome::of_error(&Status::internal("x")), Outcome::Failed);
    }
}
