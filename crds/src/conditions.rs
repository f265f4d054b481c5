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
/// On a SealedSecret: `True` while its copy in Git is behind the key's
/// primary version and retention holds older versions for it.
pub const GIT_BEHIND: &str = "GitBehind";

/// Condition types a ManagedKey reports.
pub const MANAGED_KEY_CONDITIONS: [&str; 3] = [READY, ROTATING, DEGRADED];
/// Condition types a SealedSecret reports.
pub const SEALED_SECRET_CONDITIONS: [&str; 3] = [READY, DEGRADED, GIT_BEHIND];

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
