//! Two-person destruction. Under the policy (`spec.twoPersonDestruction`
//! on the key, or the label [`POLICY_LABEL`] on its namespace) the changes
//! that end key material — `spec.state: Destroyed`, [`FORCE_DESTROY`],
//! deleting a key whose deletion policy is `Delete`, and turning the policy
//! off — are admitted only after one user has requested them and a
//! different user has approved that request.
//!
//! The request and the approval are annotations. A user writes the plain
//! form (`Destroy`, `approve`); the mutating webhook replaces it with the
//! stamped form naming the user (from admission `userInfo`) and the time,
//! and the validating webhook admits a stamped value only from the user it
//! names, written within [`CLOCK_SKEW`] of now. So nobody can request or
//! approve in someone else's name, and an approval is bound to the one
//! request it names. Everything here is pure: the webhook supplies the
//! user, the clock and the namespace label.

use crate::ManagedKey;
use crate::managed_key::DeletionPolicy;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// `"true"` lets a key be destroyed although SealedSecrets still depend on it.
pub const FORCE_DESTROY: &str = "keyward.io/force-destroy";
/// On a Namespace, `"true"`: every ManagedKey in it is under the policy.
/// Tenants with rights in a namespace cannot edit the Namespace object, so
/// a cluster administrator sets it.
pub const POLICY_LABEL: &str = "keyward.io/two-person-destruction";
/// What a user asks to do, e.g. `Destroy` or `Delete,ForceDestroy`.
pub const REQUEST: &str = "keyward.io/destruction-request";
/// A second user's approval of the request in [`REQUEST`].
pub const APPROVAL: &str = "keyward.io/destruction-approval";

/// How long a request can wait for its approval.
pub const REQUEST_LIFETIME: SignedDuration = SignedDuration::from_hours(24);
/// How long an approval can wait for the change it allows.
pub const APPROVAL_LIFETIME: SignedDuration = SignedDuration::from_hours(1);
/// How far a stamped time may be from admission's clock when written.
pub const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// A change the policy guards.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// `spec.state` becomes `Destroyed`.
    Destroy,
    /// [`FORCE_DESTROY`] becomes `"true"`.
    ForceDestroy,
    /// The ManagedKey is deleted while its deletion policy is `Delete`.
    Delete,
    /// `spec.twoPersonDestruction` is turned off.
    DisablePolicy,
}

const ACTIONS: [Action; 4] = [
    Action::Destroy,
    Action::ForceDestroy,
    Action::Delete,
    Action::DisablePolicy,
];

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A stamped [`REQUEST`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub actions: BTreeSet<Action>,
    pub by: String,
    pub at: String,
}

/// A stamped [`APPROVAL`]: who approved, when, and which request, down to
/// its actions (a request edited after its approval is not approved).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Approval {
    pub by: String,
    pub at: String,
    pub request_by: String,
    pub request_at: String,
    pub request_actions: BTreeSet<Action>,
}

/// A guarded change that may go ahead: the two people behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approved {
    pub request: Request,
    pub approval: Approval,
}

/// Whether a value is already stamped (a JSON object), or still the plain
/// form a user writes.
pub fn is_stamped(value: &str) -> bool {
    value.trim_start().starts_with('{')
}

/// The stamped form of a plain request (`Destroy`, `Delete, ForceDestroy`).
pub fn stamp_request(plain: &str, user: &str, now: Timestamp) -> Result<String, String> {
    let mut actions = BTreeSet::new();
    for word in plain.split([',', ' ']).filter(|w| !w.is_empty()) {
        let action = ACTIONS
            .into_iter()
            .find(|a| a.to_string().eq_ignore_ascii_case(word))
            .ok_or_else(|| {
                format!(
                    "{REQUEST}: {word:?} is not a guarded change; name one or more of {}",
                    names(ACTIONS)
                )
            })?;
        actions.insert(action);
    }
    if actions.is_empty() {
        return Err(format!(
            "{REQUEST} is empty; name one or more of {}",
            names(ACTIONS)
        ));
    }
    let request = Request {
        actions,
        by: user.to_owned(),
        at: now.to_string(),
    };
    Ok(serde_json::to_string(&request).expect("a request serialises"))
}

/// The stamped approval of `request` (the key's current [`REQUEST`]) by `user`.
pub fn stamp_approval(request: Option<&str>, user: &str, now: Timestamp) -> Result<String, String> {
    let request = parse_request(request.ok_or_else(|| {
        format!("{APPROVAL}: there is no {REQUEST} on this ManagedKey to approve")
    })?)?;
    if request.by == user {
        return Err(format!(
            "{APPROVAL}: you ({user}) made the request; a different user must approve it"
        ));
    }
    let approval = Approval {
        by: user.to_owned(),
        at: now.to_string(),
        request_by: request.by,
        request_at: request.at,
        request_actions: request.actions,
    };
    Ok(serde_json::to_string(&approval).expect("an approval serialises"))
}

/// The guarded changes from `old` to `new`: `new` is `None` for a delete,
/// `old` for a create (which destroys nothing).
pub fn guarded(old: Option<&ManagedKey>, new: Option<&ManagedKey>) -> BTreeSet<Action> {
    let mut out = BTreeSet::new();
    let Some(old) = old else {
        return out;
    };
    let Some(new) = new else {
        if old.spec.effective_deletion_policy() == DeletionPolicy::Delete {
            out.insert(Action::Delete);
        }
        return out;
    };
    if new.spec.state == crate::KeyState::Destroyed && old.spec.state != crate::KeyState::Destroyed
    {
        out.insert(Action::Destroy);
    }
    if forced(new) && !forced(old) {
        out.insert(Action::ForceDestroy);
    }
    if old.spec.two_person_destruction && !new.spec.two_person_destruction {
        out.insert(Action::DisablePolicy);
    }
    out
}

fn forced(key: &ManagedKey) -> bool {
    annotation(key, FORCE_DESTROY) == Some("true")
}

fn annotation<'a>(key: &'a ManagedKey, name: &str) -> Option<&'a str> {
    key.metadata
        .annotations
        .as_ref()?
        .get(name)
        .map(String::as_str)
}

/// Whether the key itself asks for the policy, before or after the change.
pub fn key_policy(old: Option<&ManagedKey>, new: Option<&ManagedKey>) -> bool {
    [old, new]
        .into_iter()
        .flatten()
        .any(|k| k.spec.two_person_destruction)
}

/// Checks one admitted change: newly written requests and approvals must be
/// stamped for `user` just now, and when `policy` holds, the `guarded`
/// changes need a live request covering them and a live approval of it by
/// someone else. `key` is the object after the change (before it, for a
/// delete). `Ok(Some)` names the two people behind a guarded change.
pub fn check(
    old: Option<&ManagedKey>,
    key: &ManagedKey,
    user: &str,
    now: Timestamp,
    policy: bool,
    guarded: &BTreeSet<Action>,
) -> Result<Option<Approved>, String> {
    let written = |name| {
        let value = annotation(key, name)?;
        (old.and_then(|o| annotation(o, name)) != Some(value)).then_some(value)
    };
    if let Some(value) = written(REQUEST) {
        let request = parse_request(value)?;
        fresh_and_own(REQUEST, &request.by, &request.at, user, now)?;
    }
    if let Some(value) = written(APPROVAL) {
        let approval = parse_approval(value)?;
        fresh_and_own(APPROVAL, &approval.by, &approval.at, user, now)?;
        let request = parse_request(annotation(key, REQUEST).ok_or_else(|| {
            format!("{APPROVAL}: there is no {REQUEST} on this ManagedKey to approve")
        })?)?;
        approves(&approval, &request)?;
    }
    if !policy || guarded.is_empty() {
        return Ok(None);
    }
    approved(key, now, guarded).map(Some)
}

/// The request and approval on `key` that allow `guarded` at `now`, or
/// what is missing, said so a user knows the next command.
fn approved(
    key: &ManagedKey,
    now: Timestamp,
    guarded: &BTreeSet<Action>,
) -> Result<Approved, String> {
    let wanted = names(guarded.iter().copied());
    let name = key.metadata.name.as_deref().unwrap_or("KEY");
    let reference = match key.metadata.namespace.as_deref() {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    };
    let flags: String = guarded.iter().map(|a| format!(" --action {a}")).collect();
    let ask = format!(
        "two-person destruction applies to this ManagedKey, so {wanted} needs a request by one user and an approval by another. Request: keyward destruction request {reference}{flags} --reason ... (or kubectl annotate managedkey {name} {REQUEST}={} --overwrite); then a different user approves: keyward destruction approve {reference}{flags} (or kubectl annotate managedkey {name} {APPROVAL}=approve --overwrite); then repeat this change",
        action_list(guarded)
    );
    let Some(request) = annotation(key, REQUEST) else {
        return Err(format!("{ask}. Missing: the request"));
    };
    let request = parse_request(request)?;
    let missing: Vec<Action> = guarded.difference(&request.actions).copied().collect();
    if !missing.is_empty() {
        return Err(format!(
            "{ask}. The request by {} is for {}, not {}",
            request.by,
            names(request.actions.iter().copied()),
            names(missing)
        ));
    }
    if age(&request.at, now)? > REQUEST_LIFETIME {
        return Err(format!(
            "{ask}. The request by {} was made at {} and has expired ({} h); request again",
            request.by,
            request.at,
            REQUEST_LIFETIME.as_hours()
        ));
    }
    let Some(approval) = annotation(key, APPROVAL) else {
        return Err(format!(
            "{ask}. Missing: an approval by a user other than {}",
            request.by
        ));
    };
    let approval = parse_approval(approval)?;
    if approves(&approval, &request).is_err() {
        return Err(format!(
            "{ask}. The approval by {} is for an earlier request, not the one {} made at {}",
            approval.by, request.by, request.at
        ));
    }
    if age(&approval.at, now)? > APPROVAL_LIFETIME {
        return Err(format!(
            "{ask}. The approval by {} was given at {} and has expired ({} h); approve again",
            approval.by,
            approval.at,
            APPROVAL_LIFETIME.as_hours()
        ));
    }
    Ok(Approved { request, approval })
}

/// The two people on record for `key`'s destruction (the request's author,
/// then the approval's) when its approval approves its request; for the
/// operator's records of what it then does.
pub fn on_record(key: &ManagedKey) -> Option<(String, String)> {
    let request = parse_request(annotation(key, REQUEST)?).ok()?;
    let approval = parse_approval(annotation(key, APPROVAL)?).ok()?;
    approves(&approval, &request).ok()?;
    Some((request.by, approval.by))
}

fn approves(approval: &Approval, request: &Request) -> Result<(), String> {
    if approval.request_by != request.by
        || approval.request_at != request.at
        || approval.request_actions != request.actions
    {
        return Err(format!(
            "{APPROVAL} is for the request {} made at {}, not the current one",
            approval.request_by, approval.request_at
        ));
    }
    if approval.by == request.by {
        return Err(format!(
            "{APPROVAL}: {} made the request, so cannot approve it; a different user must",
            request.by
        ));
    }
    Ok(())
}

/// A stamped value names `user` and was stamped within [`CLOCK_SKEW`].
fn fresh_and_own(name: &str, by: &str, at: &str, user: &str, now: Timestamp) -> Result<(), String> {
    let plain = if name == APPROVAL {
        "approve"
    } else {
        "Destroy"
    };
    if by != user {
        return Err(format!(
            "{name} names {by}, but you are {user}: write the plain form (e.g. {name}={plain}) and admission stamps it with your name"
        ));
    }
    if age(at, now)?.abs() > CLOCK_SKEW {
        return Err(format!(
            "{name} is stamped {at}, not now: write the plain form (e.g. {name}={plain}) and admission stamps the time"
        ));
    }
    Ok(())
}

fn age(at: &str, now: Timestamp) -> Result<SignedDuration, String> {
    let at: Timestamp = at
        .parse()
        .map_err(|_| format!("{at:?} is not an RFC 3339 time"))?;
    Ok(now.duration_since(at))
}

pub fn parse_request(value: &str) -> Result<Request, String> {
    serde_json::from_str(value).map_err(|e| {
        format!("{REQUEST} is not stamped by admission ({e}); write the plain form, e.g. {REQUEST}=Destroy, with Keyward's mutating webhook installed")
    })
}

pub fn parse_approval(value: &str) -> Result<Approval, String> {
    serde_json::from_str(value).map_err(|e| {
        format!("{APPROVAL} is not stamped by admission ({e}); write the plain form, {APPROVAL}=approve, with Keyward's mutating webhook installed")
    })
}

/// `Destroy,ForceDestroy`: the form a request is written in, and audit
/// records use.
pub fn action_list(actions: &BTreeSet<Action>) -> String {
    actions
        .iter()
        .map(Action::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn names(actions: impl IntoIterator<Item = Action>) -> String {
    actions
        .into_iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
