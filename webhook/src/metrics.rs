//! The webhook's Prometheus series on the shared registry
//! (`keyward_kubeutil::metrics`, `prometheus-client`).
//!
//! One process serves one webhook, so the registry is process-wide (like
//! the `prometheus` crate's default registry): `AppState` and `Unsealer`
//! are built the same way with or without metrics. Label values come from a
//! fixed set, except decrypts (per namespace and ManagedKey) and denials
//! (per namespace), which grow only with the cluster's objects.

use keyward_kubeutil::metrics::{
    self as shared, Counter, CounterBy, Family, Gauge, Histogram, Named, Registry, count,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct Metrics {
    registry: Registry,
    unseal_requests: CounterBy<1>,
    unseal_denied: Family<Named<2>, Counter>,
    unseal_invalid: CounterBy<1>,
    decrypts: Family<Named<2>, Counter>,
    compromised_served: Counter,
    dek_cache_hits: DekCacheHits,
    provider_unwraps: Counter,
    rewrap_requests: CounterBy<1>,
    rewrapped_items: Counter,
    certificate_renewals: Counter,
    certificate_not_after: Gauge,
    admission: Family<shared::Fixed<1>, Histogram>,
    audit_write_failures: Counter,
    pre_auth_reserve_used: Counter,
    // Per listener (`admission`, `api`).
    open_connections: Family<shared::Fixed<1>, Gauge>,
    connections_refused: CounterBy<1>,
    connections_displaced: CounterBy<1>,
    connections_rate_limited: CounterBy<1>,
    connection_timeouts: CounterBy<2>,
    requests_shed: CounterBy<1>,
    request_timeouts: CounterBy<1>,
    pre_auth_limited: CounterBy<1>,
    /// Totals for tests, whatever the labels.
    decrypted_total: AtomicU64,
    denied_total: Family<shared::Fixed<1>, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide registry.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = shared::registry();
        let admission = Family::<shared::Fixed<1>, Histogram>::new_with_constructor(
            shared::latency_histogram as fn() -> Histogram,
        );
        let dek_cache_hits = DekCacheHits::default();
        let m = Metrics {
            unseal_requests: Default::default(),
            unseal_denied: Default::default(),
            unseal_invalid: Default::default(),
            decrypts: Default::default(),
            compromised_served: Default::default(),
            provider_unwraps: dek_cache_hits.unwraps.clone(),
            dek_cache_hits,
            rewrap_requests: Default::default(),
            rewrapped_items: Default::default(),
            certificate_renewals: Default::default(),
            certificate_not_after: Default::default(),
            admission: admission.clone(),
            audit_write_failures: Default::default(),
            pre_auth_reserve_used: Default::default(),
            open_connections: Default::default(),
            connections_refused: Default::default(),
            connections_displaced: Default::default(),
            connections_rate_limited: Default::default(),
            connection_timeouts: Default::default(),
            requests_shed: Default::default(),
            request_timeouts: Default::default(),
            pre_auth_limited: Default::default(),
            decrypted_total: AtomicU64::new(0),
            denied_total: Default::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "unseal_requests",
            "Unseal requests answered, by outcome.",
            m.unseal_requests.clone(),
        );
        r.register(
            "unseal_denied",
            "Unseal requests denied, by the pod's namespace and reason.",
            m.unseal_denied.clone(),
        );
        r.register(
            "unseal_invalid",
            "Unseal requests refused as malformed before authentication (not audited), by reason.",
            m.unseal_invalid.clone(),
        );
        r.register("unseal_decrypts", "Items decrypted and returned to pods, by the pod's namespace and the ManagedKey (namespace/name).", m.decrypts.clone());
        r.register(
            "unseal_compromised_served",
            "Items served from a Compromised key version under keyward.io/serve-compromised-until.",
            m.compromised_served.clone(),
        );
        r.register(
            "provider_unwraps",
            "DEK unwraps that reached the key provider (DEK cache misses).",
            m.provider_unwraps.clone(),
        );
        r.register_collector(Box::new(m.dek_cache_hits.clone()));
        r.register(
            "rewrap_requests",
            "Rewrap requests answered, by outcome.",
            m.rewrap_requests.clone(),
        );
        r.register(
            "rewrap_items",
            "Items re-sealed onto a newer key version for keyward rewrap.",
            m.rewrapped_items.clone(),
        );
        r.register("pre_auth_reserve_used", "Tenant API requests let through on their source's reserve while the all-sources pre-authentication bucket was empty.", m.pre_auth_reserve_used.clone());
        r.register(
            "audit_write_failures",
            "Audit records that could not be written; their requests were refused.",
            m.audit_write_failures.clone(),
        );
        r.register(
            "webhook_certificate_renewals",
            "Serving certificates renewed without a restart.",
            m.certificate_renewals.clone(),
        );
        r.register(
            "webhook_certificate_not_after_seconds",
            "When the serving certificate expires (Unix time).",
            m.certificate_not_after.clone(),
        );
        r.register(
            "open_connections",
            "TLS connections open, by listener.",
            m.open_connections.clone(),
        );
        r.register("connections_refused", "Connections closed at accept because the listener, or their source address, had its maximum open.", m.connections_refused.clone());
        r.register(
            "connections_rate_limited",
            "Connections closed at accept because their source address opened new ones too fast.",
            m.connections_rate_limited.clone(),
        );
        r.register(
            "connections_displaced",
            "Idle connections closed to make room for a new one when the listener was full.",
            m.connections_displaced.clone(),
        );
        r.register(
            "connection_timeouts",
            "Connections closed by a timeout, by listener and phase.",
            m.connection_timeouts.clone(),
        );
        r.register(
            "requests_shed",
            "Requests refused with 503 because the listener had its maximum in flight.",
            m.requests_shed.clone(),
        );
        r.register(
            "request_timeouts",
            "Requests answered 504 at the listener's request deadline.",
            m.request_timeouts.clone(),
        );
        r.register(
            "pre_auth_limited",
            "Tenant API requests refused with 429 before authentication, by bucket.",
            m.pre_auth_limited.clone(),
        );
        r.register(
            "admission_duration_seconds",
            "Time to answer an admission review.",
            admission,
        );
        Metrics { registry, ..m }
    }

    /// One `/v1/unseal` answered; `outcome`: `ok`, `denied`,
    /// `rate_limited`, `unavailable` (a provider timed out), `error` or
    /// `bad_request`.
    pub fn unseal_request(&self, outcome: &'static str) {
        self.unseal_requests
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }

    /// A denial for a pod in `namespace`, by reason (see
    /// `unseal::authorise::DenialKind::label`).
    pub fn unseal_denied(&self, namespace: &str, reason: &'static str) {
        self.unseal_denied
            .get_or_create(&[
                ("namespace", namespace.to_owned()),
                ("reason", reason.to_owned()),
            ])
            .inc();
        self.denied_total.get_or_create(&[("reason", reason)]).inc();
    }

    /// A request refused before authentication, by reason (the fixed set
    /// of `unseal::validate::Invalid::label`).
    pub fn unseal_invalid(&self, reason: &'static str) {
        self.unseal_invalid
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// `items` decrypted for a pod in `namespace` with ManagedKey `key`
    /// (`namespace/name`) and returned.
    pub fn decrypted(&self, namespace: &str, key: &str, items: usize) {
        self.decrypts
            .get_or_create(&[("namespace", namespace.to_owned()), ("key", key.to_owned())])
            .inc_by(items as u64);
        self.decrypted_total
            .fetch_add(items as u64, Ordering::Relaxed);
    }

    /// Items served from a Compromised key version under the ManagedKey's
    /// `keyward.io/serve-compromised-until` override.
    pub fn compromised_served(&self, items: usize) {
        self.compromised_served.inc_by(items as u64);
    }

    /// A DEK asked of the cached, decrypt-only provider (hit or miss).
    pub fn dek_requested(&self) {
        self.dek_cache_hits.requests.inc();
    }

    /// An unwrap that reached the provider (a cache miss).
    pub fn provider_unwrap(&self) {
        self.provider_unwraps.inc();
    }

    /// One SealedSecretReview rewrap answered; `outcome` as for unseal.
    pub fn rewrap_request(&self, outcome: &'static str) {
        self.rewrap_requests
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }

    pub fn rewrapped(&self, items: usize) {
        self.rewrapped_items.inc_by(items as u64);
    }

    /// The serving certificate in use; `not_after` in Unix seconds.
    pub fn certificate(&self, not_after: u64, renewed: bool) {
        self.certificate_not_after
            .set(i64::try_from(not_after).unwrap_or(i64::MAX));
        if renewed {
            self.certificate_renewals.inc();
        }
    }

    /// Time spent answering an admission review; `route`: `mutate`,
    /// `validate`, `datakey` or `review`.
    pub fn admission(&self, route: &'static str, elapsed: Duration) {
        self.admission
            .get_or_create(&[("route", route)])
            .observe(elapsed.as_secs_f64());
    }

    /// An audit record could not be written, so its request was refused.
    pub fn audit_write_failure(&self) {
        self.audit_write_failures.inc();
    }

    pub fn connection_opened(&self, listener: &'static str) {
        self.open_connections
            .get_or_create(&[("listener", listener)])
            .inc();
    }

    pub fn connection_closed(&self, listener: &'static str) {
        self.open_connections
            .get_or_create(&[("listener", listener)])
            .dec();
    }

    /// A connection closed at accept because the listener (or its source)
    /// was full.
    pub fn connection_refused(&self, listener: &'static str) {
        self.connections_refused
            .get_or_create(&[("listener", listener)])
            .inc();
    }

    /// A connection closed at accept because its source opened too many
    /// too fast.
    pub fn connection_rate_limited(&self, listener: &'static str) {
        self.connections_rate_limited
            .get_or_create(&[("listener", listener)])
            .inc();
    }

    /// An idle connection closed to make room for a new one.
    pub fn connection_displaced(&self, listener: &'static str) {
        self.connections_displaced
            .get_or_create(&[("listener", listener)])
            .inc();
    }

    /// A connection closed by a timeout; `phase`: `tls_handshake`,
    /// `header_read` or `idle`.
    pub fn connection_timeout(&self, listener: &'static str, phase: &'static str) {
        self.connection_timeouts
            .get_or_create(&[("listener", listener), ("phase", phase)])
            .inc();
    }

    /// A request refused with 503 because too many were in flight.
    pub fn request_shed(&self, listener: &'static str) {
        self.requests_shed
            .get_or_create(&[("listener", listener)])
            .inc();
    }

    /// A request answered 504 at the listener's deadline.
    pub fn request_timeout(&self, listener: &'static str) {
        self.request_timeouts
            .get_or_create(&[("listener", listener)])
            .inc();
    }

    /// A tenant API request refused (429) before authentication; `scope`:
    /// `source` or `global`.
    pub fn pre_auth_limited(&self, scope: &'static str) {
        self.pre_auth_limited
            .get_or_create(&[("scope", scope)])
            .inc();
    }

    /// A tenant API request let through on its source's reserve while
    /// the all-sources bucket was empty.
    pub fn pre_auth_reserve_used(&self) {
        self.pre_auth_reserve_used.inc();
    }

    /// For tests: the current value of a counter by name and label.
    pub fn unseal_requests_with(&self, outcome: &'static str) -> u64 {
        count(&self.unseal_requests, [("outcome", outcome)])
    }
    /// Denials for `reason`, all namespaces together.
    pub fn denials_with(&self, reason: &'static str) -> u64 {
        self.denied_total
            .get(&[("reason", reason)])
            .map_or(0, |c| c.get())
    }
    pub fn invalid_with(&self, reason: &'static str) -> u64 {
        count(&self.unseal_invalid, [("reason", reason)])
    }
    pub fn rewrap_requests_with(&self, outcome: &'static str) -> u64 {
        count(&self.rewrap_requests, [("outcome", outcome)])
    }
    /// Items decrypted, all namespaces and keys together.
    pub fn decrypts(&self) -> u64 {
        self.decrypted_total.load(Ordering::Relaxed)
    }
    pub fn compromised_served_items(&self) -> u64 {
        self.compromised_served.get()
    }
    pub fn provider_unwraps(&self) -> u64 {
        self.provider_unwraps.get()
    }
    pub fn dek_cache_hits(&self) -> u64 {
        self.dek_cache_hits.hits()
    }
    pub fn admissions(&self, route: &'static str) -> u64 {
        // The histogram's count is only visible in its rendering.
        let series = format!("keyward_admission_duration_seconds_count{{route=\"{route}\"}} ");
        self.render()
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
    pub fn pre_auth_reserve_uses(&self) -> u64 {
        self.pre_auth_reserve_used.get()
    }
    pub fn audit_write_failures(&self) -> u64 {
        self.audit_write_failures.get()
    }
    pub fn certificate_renewals(&self) -> u64 {
        self.certificate_renewals.get()
    }
    pub fn open_connections(&self, listener: &'static str) -> u64 {
        self.open_connections
            .get(&[("listener", listener)])
            .map_or(0, |g| u64::try_from(g.get()).unwrap_or(0))
    }
    pub fn connections_refused(&self, listener: &'static str) -> u64 {
        count(&self.connections_refused, [("listener", listener)])
    }
    pub fn connections_rate_limited(&self, listener: &'static str) -> u64 {
        count(&self.connections_rate_limited, [("listener", listener)])
    }
    pub fn connections_displaced(&self, listener: &'static str) -> u64 {
        count(&self.connections_displaced, [("listener", listener)])
    }
    pub fn connection_timeouts(&self, listener: &'static str, phase: &'static str) -> u64 {
        count(
            &self.connection_timeouts,
            [("listener", listener), ("phase", phase)],
        )
    }
    pub fn requests_shed(&self, listener: &'static str) -> u64 {
        count(&self.requests_shed, [("listener", listener)])
    }
    pub fn request_timeouts(&self, listener: &'static str) -> u64 {
        count(&self.request_timeouts, [("listener", listener)])
    }
    pub fn pre_auth_limited_with(&self, scope: &'static str) -> u64 {
        count(&self.pre_auth_limited, [("scope", scope)])
    }

    /// The OpenMetrics text (`keyward_kubeutil::metrics::CONTENT_TYPE`).
    pub fn render(&self) -> String {
        shared::render(&self.registry)
    }
}

/// `keyward_dek_cache_hits_total`: every miss is also a request, so hits
/// are requests less the unwraps that reached the provider (a rewrap's
/// unwraps bypass both).
#[derive(Clone, Debug, Default)]
struct DekCacheHits {
    requests: Counter,
    unwraps: Counter,
}

impl DekCacheHits {
    fn hits(&self) -> u64 {
        self.requests.get().saturating_sub(self.unwraps.get())
    }
}

impl Collector for DekCacheHits {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let hits = ConstCounter::new(self.hits());
        let metric = encoder.encode_descriptor(
            "dek_cache_hits",
            "DEKs served from the webhook's DEK cache.",
            None,
            hits.metric_type(),
        )?;
        hits.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histogram_render_in_prometheus_text_format() {
        let m = Metrics::new();
        m.unseal_request("ok");
        m.unseal_request("denied");
        m.unseal_denied("apps", "not_entitled");
        m.unseal_invalid("secret_name");
        m.decrypted("apps", "keys/db", 3);
        m.compromised_served(2);
        m.dek_requested();
        m.dek_requested();
        m.provider_unwrap();
        m.admission("mutate", Duration::from_micros(300));
        m.admission("mutate", Duration::from_millis(7));
        m.connection_opened("api");
        m.connection_opened("api");
        m.connection_closed("api");
        m.connection_refused("api");
        m.connection_timeout("admission", "header_read");
        m.request_shed("api");
        m.request_timeout("admission");
        m.pre_auth_limited("source");
        let text = m.render();
        for line in [
            "keyward_unseal_requests_total{outcome=\"ok\"} 1\n",
            "keyward_unseal_denied_total{namespace=\"apps\",reason=\"not_entitled\"} 1\n",
            "keyward_unseal_invalid_total{reason=\"secret_name\"} 1\n",
            "keyward_unseal_decrypts_total{namespace=\"apps\",key=\"keys/db\"} 3\n",
            "keyward_unseal_compromised_served_total 2\n",
            "keyward_provider_unwraps_total 1\n",
            "keyward_dek_cache_hits_total 1\n",
            "keyward_admission_duration_seconds_bucket{le=\"0.0005\",route=\"mutate\"} 1\n",
            "keyward_admission_duration_seconds_bucket{le=\"0.01\",route=\"mutate\"} 2\n",
            "keyward_admission_duration_seconds_bucket{le=\"+Inf\",route=\"mutate\"} 2\n",
            "keyward_admission_duration_seconds_count{route=\"mutate\"} 2\n",
            "# TYPE keyward_admission_duration_seconds histogram\n",
            "keyward_open_connections{listener=\"api\"} 1\n",
            "keyward_connections_refused_total{listener=\"api\"} 1\n",
            "keyward_connection_timeouts_total{listener=\"admission\",phase=\"header_read\"} 1\n",
            "keyward_requests_shed_total{listener=\"api\"} 1\n",
            "keyward_request_timeouts_total{listener=\"admission\"} 1\n",
            "keyward_pre_auth_limited_total{scope=\"source\"} 1\n",
            // Not hardened in this test process.
            "# TYPE keyward_memory_locked gauge\nkeyward_memory_locked 0\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        // Families show once they have a series.
        m.rewrap_request("ok");
        m.connection_rate_limited("api");
        m.connection_displaced("api");
        let text = m.render();
        for family in [
            "unseal_requests",
            "unseal_denied",
            "unseal_invalid",
            "unseal_decrypts",
            "unseal_compromised_served",
            "provider_unwraps",
            "dek_cache_hits",
            "rewrap_requests",
            "rewrap_items",
            "pre_auth_reserve_used",
            "audit_write_failures",
            "webhook_certificate_renewals",
            "webhook_certificate_not_after_seconds",
            "open_connections",
            "connections_refused",
            "connections_rate_limited",
            "connections_displaced",
            "connection_timeouts",
            "requests_shed",
            "request_timeouts",
            "pre_auth_limited",
            "admission_duration_seconds",
            "memory_locked",
        ] {
            assert!(
                text.contains(&format!("# TYPE keyward_{family} ")),
                "{family} not registered"
            );
        }
        // Buckets are cumulative.
        assert!(text.contains("le=\"0.005\",route=\"mutate\"} 1\n"));
        assert_eq!(
            (
                m.decrypts(),
                m.denials_with("not_entitled"),
                m.admissions("mutate")
            ),
            (3, 1, 2)
        );
    }
}
