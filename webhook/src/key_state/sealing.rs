//! Whether admission takes a new or changed item: one sealed under an
//! Active version of its ManagedKey. A Compromised version's values may be
//! forged, and Destroyed, Suspended and PreActivation versions serve no
//! pod, so items under them are refused with what to do. Items already
//! stored are not judged again, so they never block an unrelated edit.
//!
//! A Deactivated version is admitted with a warning, not refused: its
//! values still serve pods, and GitOps relies on that — after a rotation
//! Git holds the previous version's envelopes until `keyward rewrap` is
//! committed (a self-healing applier reverts the operator's in-cluster
//! re-wrap to them, docs/gitops.md), and a cluster rebuilt from Git gets
//! every non-primary version reported Deactivated. The warning still shows
//! a value sealed with a stale public key (say, in CI).
//!
//! Unknown is not bad: when the key or its reported state is absent — a
//! GitOps applier may apply SealedSecrets before their key is reconciled —
//! the item is admitted with a warning. A version the key does not list,
//! while it lists others, is refused.

use super::{Item, Reported, advice, other_provider_key, reported, sealed_under};
use keyward_crds::{KeyState, KeyUsage, ManagedKey};
use std::collections::BTreeMap;

/// What admission does with one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Admit, with this warning for the client.
    Warn(String),
    /// Refuse, with this reason.
    Refuse(String),
}

pub fn may_seal(key: Option<&ManagedKey>, item: &Item) -> Admit {
    if let Some(key) = key
        && key.spec.usage == KeyUsage::Sign
    {
        return Admit::Refuse(format!(
            "SealedSecret {} item {} names ManagedKey {}, a signing key (usage Sign), which \
             seals nothing: seal under a key with usage Wrap or Seal",
            item.secret, item.item, item.key
        ));
    }
    match reported(key, item) {
        Reported::State {
            state: KeyState::Active,
            ..
        } => Admit::Yes,
        Reported::State {
            state: KeyState::Deactivated,
            key_wide,
        } => Admit::Warn(format!(
            "{}: {}",
            sealed_under(item, KeyState::Deactivated, key_wide),
            advice(KeyState::Deactivated)
        )),
        Reported::State { state, key_wide } => Admit::Refuse(format!(
            "{}: {}",
            sealed_under(item, state, key_wide),
            advice(state)
        )),
        Reported::UnknownVersion => Admit::Refuse(format!(
            "SealedSecret {} item {} is sealed under version {} of ManagedKey {}, which the key \
             does not list (kubectl get managedkey -o yaml shows status.versions): re-seal it \
             (keyward seal)",
            item.secret, item.item, item.version, item.key
        )),
        Reported::OtherProviderKey(reported) => Admit::Refuse(other_provider_key(item, &reported)),
        Reported::NoKey => Admit::Warn(format!(
            "ManagedKey {} does not exist yet, so key states were not checked",
            item.key
        )),
        Reported::NotYet => Admit::Warn(format!(
            "ManagedKey {} reports no key states yet, so they were not checked",
            item.key
        )),
    }
}

/// The items of `new` that are not in `old` with the same envelope: the
/// only ones admission judges by key state.
pub fn new_or_changed<'a>(
    new: &'a BTreeMap<String, String>,
    old: Option<&BTreeMap<String, String>>,
) -> impl Iterator<Item = (&'a String, &'a String)> {
    new.iter()
        .filter(move |(item, text)| old.and_then(|old| old.get(*item)) != Some(*text))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{HISTORY, item, key};
    use super::*;
    use serde_json::json;

    fn admit(state: &str, version: u32) -> Admit {
        may_seal(Some(&key(state, &HISTORY, json!({}))), &item(version))
    }

    fn refused(admit: Admit) -> String {
        match admit {
            Admit::Refuse(text) => text,
            other => panic!("admitted: {other:?}"),
        }
    }

    #[test]
    fn a_signing_key_takes_no_sealed_items() {
        let mut signing = key("Active", &HISTORY, json!({}));
        signing.spec.usage = KeyUsage::Sign;
        let text = refused(may_seal(Some(&signing), &item(3)));
        assert!(text.contains("a signing key (usage Sign)"), "{text}");
    }

    #[test]
    fn only_active_versions_take_new_items() {
        assert_eq!(admit("Active", 3), Admit::Yes);
        for (version, state) in [(1, "Destroyed"), (2, "Compromised"), (5, "PreActivation")] {
            let text = refused(admit("Active", version));
            assert!(
                text.starts_with(&format!(
                    "SealedSecret db item password is sealed under version {version} of ManagedKey team/app, which is {state}: "
                )),
                "{text}"
            );
        }
        // Still served, and what GitOps re-applies after a rotation: a warning.
        match admit("Active", 4) {
            Admit::Warn(text) => assert!(
                text.contains("version 4 of ManagedKey team/app, which is Deactivated")
                    && text.contains("keyward rewrap"),
                "{text}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(refused(admit("Suspended", 3)).contains("and that key is Suspended"));
        assert!(refused(admit("Active", 7)).contains("does not list"));
        // The override is for serving pods, not for taking new data.
        let overridden = key(
            "Active",
            &HISTORY,
            json!({super::super::serving::OVERRIDE: "2999-01-01T00:00:00Z"}),
        );
        assert!(matches!(
            may_seal(Some(&overridden), &item(2)),
            Admit::Refuse(_)
        ));
    }

    #[test]
    fn unknown_keys_and_states_are_admitted_with_a_warning() {
        let warned = |admit: Admit| match admit {
            Admit::Warn(text) => text,
            other => panic!("{other:?}"),
        };
        assert!(warned(may_seal(None, &item(1))).contains("team/app does not exist yet"));
        let fresh = key("Active", &[], json!({}));
        assert!(warned(may_seal(Some(&fresh), &item(1))).contains("no key states yet"));
    }

    #[test]
    fn only_new_and_changed_items_are_judged() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let old = map(&[("kept", "A"), ("changed", "B"), ("dropped", "C")]);
        let new = map(&[("kept", "A"), ("changed", "B2"), ("added", "D")]);
        let judged: Vec<&String> = new_or_changed(&new, Some(&old)).map(|(i, _)| i).collect();
        assert_eq!(judged, ["added", "changed"]);
        assert_eq!(new_or_changed(&new, None).count(), 3);
    }
}
