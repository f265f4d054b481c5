//! Sealing and opening all items of one secret: one fresh DEK per secret, one
//! fresh nonce per item, one provider call to unwrap them all.

use super::{Envelope, EnvelopeError, ItemError, SecretTarget};
use crate::crypto::{self, RsaPublicKey};
use crate::provider::{KeyProvider, WrapAlgorithm, WrappedDek};
use crate::secret::{Dek, SecretBytes};
use std::collections::BTreeMap;

/// A published public key, enough to seal without reaching the provider.
#[derive(Debug, Clone)]
pub struct PublicSealingKey {
    pub key: RsaPublicKey,
    pub key_version: u32,
    pub provider_key_id: String,
}

/// How the DEK of a newly sealed secret gets wrapped.
pub enum Wrapping<'a> {
    /// Ask the provider to wrap it with the key's primary version.
    Provider {
        provider: &'a dyn KeyProvider,
        key_id: &'a str,
    },
    /// Encrypt it with RSA-OAEP-SHA256 locally (offline sealing).
    PublicKey(&'a PublicSealingKey),
    /// A DEK made and wrapped elsewhere (online sealing: the cluster's
    /// answer to a data key request).
    DataKey {
        dek: &'a Dek,
        wrapped: &'a WrappedDek,
    },
}

/// Seals every item; returns item name -> envelope text.
pub async fn seal_secret(
    target: &SecretTarget,
    wrapping: Wrapping<'_>,
    items: &BTreeMap<String, SecretBytes>,
) -> Result<BTreeMap<String, String>, EnvelopeError> {
    validate_target(target)?;
    if items.is_empty() {
        return Err(EnvelopeError::InvalidInput(
            "there are no items to seal".into(),
        ));
    }
    if let Some(bad) = items.keys().find(|name| !is_valid_item_name(name)) {
        return Err(EnvelopeError::InvalidInput(format!(
            "item name `{bad}` is not a valid Secret key; use letters, digits, `-`, `_` or `.`"
        )));
    }
    let generated = Dek::generate();
    let (dek, wrapped) = match wrapping {
        Wrapping::Provider { provider, key_id } => {
            let wrapped = provider
                .wrap_dek(key_id, &generated, &target.wrap_context())
                .await?;
            (&generated, wrapped)
        }
        Wrapping::PublicKey(public) => {
            let wrapped = WrappedDek {
                key_id: public.provider_key_id.clone(),
                version: public.key_version,
                algorithm: WrapAlgorithm::RsaOaepSha256,
                blob: public.key.encrypt(generated.expose()),
            };
            (&generated, wrapped)
        }
        Wrapping::DataKey { dek, wrapped } => (dek, wrapped.clone()),
    };
    items
        .iter()
        .map(|(item, value)| {
            let envelope = Envelope::seal_with(
                target.item(item),
                &wrapped,
                dek,
                crypto::random_nonce(),
                value.expose(),
            )?;
            Ok((item.clone(), envelope.encode()?))
        })
        .collect()
}

/// Opens every item of a secret that is being read as `target`.
pub async fn open_secret(
    target: &SecretTarget,
    provider: &dyn KeyProvider,
    encrypted: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, SecretBytes>, ItemError> {
    let item_error = |item: &str, error: EnvelopeError| ItemError {
        item: item.to_owned(),
        error,
    };
    let mut parsed = Vec::with_capacity(encrypted.len());
    for (item, text) in encrypted {
        let envelope = Envelope::decode(text).map_err(|e| item_error(item, e))?;
        envelope
            .check_context(&target.item(item))
            .map_err(|e| item_error(item, e))?;
        parsed.push((item, envelope));
    }
    // Items sealed together share one wrapped DEK: unwrap each distinct one once.
    let mut deks: Vec<(WrappedDek, Dek)> = Vec::new();
    let mut opened = BTreeMap::new();
    for (item, envelope) in parsed {
        let wrapped = envelope.wrapped();
        let known = deks.iter().position(|(seen, _)| *seen == wrapped);
        let index = match known {
            Some(index) => index,
            None => {
                let dek = provider
                    .unwrap_dek(&wrapped, &target.wrap_context())
                    .await
                    .map_err(|e| item_error(item, e.into()))?;
                deks.push((wrapped, dek));
                deks.len() - 1
            }
        };
        let value = envelope
            .open_with(&deks[index].1)
            .map_err(|e| item_error(item, e))?;
        opened.insert(item.clone(), value);
    }
    Ok(opened)
}

fn validate_target(target: &SecretTarget) -> Result<(), EnvelopeError> {
    let missing = [
        ("namespace", &target.namespace),
        ("secret name", &target.secret_name),
        ("key reference", &target.key_ref),
    ]
    .into_iter()
    .find(|(_, value)| value.is_empty());
    match missing {
        Some((field, _)) => Err(EnvelopeError::InvalidInput(format!("the {field} is empty"))),
        None => Ok(()),
    }
}

/// The rule Kubernetes applies to `Secret` data keys.
pub fn is_valid_item_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
