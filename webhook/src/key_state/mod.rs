//! What a ManagedKey's reported lifecycle state allows, for the three
//! places that read it: unseal serves pods only from versions that may
//! ([`serving`]), admission takes new or changed items only under Active
//! versions ([`sealing`]), and rewrap and online sealing wrap only under
//! an Active key ([`wrapping`]).
//!
//! ManagedKeys are read from the API server when needed, once per request
//! per key ([`Keys`]) and never cached across requests: a state the
//! operator has just reported (a compromise) applies to the next request.

pub mod sealing;
pub mod serving;
pub mod sharing;
pub mod wrapping;

use keyward_core::envelope::Envelope;
use keyward_crds::{KeyState, ManagedKey, SealedSecret};
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The ManagedKeys one request has read, each read once.
pub struct Keys {
    client: Client,
    read: BTreeMap<(String, String), Option<Arc<ManagedKey>>>,
}

/// A SealedSecret's ManagedKey as read: `namespace/name` for messages and
/// the object, `None` when it does not exist.
pub struct KeyOf {
    pub reference: String,
    pub key_namespace: String,
    /// The SealedSecret's namespace, which the key must be shared with.
    pub secret_namespace: String,
    pub key: Option<Arc<ManagedKey>>,
}

impl KeyOf {
    /// The version the cluster reports primary. Wrap under it, not the
    /// provider's own view, which may lag a rotation (the local keyring's
    /// read cache).
    pub fn primary_version(&self) -> Option<u32> {
        (self.key.as_deref())
            .and_then(|k| k.status.as_ref())
            .and_then(|s| s.primary_version)
    }
}

impl Keys {
    pub fn new(client: Client) -> Self {
        Keys {
            client,
            read: BTreeMap::new(),
        }
    }

    /// The ManagedKey `spec.keyRef` names; its namespace defaults to
    /// `namespace`, the SealedSecret's.
    pub async fn of(
        &mut self,
        sealed: &SealedSecret,
        namespace: &str,
    ) -> Result<KeyOf, kube::Error> {
        let key_ref = &sealed.spec.key_ref;
        let key_namespace = key_ref.namespace.as_deref().unwrap_or(namespace);
        let id = (key_namespace.to_owned(), key_ref.name.clone());
        let of = |key| KeyOf {
            reference: format!("{}/{}", id.0, id.1),
            key_namespace: key_namespace.to_owned(),
            secret_namespace: namespace.to_owned(),
            key,
        };
        if let Some(key) = self.read.get(&id) {
            return Ok(of(key.clone()));
        }
        let key = Api::<ManagedKey>::namespaced(self.client.clone(), key_namespace)
            .get_opt(&key_ref.name)
            .await?
            .map(Arc::new);
        self.read.insert(id.clone(), key.clone());
        Ok(of(key))
    }
}

/// One item as its envelope header names its key: what the state checks
/// need to know and to say.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub secret: &'a str,
    pub item: &'a str,
    /// `namespace/name` of the ManagedKey.
    pub key: &'a str,
    pub provider_key_id: &'a str,
    pub version: u32,
}

impl<'a> Item<'a> {
    pub fn new(secret: &'a str, item: &'a str, key: &'a str, envelope: &'a Envelope) -> Self {
        Item {
            secret,
            item,
            key,
            provider_key_id: &envelope.provider_key_id,
            version: envelope.key_version,
        }
    }
}

/// What a ManagedKey reports about the version an item is sealed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// No such ManagedKey.
    NoKey,
    /// The key exists, but the operator has reported no state or no
    /// versions yet (just created, or the operator is not running).
    NotYet,
    /// The item is sealed under another provider key than the ManagedKey's,
    /// so its version number says nothing about this key.
    OtherProviderKey(String),
    /// The key lists versions, but not this one.
    UnknownVersion,
    /// The version's own state, or the key's when the key-wide state stops
    /// every version (`key_wide`).
    State { state: KeyState, key_wide: bool },
}

/// Reads `key`'s status for `item`. A version's own state wins when it
/// stops the version (Compromised, Destroyed, ...); otherwise a key that is
/// Suspended or Destroyed as a whole stops it too: the key's state is its
/// primary version's, and Suspended means "unusable for anything".
pub fn reported(key: Option<&ManagedKey>, item: &Item) -> Reported {
    let Some(key) = key else {
        return Reported::NoKey;
    };
    let Some((status, key_state)) = key
        .status
        .as_ref()
        .and_then(|status| Some((status, status.state?)))
    else {
        return Reported::NotYet;
    };
    if let Some(reported) = &status.provider_key_id
        && reported != item.provider_key_id
    {
        return Reported::OtherProviderKey(reported.clone());
    }
    let version = status.version(item.version).map(|v| v.state);
    match version {
        Some(state) if !state.can_unseal_for_pods() => Reported::State {
            state,
            key_wide: false,
        },
        _ if matches!(key_state, KeyState::Suspended | KeyState::Destroyed) => Reported::State {
            state: key_state,
            key_wide: true,
        },
        Some(state) => Reported::State {
            state,
            key_wide: false,
        },
        None if status.versions.is_empty() => Reported::NotYet,
        None => Reported::UnknownVersion,
    }
}

/// "SealedSecret db item password is sealed under version 2 of ManagedKey
/// team/app, which is Compromised" (or "..., and ManagedKey team/app is
/// Suspended"): the first half of every refusal.
pub fn sealed_under(item: &Item, state: KeyState, key_wide: bool) -> String {
    let Item {
        secret,
        item: name,
        key,
        version,
        ..
    } = *item;
    let head = format!(
        "SealedSecret {secret} item {name} is sealed under version {version} of ManagedKey {key}"
    );
    if key_wide {
        format!("{head}, and that key is {state}")
    } else {
        format!("{head}, which is {state}")
    }
}

/// What to do about an item under a version in `state`.
pub fn advice(state: KeyState) -> &'static str {
    match state {
        KeyState::Compromised => {
            "re-seal it (keyward seal) or re-wrap it (keyward rewrap) onto the current primary version"
        }
        // Only admission warns of these: they still serve pods.
        KeyState::Deactivated => {
            "it still serves, but re-wrap it (keyward rewrap) onto the current primary version and commit, and seal new values with the current public key"
        }
        KeyState::Destroyed => "its key material is gone: re-seal the value (keyward seal)",
        KeyState::Suspended => {
            "it serves nothing until the key is Active again (spec.state: Active)"
        }
        KeyState::PreActivation => {
            "activate the key first (spec.state: Active or spec.activateAt), or re-seal it (keyward seal) under an Active key"
        }
        KeyState::Active => "",
    }
}

/// The refusal for an item under another provider key than its ManagedKey's.
pub fn other_provider_key(item: &Item, reported: &str) -> String {
    format!(
        "SealedSecret {} item {} is sealed under provider key `{}`, but ManagedKey {} is \
         provider key `{reported}`: re-seal it (keyward seal) under this key",
        item.secret,
        item.item,
        crate::unseal::validate::shown(item.provider_key_id),
        item.key
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A version in each state.
    pub const HISTORY: [(u32, &str); 5] = [
        (1, "Destroyed"),
        (2, "Compromised"),
        (3, "Active"),
        (4, "Deactivated"),
        (5, "PreActivation"),
    ];

    /// ManagedKey `team/app` (provider key `k1`), key-wide `state`, with
    /// `versions` as (number, state).
    pub fn key(state: &str, versions: &[(u32, &str)], annotations: Value) -> ManagedKey {
        let versions: Vec<Value> = versions
            .iter()
            .map(|(v, s)| json!({"version": v, "state": s}))
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": {"name": "app", "namespace": "team", "annotations": annotations},
            "spec": {"provider": {"local": {}}},
            "status": {"providerKeyId": "k1", "state": state, "primaryVersion": 3,
                       "versions": versions},
        }))
        .unwrap()
    }

    pub fn item(version: u32) -> Item<'static> {
        Item {
            secret: "db",
            item: "password",
            key: "team/app",
            provider_key_id: "k1",
            version,
        }
    }

    fn state(state: KeyState, key_wide: bool) -> Reported {
        Reported::State { state, key_wide }
    }

    #[test]
    fn a_version_reads_its_own_state_unless_the_key_stops_everything() {
        use KeyState::*;
        let history = [(1, "Destroyed"), (2, "Compromised"), (3, "Active")];
        let active = key("Active", &[(1, "Deactivated"), (3, "Active")], json!({}));
        assert_eq!(reported(Some(&active), &item(3)), state(Active, false));
        assert_eq!(reported(Some(&active), &item(1)), state(Deactivated, false));
        assert_eq!(reported(Some(&active), &item(2)), Reported::UnknownVersion);

        let suspended = key("Suspended", &history, json!({}));
        assert_eq!(reported(Some(&suspended), &item(3)), state(Suspended, true));
        // The version's own, worse state is the one to name.
        assert_eq!(
            reported(Some(&suspended), &item(2)),
            state(Compromised, false)
        );
        assert_eq!(
            reported(Some(&suspended), &item(1)),
            state(Destroyed, false)
        );
        let destroyed = key("Destroyed", &[(1, "Deactivated")], json!({}));
        assert_eq!(reported(Some(&destroyed), &item(1)), state(Destroyed, true));
    }

    #[test]
    fn absent_keys_status_and_versions_are_not_yet_known() {
        assert_eq!(reported(None, &item(1)), Reported::NoKey);
        let mut key = key("Active", &[], json!({}));
        assert_eq!(reported(Some(&key), &item(1)), Reported::NotYet);
        key.status.as_mut().unwrap().state = None;
        assert_eq!(reported(Some(&key), &item(1)), Reported::NotYet);
        key.status = None;
        assert_eq!(reported(Some(&key), &item(1)), Reported::NotYet);
    }

    #[test]
    fn another_provider_key_is_not_this_keys_version() {
        let key = key("Active", &[(1, "Active")], json!({}));
        let foreign = Item {
            provider_key_id: "k2",
            ..item(1)
        };
        assert_eq!(
            reported(Some(&key), &foreign),
            Reported::OtherProviderKey("k1".into())
        );
        let text = other_provider_key(&foreign, "k1");
        assert!(
            text.contains("`k2`") && text.contains("keyward seal"),
            "{text}"
        );
    }
}
