//! Prometheus metrics, rendered in the text exposition format by hand as
//! the operator does (`operator/src/metrics.rs`): a few counters and one
//! histogram do not need a metrics library.
//!
//! One process serves one webhook, so the registry is process-wide (like
//! the `prometheus` crate's default registry): `AppState` and `Unsealer`
//! are built the same way with or without metrics. Every label value is a
//! `&'static str` from a fixed set, so the series count stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Histogram {
    /// Cumulative counts per bucket, then the sum and count.
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, bucket) in BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

pub struct Metrics {
    unseal_requests: Mutex<BTreeMap<&'static str, u64>>,
    unseal_denied: Mutex<BTreeMap<&'static str, u64>>,
    unseal_invalid: Mutex<BTreeMap<&'static str, u64>>,
    decrypts: AtomicU64,
    compromised_served: AtomicU64,
    dek_requests: AtomicU64,
    provider_unwraps: AtomicU64,
    rewrap_requests: Mutex<BTreeMap<&'static str, u64>>,
    rewrapped_items: AtomicU64,
    certificate_renewals: AtomicU64,
    certificate_not_after: AtomicU64,
    admission: Mutex<BTreeMap<&'static str, Histogram>>,
    audit_write_failures: AtomicU64,
    pre_auth_reserve_used: AtomicU64,
    // Per listener (`admission`, `api`).
    open_connections: Mutex<BTreeMap<&'static str, u64>>,
    connections_refused: Mutex<BTreeMap<&'static str, u64>>,
    connections_displaced: Mutex<BTreeMap<&'static str, u64>>,
    connections_rate_limited: Mutex<BTreeMap<&'static str, u64>>,
    connection_timeouts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    requests_shed: Mutex<BTreeMap<&'static str, u64>>,
    request_timeouts: Mutex<BTreeMap<&'static str, u64>>,
    pre_auth_limited: Mutex<BTreeMap<&'static str, u64>>,
}

static METRICS: Metrics = Metrics::new();

/// The process-wide registry.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, label: &'static str) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    *map.entry(label).or_default() += 1;
}

fn read(map: &Mutex<BTreeMap<&'static str, u64>>, label: &str) -> u64 {
    let map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.get(label).copied().unwrap_or(0)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub const fn new() -> Self {
        Metrics {
            unseal_requests: Mutex::new(BTreeMap::new()),
            unseal_denied: Mutex::new(BTreeMap::new()),
            unseal_invalid: Mutex::new(BTreeMap::new()),
            decrypts: AtomicU64::new(0),
            compromised_served: AtomicU64::new(0),
            dek_requests: AtomicU64::new(0),
            provider_unwraps: AtomicU64::new(0),
            rewrap_requests: Mutex::new(BTreeMap::new()),
            rewrapped_items: AtomicU64::new(0),
            certificate_renewals: AtomicU64::new(0),
            certificate_not_after: AtomicU64::new(0),
            admission: Mutex::new(BTreeMap::new()),
            audit_write_failures: AtomicU64::new(0),
            pre_auth_reserve_used: AtomicU64::new(0),
            open_connections: Mutex::new(BTreeMap::new()),
            connections_refused: Mutex::new(BTreeMap::new()),
            connections_displaced: Mutex::new(BTreeMap::new()),
            connections_rate_limited: Mutex::new(BTreeMap::new()),
            connection_timeouts: Mutex::new(BTreeMap::new()),
            requests_shed: Mutex::new(BTreeMap::new()),
            request_timeouts: Mutex::new(BTreeMap::new()),
            pre_auth_limited: Mutex::new(BTreeMap::new()),
        }
    }

    /// One `/v1/unseal` answered; `outcome`: `ok`, `denied`,
    /// `rate_limited`, `unavailable` (a provider timed out), `error` or
    /// `bad_request`.
    pub fn unseal_request(&self, outcome: &'static str) {
        bump(&self.unseal_requests, outcome);
    }

    /// A denial, by reason (see `unseal::authorise::DenialKind::label`).
    pub fn unseal_denied(&self, reason: &'static str) {
        bump(&self.unseal_denied, reason);
    }

    /// A request refused before authentication, by reason (the fixed set
    /// of `unseal::validate::Invalid::label`).
    pub fn unseal_invalid(&self, reason: &'static str) {
        bump(&self.unseal_invalid, reason);
    }

    /// Items decrypted and returned to an injector.
    pub fn decrypted(&self, items: usize) {
        self.decrypts.fetch_add(items as u64, Ordering::Relaxed);
    }

    /// Items served from a Compromised key version under the ManagedKey's
    /// `keyward.io/serve-compromised-until` override.
    pub fn compromised_served(&self, items: usize) {
        self.compromised_served
            .fetch_add(items as u64, Ordering::Relaxed);
    }

    /// A DEK asked of the cached, decrypt-only provider (hit or miss).
    pub fn dek_requested(&self) {
        self.dek_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// An unwrap that reached the provider (a cache miss).
    pub fn provider_unwrap(&self) {
        self.provider_unwraps.fetch_add(1, Ordering::Relaxed);
    }

    /// One SealedSecretReview rewrap answered; `outcome` as for unseal.
    pub fn rewrap_request(&self, outcome: &'static str) {
        bump(&self.rewrap_requests, outcome);
    }

    pub fn rewrapped(&self, items: usize) {
        self.rewrapped_items
            .fetch_add(items as u64, Ordering::Relaxed);
    }

    /// The serving certificate was renewed; `not_after` in Unix seconds.
    pub fn certificate(&self, not_after: u64, renewed: bool) {
        self.certificate_not_after
            .store(not_after, Ordering::Relaxed);
        if renewed {
            self.certificate_renewals.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Time spent answering an admission review; `route`: `mutate` or `validate`.
    pub fn admission(&self, route: &'static str, elapsed: Duration) {
        let mut admission = self.admission.lock().unwrap_or_else(|e| e.into_inner());
        admission
            .entry(route)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// An audit record could not be written, so its request was refused.
    pub fn audit_write_failure(&self) {
        self.audit_write_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_opened(&self, listener: &'static str) {
        bump(&self.open_connections, listener);
    }

    pub fn connection_closed(&self, listener: &'static str) {
        let mut open = self
            .open_connections
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let count = open.entry(listener).or_default();
        *count = count.saturating_sub(1);
    }

    /// A connection closed at accept because the listener (or its source)
    /// was full.
    pub fn connection_refused(&self, listener: &'static str) {
        bump(&self.connections_refused, listener);
    }

    /// A connection closed at accept because its source opened too many
    /// too fast.
    pub fn connection_rate_limited(&self, listener: &'static str) {
        bump(&self.connections_rate_limited, listener);
    }

    /// An idle connection closed to make room for a new one.
    pub fn connection_displaced(&self, listener: &'static str) {
        bump(&self.connections_displaced, listener);
    }

    /// A connection closed by a timeout; `phase`: `tls_handshake`,
    /// `header_read` or `idle`.
    pub fn connection_timeout(&self, listener: &'static str, phase: &'static str) {
        let mut map = self
            .connection_timeouts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *map.entry((listener, phase)).or_default() += 1;
    }

    /// A request refused with 503 because too many were in flight.
    pub fn request_shed(&self, listener: &'static str) {
        bump(&self.requests_shed, listener);
    }

    /// A request answered 504 at the listener's deadline.
    pub fn request_timeout(&self, listener: &'static str) {
        bump(&self.request_timeouts, listener);
    }

    /// A tenant API request refused (429) before authentication; `scope`:
    /// `source` or `global`.
    pub fn pre_auth_limited(&self, scope: &'static str) {
        bump(&self.pre_auth_limited, scope);
    }

    /// A tenant API request let through on its source's reserve while
    /// the all-sources bucket was empty.
    pub fn pre_auth_reserve_used(&self) {
        self.pre_auth_reserve_used.fetch_add(1, Ordering::Relaxed);
    }

    /// For tests: the current value of a counter by name and label.
    pub fn unseal_requests_with(&self, outcome: &str) -> u64 {
        read(&self.unseal_requests, outcome)
    }
    pub fn denials_with(&self, reason: &str) -> u64 {
        read(&self.unseal_denied, reason)
    }
    pub fn invalid_with(&self, reason: &str) -> u64 {
        read(&self.unseal_invalid, reason)
    }
    pub fn rewrap_requests_with(&self, outcome: &str) -> u64 {
        read(&self.rewrap_requests, outcome)
    }
    pub fn decrypts(&self) -> u64 {
        self.decrypts.load(Ordering::Relaxed)
    }
    pub fn compromised_served_items(&self) -> u64 {
        self.compromised_served.load(Ordering::Relaxed)
    }
    pub fn provider_unwraps(&self) -> u64 {
        self.provider_unwraps.load(Ordering::Relaxed)
    }
    pub fn dek_cache_hits(&self) -> u64 {
        // Every miss is also a request; a rewrap's unwraps bypass both.
        self.dek_requests
            .load(Ordering::Relaxed)
            .saturating_sub(self.provider_unwraps())
    }
    pub fn admissions(&self, route: &str) -> u64 {
        let admission = self.admission.lock().unwrap_or_else(|e| e.into_inner());
        admission.get(route).map_or(0, |h| h.count)
    }
    pub fn pre_auth_reserve_uses(&self) -> u64 {
        self.pre_auth_reserve_used.load(Ordering::Relaxed)
    }
    pub fn audit_write_failures(&self) -> u64 {
        self.audit_write_failures.load(Ordering::Relaxed)
    }
    pub fn certificate_renewals(&self) -> u64 {
        self.certificate_renewals.load(Ordering::Relaxed)
    }
    pub fn open_connections(&self, listener: &str) -> u64 {
        read(&self.open_connections, listener)
    }
    pub fn connections_refused(&self, listener: &str) -> u64 {
        read(&self.connections_refused, listener)
    }
    pub fn connections_rate_limited(&self, listener: &str) -> u64 {
        read(&self.connections_rate_limited, listener)
    }
    pub fn connections_displaced(&self, listener: &str) -> u64 {
        read(&self.connections_displaced, listener)
    }
    pub fn connection_timeouts(&self, listener: &str, phase: &str) -> u64 {
        let map = self
            .connection_timeouts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.get(&(listener, phase)).copied().unwrap_or(0)
    }
    pub fn requests_shed(&self, listener: &str) -> u64 {
        read(&self.requests_shed, listener)
    }
    pub fn request_timeouts(&self, listener: &str) -> u64 {
        read(&self.request_timeouts, listener)
    }
    pub fn pre_auth_limited_with(&self, scope: &str) -> u64 {
        read(&self.pre_auth_limited, scope)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        counter_family(
            &mut out,
            "keyward_unseal_requests_total",
            "Unseal requests answered, by outcome.",
            "outcome",
            &self.unseal_requests,
        );
        counter_family(
            &mut out,
            "keyward_unseal_denied_total",
            "Unseal requests denied, by reason.",
            "reason",
            &self.unseal_denied,
        );
        counter_family(
            &mut out,
            "keyward_unseal_invalid_total",
            "Unseal requests refused as malformed before authentication (not audited), by reason.",
            "reason",
            &self.unseal_invalid,
        );
        counter(
            &mut out,
            "keyward_unseal_decrypts_total",
            "Items decrypted and returned to injectors.",
            self.decrypts(),
        );
        counter(
            &mut out,
            "keyward_unseal_compromised_served_total",
            "Items served from a Compromised key version under keyward.io/serve-compromised-until.",
            self.compromised_served_items(),
        );
        counter(
            &mut out,
            "keyward_provider_unwraps_total",
            "DEK unwraps that reached the key provider (DEK cache misses).",
            self.provider_unwraps(),
        );
        counter(
            &mut out,
            "keyward_dek_cache_hits_total",
            "DEKs served from the webhook's DEK cache.",
            self.dek_cache_hits(),
        );
        counter_family(
            &mut out,
            "keyward_rewrap_requests_total",
            "Rewrap requests answered, by outcome.",
            "outcome",
            &self.rewrap_requests,
        );
        counter(
            &mut out,
            "keyward_rewrap_items_total",
            "Items re-sealed onto a newer key version for keyward rewrap.",
            self.rewrapped_items.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "keyward_pre_auth_reserve_used_total",
            "Tenant API requests let through on their source's reserve while the all-sources pre-authentication bucket was empty.",
            self.pre_auth_reserve_uses(),
        );
        counter(
            &mut out,
            "keyward_audit_write_failures_total",
            "Audit records that could not be written; their requests were refused.",
            self.audit_write_failures(),
        );
        counter(
            &mut out,
            "keyward_webhook_certificate_renewals_total",
            "Serving certificates renewed without a restart.",
            self.certificate_renewals(),
        );
        let not_after = self.certificate_not_after.load(Ordering::Relaxed);
        if not_after > 0 {
            out.push_str("# HELP keyward_webhook_certificate_not_after_seconds When the serving certificate expires (Unix time).\n");
            out.push_str("# TYPE keyward_webhook_certificate_not_after_seconds gauge\n");
            let _ = writeln!(
                out,
                "keyward_webhook_certificate_not_after_seconds {not_after}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP keyward_memory_locked 1 while every key and value buffer of this process is locked in RAM.\n\
             # TYPE keyward_memory_locked gauge\n\
             keyward_memory_locked {}",
            u8::from(keyward_core::hardening::memory_lock().all_locked())
        );
        let _ = writeln!(
            out,
            "# HELP keyward_open_connections TLS connections open, by listener.\n\
             # TYPE keyward_open_connections gauge"
        );
        for (listener, count) in self
            .open_connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "keyward_open_connections{{listener=\"{listener}\"}} {count}"
            );
        }
        counter_family(
            &mut out,
            "keyward_connections_refused_total",
            "Connections closed at accept because the listener, or their source address, had its maximum open.",
            "listener",
            &self.connections_refused,
        );
        counter_family(
            &mut out,
            "keyward_connections_rate_limited_total",
            "Connections closed at accept because their source address opened new ones too fast.",
            "listener",
            &self.connections_rate_limited,
        );
        counter_family(
            &mut out,
            "keyward_connections_displaced_total",
            "Idle connections closed to make room for a new one when the listener was full.",
            "listener",
            &self.connections_displaced,
        );
        let _ = writeln!(
            out,
            "# HELP keyward_connection_timeouts_total Connections closed by a timeout, by listener and phase.\n\
             # TYPE keyward_connection_timeouts_total counter"
        );
        for ((listener, phase), count) in self
            .connection_timeouts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "keyward_connection_timeouts_total{{listener=\"{listener}\",phase=\"{phase}\"}} {count}"
            );
        }
        counter_family(
            &mut out,
            "keyward_requests_shed_total",
            "Requests refused with 503 because the listener had its maximum in flight.",
            "listener",
            &self.requests_shed,
        );
        counter_family(
            &mut out,
            "keyward_request_timeouts_total",
            "Requests answered 504 at the listener's request deadline.",
            "listener",
            &self.request_timeouts,
        );
        counter_family(
            &mut out,
            "keyward_pre_auth_limited_total",
            "Tenant API requests refused with 429 before authentication, by bucket.",
            "scope",
            &self.pre_auth_limited,
        );
        out.push_str(
            "# HELP keyward_admission_duration_seconds Time to answer an admission review.\n",
        );
        out.push_str("# TYPE keyward_admission_duration_seconds histogram\n");
        let admission = self.admission.lock().unwrap_or_else(|e| e.into_inner());
        for (route, histogram) in admission.iter() {
            for (bound, count) in BUCKETS.iter().zip(histogram.buckets) {
                let _ = writeln!(
                    out,
                    "keyward_admission_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "keyward_admission_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "keyward_admission_duration_seconds_sum{{route=\"{route}\"}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "keyward_admission_duration_seconds_count{{route=\"{route}\"}} {}",
                histogram.count
            );
        }
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

fn counter_family(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &Mutex<BTreeMap<&'static str, u64>>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    let values = values.lock().unwrap_or_else(|e| e.into_inner());
    for (value, count) in values.iter() {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
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
        m.unseal_denied("not_entitled");
        m.unseal_invalid("secret_name");
        m.decrypted(3);
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
            "keyward_unseal_denied_total{reason=\"not_entitled\"} 1\n",
            "keyward_unseal_invalid_total{reason=\"secret_name\"} 1\n",
            "keyward_unseal_decrypts_total 3\n",
            "keyward_unseal_compromised_served_total 2\n",
            "keyward_provider_unwraps_total 1\n",
            "keyward_dek_cache_hits_total 1\n",
            "keyward_admission_duration_seconds_bucket{route=\"mutate\",le=\"0.0005\"} 1\n",
            "keyward_admission_duration_seconds_bucket{route=\"mutate\",le=\"0.01\"} 2\n",
            "keyward_admission_duration_seconds_bucket{route=\"mutate\",le=\"+Inf\"} 2\n",
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
        // Buckets are cumulative.
        assert!(text.contains("le=\"0.005\"} 1\n"));
    }
}
