//! Signing keys: `sign` with a version (`PS256` for RSA-PSS, `ES256` for
//! P-256) on the SHA-256 digest (a message is hashed here, so it never
//! leaves the cluster), and each version's public half from its JWK.
//! Key Vault gives ECDSA signatures as JWS raw `r || s`; Keyward's are DER.

use crate::errors::{At, from_azure};
use crate::provider::{AzureKeyVaultProvider, usable};
use crate::spki;
use azure_security_keyvault_keys::models::{
    KeyClientSignOptions, SignParameters, SignatureAlgorithm,
};
use keyward_core::crypto::signing::{SigningAlgorithm, ToSign, scheme_of};
use keyward_core::provider::{KeyAlgorithm, ProviderError, Result, Signature, VerifyingKey};

/// The signing scheme of key `name`, or why it has none.
fn signing_scheme(name: &str, algorithm: KeyAlgorithm) -> Result<SigningAlgorithm> {
    algorithm
        .signing()
        .ok_or_else(|| ProviderError::WrongKeyType {
            key: name.to_owned(),
            expected: "a signing key (usage Sign)",
            actual: algorithm.describe(),
        })
}

fn jws_algorithm(scheme: SigningAlgorithm) -> Result<SignatureAlgorithm> {
    match scheme {
        SigningAlgorithm::RsaPss3072Sha256 | SigningAlgorithm::RsaPss4096Sha256 => {
            Ok(SignatureAlgorithm::Ps256)
        }
        SigningAlgorithm::EcdsaP256Sha256 => Ok(SignatureAlgorithm::Es256),
        SigningAlgorithm::Ed25519 => Err(ProviderError::InvalidRequest(
            "Azure Key Vault has no Ed25519 keys".into(),
        )),
    }
}

impl AzureKeyVaultProvider {
    /// [`KeyProvider::sign`](keyward_core::provider::KeyProvider::sign).
    pub(crate) async fn sign_with(
        &self,
        key_id: &str,
        version: Option<u32>,
        input: &ToSign,
    ) -> Result<Signature> {
        let name = self.key_name(key_id)?;
        let versions = self.versions(&name).await?;
        let scheme = signing_scheme(&name, versions.algorithm()?)?;
        input
            .checked(scheme)
            .map_err(|e| ProviderError::InvalidRequest(e.to_string()))?;
        let version = usable(&versions, version)?;
        let at = At::version(&name, version.number);
        let parameters = SignParameters {
            algorithm: Some(jws_algorithm(scheme)?),
            value: Some(input.sha256().to_vec()),
        };
        let options = KeyClientSignOptions {
            key_version: Some(version.id.clone()),
            ..Default::default()
        };
        let content = parameters.try_into().map_err(|e| {
            ProviderError::InvalidRequest(format!(
                "could not build the Key Vault sign request: {e}"
            ))
        })?;
        let result = self
            .client()
            .sign(&name, content, Some(options))
            .await
            .map_err(|e| from_azure(&e, at))?
            .into_model()
            .map_err(|e| from_azure(&e, at))?;
        let raw = result.result.ok_or_else(|| {
            ProviderError::Unavailable(format!(
                "Key Vault sign returned no signature for version {} of `{name}`",
                version.number
            ))
        })?;
        let bytes = match scheme {
            SigningAlgorithm::EcdsaP256Sha256 => spki::ecdsa_p256_raw_to_der(&raw).ok_or_else(|| {
                ProviderError::Unavailable(format!(
                    "Key Vault returned a {}-byte ES256 signature (expected 64) for version {} of `{name}`",
                    raw.len(),
                    version.number
                ))
            })?,
            _ => raw,
        };
        Ok(Signature {
            key_id: self.key_id_of(&name),
            version: version.number,
            algorithm: scheme,
            bytes,
        })
    }

    /// [`KeyProvider::verifying_key`](keyward_core::provider::KeyProvider::verifying_key).
    pub(crate) async fn verifying_key_of(
        &self,
        key_id: &str,
        version: Option<u32>,
    ) -> Result<VerifyingKey> {
        let name = self.key_name(key_id)?;
        let versions = self.versions(&name).await?;
        let scheme = signing_scheme(&name, versions.algorithm()?)?;
        let number = version.unwrap_or(versions.primary().number);
        if versions.get(number).is_none() {
            return Err(ProviderError::UnknownVersion {
                key: name,
                version: number,
            });
        }
        let spki_der = self.version_spki(&name, number).await?;
        if scheme_of(&spki_der) != Some(scheme) {
            return Err(ProviderError::InvalidRequest(format!(
                "Key Vault returned a public key for version {number} of `{name}` that is not {}",
                scheme.describe()
            )));
        }
        Ok(VerifyingKey {
            key_id: self.key_id_of(&name),
            version: number,
            algorithm: scheme,
            spki_der,
        })
    }
}
