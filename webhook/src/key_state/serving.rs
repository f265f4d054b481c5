//! Whether unseal may serve a pod an item, by the state of the key version
//! it is sealed under: only Active and Deactivated versions serve
//! (`KeyState::can_unseal_for_pods`). Compromised ones decrypt only for
//! re-wrapping — whoever holds a compromised key can also forge values
//! under it — Destroyed ones cannot decrypt, a Suspended version (or key)
//! is "unusable for anything" until it is Active again, and nothing was
//! ever sealed under a PreActivation version legitimately.
//!
//! A refusal is told to the pod: it is authenticated and entitled to the
//! secret by then, and the reason names only that secret, its key and the
//! key's state, with what to do.
//!
//! When the state is not known — no such ManagedKey, or no status yet (a
//! cluster being rebuilt from Git, the operator not yet running), or a
//! version the operator has not listed — the item is served and the
//! record says so: the provider still refuses what it cannot decrypt, and
//! refusing here would stop every pod of a cluster whose operator is late.
//! Only a known, bad state refuses. (A ManagedKey with dependants cannot be
//! deleted, so deleting it is no way around this.)
//!
//! For incident continuity, [`OVERRIDE`] on the ManagedKey lets its
//! Compromised versions serve until the given time, at most 24 h ahead;
//! every item so served is audited as such. Destroyed never serves.

use super::{Item, Reported, advice, other_provider_key, reported, sealed_under};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use keyward_crds::{KeyState, ManagedKey};

/// ManagedKey annotation: an RFC 3339 time until which its Compromised
/// versions still serve pods.
pub const OVERRIDE: &str = "keyward.io/serve-compromised-until";

/// The furthest ahead [`OVERRIDE`] may be; a later time is ignored.
pub const OVERRIDE_MAX_AHEAD: SignedDuration = SignedDuration::from_hours(24);

/// What unseal does with one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    /// Serve; the state could not be checked, for the reason given (audited).
    Unchecked(String),
    /// Serve a Compromised version under [`OVERRIDE`], which lasts until
    /// this time; the caller audits it.
    Overridden(Timestamp),
    /// Refuse, with the sentence the pod is told.
    Refuse(String),
}

pub fn may_serve(key: Option<&ManagedKey>, item: &Item, now: Timestamp) -> Verdict {
    match reported(key, item) {
        Reported::NoKey => Verdict::Unchecked(format!("ManagedKey {} does not exist", item.key)),
        Reported::NotYet => Verdict::Unchecked(format!(
            "ManagedKey {} reports no state for its versions yet",
            item.key
        )),
        Reported::UnknownVersion => Verdict::Unchecked(format!(
            "ManagedKey {} does not list version {}",
            item.key, item.version
        )),
        Reported::OtherProviderKey(reported) => {
            Verdict::Refuse(other_provider_key(item, &reported))
        }
        Reported::State { state, .. } if state.can_unseal_for_pods() => Verdict::Serve,
        Reported::State {
            state: KeyState::Compromised,
            key_wide,
        } => {
            let until = key.and_then(|key| {
                override_until(key, now).unwrap_or_else(|ignored| {
                    tracing::warn!(key = item.key, %ignored, "override ignored");
                    None
                })
            });
            match until {
                Some(until) => Verdict::Overridden(until),
                None => Verdict::Refuse(format!(
                    "{}: {}",
                    sealed_under(item, KeyState::Compromised, key_wide),
                    advice(KeyState::Compromised)
                )),
            }
        }
        Reported::State { state, key_wide } => Verdict::Refuse(format!(
            "{}: {}",
            sealed_under(item, state, key_wide),
            advice(state)
        )),
    }
}

/// The time [`OVERRIDE`] names, while it is ahead of `now`. `Err` (the
/// override is ignored) when it is not an RFC 3339 time or is more than
/// [`OVERRIDE_MAX_AHEAD`] ahead; the message says why, for a log line or
/// an admission refusal.
pub fn override_until(key: &ManagedKey, now: Timestamp) -> Result<Option<Timestamp>, String> {
    let Some(value) = key
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(OVERRIDE))
    else {
        return Ok(None);
    };
    let until: Timestamp = value.trim().parse().map_err(|_| {
        format!("{OVERRIDE} `{value}` is not an RFC 3339 time such as 2030-01-01T12:00:00Z")
    })?;
    if until.duration_since(now) > OVERRIDE_MAX_AHEAD {
        return Err(format!(
            "{OVERRIDE} `{value}` is more than 24 h ahead; an override must be renewed at least daily"
        ));
    }
    Ok((until > now).then_some(until))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{HISTORY, item, key};
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    fn verdict(state: &str, version: u32, annotations: serde_json::Value) -> Verdict {
        may_serve(
            Some(&key(state, &HISTORY, annotations)),
            &item(version),
            now(),
        )
    }

    fn refused(verdict: Verdict) -> String {
        match verdict {
            Verdict::Refuse(text) => text,
            other => panic!("served: {other:?}"),
        }
    }

    #[test]
    fn only_active_and_deactivated_versions_serve() {
        assert_eq!(verdict("Active", 3, json!({})), Verdict::Serve);
        assert_eq!(verdict("Active", 4, json!({})), Verdict::Serve);
        assert_eq!(
            refused(verdict("Active", 2, json!({}))),
            "SealedSecret db item password is sealed under version 2 of ManagedKey team/app, \
             which is Compromised: re-seal it (keyward seal) or re-wrap it (keyward rewrap) \
             onto the current primary version"
        );
        assert!(refused(verdict("Active", 1, json!({}))).contains("which is Destroyed"));
        assert!(refused(verdict("Active", 5, json!({}))).contains("which is PreActivation"));
        let suspended = refused(verdict("Suspended", 3, json!({})));
        assert!(
            suspended.contains("and that key is Suspended")
                && suspended.contains("spec.state: Active"),
            "{suspended}"
        );
        assert!(refused(verdict("Destroyed", 4, json!({}))).contains("and that key is Destroyed"));
    }

    #[test]
    fn unknown_states_serve_and_say_so() {
        let unchecked = |verdict: Verdict| matches!(verdict, Verdict::Unchecked(_));
        assert!(unchecked(may_serve(None, &item(2), now())));
        assert!(unchecked(may_serve(
            Some(&key("Active", &[], json!({}))),
            &item(2),
            now()
        )));
        assert!(unchecked(verdict("Active", 9, json!({}))));
        let foreign = super::super::Item {
            provider_key_id: "k9",
            ..item(3)
        };
        let other = may_serve(Some(&key("Active", &HISTORY, json!({}))), &foreign, now());
        assert!(refused(other).contains("provider key `k9`"));
    }

    #[test]
    fn the_override_serves_compromised_versions_until_it_ends() {
        let until = |at: &str| json!({OVERRIDE: at});
        assert_eq!(
            verdict("Active", 2, until("2026-03-01T18:00:00Z")),
            Verdict::Overridden("2026-03-01T18:00:00Z".parse().unwrap())
        );
        // Over, too far ahead, or not a time: refused as without it.
        for ignored in ["2026-03-01T11:59:59Z", "2026-03-02T12:00:01Z", "tomorrow"] {
            assert!(
                refused(verdict("Active", 2, until(ignored))).contains("which is Compromised"),
                "{ignored}"
            );
        }
        // Exactly 24 h ahead is allowed; it never makes Destroyed or Suspended serve.
        let day = until("2026-03-02T12:00:00Z");
        assert!(matches!(
            verdict("Active", 2, day.clone()),
            Verdict::Overridden(_)
        ));
        assert!(refused(verdict("Active", 1, day.clone())).contains("Destroyed"));
        assert!(refused(verdict("Suspended", 3, day)).contains("Suspended"));
    }

    #[test]
    fn override_until_explains_what_it_ignores() {
        let key = |at: &str| key("Active", &HISTORY, json!({OVERRIDE: at}));
        assert_eq!(
            override_until(&key("2026-03-01T11:00:00Z"), now()),
            Ok(None)
        );
        assert!(
            override_until(&key("2026-03-03T00:00:00Z"), now())
                .unwrap_err()
                .contains("24 h")
        );
        assert!(
            override_until(&key("soon"), now())
                .unwrap_err()
                .contains("RFC 3339")
        );
        // Offsets other than Z are RFC 3339 too.
        assert!(
            override_until(&key("2026-03-01T14:00:00+01:00"), now())
                .unwrap()
                .is_some()
        );
    }
}
