//! How kstatus (`sigs.k8s.io/cli-utils/pkg/kstatus`, behind Flux's `wait`
//! and `flux ... --wait`) reads a custom resource, and how `kubectl wait
//! --for=condition=Ready` does, so tests can check that both agree with
//! the operator's own view.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};

/// kstatus's verdict for a resource with conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kstatus {
    InProgress,
    Failed,
    Current,
}

/// The generic rules kstatus applies to a custom resource: an
/// `observedGeneration` behind `metadata.generation`, or `Reconciling`
/// True, is InProgress; `Stalled` True is Failed; anything else Current.
pub fn kstatus(
    meta: &ObjectMeta,
    observed_generation: Option<i64>,
    conditions: &[Condition],
) -> Kstatus {
    let is_true = |type_: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    let behind = observed_generation.is_some_and(|observed| Some(observed) < meta.generation);
    if behind || is_true("Reconciling") {
        Kstatus::InProgress
    } else if is_true("Stalled") {
        Kstatus::Failed
    } else {
        Kstatus::Current
    }
}

/// What `kubectl wait --for=condition=Ready` waits for.
pub fn kubectl_ready(conditions: &[Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}
