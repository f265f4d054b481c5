//! Signing keys (`ASYMMETRIC_SIGN`): `AsymmetricSign` with the primary
//! version, and each version's public half from `GetPublicKey`. RSA-PSS
//! and ECDSA versions are sent a SHA-256 digest (a message is hashed here,
//! so it never leaves the cluster and every request is the same size);
//! Ed25519 versions are sent the message, the only thing they sign.

use crate::errors::At;
use crate::naming;
use crate::provider::GcpKmsProvider;
use crate::retry::Idempotent;
use bytes::Bytes;
use google_cloud_kms_v1::model::Digest;
use keyward_core::crypto::pem::{PemError, spki_from_pem};
use keyward_core::crypto::signing::{SigningAlgorithm, ToSign, scheme_of};
use keyward_core::provider::{KeyAlgorithm, ProviderError, Result, Signature, VerifyingKey};

/// What one `AsymmetricSign` request carries.
enum Payload {
    Sha256(Bytes),
    Data(Bytes),
}

impl Payload {
    fn of(scheme: SigningAlgorithm, input: &ToSign) -> Payload {
        match input {
            ToSign::Message(message) if !scheme.signs_digest() => {
                Payload::Data(Bytes::copy_from_slice(message))
            }
            other => Payload::Sha256(Bytes::copy_from_slice(&other.sha256())),
        }
    }
}

impl GcpKmsProvider {
    /// [`KeyProvider::sign`](keyward_core::provider::KeyProvider::sign).
    pub(crate) async fn sign_with(
        &self,
        key_id: &str,
        version: Option<u32>,
        input: &ToSign,
    ) -> Result<Signature> {
        let name = self.crypto_key_name(key_id)?;
        let scheme = signing_scheme(&name, self.algorithm(&name).await?)?;
        input
            .checked(scheme)
            .map_err(|e| ProviderError::InvalidRequest(e.to_string()))?;
        let version = self.usable_version(&name, version).await?;
        let version_name = naming::version_name(&name, version);
        let payload = Payload::of(scheme, input);
        // Idempotent: a repeated request only makes another valid
        // signature; nothing changes in Cloud KMS.
        let output = self
            .call(
                "AsymmetricSign",
                Idempotent::Yes,
                At::version(&name, version),
                || {
                    let request = self.client.asymmetric_sign().set_name(&version_name);
                    match &payload {
                        Payload::Sha256(digest) => {
                            request.set_digest(Digest::new().set_sha256(digest.clone()))
                        }
                        Payload::Data(data) => request.set_data(data.clone()),
                    }
                    .send()
                },
            )
            .await?;
        // Cloud KMS names the version that signed (an old service left it
        // empty): another one would make a signature that does not verify
        // with the version reported here.
        if !output.name.is_empty() && output.name != version_name {
            return Err(ProviderError::InvalidRequest(format!(
                "Cloud KMS signed with `{}`, not `{version_name}`",
                output.name
            )));
        }
        Ok(Signature {
            key_id: name,
            version,
            algorithm: scheme,
            bytes: output.signature.to_vec(),
        })
    }

    /// [`KeyProvider::verifying_key`](keyward_core::provider::KeyProvider::verifying_key).
    pub(crate) async fn verifying_key_of(
        &self,
        key_id: &str,
        version: Option<u32>,
    ) -> Result<VerifyingKey> {
        let name = self.crypto_key_name(key_id)?;
        let scheme = signing_scheme(&name, self.algorithm(&name).await?)?;
        let version = match version {
            Some(number) => number,
            None => self.info(&name).await?.primary_version,
        };
        if version == 0 {
            return Err(ProviderError::UnknownVersion { key: name, version });
        }
        let spki_der = self.version_spki(&name, version, scheme).await?;
        Ok(VerifyingKey {
            key_id: name,
            version,
            algorithm: scheme,
            spki_der,
        })
    }

    /// A signing version's SubjectPublicKeyInfo DER, checked to be a key
    /// for `scheme`; cached, as a version's key pair never changes.
    async fn version_spki(
        &self,
        key: &str,
        version: u32,
        scheme: SigningAlgorithm,
    ) -> Result<Vec<u8>> {
        let cache_key = naming::version_name(key, version);
        let cached = self
            .verifying_keys
            .lock()
            .ok()
            .and_then(|known| known.get(&cache_key).cloned());
        if let Some(known) = cached {
            return Ok(known);
        }
        let pem = self.public_pem(key, version).await?;
        let unusable = |why: &str| {
            ProviderError::InvalidRequest(format!(
                "Cloud KMS returned an unusable public key for version {version} of `{key}`: {why}"
            ))
        };
        let spki = spki_from_pem(&pem).map_err(|e| {
            unusable(match e {
                PemError::NoBlock => "no PUBLIC KEY block",
                PemError::NotBase64 => "the PEM body is not base64",
            })
        })?;
        match scheme_of(&spki) {
            Some(found) if found == scheme => {}
            found => {
                return Err(unusable(&format!(
                    "it is {}, the key is {}",
                    found.map_or("no key Keyward signs with", SigningAlgorithm::describe),
                    scheme.describe()
                )));
            }
        }
        if let Ok(mut known) = self.verifying_keys.lock() {
            known.insert(cache_key, spki.clone());
        }
        Ok(spki)
    }
}

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
