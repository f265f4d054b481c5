//! Whether a SealedSecret may use a ManagedKey of another namespace: only
//! when the key's owner granted that namespace (`spec.shareWith`). Without
//! this, anyone who may create SealedSecrets anywhere could make any key
//! open their values, and pin its versions. The webhook (admission,
//! unseal, `/v1/rewrap`) and the operator (re-wrap, materialisation) ask
//! the same question here.
//!
//! A key that does not exist grants nothing. Admission lets such a
//! SealedSecret in with a warning (a GitOps applier may apply it before
//! the key); everything else refuses it until the key exists and grants.

use crate::ManagedKey;

/// Whether the SealedSecret's namespace may use the key it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sharing {
    /// Same namespace, or granted.
    Granted,
    /// Another namespace's key that does not exist (yet).
    Unknown(String),
    /// Another namespace's key that does not grant this one.
    Refused(String),
}

impl Sharing {
    /// Why the key may not be used, when it may not.
    pub fn refusal(self) -> Option<String> {
        match self {
            Sharing::Granted => None,
            Sharing::Unknown(why) | Sharing::Refused(why) => Some(why),
        }
    }
}

/// Whether SealedSecrets of `namespace` may use `key`, the ManagedKey
/// `reference` (`namespace/name`) of namespace `owner`, as read (`None`:
/// it does not exist).
pub fn sharing(key: Option<&ManagedKey>, owner: &str, reference: &str, namespace: &str) -> Sharing {
    if owner == namespace {
        return Sharing::Granted;
    }
    match key {
        Some(found) if found.is_shared_with(namespace) => Sharing::Granted,
        Some(_) => Sharing::Refused(format!(
            "ManagedKey {reference} is not shared with namespace {namespace}: its owner must add \
             `{namespace}` to spec.shareWith.namespaces of that key, or seal under a key in \
             namespace {namespace}"
        )),
        None => Sharing::Unknown(format!(
            "ManagedKey {reference} does not exist, so nothing shares it with namespace \
             {namespace}; create it in namespace {owner} with `{namespace}` in \
             spec.shareWith.namespaces, or seal under a key in namespace {namespace}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(share_with: serde_json::Value) -> ManagedKey {
        serde_json::from_value(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": {"name": "app", "namespace": "team"},
            "spec": {"provider": {"local": {}}, "shareWith": share_with},
        }))
        .unwrap()
    }

    /// Whether SealedSecrets of `namespace` may use ManagedKey team/app.
    fn of(key: Option<ManagedKey>, namespace: &str) -> Sharing {
        sharing(key.as_ref(), "team", "team/app", namespace)
    }

    #[test]
    fn a_key_serves_its_own_namespace_and_only_the_ones_it_names() {
        let listed = key(json!({"namespaces": ["billing"]}));
        assert_eq!(of(Some(listed.clone()), "team"), Sharing::Granted);
        assert_eq!(of(Some(listed.clone()), "billing"), Sharing::Granted);
        let Sharing::Refused(why) = of(Some(listed), "intruder") else {
            panic!("an unlisted namespace was granted");
        };
        assert!(
            why.contains("not shared with namespace intruder")
                && why.contains("spec.shareWith.namespaces"),
            "{why}"
        );
        let every = key(json!({"namespaces": ["*"]}));
        assert_eq!(of(Some(every), "anyone"), Sharing::Granted);
        // Omitted and empty grant nothing beyond the key's own namespace.
        let none = key(json!({"namespaces": []}));
        assert!(matches!(of(Some(none), "billing"), Sharing::Refused(_)));
    }

    #[test]
    fn a_missing_key_of_another_namespace_grants_nothing() {
        assert!(matches!(of(None, "billing"), Sharing::Unknown(_)));
        // Its own namespace needs no grant, whether or not the key exists.
        assert_eq!(of(None, "team"), Sharing::Granted);
    }
}
