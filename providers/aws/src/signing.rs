//! Signing keys on AWS KMS: an ECC_NIST_P256 KMS key with usage
//! SIGN_VERIFY per version, `Sign` with `ECDSA_SHA_256` on the primary
//! (a message of at most 4 KiB as RAW, else the SHA-256 as DIGEST, both
//! hashed with SHA-256 by KMS), `GetPublicKey` for each version's
//! SubjectPublicKeyInfo. KMS returns ECDSA signatures in DER, as OpenSSL
//! reads them.
//!
//! RSA-PSS and Ed25519 signing keys are refused at admission for AWS: the
//! test peer, moto, has no Ed25519 keys and signs RSA-PSS with the longest
//! salt where KMS uses the digest's length, so neither could be tested.

use crate::errors::{At, from_sdk};
use crate::keys::state_allows_use;
use crate::naming;
use crate::provider::AwsKmsProvider;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use keyward_core::crypto::signing::{self, SigningAlgorithm, ToSign};
use keyward_core::provider::{KeyAlgorithm, ProviderError, Result, Signature, VerifyingKey};

impl AwsKmsProvider {
    pub(crate) async fn sign_with(
        &self,
        key: &str,
        version: Option<u32>,
        input: &ToSign,
    ) -> Result<Signature> {
        let key_id = self.key_id_for(key).await?;
        let scheme = self.signing_scheme(&key_id).await?;
        input
            .checked(scheme)
            .map_err(|e| ProviderError::InvalidRequest(e.to_string()))?;
        // The primary alias, or the version's own alias when one is named.
        let kms_ref = match version {
            Some(number) => {
                self.preflight(&key_id, number).await?;
                naming::version_alias(&key_id, number)
            }
            None => {
                if self.config.verify_key_state {
                    let resolved = self.resolve(&key_id, None).await?;
                    state_allows_use(&key_id, &resolved.primary)?;
                }
                key_id.clone()
            }
        };
        let (message, kind) = match input {
            ToSign::Message(message) => (message.clone(), MessageType::Raw),
            ToSign::Sha256(digest) => (digest.to_vec(), MessageType::Digest),
        };
        let output = match self
            .client
            .sign()
            .key_id(kms_ref)
            .message(Blob::new(message))
            .message_type(kind)
            .signing_algorithm(kms_signing_algorithm(scheme)?)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) => {
                self.forget(&key_id);
                let error = from_sdk(error, At::key(&key_id));
                return Err(self.primary_error(&key_id, error).await);
            }
        };
        let version = self.version_of(&key_id, output.key_id()).await?;
        let bytes = output
            .signature
            .ok_or_else(|| ProviderError::Unavailable("Sign returned no signature".into()))?
            .into_inner();
        Ok(Signature {
            key_id,
            version,
            algorithm: scheme,
            bytes,
        })
    }

    pub(crate) async fn verifying_key_of(
        &self,
        key: &str,
        version: Option<u32>,
    ) -> Result<VerifyingKey> {
        let key_id = self.key_id_for(key).await?;
        let scheme = self.signing_scheme(&key_id).await?;
        let (version, spki_der) = self.public_key_der(&key_id, version).await?;
        if signing::scheme_of(&spki_der) != Some(scheme) {
            return Err(ProviderError::InvalidRequest(format!(
                "AWS KMS returned a public key for {key_id} version {version} that is not {}",
                scheme.describe()
            )));
        }
        Ok(VerifyingKey {
            key_id,
            version,
            algorithm: scheme,
            spki_der,
        })
    }

    async fn signing_scheme(&self, key_id: &str) -> Result<SigningAlgorithm> {
        let algorithm = self.algorithm(key_id).await?;
        algorithm
            .signing()
            .ok_or_else(|| ProviderError::WrongKeyType {
                key: key_id.to_owned(),
                expected: "a signing key (usage Sign)",
                actual: algorithm.describe(),
            })
    }
}

/// Refuses the signing keys the aws provider does not make (see above).
pub(crate) fn refuse_untested(algorithm: KeyAlgorithm) -> Result<()> {
    match algorithm {
        KeyAlgorithm::RsaPss3072 | KeyAlgorithm::RsaPss4096 | KeyAlgorithm::Ed25519 => {
            Err(ProviderError::InvalidRequest(format!(
                "the aws provider does not make {} signing keys; use ECP256",
                algorithm
            )))
        }
        _ => Ok(()),
    }
}

fn kms_signing_algorithm(scheme: SigningAlgorithm) -> Result<SigningAlgorithmSpec> {
    match scheme {
        SigningAlgorithm::EcdsaP256Sha256 => Ok(SigningAlgorithmSpec::EcdsaSha256),
        SigningAlgorithm::RsaPss3072Sha256 | SigningAlgorithm::RsaPss4096Sha256 => {
            Ok(SigningAlgorithmSpec::RsassaPssSha256)
        }
        SigningAlgorithm::Ed25519 => Err(ProviderError::InvalidRequest(
            "the aws provider does not make Ed25519 signing keys".into(),
        )),
    }
}
