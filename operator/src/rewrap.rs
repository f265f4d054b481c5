//! Re-wrapping a SealedSecret onto its key's primary version: when (the
//! policy, `decide`) here; how (`rewrap`) in `keyward_core::envelope::rewrap`.
//!
//! An item's header (key version, wrapped DEK, scope) is the AES-GCM AAD of
//! its ciphertext, so every item is opened and sealed again: under a fresh
//! DEK wrapped by the primary version, as whoever held a retired or
//! compromised version may have unwrapped the old DEK.
//! Plaintext exists only inside the operator, in zeroizing buffers; nothing
//! is logged or returned but envelopes.

use crate::sealed_view::SealedView;
use keyward_core::envelope::SecretTarget;
use keyward_crds::{KeyState, ManagedKeyStatus, RewrapMode};
use std::collections::BTreeMap;

/// Why a secret is re-wrapped; also the metric and audit label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// An item uses a Compromised version: always, whatever the policy.
    Compromised,
    /// `rewrap: Eager` and an item uses a Deactivated version.
    Eager,
    /// `rewrap: Lazy` and the secret changed for another reason.
    Lazy,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Compromised => "compromised",
            Reason::Eager => "eager",
            Reason::Lazy => "lazy",
        }
    }
}

/// Whether the items (item -> (version, provider key id)) should be
/// re-wrapped now. Only onto an Active primary of the same provider key, and
/// only from versions that still decrypt (Deactivated or Compromised, and
/// not pending destruction).
/// `touched`: the secret's spec changed since the operator last saw it.
pub fn decide(
    items: &BTreeMap<String, (u32, String)>,
    key: &ManagedKeyStatus,
    mode: RewrapMode,
    touched: bool,
) -> Option<Reason> {
    let primary = key.primary_version?;
    let key_id = key.provider_key_id.as_deref()?;
    if key.state != Some(KeyState::Active)
        || key.version(primary).map(|v| v.state) != Some(KeyState::Active)
        || items.values().any(|(_, id)| id != key_id)
    {
        return None;
    }
    let mut reason = None;
    for (version, _) in items.values().filter(|(v, _)| *v != primary) {
        let status = key.version(*version);
        // Pending destruction: disabled at the provider, nothing to re-wrap from.
        if status.is_some_and(|v| v.destroy_scheduled_at.is_some()) {
            continue;
        }
        match status.map(|v| v.state) {
            Some(KeyState::Compromised) => return Some(Reason::Compromised),
            Some(KeyState::Deactivated) => {
                reason = reason.or(match mode {
                    RewrapMode::Eager => Some(Reason::Eager),
                    RewrapMode::Lazy if touched => Some(Reason::Lazy),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    reason
}

/// The context a SealedSecret's items are opened as (as `keyward unseal`).
pub fn target_of(secret: &SealedView) -> Option<SecretTarget> {
    let namespace = secret.metadata.namespace.clone()?;
    let secret_name = secret.metadata.name.clone()?;
    let key_namespace = secret.key_namespace().unwrap_or(&namespace).to_owned();
    Some(SecretTarget {
        scope: match secret.spec.scope {
            keyward_crds::Scope::Strict => keyward_core::envelope::Scope::Strict,
            keyward_crds::Scope::Namespace => keyward_core::envelope::Scope::Namespace,
        },
        key_ref: format!("{key_namespace}/{}", secret.spec.key_ref.name),
        namespace,
        secret_name,
        access: secret.service_accounts(),
    })
}

/// The pure part lives in keyward-core, shared with the webhook's
/// /v1/rewrap; its `operations` are the wraps `maxOperations` counts (see
/// managed_key/max_operations.rs).
pub use keyward_core::envelope::rewrap::{Rewrapped, rewrap};

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_crds::KeyVersionStatus;

    fn version(version: u32, state: KeyState) -> KeyVersionStatus {
        KeyVersionStatus::new(version, state)
    }

    fn key(states: &[KeyState]) -> ManagedKeyStatus {
        ManagedKeyStatus {
            provider_key_id: Some("k1".into()),
            primary_version: Some(u32::try_from(states.len()).unwrap()),
            state: Some(KeyState::Active),
            versions: states
                .iter()
                .enumerate()
                .map(|(i, s)| version(u32::try_from(i).unwrap() + 1, *s))
                .collect(),
            ..ManagedKeyStatus::default()
        }
    }

    fn items(versions: &[u32]) -> BTreeMap<String, (u32, String)> {
        versions
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("i{i}"), (*v, "k1".to_owned())))
            .collect()
    }

    #[test]
    fn the_policy_mode_decides_except_after_a_compromise() {
        use KeyState::*;
        let rotated = key(&[Deactivated, Active]);
        assert_eq!(
            decide(&items(&[1, 2]), &rotated, RewrapMode::Eager, false),
            Some(Reason::Eager)
        );
        assert_eq!(
            decide(&items(&[1]), &rotated, RewrapMode::Lazy, false),
            None
        );
        assert_eq!(
            decide(&items(&[1]), &rotated, RewrapMode::Lazy, true),
            Some(Reason::Lazy)
        );
        assert_eq!(
            decide(&items(&[1]), &rotated, RewrapMode::Manual, true),
            None
        );
        assert_eq!(
            decide(&items(&[2]), &rotated, RewrapMode::Eager, true),
            None
        );
        let mut compromised = key(&[Compromised, Active]);
        assert_eq!(
            decide(&items(&[1]), &compromised, RewrapMode::Manual, false),
            Some(Reason::Compromised)
        );
        // Pending destruction: disabled at the provider, so not tried.
        compromised.versions[0].destroy_scheduled_at =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(
            decide(&items(&[1]), &compromised, RewrapMode::Manual, false),
            None
        );
        // Nothing to re-wrap onto, or from.
        assert_eq!(
            decide(
                &items(&[1]),
                &key(&[Deactivated, Suspended]),
                RewrapMode::Eager,
                false
            ),
            None
        );
        assert_eq!(
            decide(
                &items(&[1]),
                &key(&[Destroyed, Active]),
                RewrapMode::Eager,
                false
            ),
            None
        );
        let mut other = items(&[1]);
        other.insert("x".into(), (1, "another-key".into()));
        assert_eq!(decide(&other, &rotated, RewrapMode::Eager, false), None);
    }

    #[tokio::test]
    async fn only_wraps_are_counted_one_per_dek() {
        use keyward_core::envelope::{Scope, Wrapping, seal_secret};
        use keyward_core::local::{KeyringStore, LocalProvider, RootKey};
        use keyward_core::provider::{KeyAlgorithm, KeySpec};
        use keyward_core::{KeyProvider, SecretBytes};
        let dir = tempfile::tempdir().unwrap();
        let store = KeyringStore::new(dir.path(), RootKey::generate());
        let provider = LocalProvider::open_or_initialise(store).unwrap();
        let spec = KeySpec {
            name: "db".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: None,
            description: None,
        };
        let key_id = provider.create_key(&spec).await.unwrap().key_id;
        let target = SecretTarget {
            scope: Scope::Strict,
            namespace: "apps".into(),
            secret_name: "creds".into(),
            key_ref: "apps/db".into(),
            access: Vec::new(),
        };
        let wrapping = || Wrapping::Provider {
            provider: &provider,
            key_id: &key_id,
        };
        let value = |v: &[u8]| SecretBytes::new(v.to_vec());
        // Two items under one DEK, a third sealed separately under another.
        let mut sealed = seal_secret(
            &target,
            wrapping(),
            &[("user".into(), value(b"admin")), ("pw".into(), value(b"x"))].into(),
        )
        .await
        .unwrap();
        sealed.extend(
            seal_secret(&target, wrapping(), &[("pin".into(), value(b"0"))].into())
                .await
                .unwrap(),
        );
        provider.rotate_key(&key_id).await.unwrap();
        let done = rewrap(&target, &sealed, &key_id, 2, &provider)
            .await
            .unwrap();
        assert_eq!(done.items.len(), 3);
        assert_eq!(done.operations, [(2, 2)].into(), "two DEKs, no unwraps");
        let again = rewrap(&target, &done.data, &key_id, 2, &provider)
            .await
            .unwrap();
        assert!(again.operations.is_empty());
    }
}
