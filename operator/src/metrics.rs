//! The operator's Prometheus series on the shared registry
//! (`keyward_kubeutil::metrics`, `prometheus-client`). Label values come
//! from fixed sets, except the per-key gauges, which name ManagedKeys and
//! are removed with them.

use keyward_kubeutil::metrics::{
    self as shared, Counter, CounterBy, Family, Fixed, Gauge, Histogram, Named, Registry,
};
use prometheus_client::metrics::histogram::exponential_buckets;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// Seconds counted as a float (`keyward_provider_call_wait_seconds_total`).
type Seconds = Counter<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    reconciles: CounterBy<1>,
    reconcile_seconds: Family<Fixed<1>, Histogram>,
    errors: CounterBy<2>,
    rotations: CounterBy<1>,
    /// Calls that changed provider keys (counted at the call sites).
    key_changes: Counter,
    provider_calls: CounterBy<1>,
    provider_seconds: Family<Fixed<1>, Histogram>,
    /// Seconds provider calls waited for their turn (the bounds in
    /// `counted_provider.rs`), by operation.
    provider_waits: Family<Fixed<1>, Seconds>,
    api_requests: CounterBy<1>,
    rewraps: CounterBy<1>,
    /// Re-wraps not made again because an applier restored Git's copy.
    rewraps_withheld: Counter,
    /// (namespace, name, version) -> SealedSecrets that need the version
    /// only for their copy in Git.
    git_dependants: Family<Named<3>, Gauge>,
    /// (namespace, name) -> seconds until the primary version's rotation is due.
    expiry: Family<Named<2>, Gauge>,
    /// 1 for the key's current state (one series per key).
    key_state: Family<Named<3>, Gauge>,
    /// 1 while the key's Degraded condition is True.
    key_degraded: Family<Named<2>, Gauge>,
    /// Versions scheduled for destruction: when (Unix time), and the
    /// SealedSecrets that still need them.
    destroy_at: Family<Named<3>, Gauge>,
    destroy_dependants: Family<Named<3>, Gauge>,
    /// What each key last exported, so a change removes the old series.
    exported: Mutex<BTreeMap<(String, String), Exported>>,
    leader: Gauge,
}

#[derive(Default)]
struct Exported {
    git_versions: Vec<u32>,
    scheduled_versions: Vec<u32>,
    state: Option<&'static str>,
}

/// Every `reason` of `keyward_rotations_total`.
pub const ROTATION_REASONS: [&str; 4] = ["scheduled", "manual", "compromised", "max-operations"];
/// Every `reason` of `keyward_rewraps_total`.
pub const REWRAP_REASONS: [&str; 3] = ["eager", "lazy", "compromised"];

/// Which controller a counter belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Controller {
    ManagedKey = 0,
    SealedSecret = 1,
}

impl Controller {
    fn label(self) -> &'static str {
        match self {
            Controller::ManagedKey => "managedkey",
            Controller::SealedSecret => "sealedsecret",
        }
    }
}

fn named<const N: usize>(labels: [(&'static str, &str); N]) -> Named<N> {
    labels.map(|(k, v)| (k, v.to_owned()))
}

impl Default for Metrics {
    fn default() -> Self {
        // Reconciles and provider calls: 1 ms to 16 s.
        let slow = || Histogram::new(exponential_buckets(0.001, 4.0, 8));
        let m = Metrics {
            registry: shared::registry(),
            reconciles: Default::default(),
            reconcile_seconds: Family::new_with_constructor(slow),
            errors: Default::default(),
            rotations: Default::default(),
            key_changes: Default::default(),
            provider_calls: Default::default(),
            provider_seconds: Family::new_with_constructor(slow),
            provider_waits: Default::default(),
            api_requests: Default::default(),
            rewraps: Default::default(),
            rewraps_withheld: Default::default(),
            git_dependants: Default::default(),
            expiry: Default::default(),
            key_state: Default::default(),
            key_degraded: Default::default(),
            destroy_at: Default::default(),
            destroy_dependants: Default::default(),
            exported: Mutex::default(),
            leader: Default::default(),
        };
        // Series with known labels exist from the start at 0 (a standby's
        // 0; dashboards and `increase()` see the first event).
        for controller in [Controller::ManagedKey, Controller::SealedSecret] {
            m.reconciles
                .get_or_create(&[("controller", controller.label())])
                .inc_by(0);
            for reason in crate::error::Error::METRIC_LABELS {
                m.errors
                    .get_or_create(&[("controller", controller.label()), ("reason", reason)])
                    .inc_by(0);
            }
        }
        for reason in ROTATION_REASONS {
            m.rotations.get_or_create(&[("reason", reason)]).inc_by(0);
        }
        for reason in REWRAP_REASONS {
            m.rewraps.get_or_create(&[("reason", reason)]).inc_by(0);
        }
        let mut registry = shared::registry();
        let r = &mut registry;
        r.register(
            "reconciles",
            "Reconciliations started.",
            m.reconciles.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Reconcile wall time (waits included).",
            m.reconcile_seconds.clone(),
        );
        r.register(
            "reconcile_errors",
            "Failed reconciliations by reason.",
            m.errors.clone(),
        );
        r.register("rotations", "Key rotations by reason.", m.rotations.clone());
        r.register(
            "provider_key_changes",
            "Provider calls that changed keys.",
            m.key_changes.clone(),
        );
        r.register(
            "provider_calls",
            "Provider calls by operation (reads included).",
            m.provider_calls.clone(),
        );
        r.register(
            "provider_call_duration_seconds",
            "Provider call latency by operation.",
            m.provider_seconds.clone(),
        );
        r.register(
            "provider_call_wait_seconds",
            "Time provider calls waited for their turn, by operation.",
            m.provider_waits.clone(),
        );
        r.register(
            "api_requests",
            "Kubernetes API requests by verb.",
            m.api_requests.clone(),
        );
        r.register(
            "rewraps",
            "SealedSecrets re-wrapped onto a newer key version, by reason.",
            m.rewraps.clone(),
        );
        r.register("rewraps_withheld", "Re-wraps not made again because an applier restored Git's older copy after the operator's re-wrap.", m.rewraps_withheld.clone());
        r.register("key_git_dependants", "SealedSecrets whose copy in Git alone keeps this key version (run keyward rewrap over the repository).", m.git_dependants.clone());
        r.register(
            "key_expiry_seconds",
            "Seconds until the key's primary version is due for rotation.",
            m.expiry.clone(),
        );
        r.register("key_state", "1 for the ManagedKey's current lifecycle state as its Ready condition's reason: PreActivation, Active, Suspended, Deactivated, Compromised, Destroyed, NotCreated or ClaimedByAnotherCluster.", m.key_state.clone());
        r.register(
            "key_degraded",
            "1 while the ManagedKey's Degraded condition is True.",
            m.key_degraded.clone(),
        );
        r.register(
            "key_version_destroy_at_seconds",
            "When the provider destroys this key version (Unix time), for versions scheduled for destruction.",
            m.destroy_at.clone(),
        );
        r.register(
            "key_version_destroy_dependants",
            "SealedSecrets that still need a key version scheduled for destruction.",
            m.destroy_dependants.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the leader Lease.",
            m.leader.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn reconciled(&self, controller: Controller) {
        self.reconciles
            .get_or_create(&[("controller", controller.label())])
            .inc();
    }

    /// A reconcile finished (either way) after `took`.
    pub fn reconcile_took(&self, controller: Controller, took: std::time::Duration) {
        self.reconcile_seconds
            .get_or_create(&[("controller", controller.label())])
            .observe(took.as_secs_f64());
    }

    pub fn failed(&self, controller: Controller, reason: &'static str) {
        self.errors
            .get_or_create(&[("controller", controller.label()), ("reason", reason)])
            .inc();
    }

    /// `reason`: `scheduled`, `manual` or `compromised`.
    pub fn rotated(&self, reason: &'static str) {
        self.rotations.get_or_create(&[("reason", reason)]).inc();
    }

    /// A call that changes provider keys (create, rotate, enable/disable,
    /// schedule/cancel deletion).
    pub fn provider_call(&self) {
        self.key_changes.inc();
    }

    /// Any provider call, by operation, with how long it took.
    pub fn provider_call_by_op(&self, op: &'static str, took: std::time::Duration) {
        self.provider_calls.get_or_create(&[("op", op)]).inc();
        self.provider_seconds
            .get_or_create(&[("op", op)])
            .observe(took.as_secs_f64());
    }

    /// How long a provider call waited before it could start.
    pub fn provider_waited(&self, op: &'static str, waited: std::time::Duration) {
        self.provider_waits
            .get_or_create(&[("op", op)])
            .inc_by(waited.as_secs_f64());
    }

    /// A Kubernetes API request; `verb` as the API server names it
    /// (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`).
    pub fn api_request(&self, verb: &'static str) {
        self.api_requests.get_or_create(&[("verb", verb)]).inc();
    }

    pub fn rewrap_withheld(&self) {
        self.rewraps_withheld.inc();
    }

    /// Replaces what is recorded for key `namespace/name`: version ->
    /// SealedSecrets that need it only for their copy in Git.
    pub fn set_git_dependants(&self, namespace: &str, name: &str, counts: &BTreeMap<u32, u32>) {
        let mut exported = self.exported.lock().unwrap_or_else(|e| e.into_inner());
        let entry = exported
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default();
        for version in entry.git_versions.drain(..) {
            self.git_dependants
                .remove(&version_labels(namespace, name, version));
        }
        for (version, count) in counts.iter().filter(|(_, c)| **c > 0) {
            self.git_dependants
                .get_or_create(&version_labels(namespace, name, *version))
                .set(i64::from(*count));
            entry.git_versions.push(*version);
        }
    }

    /// A SealedSecret re-wrapped; `reason`: `eager`, `lazy` or `compromised`.
    pub fn rewrapped(&self, reason: &'static str) {
        self.rewraps.get_or_create(&[("reason", reason)]).inc();
    }

    /// Seconds until a key's primary version is due for rotation (`None`:
    /// no longer tracked, e.g. the key is not Active or is gone).
    pub fn set_expiry(&self, namespace: &str, name: &str, seconds: Option<i64>) {
        let labels = named([("namespace", namespace), ("name", name)]);
        match seconds {
            Some(seconds) => {
                self.expiry.get_or_create(&labels).set(seconds);
            }
            None => {
                self.expiry.remove(&labels);
            }
        }
    }

    /// The key's state as its Ready condition reports it (`Active`,
    /// `Compromised`, ...) and whether it is Degraded.
    pub fn set_key_health(&self, namespace: &str, name: &str, state: &'static str, degraded: bool) {
        let mut exported = self.exported.lock().unwrap_or_else(|e| e.into_inner());
        let entry = exported
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default();
        if let Some(old) = entry.state.replace(state)
            && old != state
        {
            self.key_state.remove(&state_labels(namespace, name, old));
        }
        self.key_state
            .get_or_create(&state_labels(namespace, name, state))
            .set(1);
        self.key_degraded
            .get_or_create(&named([("namespace", namespace), ("name", name)]))
            .set(i64::from(degraded));
    }

    /// Replaces the key's versions scheduled for destruction:
    /// `(version, destroy at in Unix seconds, dependants)`.
    pub fn set_scheduled_destructions(
        &self,
        namespace: &str,
        name: &str,
        scheduled: &[(u32, i64, u32)],
    ) {
        let mut exported = self.exported.lock().unwrap_or_else(|e| e.into_inner());
        let entry = exported
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default();
        for version in entry.scheduled_versions.drain(..) {
            let labels = version_labels(namespace, name, version);
            self.destroy_at.remove(&labels);
            self.destroy_dependants.remove(&labels);
        }
        for (version, at, dependants) in scheduled {
            let labels = version_labels(namespace, name, *version);
            self.destroy_at.get_or_create(&labels).set(*at);
            self.destroy_dependants
                .get_or_create(&labels)
                .set(i64::from(*dependants));
            entry.scheduled_versions.push(*version);
        }
    }

    /// Removes every series of a deleted key.
    pub fn forget_key(&self, namespace: &str, name: &str) {
        self.set_git_dependants(namespace, name, &BTreeMap::new());
        self.set_scheduled_destructions(namespace, name, &[]);
        self.set_expiry(namespace, name, None);
        let mut exported = self.exported.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Exported {
            state: Some(state), ..
        }) = exported.remove(&(namespace.to_owned(), name.to_owned()))
        {
            self.key_state.remove(&state_labels(namespace, name, state));
        }
        self.key_degraded
            .remove(&named([("namespace", namespace), ("name", name)]));
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The OpenMetrics text (`keyward_kubeutil::metrics::CONTENT_TYPE`).
    pub fn render(&self) -> String {
        shared::render(&self.registry)
    }
}

fn version_labels(namespace: &str, name: &str, version: u32) -> Named<3> {
    [
        ("namespace", namespace.to_owned()),
        ("name", name.to_owned()),
        ("version", version.to_string()),
    ]
}

fn state_labels(namespace: &str, name: &str, state: &str) -> Named<3> {
    named([("namespace", namespace), ("name", name), ("state", state)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_prometheus_text_format() {
        let metrics = Metrics::default();
        metrics.reconciled(Controller::ManagedKey);
        metrics.reconciled(Controller::ManagedKey);
        metrics.failed(Controller::SealedSecret, "kube");
        metrics.rotated("manual");
        let text = metrics.render();
        assert!(text.contains("keyward_reconciles_total{controller=\"managedkey\"} 2\n"));
        assert!(text.contains("keyward_reconciles_total{controller=\"sealedsecret\"} 0\n"));
        assert!(text.contains(
            "keyward_reconcile_errors_total{controller=\"sealedsecret\",reason=\"kube\"} 1\n"
        ));
        assert!(text.contains("keyward_rotations_total{reason=\"manual\"} 1\n"));
        metrics.rewrapped("eager");
        metrics.set_expiry("apps", "db", Some(42));
        metrics.set_expiry("apps", "gone", Some(1));
        metrics.set_expiry("apps", "gone", None);
        metrics.set_leader(true);
        let text = metrics.render();
        assert!(text.contains("keyward_rewraps_total{reason=\"eager\"} 1\n"));
        assert!(text.contains("keyward_key_expiry_seconds{namespace=\"apps\",name=\"db\"} 42\n"));
        assert!(!text.contains("gone"));
        assert!(text.contains("keyward_leader 1\n"));
        // Not hardened in this test process.
        assert!(text.contains("# TYPE keyward_memory_locked gauge\nkeyward_memory_locked 0\n"));
        metrics.provider_call();
        metrics.provider_call_by_op("describe_key", std::time::Duration::from_millis(500));
        metrics.api_request("list");
        let text = metrics.render();
        assert!(text.contains("keyward_provider_key_changes_total 1\n"));
        assert!(text.contains("keyward_provider_calls_total{op=\"describe_key\"} 1\n"));
        assert!(
            text.contains("keyward_provider_call_duration_seconds_sum{op=\"describe_key\"} 0.5\n")
        );
        assert!(text.contains("keyward_api_requests_total{verb=\"list\"} 1\n"));
        metrics.reconcile_took(
            Controller::SealedSecret,
            std::time::Duration::from_millis(250),
        );
        metrics.provider_waited("create_key", std::time::Duration::from_millis(750));
        let text = metrics.render();
        assert!(text.contains(
            "keyward_reconcile_duration_seconds_sum{controller=\"sealedsecret\"} 0.25\n"
        ));
        assert!(
            text.contains(
                "keyward_reconcile_duration_seconds_count{controller=\"sealedsecret\"} 1\n"
            )
        );
        assert!(
            text.contains("keyward_provider_call_wait_seconds_total{op=\"create_key\"} 0.75\n")
        );
    }

    #[test]
    fn per_key_series_follow_the_key_and_leave_with_it() {
        let metrics = Metrics::default();
        metrics.set_key_health("apps", "db", "Active", false);
        metrics.set_key_health("apps", "db", "Compromised", true);
        metrics.set_git_dependants("apps", "db", &BTreeMap::from([(1, 2), (2, 0)]));
        metrics.set_git_dependants("apps", "db", &BTreeMap::from([(3, 1)]));
        let text = metrics.render();
        for line in [
            "keyward_key_state{namespace=\"apps\",name=\"db\",state=\"Compromised\"} 1\n",
            "keyward_key_degraded{namespace=\"apps\",name=\"db\"} 1\n",
            "keyward_key_git_dependants{namespace=\"apps\",name=\"db\",version=\"3\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(
            !text.contains("state=\"Active\""),
            "the old state stays:\n{text}"
        );
        assert!(
            !text.contains("version=\"1\""),
            "replaced versions stay:\n{text}"
        );
        metrics.set_scheduled_destructions("apps", "db", &[(1, 1_800_000_000, 4)]);
        let text = metrics.render();
        assert!(text.contains(
            "keyward_key_version_destroy_dependants{namespace=\"apps\",name=\"db\",version=\"1\"} 4\n"
        ));
        assert!(text.contains(
            "keyward_key_version_destroy_at_seconds{namespace=\"apps\",name=\"db\",version=\"1\"} 1800000000\n"
        ));
        metrics.set_expiry("apps", "db", Some(5));
        metrics.forget_key("apps", "db");
        let text = metrics.render();
        assert!(
            !text.contains("\"db\""),
            "a deleted key's series stay:\n{text}"
        );
    }
}
