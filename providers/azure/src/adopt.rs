//! Adopting a Key Vault key made outside Keyward (Terraform, `az keyvault
//! key create`, the portal) as version 1 of a Keyward key: its current
//! version is tagged as Keyward's (`keyward-version=1`, the algorithm, the
//! owner), after which the key is read like one
//! Keyward made and rotations add versions to it. Its older versions stay
//! as they are; Keyward neither uses nor deletes them.
//!
//! Terraform users: keep Terraform from removing the tags, e.g. with
//! `lifecycle { ignore_changes = [tags] }` on the `azurerm_key_vault_key`.

use crate::errors::{At, from_azure};
use crate::naming::{self, ALGORITHM_TAG, OWNER_TAG, VERSION_TAG, is_keywards};
use crate::provider::AzureKeyVaultProvider;
use crate::versions::{Version, Versions};
use azure_security_keyvault_keys::models::{CurveName, JsonWebKey, KeyOperation, KeyType};
use keyward_core::provider::{KeyAlgorithm, KeyInfo, KeySpec, ProviderError, Result};
use std::time::SystemTime;

/// Key Vault's most tags on one version.
const MAX_TAGS: usize = 15;
/// Tags Keyward may keep on a version: version, algorithm, owner, cluster,
/// claimed-at and destroy-at. (No adoption mark: it would be a seventh, and
/// the audit log records the adoption.)
const KEYWARDS_TAGS: usize = 6;

impl AzureKeyVaultProvider {
    pub(crate) async fn adopt_existing(&self, reference: &str, spec: &KeySpec) -> Result<KeyInfo> {
        let name = self.adoptable_name(reference)?;
        let ours = self.keyward_versions(&name).await;
        match ours {
            // Adopted before (a retry, or the same manifest in a cluster
            // rebuilt from Git): the key as it is now, rotations and all.
            Ok(list) if !list.is_empty() => {
                let existing = Versions::new(&name, list)?.info(self.key_id_of(&name), None)?;
                if spec.owner.is_none() || existing.owner != spec.owner {
                    return Err(ProviderError::InvalidRequest(format!(
                        "Key Vault key `{reference}` is already a Keyward key ({}); adopt a key only once, or use the ManagedKey that has it",
                        existing.owner.as_deref().unwrap_or("no keyward-owner tag")
                    )));
                }
                return Self::matching_existing(existing, spec);
            }
            Ok(_) => {}
            Err(ProviderError::UnknownKey(_)) => {
                return Err(match self.deleted(&name).await? {
                    Some(_) => ProviderError::InvalidRequest(format!(
                        "Key Vault key `{reference}` is soft-deleted; recover it (az keyvault key recover) before adopting it"
                    )),
                    None => ProviderError::InvalidRequest(format!(
                        "no key `{name}` in vault {}; check spec.existingKey",
                        self.config().vault_url
                    )),
                });
            }
            Err(other) => return Err(other),
        }
        let at = At::key(&name);
        let current = self
            .client()
            .get_key(&name, None)
            .await
            .map_err(|e| from_azure(&e, at))?
            .into_model()
            .map_err(|e| from_azure(&e, at))?;
        let jwk = current.key.as_ref().ok_or_else(|| {
            ProviderError::Unavailable(format!("Key Vault returned no JWK for `{name}`"))
        })?;
        fits(jwk, spec.algorithm, reference)?;
        if current.managed == Some(true) {
            return Err(ProviderError::InvalidRequest(format!(
                "Key Vault key `{reference}` backs a certificate (its lifetime is the certificate's); adopt a plain key"
            )));
        }
        let attributes = current.attributes.as_ref();
        if attributes.and_then(|a| a.enabled) == Some(false) {
            return Err(ProviderError::InvalidRequest(format!(
                "the current version of Key Vault key `{reference}` is disabled; enable it (az keyvault key set-attributes --enabled true) before adopting it"
            )));
        }
        let now = SystemTime::now();
        let expired = attributes
            .and_then(|a| a.expires)
            .is_some_and(|at| SystemTime::from(at) <= now);
        let early = attributes
            .and_then(|a| a.not_before)
            .is_some_and(|at| SystemTime::from(at) > now);
        if expired || early {
            return Err(ProviderError::InvalidRequest(format!(
                "the current version of Key Vault key `{reference}` is outside its activation window (nbf/exp), so it may not wrap or sign; clear or move its dates before adopting it"
            )));
        }
        let mut tags = current.tags.clone().unwrap_or_default();
        if let Some(taken) = tags.keys().find(|t| is_keywards(t)) {
            return Err(ProviderError::InvalidRequest(format!(
                "Key Vault key `{reference}` carries Keyward's tag `{taken}` but no version number; remove the keyward-* tags before adopting it"
            )));
        }
        if tags.len() + KEYWARDS_TAGS > MAX_TAGS {
            return Err(ProviderError::InvalidRequest(format!(
                "Key Vault key `{reference}` has {} tags; Keyward needs {KEYWARDS_TAGS} of Key Vault's {MAX_TAGS} per version, so remove {} of them before adopting it",
                tags.len(),
                tags.len() + KEYWARDS_TAGS - MAX_TAGS
            )));
        }
        tags.insert(VERSION_TAG.into(), "1".into());
        tags.insert(ALGORITHM_TAG.into(), spec.algorithm.as_str().into());
        if let Some(owner) = &spec.owner {
            tags.insert(OWNER_TAG.into(), owner.clone());
        }
        let version = Version::of(jwk.kid.as_deref(), current.attributes.as_ref(), Some(&tags))
            .ok_or_else(|| {
                ProviderError::Unavailable(format!(
                    "Key Vault returned `{name}` without a version id"
                ))
            })?;
        self.update_version(&name, &version, None, Some(tags), At::version(&name, 1))
            .await?;
        tracing::info!(key = %name, version_id = %version.id, "adopted Key Vault key as version 1");
        self.info(&name).await
    }

    /// The key name in `reference`, which must be a key of this vault
    /// given without a version.
    fn adoptable_name(&self, reference: &str) -> Result<String> {
        let vault = self.config().vault_url.trim_end_matches('/');
        let prefix = format!("{vault}/keys/");
        let rest = reference.strip_prefix(&prefix).ok_or_else(|| {
            ProviderError::InvalidRequest(format!(
                "`{reference}` is not a key of vault {vault}; give `{prefix}<name>`"
            ))
        })?;
        if rest.trim_end_matches('/').contains('/') {
            return Err(ProviderError::InvalidRequest(format!(
                "`{reference}` names a version; give the key's URL without one ({prefix}<name>): Keyward adopts its current version"
            )));
        }
        naming::resolve(vault, reference.trim_end_matches('/'))
    }
}

/// Whether the key's public part and operations are `algorithm` as
/// Keyward uses it.
fn fits(jwk: &JsonWebKey, algorithm: KeyAlgorithm, reference: &str) -> Result<()> {
    let rsa_bits = jwk.n.as_deref().map(|n| {
        let significant = n.iter().skip_while(|b| **b == 0).count();
        significant * 8
    });
    let is_rsa = matches!(jwk.kty, Some(KeyType::Rsa | KeyType::RsaHsm));
    let is_p256 =
        matches!(jwk.kty, Some(KeyType::Ec | KeyType::EcHsm)) && jwk.crv == Some(CurveName::P256);
    let shape = match algorithm {
        KeyAlgorithm::Rsa3072 | KeyAlgorithm::RsaPss3072 => is_rsa && rsa_bits == Some(3072),
        KeyAlgorithm::Rsa4096 | KeyAlgorithm::RsaPss4096 => is_rsa && rsa_bits == Some(4096),
        KeyAlgorithm::EcP256 => is_p256,
        KeyAlgorithm::Aes256 | KeyAlgorithm::Ed25519 => false,
    };
    if !shape {
        let found = match (&jwk.kty, rsa_bits, &jwk.crv) {
            (Some(KeyType::Rsa | KeyType::RsaHsm), Some(bits), _) => format!("RSA {bits}"),
            (Some(kty), _, Some(crv)) => format!("{kty} {crv}"),
            (Some(kty), _, None) => format!("{kty}"),
            (None, _, _) => "a key of no type".to_owned(),
        };
        return Err(ProviderError::InvalidRequest(format!(
            "Key Vault key `{reference}` is {found}, not {}; set spec.algorithm to what the key is, or adopt another key",
            algorithm.describe()
        )));
    }
    let needed: &[KeyOperation] = if algorithm.signing().is_some() {
        &[KeyOperation::Sign]
    } else {
        &[KeyOperation::WrapKey, KeyOperation::UnwrapKey]
    };
    let allowed = jwk.key_ops.as_deref().unwrap_or_default();
    let missing: Vec<String> = needed
        .iter()
        .map(|op| op.to_string())
        .filter(|op| !allowed.iter().any(|a| a.eq_ignore_ascii_case(op)))
        .collect();
    if !missing.is_empty() {
        return Err(ProviderError::InvalidRequest(format!(
            "Key Vault key `{reference}` does not permit {}; allow them (az keyvault key set-attributes --ops ...) or adopt another key",
            missing.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa(bits: usize, ops: Vec<KeyOperation>) -> JsonWebKey {
        let ops = ops.iter().map(|op| op.to_string()).collect();
        let mut n = vec![0u8; bits / 8];
        n[0] = 0xc1;
        JsonWebKey {
            kty: Some(KeyType::RsaHsm),
            n: Some(n),
            e: Some(vec![1, 0, 1]),
            key_ops: Some(ops),
            ..Default::default()
        }
    }

    #[test]
    fn an_rsa_key_fits_by_size_and_operations() {
        let wrapping = vec![KeyOperation::WrapKey, KeyOperation::UnwrapKey];
        assert!(fits(&rsa(3072, wrapping.clone()), KeyAlgorithm::Rsa3072, "k").is_ok());
        let err = fits(&rsa(2048, wrapping.clone()), KeyAlgorithm::Rsa3072, "k").unwrap_err();
        assert!(err.to_string().contains("RSA 2048"), "{err}");
        let err = fits(
            &rsa(4096, vec![KeyOperation::WrapKey]),
            KeyAlgorithm::Rsa4096,
            "k",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unwrapKey"), "{err}");
        let err = fits(&rsa(3072, wrapping), KeyAlgorithm::RsaPss3072, "k").unwrap_err();
        assert!(err.to_string().contains("sign"), "{err}");
    }

    #[test]
    fn a_p256_key_fits_only_ecp256() {
        let jwk = JsonWebKey {
            kty: Some(KeyType::Ec),
            crv: Some(CurveName::P256),
            key_ops: Some(vec!["sign".into(), "verify".into()]),
            ..Default::default()
        };
        assert!(fits(&jwk, KeyAlgorithm::EcP256, "k").is_ok());
        assert!(fits(&jwk, KeyAlgorithm::Rsa3072, "k").is_err());
        let p384 = JsonWebKey {
            crv: Some(CurveName::P384),
            ..jwk
        };
        assert!(fits(&p384, KeyAlgorithm::EcP256, "k").is_err());
    }
}
