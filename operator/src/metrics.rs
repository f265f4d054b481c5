//! Prometheus counters, rendered in the text exposition format by hand:
//! a handful of counters does not need a metrics library.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    reconciles: [AtomicU64; 2],
    /// Reconcile wall time per controller: (finished, total seconds).
    reconcile_seconds: Mutex<[(u64, f64); 2]>,
    errors: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    rotations: Mutex<BTreeMap<&'static str, u64>>,
    /// Calls that changed provider keys (counted at the call sites).
    key_changes: AtomicU64,
    /// Every provider call by operation: (count, total seconds).
    provider_calls: Mutex<BTreeMap<&'static str, (u64, f64)>>,
    /// Seconds provider calls waited for their turn (the bounds in
    /// `counted_provider.rs`), by operation.
    provider_waits: Mutex<BTreeMap<&'static str, f64>>,
    /// Kubernetes API requests by verb.
    api_requests: Mutex<BTreeMap<&'static str, u64>>,
    rewraps: Mutex<BTreeMap<&'static str, u64>>,
    /// Re-wraps not made again because an applier restored Git's copy.
    rewraps_withheld: AtomicU64,
    /// (namespace, name, version) -> SealedSecrets that need the version
    /// only for their copy in Git.
    git_dependants: Mutex<BTreeMap<(String, String, u32), u32>>,
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

    /// A reconcile finished (either way) after `took`.
    pub fn reconcile_took(&self, controller: Controller, took: std::time::Duration) {
        let mut seconds = self
            .reconcile_seconds
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let entry = &mut seconds[controller as usize];
        entry.0 += 1;
        entry.1 += took.as_secs_f64();
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

    /// A call that changes provider keys (create, rotate, enable/disable,
    /// schedule/cancel deletion).
    pub fn provider_call(&self) {
        self.key_changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Any provider call, by operation, with how long it took.
    pub fn provider_call_by_op(&self, op: &'static str, took: std::time::Duration) {
        let mut calls = self
            .provider_calls
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let entry = calls.entry(op).or_default();
        entry.0 += 1;
        entry.1 += took.as_secs_f64();
    }

    /// How long a provider call waited before it could start.
    pub fn provider_waited(&self, op: &'static str, waited: std::time::Duration) {
        let mut waits = self
            .provider_waits
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *waits.entry(op).or_default() += waited.as_secs_f64();
    }

    /// A Kubernetes API request; `verb` as the API server names it
    /// (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`).
    pub fn api_request(&self, verb: &'static str) {
        let mut requests = self.api_requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry(verb).or_default() += 1;
    }

    /// A SealedSecret re-wrapped; `reason`: `eager`, `lazy` or `compromised`.
    pub fn rewrap_withheld(&self) {
        self.rewraps_withheld.fetch_add(1, Ordering::Relaxed);
    }

    /// Replaces what is recorded for key `namespace/name`: version ->
    /// SealedSecrets that need it only for their copy in Git.
    pub fn set_git_dependants(&self, namespace: &str, name: &str, counts: &BTreeMap<u32, u32>) {
        let mut all = self
            .git_dependants
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.retain(|(ns, n, _), _| !(ns == namespace && n == name));
        for (version, count) in counts.iter().filter(|(_, c)| **c > 0) {
            all.insert((namespace.to_owned(), name.to_owned(), *version), *count);
        }
    }

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
        out.push_str(
            "# HELP keyward_reconcile_duration_seconds Reconcile wall time (waits included).\n",
        );
        out.push_str("# TYPE keyward_reconcile_duration_seconds summary\n");
        let seconds = *self
            .reconcile_seconds
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for controller in [Controller::ManagedKey, Controller::SealedSecret] {
            let (count, sum) = seconds[controller as usize];
            let label = controller.label();
            let _ = writeln!(
                out,
                "keyward_reconcile_duration_seconds_sum{{controller=\"{label}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "keyward_reconcile_duration_seconds_count{{controller=\"{label}\"}} {count}"
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
        out.push_str(
            "# HELP keyward_provider_key_changes_total Provider calls that changed keys.\n",
        );
        out.push_str("# TYPE keyward_provider_key_changes_total counter\n");
        let _ = writeln!(
            out,
            "keyward_provider_key_changes_total {}",
            self.key_changes.load(Ordering::Relaxed)
        );
        self.render_provider_calls(&mut out);
        out.push_str("# HELP keyward_api_requests_total Kubernetes API requests by verb.\n");
        out.push_str("# TYPE keyward_api_requests_total counter\n");
        let requests = self.api_requests.lock().unwrap_or_else(|e| e.into_inner());
        for (verb, count) in requests.iter() {
            let _ = writeln!(out, "keyward_api_requests_total{{verb=\"{verb}\"}} {count}");
        }
        drop(requests);
        out.push_str("# HELP keyward_rewraps_total SealedSecrets re-wrapped onto a newer key version, by reason.\n");
        out.push_str("# TYPE keyward_rewraps_total counter\n");
        let rewraps = self.rewraps.lock().unwrap_or_else(|e| e.into_inner());
        for (reason, count) in rewraps.iter() {
            let _ = writeln!(out, "keyward_rewraps_total{{reason=\"{reason}\"}} {count}");
        }
        drop(rewraps);
        out.push_str("# HELP keyward_rewraps_withheld_total Re-wraps not made again because an applier restored Git's older copy after the operator's re-wrap.\n");
        out.push_str("# TYPE keyward_rewraps_withheld_total counter\n");
        let _ = writeln!(
            out,
            "keyward_rewraps_withheld_total {}",
            self.rewraps_withheld.load(Ordering::Relaxed)
        );
        out.push_str("# HELP keyward_key_git_dependants SealedSecrets whose copy in Git alone keeps this key version (run keyward rewrap over the repository).\n");
        out.push_str("# TYPE keyward_key_git_dependants gauge\n");
        let held = self
            .git_dependants
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for ((namespace, name, version), count) in held.iter() {
            let _ = writeln!(
                out,
                "keyward_key_git_dependants{{namespace=\"{namespace}\",name=\"{name}\",version=\"{version}\"}} {count}"
            );
        }
        drop(held);
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
        out.push_str("# HELP keyward_memory_locked 1 while every key and value buffer of this process is locked in RAM.\n");
        out.push_str("# TYPE keyward_memory_locked gauge\n");
        let _ = writeln!(
            out,
            "keyward_memory_locked {}",
            u8::from(keyward_core::hardening::memory_lock().all_locked())
        );
        out.push_str("# HELP keyward_leader 1 while this replica holds the leader Lease.\n");
        out.push_str("# TYPE keyward_leader gauge\n");
        let _ = writeln!(
            out,
            "keyward_leader {}",
            self.leader.load(Ordering::Relaxed)
        );
        out
    }

    fn render_provider_calls(&self, out: &mut String) {
        let calls = self
            .provider_calls
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        out.push_str(
            "# HELP keyward_provider_calls_total Provider calls by operation (reads included).\n",
        );
        out.push_str("# TYPE keyward_provider_calls_total counter\n");
        for (op, (count, _)) in calls.iter() {
            let _ = writeln!(out, "keyward_provider_calls_total{{op=\"{op}\"}} {count}");
        }
        out.push_str(
            "# HELP keyward_provider_call_duration_seconds Provider call latency by operation.\n",
        );
        out.push_str("# TYPE keyward_provider_call_duration_seconds summary\n");
        for (op, (count, seconds)) in calls.iter() {
            let _ = writeln!(
                out,
                "keyward_provider_call_duration_seconds_sum{{op=\"{op}\"}} {seconds}"
            );
            let _ = writeln!(
                out,
                "keyward_provider_call_duration_seconds_count{{op=\"{op}\"}} {count}"
            );
        }
        drop(calls);
        out.push_str(
            "# HELP keyward_provider_call_wait_seconds Time provider calls waited for their turn, by operation.\n",
        );
        out.push_str("# TYPE keyward_provider_call_wait_seconds counter\n");
        let waits = self
            .provider_waits
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (op, seconds) in waits.iter() {
            let _ = writeln!(
                out,
                "keyward_provider_call_wait_seconds{{op=\"{op}\"}} {seconds}"
            );
        }
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
        assert!(text.contains("keyward_provider_call_wait_seconds{op=\"create_key\"} 0.75\n"));
    }
}
