//! Two-person destruction at admission ([`keyward_crds::destruction`] has
//! the rules). `/stamp` (mutating) turns the plain request and approval a
//! user writes into values naming that user; [`judge`] (validating) checks
//! every stamped value was written by the user it names and that a guarded
//! change has its request and approval. Both identities come from
//! `userInfo`, so they are as trustworthy as the API server's
//! authentication; a user allowed to impersonate others can act as two.

use crate::admission::{Request, actor, subject, typed};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::Timestamp;
use keyward_core::audit::Event;
use keyward_crds::ManagedKey;
use keyward_crds::destruction::{
    self, APPROVAL, Approved, POLICY_LABEL, REQUEST, is_stamped, stamp_approval, stamp_request,
};
use keyward_crds::managed_key::REASON;
use kube::core::admission::Operation;
use kube::{Api, Client};
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn is_managed_key(request: &Request) -> bool {
    (request.kind.group.as_str(), request.kind.kind.as_str()) == ("keyward.io", "ManagedKey")
}

fn user(request: &Request) -> &str {
    request.user_info.username.as_deref().unwrap_or("")
}

/// JSONPatch operations that stamp a newly written plain request or
/// approval; `Err` refuses the request (nothing to approve, own request,
/// an unknown action).
pub fn stamp(request: &Request, now: Timestamp) -> Result<Vec<Value>, String> {
    if !is_managed_key(request) || request.operation == Operation::Delete {
        return Ok(Vec::new());
    }
    let Some(key) = typed::<ManagedKey>(request, false)? else {
        return Ok(Vec::new());
    };
    let old = match request.operation {
        Operation::Update => typed::<ManagedKey>(request, true)?,
        _ => None,
    };
    let value = |key: Option<&ManagedKey>, name: &str| {
        key?.metadata.annotations.as_ref()?.get(name).cloned()
    };
    let plain = |name| {
        value(Some(&key), name)
            .filter(|v| !is_stamped(v) && value(old.as_ref(), name).as_ref() != Some(v))
    };
    let user = user(request);
    if user.is_empty() && (plain(REQUEST).is_some() || plain(APPROVAL).is_some()) {
        return Err(
            "the API server named no user for this request, so it cannot be stamped".into(),
        );
    }
    let mut ops = Vec::new();
    let mut current_request = value(Some(&key), REQUEST);
    if let Some(text) = plain(REQUEST) {
        let stamped = stamp_request(&text, user, now)?;
        ops.push(replace(REQUEST, &stamped));
        current_request = Some(stamped);
    }
    if plain(APPROVAL).is_some() {
        let stamped = stamp_approval(current_request.as_deref(), user, now)?;
        ops.push(replace(APPROVAL, &stamped));
    }
    Ok(ops)
}

fn replace(annotation: &str, value: &str) -> Value {
    let escaped = annotation.replace('~', "~0").replace('/', "~1");
    json!({"op": "replace", "path": format!("/metadata/annotations/{escaped}"), "value": value})
}

/// What admission decided about a ManagedKey request under the policy, and
/// the audit record of a guarded change (admitted or refused).
pub struct Judgement {
    pub verdict: Result<(), String>,
    pub record: Option<Event>,
}

impl Judgement {
    fn allowed() -> Self {
        Judgement {
            verdict: Ok(()),
            record: None,
        }
    }
}

/// Checks a ManagedKey create, update or delete. The namespace is read only
/// when a guarded change is made to a key that does not ask for the policy
/// itself; if it cannot be read, the change is refused.
pub async fn judge(request: &Request, client: &Client, now: Timestamp) -> Judgement {
    if !is_managed_key(request) {
        return Judgement::allowed();
    }
    let read = || -> Result<(Option<ManagedKey>, Option<ManagedKey>), String> {
        let new = typed::<ManagedKey>(request, false)?;
        let old = match request.operation {
            Operation::Update | Operation::Delete => typed::<ManagedKey>(request, true)?,
            _ => None,
        };
        Ok((old, new))
    };
    let (old, new) = match read() {
        Ok(objects) => objects,
        Err(reason) => return refused(reason),
    };
    let Some(key) = new.as_ref().or(old.as_ref()) else {
        return Judgement::allowed();
    };
    let old_for_writes = if new.is_some() {
        old.as_ref()
    } else {
        Some(key)
    };
    let guarded = destruction::guarded(old.as_ref(), new.as_ref());
    let mut policy = destruction::key_policy(old.as_ref(), new.as_ref());
    if !guarded.is_empty() && !policy {
        let namespace = request.namespace.clone().unwrap_or_default();
        match namespace_policy(client, &namespace).await {
            Ok(on) => policy = on,
            Err(error) => {
                tracing::warn!(%error, "cannot read a ManagedKey's namespace at admission");
                return refused(format!(
                    "cannot read namespace {namespace} to learn whether two-person destruction applies, so {} is refused; retry",
                    destruction::action_list(&guarded)
                ));
            }
        }
    }
    let user = user(request);
    let verdict = destruction::check(old_for_writes, key, user, now, policy, &guarded);
    // Guarded changes under the policy are recorded; a dry run is judged
    // as the real change would be, and not recorded.
    let record = (policy && !guarded.is_empty() && !request.dry_run)
        .then(|| record(request, key, &guarded, &verdict));
    Judgement {
        verdict: verdict.map(|_| ()),
        record,
    }
}

fn refused(reason: String) -> Judgement {
    Judgement {
        verdict: Err(reason),
        record: None,
    }
}

async fn namespace_policy(client: &Client, namespace: &str) -> Result<bool, kube::Error> {
    let found = Api::<Namespace>::all(client.clone()).get(namespace).await?;
    Ok(found
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POLICY_LABEL))
        .is_some_and(|v| v == "true"))
}

/// `key.destruction`: the user making the guarded change, what it is, and
/// who requested and approved it (or why it was refused).
fn record(
    request: &Request,
    key: &ManagedKey,
    guarded: &std::collections::BTreeSet<destruction::Action>,
    verdict: &Result<Option<Approved>, String>,
) -> Event {
    let mut detail = BTreeMap::from([("actions".to_owned(), destruction::action_list(guarded))]);
    let outcome = match verdict {
        Ok(Some(approved)) => {
            detail.insert("requestedBy".into(), approved.request.by.clone());
            detail.insert("requestedAt".into(), approved.request.at.clone());
            detail.insert("approvedBy".into(), approved.approval.by.clone());
            detail.insert("approvedAt".into(), approved.approval.at.clone());
            "admitted"
        }
        Ok(None) => "admitted",
        Err(reason) => {
            detail.insert("refusal".into(), reason.clone());
            "refused"
        }
    };
    if let Some(reason) = key
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REASON))
    {
        detail.insert("reason".into(), reason.clone());
    }
    Event {
        actor: actor(request),
        action: "key.destruction".into(),
        subject: subject(request, key.metadata.name.as_deref()),
        outcome: outcome.into(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_crds::destruction::parse_request;

    fn request(user: &str, old: Value, new: Value) -> Request {
        let review: crate::admission::Review = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "1",
                "kind": {"group": "keyward.io", "version": "v1alpha1", "kind": "ManagedKey"},
                "resource": {"group": "keyward.io", "version": "v1alpha1", "resource": "managedkeys"},
                "name": "db", "namespace": "apps", "operation": "UPDATE",
                "userInfo": {"username": user},
                "object": new, "oldObject": old,
            },
        }))
        .unwrap();
        crate::admission::request(review).unwrap()
    }

    fn key(annotations: Value) -> Value {
        json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": {"name": "db", "namespace": "apps", "annotations": annotations},
            "spec": {"provider": {"local": {}}},
        })
    }

    #[test]
    fn a_plain_request_is_replaced_by_one_naming_the_user() {
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let ops = stamp(
            &request("alice", key(json!({})), key(json!({REQUEST: "Destroy"}))),
            now,
        )
        .unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0]["op"], "replace");
        assert_eq!(
            ops[0]["path"],
            "/metadata/annotations/keyward.io~1destruction-request"
        );
        let stamped = parse_request(ops[0]["value"].as_str().unwrap()).unwrap();
        assert_eq!(
            (stamped.by.as_str(), stamped.at.as_str()),
            ("alice", "2026-12-07T12:00:00Z")
        );

        // Unchanged or already stamped values are left to validation.
        let value = ops[0]["value"].as_str().unwrap();
        let same = key(json!({REQUEST: value}));
        assert!(
            stamp(&request("bob", same.clone(), same), now)
                .unwrap()
                .is_empty()
        );

        // The requester's own approval is refused before it is stored.
        let own = key(json!({REQUEST: value, APPROVAL: "approve"}));
        let err = stamp(&request("alice", key(json!({REQUEST: value})), own), now).unwrap_err();
        assert!(err.contains("different user"), "{err}");
    }
}
