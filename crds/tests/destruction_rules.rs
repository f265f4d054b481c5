//! Two-person destruction's rules, as admission applies them: what is
//! guarded, how requests and approvals are stamped, and every way a
//! guarded change without two people is refused.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use keyward_crds::ManagedKey;
use keyward_crds::destruction::{
    APPROVAL, Action, FORCE_DESTROY, REQUEST, check, guarded, key_policy, parse_request,
    stamp_approval, stamp_request,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const T0: &str = "2026-12-07T12:00:00Z";

fn now() -> Timestamp {
    T0.parse().unwrap()
}

fn later(minutes: i64) -> Timestamp {
    now() + SignedDuration::from_mins(minutes)
}

fn key(state: &str, two_person: bool, annotations: Value) -> ManagedKey {
    serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
        "metadata": {"name": "db", "namespace": "apps", "annotations": annotations},
        "spec": {"provider": {"local": {}}, "state": state, "twoPersonDestruction": two_person},
    }))
    .unwrap()
}

fn actions(list: &[Action]) -> BTreeSet<Action> {
    list.iter().copied().collect()
}

/// A request by alice and bob's approval of it, both stamped at `T0`.
fn requested_and_approved(wanted: &str) -> (String, String) {
    let request = stamp_request(wanted, "alice", now()).unwrap();
    let approval = stamp_approval(Some(&request), "bob", now()).unwrap();
    (request, approval)
}

#[test]
fn plain_requests_are_stamped_with_the_user_and_the_time() {
    let stamped = stamp_request("destroy, ForceDestroy", "alice", now()).unwrap();
    let request = parse_request(&stamped).unwrap();
    assert_eq!(
        request.actions,
        actions(&[Action::Destroy, Action::ForceDestroy])
    );
    assert_eq!((request.by.as_str(), request.at.as_str()), ("alice", T0));
    let unknown = stamp_request("Destroy,Shred", "alice", now()).unwrap_err();
    assert!(
        unknown.contains("\"Shred\"") && unknown.contains("DisablePolicy"),
        "{unknown}"
    );
    assert!(stamp_request(" , ", "alice", now()).is_err());
}

#[test]
fn an_approval_needs_a_request_by_someone_else() {
    let none = stamp_approval(None, "bob", now()).unwrap_err();
    assert!(none.contains("no keyward.io/destruction-request"), "{none}");
    let request = stamp_request("Destroy", "alice", now()).unwrap();
    let own = stamp_approval(Some(&request), "alice", now()).unwrap_err();
    assert!(own.contains("different user"), "{own}");
    let approval: Value =
        serde_json::from_str(&stamp_approval(Some(&request), "bob", now()).unwrap()).unwrap();
    assert_eq!(approval["requestBy"], "alice");
    assert_eq!(approval["requestAt"], T0);
    assert_eq!(approval["by"], "bob");
}

#[test]
fn the_guarded_changes_are_the_ones_that_end_key_material() {
    let active = key("Deactivated", true, json!({}));
    let destroyed = key("Destroyed", true, json!({}));
    assert_eq!(
        guarded(Some(&active), Some(&destroyed)),
        actions(&[Action::Destroy])
    );
    assert!(guarded(Some(&destroyed), Some(&destroyed)).is_empty());
    let forced = key("Deactivated", true, json!({FORCE_DESTROY: "true"}));
    assert_eq!(
        guarded(Some(&active), Some(&forced)),
        actions(&[Action::ForceDestroy])
    );
    let relaxed = key("Deactivated", false, json!({}));
    assert_eq!(
        guarded(Some(&active), Some(&relaxed)),
        actions(&[Action::DisablePolicy])
    );
    assert_eq!(guarded(Some(&active), None), actions(&[Action::Delete]));
    let mut retained = active.clone();
    retained.spec.deletion_policy = Some(keyward_crds::DeletionPolicy::Retain);
    assert!(
        guarded(Some(&retained), None).is_empty(),
        "deleting a Retain key leaves its material"
    );
    assert!(guarded(None, Some(&destroyed)).is_empty());
    assert!(key_policy(Some(&active), Some(&relaxed)));
    assert!(!key_policy(Some(&relaxed), None));
}

#[test]
fn a_guarded_change_is_admitted_only_with_a_request_and_another_users_approval() {
    let old = key("Deactivated", true, json!({}));
    let destroy = actions(&[Action::Destroy]);

    let alone = key("Destroyed", true, json!({}));
    let err = check(Some(&old), &alone, "alice", now(), true, &destroy).unwrap_err();
    assert!(
        err.contains("Missing: the request") && err.contains("kubectl annotate"),
        "{err}"
    );

    let request = stamp_request("Destroy", "alice", now()).unwrap();
    let only_requested = key("Destroyed", true, json!({REQUEST: request}));
    let with_request = key("Deactivated", true, json!({REQUEST: request}));
    let err = check(
        Some(&with_request),
        &only_requested,
        "alice",
        later(1),
        true,
        &destroy,
    )
    .unwrap_err();
    assert!(
        err.contains("an approval by a user other than alice"),
        "{err}"
    );

    let (request, approval) = requested_and_approved("Destroy");
    let before = key(
        "Deactivated",
        true,
        json!({REQUEST: request, APPROVAL: approval}),
    );
    let after = key(
        "Destroyed",
        true,
        json!({REQUEST: request, APPROVAL: approval}),
    );
    let approved = check(Some(&before), &after, "alice", later(10), true, &destroy)
        .unwrap()
        .expect("two people");
    assert_eq!(approved.request.by, "alice");
    assert_eq!(approved.approval.by, "bob");

    // Without the policy nothing is asked for.
    assert_eq!(
        check(Some(&old), &alone, "alice", now(), false, &destroy),
        Ok(None)
    );
}

#[test]
fn an_approval_allows_only_what_was_requested_and_only_for_a_while() {
    let (request, approval) = requested_and_approved("Destroy");
    let annotations = json!({REQUEST: request, APPROVAL: approval});
    let before = key("Deactivated", true, annotations.clone());
    let mut forced = annotations.clone();
    forced[FORCE_DESTROY] = json!("true");
    let after = key("Deactivated", true, forced);
    let err = check(
        Some(&before),
        &after,
        "bob",
        later(1),
        true,
        &actions(&[Action::ForceDestroy]),
    )
    .unwrap_err();
    assert!(err.contains("is for Destroy, not ForceDestroy"), "{err}");

    let destroyed = key("Destroyed", true, annotations);
    let destroy = actions(&[Action::Destroy]);
    let err = check(Some(&before), &destroyed, "bob", later(61), true, &destroy).unwrap_err();
    assert!(
        err.contains("approval by bob") && err.contains("expired"),
        "{err}"
    );

    // The request itself lives a day: an approval given late is no help.
    let request = stamp_request("Destroy", "alice", now()).unwrap();
    let approval = stamp_approval(Some(&request), "bob", later(25 * 60)).unwrap();
    let annotations = json!({REQUEST: request, APPROVAL: approval});
    let before = key("Deactivated", true, annotations.clone());
    let late = key("Destroyed", true, annotations);
    let err = check(Some(&before), &late, "bob", later(25 * 60), true, &destroy).unwrap_err();
    assert!(
        err.contains("request by alice") && err.contains("expired"),
        "{err}"
    );
}

#[test]
fn an_approval_does_not_carry_over_to_a_new_request() {
    let (_, approval) = requested_and_approved("Destroy");
    let newer = stamp_request("Destroy", "carol", later(2)).unwrap();
    let before = key("Deactivated", true, json!({APPROVAL: approval}));
    let after = key(
        "Destroyed",
        true,
        json!({REQUEST: newer, APPROVAL: approval}),
    );
    let err = check(
        Some(&before),
        &after,
        "carol",
        later(2),
        true,
        &actions(&[Action::Destroy]),
    )
    .unwrap_err();
    assert!(err.contains("for an earlier request"), "{err}");
}

#[test]
fn nobody_writes_a_request_or_approval_in_someone_elses_name() {
    let old = key("Deactivated", true, json!({}));
    // Alice writes a stamped request naming bob.
    let forged = stamp_request("Destroy", "bob", now()).unwrap();
    let err = check(
        Some(&old),
        &key("Deactivated", true, json!({REQUEST: forged})),
        "alice",
        now(),
        true,
        &BTreeSet::new(),
    )
    .unwrap_err();
    assert!(err.contains("names bob, but you are alice"), "{err}");

    // Alice approves her own request by writing bob's name in the approval.
    let request = stamp_request("Destroy", "alice", now()).unwrap();
    let with_request = key("Deactivated", true, json!({REQUEST: request}));
    let approval = stamp_approval(Some(&request), "bob", now()).unwrap();
    let err = check(
        Some(&with_request),
        &key(
            "Destroyed",
            true,
            json!({REQUEST: request, APPROVAL: approval}),
        ),
        "alice",
        now(),
        true,
        &actions(&[Action::Destroy]),
    )
    .unwrap_err();
    assert!(err.contains("names bob, but you are alice"), "{err}");

    // A value stamped long ago and pasted back in is not fresh.
    let old_request = stamp_request("Destroy", "alice", later(-30)).unwrap();
    let err = check(
        Some(&old),
        &key("Deactivated", true, json!({REQUEST: old_request})),
        "alice",
        now(),
        true,
        &BTreeSet::new(),
    )
    .unwrap_err();
    assert!(err.contains("not now"), "{err}");

    // A hand-written value that admission did not stamp.
    let err = check(
        Some(&old),
        &key("Deactivated", true, json!({REQUEST: "{\"by\":\"alice\"}"})),
        "alice",
        now(),
        true,
        &BTreeSet::new(),
    )
    .unwrap_err();
    assert!(err.contains("not stamped by admission"), "{err}");
}

#[test]
fn a_request_widened_after_its_approval_is_not_approved() {
    // Alice's request for Destroy, approved by bob; within the 5 minutes a
    // stamp stays fresh, alice rewrites her own request to add ForceDestroy.
    let (request, approval) = requested_and_approved("Destroy");
    let mut widened = parse_request(&request).unwrap();
    widened.actions.insert(Action::ForceDestroy);
    let widened = serde_json::to_string(&widened).unwrap();
    let before = key(
        "Deactivated",
        true,
        json!({REQUEST: request, APPROVAL: approval}),
    );
    let after = key(
        "Deactivated",
        true,
        json!({REQUEST: widened, APPROVAL: approval, FORCE_DESTROY: "true"}),
    );
    let err = check(
        Some(&before),
        &after,
        "alice",
        later(2),
        true,
        &actions(&[Action::ForceDestroy]),
    )
    .unwrap_err();
    assert!(err.contains("for an earlier request"), "{err}");
}
