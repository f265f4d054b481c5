//! Status conditions in the standard `metav1.Condition` shape, which kstatus,
//! Argo CD and Flux read to show health.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{Schema, SchemaGenerator};

/// `True` when the object is fully reconciled and usable.
pub const READY: &str = "Ready";
/// `True` while a key rotation (new version, re-wrap of dependants) runs.
pub const ROTATING: &str = "Rotating";
/// `True` when the object works but something needs attention (e.g. the
/// provider is unreachable, or the primary version nears expiry).
pub const DEGRADED: &str = "Degraded";
/// kstatus: `True` while the operator is still bringing the object to its
/// declared state (creating the provider key, rotating). Flux `--wait` and
/// other kstatus readers report the object `InProgress` meanwhile.
pub const RECONCILING: &str = "Reconciling";
/// kstatus: `True` while the operator cannot make progress without a
/// change from you; mirrors `Degraded`. kstatus readers report `Failed`.
pub const STALLED: &str = "Stalled";
/// On a SealedSecret: `True` while its copy in Git is behind the key's
/// primary version and retention holds older versions for it.
pub const GIT_BEHIND: &str = "GitBehind";

/// Condition types a ManagedKey reports.
pub const MANAGED_KEY_CONDITIONS: [&str; 5] = [READY, ROTATING, DEGRADED, RECONCILING, STALLED];
/// Condition types a SealedSecret reports.
pub const SEALED_SECRET_CONDITIONS: [&str; 5] = [READY, DEGRADED, GIT_BEHIND, RECONCILING, STALLED];

/// Looks up a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of this type is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Schema for a `conditions` list: one entry per `type`, merged by type
/// under server-side apply (`x-kubernetes-list-type: map`).
pub(crate) fn schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}
