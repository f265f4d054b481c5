//! Prometheus counters, rendered in the text exposition format by hand:
//! a handful of counters does not need a metrics library.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    reconciles: [AtomicU64; 2],
    errors: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    rotations: Mutex<BTreeMap<&'static str, u64>>,
    provider_calls: AtomicU64,
    rewraps: Mutex<BTreeMap<&'static str, u64>>,
    /// (namespace, name) -> seconds until the primary version's rotation is due.
    expiry: Mutex<BTreeMap<(String, String), i64>>,
    leader: AtomicU64,
}

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

impl Metrics {
    pub fn reconciled(&self, controller: Controller) {
        self.reconciles[controller as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn failed(&self, controller: Controller, reason: &'static str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry((controller.label(), reason)).or_default() += 1;
    }

    /// `reason`: `scheduled`, `manual` or `compromised`.
    pub fn rotated(&self, reason: &'static str) {
        let mut rotations = self.rotations.lock().unwrap_or_else(|e| e.into_inner());
        *rotations.entry(reason).or_default() += 1;
    }

    pub fn provider_call(&self) {
        self.provider_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// A SealedSecret re-wrapped; `reason`: `eager`, `lazy` or `compromised`.
    pub fn rewrapped(&self, reason: &'static str) {
        let mut rewraps = self.rewraps.lock().unwrap_or_else(|e| e.into_inner());
        *rewraps.entry(reason).or_default() += 1;
    }

    /// Seconds until a key's primary version is due for rotation (`None`:
    /// no longer tracked, e.g. the key is not Active or is gone).
    pub fn set_expiry(&self, namespace: &str, name: &str, seconds: Option<i64>) {
        let mut expiry = self.expiry.lock().unwrap_or_else(|e| e.into_inner());
        let id = (namespace.to_owned(), name.to_owned());
        match seconds {
            Some(seconds) => {
                expiry.insert(id, seconds);
            }
            None => {
                expiry.remove(&id);
            }
        }
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.store(u64::from(leading), Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP keyward_reconciles_total Reconciliations started.\n");
        out.push_str("# TYPE keyward_reconciles_total counter\n");
        for controller in [Controller::ManagedKey, Controller::SealedSecret] {
            let _ = writeln!(
                out,
                "keyward_reconciles_total{{controller=\"{}\"}} {}",
                controller.label(),
                self.reconciles[controller as usize].load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP keyward_reconcile_errors_total Failed reconciliations by reason.\n");
        out.push_str("# TYPE keyward_reconcile_errors_total counter\n");
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        for ((controller, reason), count) in errors.iter() {
            let _ = writeln!(
                out,
                "keyward_reconcile_errors_total{{controller=\"{controller}\",reason=\"{reason}\"}} {count}"
            );
        }
        drop(errors);
        out.push_str("# HELP keyward_rotations_total Key rotations by reason.\n");
        out.push_str("# TYPE keyward_rotations_total counter\n");
        let rotations = self.rotations.lock().unwrap_or_else(|e| e.into_inner());
        for (reason, count) in rotations.iter() {
            let _ = writeln!(
                out,
                "keyward_rotations_total{{reason=\"{reason}\"}} {count}"
            );
        }
        drop(rotations);
        out.push_str("# HELP keyward_provider_calls_total Calls that changed provider keys.\n");
        out.push_str("# TYPE keyward_provider_calls_total counter\n");
        let _ = writeln!(
            out,
            "keyward_provider_calls_total {}",
            self.provider_calls.load(Ordering::Relaxed)
        );
        out.push_str("# HELP keyward_rewraps_total SealedSecrets re-wrapped onto a newer key version, by reason.\n");
        out.push_str("# TYPE keyward_rewraps_total counter\n");
        let rewraps = self.rewraps.lock().unwrap_or_else(|e| e.into_inner());
        for (reason, count) in rewraps.iter() {
            let _ = writeln!(out, "keyward_rewraps_total{{reason=\"{reason}\"}} {count}");
        }
        drop(rewraps);
        out.push_str("# HELP keyward_key_expiry_seconds Seconds until the key's primary version is due for rotation.\n");
        out.push_str("# TYPE keyward_key_expiry_seconds gauge\n");
        let expiry = self.expiry.lock().unwrap_or_else(|e| e.into_inner());
        for ((namespace, name), seconds) in expiry.iter() {
            let _ = writeln!(
                out,
                "keyward_key_expiry_seconds{{namespace=\"{namespace}\",name=\"{name}\"}} {seconds}"
            );
        }
        drop(expiry);
        out.push_str("# HELP keyward_leader 1 while this replica holds the leader Lease.\n");
        out.push_str("# TYPE keyward_leader gauge\n");
        let _ = writeln!(
            out,
            "keyward_leader {}",
            self.leader.load(Ordering::Relaxed)
        );
        out
    }
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
    }
}
