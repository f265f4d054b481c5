//! Who changed what drives a ManagedKey's lifecycle, and why. Admission is
//! the only place that sees the requesting user: the operator acts later,
//! as itself. So each admitted create or update that touches the key's
//! state, rotation, compromise scope, override, forced destruction or
//! sharing is recorded in the webhook's audit log with the user from
//! `userInfo` and the reason from the [`REASON`] annotation. The operator
//! adds the same reason to the records of what it then does.
//!
//! Dry runs are not recorded. A change of state without a reason is
//! admitted, with a warning, and recorded as having none.

use crate::admission::{Request, actor, subject, typed};
use crate::key_state::serving::OVERRIDE;
use keyward_core::audit::Event;
use keyward_crds::ManagedKey;
use keyward_crds::destruction::{APPROVAL, FORCE_DESTROY, REQUEST};
use keyward_crds::exposure::EXPOSED_VERSIONS;
use keyward_crds::managed_key::REASON;
use kube::core::admission::Operation;
use std::collections::BTreeMap;

/// Annotations that drive the lifecycle (besides `spec.state`). The
/// operator reads the first; it owns its name.
const DRIVING: [&str; 6] = [
    "keyward.io/rotate",
    EXPOSED_VERSIONS,
    OVERRIDE,
    FORCE_DESTROY,
    REQUEST,
    APPROVAL,
];

/// What admission records about one request, and the warning for a state
/// change without a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub event: Event,
    pub warning: Option<String>,
}

/// The record for an admitted ManagedKey request that changes what drives
/// its lifecycle; `None` for anything else (other kinds, dry runs, edits
/// of labels or descriptions).
pub fn change(request: &Request) -> Option<Change> {
    if request.dry_run
        || (request.kind.group.as_str(), request.kind.kind.as_str()) != ("keyward.io", "ManagedKey")
    {
        return None;
    }
    let new: ManagedKey = typed(request, false).ok()??;
    let old: Option<ManagedKey> = match request.operation {
        Operation::Update => typed(request, true).ok()?,
        _ => None,
    };
    let changes = differences(old.as_ref(), &new);
    if changes.is_empty() {
        return None;
    }
    let reason = annotation(&new, REASON).filter(|r| !r.trim().is_empty());
    let state_changed = changes.iter().any(|(field, _)| field == "spec.state");
    let warning = (state_changed && reason.is_none()).then(|| {
        format!("no {REASON} annotation: the audit log records this change of spec.state without a reason; add one (kubectl annotate managedkey ... {REASON}=\"...\")")
    });
    let mut detail: BTreeMap<String, String> = changes.into_iter().collect();
    detail.insert(
        "reason".into(),
        reason.unwrap_or_else(|| "(none given)".into()),
    );
    if let Some(groups) = request.user_info.groups.as_ref().filter(|g| !g.is_empty()) {
        detail.insert("groups".into(), groups.join(","));
    }
    Some(Change {
        event: Event {
            actor: actor(request),
            action: "key.change".into(),
            subject: subject(request, new.metadata.name.as_deref()),
            outcome: "admitted".into(),
            detail,
        },
        warning,
    })
}

fn annotation(key: &ManagedKey, name: &str) -> Option<String> {
    key.metadata.annotations.as_ref()?.get(name).cloned()
}

fn sharing(key: &ManagedKey) -> Option<String> {
    key.spec.share_with.as_ref().map(|s| s.namespaces.join(","))
}

/// `field -> "old -> new"` for what drives the lifecycle.
fn differences(old: Option<&ManagedKey>, new: &ManagedKey) -> Vec<(String, String)> {
    let shown = |value: Option<String>| value.unwrap_or_else(|| "(none)".into());
    let mut out = Vec::new();
    let fields = [
        (
            "spec.state",
            old.map(|k| k.spec.state.to_string()),
            Some(new.spec.state.to_string()),
        ),
        (
            "spec.shareWith.namespaces",
            old.and_then(sharing),
            sharing(new),
        ),
        (
            "spec.twoPersonDestruction",
            old.map(|k| k.spec.two_person_destruction.to_string()),
            Some(new.spec.two_person_destruction.to_string()),
        ),
        (
            "spec.deletionPolicy",
            old.map(|k| format!("{:?}", k.spec.effective_deletion_policy())),
            Some(format!("{:?}", new.spec.effective_deletion_policy())),
        ),
    ];
    for (field, before, after) in fields {
        if old.is_none() || before != after {
            out.push((
                field.to_owned(),
                format!("{} -> {}", shown(before), shown(after)),
            ));
        }
    }
    for name in DRIVING {
        let (before, after) = (old.and_then(|k| annotation(k, name)), annotation(new, name));
        if before != after {
            out.push((
                name.to_owned(),
                format!("{} -> {}", shown(before), shown(after)),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn key(state: &str, annotations: Value) -> Value {
        json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": {"name": "db", "namespace": "apps", "annotations": annotations},
            "spec": {"provider": {"local": {}}, "state": state},
        })
    }

    fn request(old: Option<Value>, new: Value, dry_run: bool) -> Request {
        let review: crate::admission::Review = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "1",
                "kind": {"group": "keyward.io", "version": "v1alpha1", "kind": "ManagedKey"},
                "resource": {"group": "keyward.io", "version": "v1alpha1", "resource": "managedkeys"},
                "name": "db", "namespace": "apps",
                "operation": if old.is_some() { "UPDATE" } else { "CREATE" },
                "userInfo": {"username": "alice@example.com", "groups": ["sre", "system:authenticated"]},
                "object": new, "oldObject": old, "dryRun": dry_run,
            },
        }))
        .unwrap();
        crate::admission::request(review).unwrap()
    }

    #[test]
    fn a_state_change_names_the_user_and_the_reason() {
        let old = key("Active", json!({}));
        let new = key(
            "Compromised",
            json!({REASON: "INC-42: keyring backup leaked"}),
        );
        let change = change(&request(Some(old), new, false)).unwrap();
        assert_eq!(change.event.actor, "alice@example.com");
        assert_eq!(change.event.subject, "apps/db");
        assert_eq!(change.event.detail["spec.state"], "Active -> Compromised");
        assert_eq!(
            change.event.detail["reason"],
            "INC-42: keyring backup leaked"
        );
        assert_eq!(change.event.detail["groups"], "sre,system:authenticated");
        assert_eq!(change.warning, None);
    }

    #[test]
    fn a_state_change_without_a_reason_is_recorded_as_such_and_warned_about() {
        let change = change(&request(
            Some(key("Active", json!({}))),
            key("Suspended", json!({})),
            false,
        ))
        .unwrap();
        assert_eq!(change.event.detail["reason"], "(none given)");
        assert!(change.warning.unwrap().contains(REASON));
    }

    #[test]
    fn lifecycle_annotations_count_and_other_edits_and_dry_runs_do_not() {
        let old = key("Active", json!({}));
        let rotated = key("Active", json!({"keyward.io/rotate": "now"}));
        let change = change(&request(Some(old.clone()), rotated, false)).unwrap();
        assert_eq!(change.event.detail["keyward.io/rotate"], "(none) -> now");
        assert_eq!(change.warning, None, "a rotation is no change of state");
        let labelled = key("Active", json!({"team": "payments"}));
        assert_eq!(
            super::change(&request(Some(old.clone()), labelled, false)),
            None
        );
        let compromised = key("Compromised", json!({}));
        assert_eq!(super::change(&request(Some(old), compromised, true)), None);
    }
}
