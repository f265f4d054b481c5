//! Re-wrapping a secret's items onto a key's primary version: the pure
//! part shared by the operator's SealedSecret controller and the webhook's
//! `/v1/rewrap` (what to re-wrap and when is each caller's own policy).
//!
//! An item's header (key version, wrapped DEK, scope) is the AES-GCM AAD of
//! its ciphertext, so swapping in a new wrapped DEK alone would break every
//! item's tag: each item has to be decrypted and sealed again anyway. So
//! the old DEK is unwrapped once per distinct wrapped DEK, only to open
//! the items, and they are sealed under a **fresh** DEK wrapped under the
//! primary version. Re-wrapping is how values leave a compromised or
//! retired version, and whoever held that version's key (a leaked keyring,
//! a stolen KMS credential) may have unwrapped the old DEK: keeping it
//! would leave every copy of the new envelope open to them. A fresh DEK
//! costs nothing extra: one unwrap and one wrap either way. Plaintext
//! exists only in zeroizing buffers; nothing but envelopes is returned.

use super::{Envelope, EnvelopeError, ItemError, SecretTarget};
use crate::crypto;
use crate::provider::{KeyProvider, WrappedDek};
use crate::secret::Dek;
use std::collections::BTreeMap;

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
    /// (version, count) of wraps, for `versions[].operations`: the
    /// `maxOperations` limit is on encryptions (AES-GCM random nonces, NIST
    /// SP 800-38D); unwraps use no nonce and are not counted.
    pub operations: BTreeMap<u32, u64>,
}

/// Re-seals every item not on `primary` under a fresh DEK wrapped by the
/// provider's primary version. One unwrap per distinct old wrapped DEK,
/// one fresh DEK and one wrap per old DEK.
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
    // (old wrapped DEK, old DEK, fresh DEK, fresh DEK wrapped)
    let mut deks: Vec<(WrappedDek, Dek, Dek, WrappedDek)> = Vec::new();
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
        let index = match deks.iter().position(|(seen, ..)| *seen == old) {
            Some(index) => index,
            None => {
                let old_dek = provider
                    .unwrap_dek(&old, &context)
                    .await
                    .map_err(|e| item_error(item, e.into()))?;
                let fresh = Dek::generate();
                // Under `primary` or newer: a provider whose view lags a
                // rotation must not wrap under the previous version.
                let new = provider
                    .wrap_dek_with_version(key_id, primary, &fresh, &context)
                    .await
                    .map_err(|e| item_error(item, e.into()))?;
                *out.operations.entry(new.version).or_default() += 1;
                deks.push((old, old_dek, fresh, new));
                deks.len() - 1
            }
        };
        let (old, old_dek, fresh, new) = &deks[index];
        let plaintext = envelope
            .open_with(old_dek)
            .map_err(|e| item_error(item, e))?;
        // A version 1 value bound no ServiceAccounts: it now binds the
        // secret's spec.access; a version 2 value keeps the ones it has.
        let context = match envelope.context.access {
            Some(_) => envelope.context.clone(),
            None => target.item(item),
        };
        let resealed = Envelope::seal_with(
            context,
            new,
            fresh,
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
    use crate::SecretBytes;
    use crate::envelope::ScopeContext;
    use crate::envelope::{Scope, Wrapping, open_secret, seal_secret};
    use crate::local::{KeyringStore, LocalProvider, RootKey};
    use crate::provider::{KeyAlgorithm, KeySpec};

    /// A local keyring in a temporary directory, with one AES key.
    async fn local_key() -> (tempfile::TempDir, LocalProvider, crate::provider::KeyInfo) {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyringStore::new(dir.path(), RootKey::generate());
        let provider = LocalProvider::open_or_initialise(store).unwrap();
        let spec = KeySpec {
            name: "db".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: None,
            description: None,
        };
        let info = provider.create_key(&spec).await.unwrap();
        (dir, provider, info)
    }

    /// Rotates the key, then re-wraps `sealed` onto the new primary.
    async fn rotate_and_rewrap(
        target: &SecretTarget,
        sealed: &BTreeMap<String, String>,
        provider: &LocalProvider,
        key_id: &str,
    ) -> Rewrapped {
        let rotated = provider.rotate_key(key_id).await.unwrap();
        rewrap(target, sealed, key_id, rotated.primary_version, provider)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn rewrapped_items_open_under_the_new_version_and_keep_their_values() {
        let (_dir, provider, info) = local_key().await;
        let target = SecretTarget {
            scope: Scope::Strict,
            namespace: "apps".into(),
            secret_name: "creds".into(),
            key_ref: "apps/db".into(),
            access: Vec::new(),
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
        let out = rotate_and_rewrap(&target, &sealed, &provider, &info.key_id).await;
        assert_eq!(out.items, ["password", "user"]);
        assert_eq!((out.from.as_slice(), out.to), (&[1][..], 2));
        assert_eq!(
            out.operations,
            [(2, 1)].into(),
            "one DEK: one wrap under v2, the unwrap not counted"
        );
        for text in out.data.values() {
            let envelope = Envelope::decode(text).unwrap();
            assert_eq!(envelope.key_version, 2);
        }
        // Sealed under a fresh DEK: whoever unwrapped the old one (a leaked
        // version 1) learns nothing from the new envelopes.
        let context = target.wrap_context();
        let dek_of = |text: &String| {
            let wrapped = Envelope::decode(text).unwrap().wrapped();
            let provider = &provider;
            let context = &context;
            async move { provider.unwrap_dek(&wrapped, context).await.unwrap() }
        };
        let old_dek = dek_of(&sealed["password"]).await;
        let new_dek = dek_of(&out.data["password"]).await;
        assert_ne!(old_dek.expose(), new_dek.expose(), "the old DEK was kept");
        assert_eq!(
            new_dek.expose(),
            dek_of(&out.data["user"]).await.expose(),
            "items that shared a DEK share the fresh one"
        );
        let opened = open_secret(&target, &provider, &out.data).await.unwrap();
        assert_eq!(opened["password"].expose(), b"hunter2");
        assert_eq!(opened["user"].expose(), b"admin");
        // The Git copy still opens while version 1 decrypts.
        let old = open_secret(&target, &provider, &sealed).await.unwrap();
        assert_eq!(old["password"].expose(), b"hunter2");
        // Sealed with version 2, each value binds the target's (empty)
        // access list, and keeps it.
        assert!(out.data.values().all(|t| {
            Envelope::decode(t)
                .unwrap()
                .context
                .access
                .is_some_and(|a| a.is_empty())
        }));
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

    #[tokio::test]
    async fn a_version_1_value_binds_the_secrets_access_once_re_wrapped() {
        let (_dir, provider, info) = local_key().await;
        let target = SecretTarget {
            scope: Scope::Namespace,
            namespace: "apps".into(),
            secret_name: "creds".into(),
            key_ref: "apps/db".into(),
            access: vec!["api".into()],
        };
        // A version 1 value, as sealed before access was bound.
        let context = target.wrap_context();
        let dek = Dek::generate();
        let wrapped = provider
            .wrap_dek(&info.key_id, &dek, &context)
            .await
            .unwrap();
        let unbound = ScopeContext {
            access: None,
            ..target.item("token")
        };
        let old = Envelope::seal_with(unbound, &wrapped, &dek, [3; 12], b"t0ken")
            .unwrap()
            .encode()
            .unwrap();
        let sealed: BTreeMap<String, String> = [("token".to_owned(), old)].into();
        let out = rotate_and_rewrap(&target, &sealed, &provider, &info.key_id).await;
        let envelope = Envelope::decode(&out.data["token"]).unwrap();
        assert_eq!(envelope.context.access, Some(vec!["api".to_owned()]));
        // Now copying it into a SealedSecret without spec.access fails.
        let anyone = SecretTarget {
            access: Vec::new(),
            ..target.clone()
        };
        let copied = open_secret(&anyone, &provider, &out.data)
            .await
            .unwrap_err();
        assert!(matches!(copied.error, EnvelopeError::AccessWidened { .. }));
        assert_eq!(
            open_secret(&target, &provider, &out.data).await.unwrap()["token"].expose(),
            b"t0ken"
        );
    }
}
