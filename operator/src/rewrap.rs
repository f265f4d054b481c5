//! Re-wrapping a SealedSecret onto its key's primary version.
//!
//! An item's header (key version, wrapped DEK, scope) is the AES-GCM AAD of
//! its ciphertext, so swapping in a new wrapped DEK alone would break every
//! item's tag. Recomputing the tag needs the DEK, so the operator unwraps the
//! DEK once per secret, wraps it under the primary version (the two calls
//! `KeyProvider::rewrap` makes by default) and re-seals each item with the
//! same DEK and a fresh nonce under the new header. Reusing the old nonce
//! under a different AAD would leak GCM's hash key, so it is not an option.
//! Plaintext exists only inside the operator, in zeroizing buffers; nothing
//! is logged or returned but envelopes.

use keyward_core::crypto;
use keyward_core::envelope::{Envelope, EnvelopeError, ItemError, SecretTarget};
use keyward_core::provider::WrappedDek;
use keyward_core::{Dek, KeyProvider};
use keyward_crds::{KeyState, ManagedKeyStatus, RewrapMode, SealedSecret};
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
/// only from versions that still decrypt (Deactivated or Compromised).
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
        match key.version(*version).map(|v| v.state) {
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
pub fn target_of(secret: &SealedSecret) -> Option<SecretTarget> {
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
    })
}

/// The re-wrapped items and the provider operations it took.
#[derive(Debug, Default)]
pub struct Rewrapped {
    /// Every item: re-sealed ones replaced, the rest as they were.
    pub data: BTreeMap<String, String>,
    /// Names of the items that were re-sealed.
    pub items: Vec<String>,
    /// Versions the items were on before.
    pub from: Vec<u32>,
    /// The version they are on now.
    pub to: u32,
    /// (version, count) of unwraps and wraps, for `versions[].operations`.
    pub operations: BTreeMap<u32, u64>,
}

/// Re-seals every item not on `primary` under the provider's primary
/// version. One unwrap per distinct wrapped DEK, one wrap per DEK.
pub async fn rewrap(
    target: &SecretTarget,
    encrypted: &BTreeMap<String, String>,
    key_id: &str,
    primary: u32,
    provider: &dyn KeyProvider,
) -> Result<Rewrapped, ItemError> {
    let item_error = |item: &str, error: EnvelopeError| ItemError {
        item: item.to_owned(),
        error,
    };
    let context = target.wrap_context();
    let mut out = Rewrapped {
        to: primary,
        ..Rewrapped::default()
    };
    // (old wrapped DEK, DEK, new wrapped DEK)
    let mut deks: Vec<(WrappedDek, Dek, WrappedDek)> = Vec::new();
    for (item, text) in encrypted {
        let envelope = Envelope::decode(text).map_err(|e| item_error(item, e))?;
        if envelope.key_version == primary && envelope.provider_key_id == key_id {
            out.data.insert(item.clone(), text.clone());
            continue;
        }
        envelope
            .check_context(&target.item(item))
            .map_err(|e| item_error(item, e))?;
        let old = envelope.wrapped();
        let index = match deks.iter().position(|(seen, _, _)| *seen == old) {
            Some(index) => index,
            None => {
                let dek = provider
                    .unwrap_dek(&old, &context)
                    .await
                    .map_err(|e| item_error(item, e.into()))?;
                let new = provider
                    .wrap_dek(key_id, &dek, &context)
                    .await
                    .map_err(|e| item_error(item, e.into()))?;
                *out.operations.entry(old.version).or_default() += 1;
                *out.operations.entry(new.version).or_default() += 1;
                deks.push((old, dek, new));
                deks.len() - 1
            }
        };
        let (old, dek, new) = &deks[index];
        let plaintext = envelope.open_with(dek).map_err(|e| item_error(item, e))?;
        let resealed = Envelope::seal_with(
            envelope.context.clone(),
            new,
            dek,
            crypto::random_nonce(),
            plaintext.expose(),
        )
        .and_then(|e| e.encode())
        .map_err(|e| item_error(item, e))?;
        out.data.insert(item.clone(), resealed);
        out.items.push(item.clone());
        if !out.from.contains(&old.version) {
            out.from.push(old.version);
        }
        out.to = new.version;
    }
    out.from.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::SecretBytes;
    use keyward_core::envelope::{Scope, Wrapping, open_secret, seal_secret};
    use keyward_core::local::{KeyringStore, LocalProvider, RootKey};
    use keyward_core::provider::{KeyAlgorithm, KeySpec};
    use keyward_crds::KeyVersionStatus;

    fn version(version: u32, state: KeyState) -> KeyVersionStatus {
        KeyVersionStatus {
            version,
            provider_version_id: None,
            state,
            created_at: None,
            activated_at: None,
            deactivated_at: None,
            destroy_scheduled_at: None,
            destroyed_at: None,
            operations: 0,
            dependants: 0,
        }
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
        let compromised = key(&[Compromised, Active]);
        assert_eq!(
            decide(&items(&[1]), &compromised, RewrapMode::Manual, false),
            Some(Reason::Compromised)
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
    async fn rewrapped_items_open_under_the_new_version_and_keep_their_values() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyringStore::new(dir.path(), RootKey::generate());
        let provider = LocalProvider::open_or_initialise(store).unwrap();
        let info = provider
            .create_key(&KeySpec {
                name: "db".into(),
                algorithm: KeyAlgorithm::Aes256,
                owner: None,
                description: None,
            })
            .await
            .unwrap();
        let target = SecretTarget {
            scope: Scope::Strict,
            namespace: "apps".into(),
            secret_name: "creds".into(),
            key_ref: "apps/db".into(),
        };
        let values: BTreeMap<String, SecretBytes> = [
            ("user".to_owned(), SecretBytes::new(b"admin".to_vec())),
            ("password".to_owned(), SecretBytes::new(b"hunter2".to_vec())),
        ]
        .into();
        let sealed = seal_secret(
            &target,
            Wrapping::Provider {
                provider: &provider,
                key_id: &info.key_id,
            },
            &values,
        )
        .await
        .unwrap();
        let rotated = provider.rotate_key(&info.key_id).await.unwrap();
        let out = rewrap(
            &target,
            &sealed,
            &info.key_id,
            rotated.primary_version,
            &provider,
        )
        .await
        .unwrap();
        assert_eq!(out.items, ["password", "user"]);
        assert_eq!((out.from.as_slice(), out.to), (&[1][..], 2));
        assert_eq!(
            out.operations,
            [(1, 1), (2, 1)].into(),
            "one DEK, one of each"
        );
        for text in out.data.values() {
            let envelope = Envelope::decode(text).unwrap();
            assert_eq!(envelope.key_version, 2);
        }
        let opened = open_secret(&target, &provider, &out.data).await.unwrap();
        assert_eq!(opened["password"].expose(), b"hunter2");
        assert_eq!(opened["user"].expose(), b"admin");
        // The Git copy still opens while version 1 decrypts.
        let old = open_secret(&target, &provider, &sealed).await.unwrap();
        assert_eq!(old["password"].expose(), b"hunter2");
        // Already on the primary: untouched, no provider call.
        let again = rewrap(&target, &out.data, &info.key_id, 2, &provider)
            .await
            .unwrap();
        assert!(again.items.is_empty() && again.operations.is_empty());
        assert_eq!(again.data, out.data);
        // Opened as another secret: refused before any provider call.
        let elsewhere = SecretTarget {
            secret_name: "other".into(),
            ..target.clone()
        };
        let error = rewrap(&elsewhere, &sealed, &info.key_id, 2, &provider)
            .await
            .unwrap_err();
        assert!(matches!(error.error, EnvelopeError::ContextMismatch { .. }));
    }
}
