//! DEK wrapping with local key versions. Symmetric blob layout:
//! `0x01 | nonce[12] | AES-256-GCM(kek, dek) || tag`, with AAD binding the key
//! id, version and the wrap context. Asymmetric keys use plain RSA-OAEP-SHA256,
//! exactly what an offline sealer produces from the public key.

use super::keyring::{LocalKey, LocalVersion};
use crate::crypto::signing::{self, SigningAlgorithm, SigningError, ToSign};
use crate::crypto::{self, RsaPrivateKey, RsaPublicKey};
use crate::provider::{
    ProviderError, Result, Signature, VerifyingKey, WrapAlgorithm, WrapContext, WrappedDek,
    wrap_context_aad,
};
use crate::secret::Dek;

const BLOB_VERSION: u8 = 1;
const BLOB_LEN: usize = 1 + crypto::NONCE_LEN + Dek::LEN + crypto::TAG_LEN;

pub fn context_aad(key_id: &str, version: u32, context: &WrapContext) -> Vec<u8> {
    let version = version.to_be_bytes();
    wrap_context_aad(
        b"keyward/local-wrap/v1",
        &[key_id.as_bytes(), &version],
        context,
    )
}

fn aes_key(version: &LocalVersion) -> Result<&[u8; 32]> {
    version
        .material
        .expose()
        .try_into()
        .map_err(|_| ProviderError::Storage("a symmetric key version is not 32 bytes".into()))
}

fn rsa_key(version: &LocalVersion) -> Result<RsaPrivateKey> {
    RsaPrivateKey::from_pkcs8_der(version.material.expose())
        .map_err(|e| ProviderError::Storage(format!("stored RSA key is unusable: {e}")))
}

pub fn wrap(
    key: &LocalKey,
    version: &LocalVersion,
    dek: &Dek,
    context: &WrapContext,
) -> Result<WrappedDek> {
    let algorithm = key.algorithm.wrapping(&key.id)?;
    let blob = match algorithm {
        WrapAlgorithm::Symmetric => {
            let nonce = crypto::random_nonce();
            let aad = context_aad(&key.id, version.version, context);
            let mut blob = vec![BLOB_VERSION];
            blob.extend_from_slice(&nonce);
            blob.extend_from_slice(&crypto::seal(aes_key(version)?, &nonce, &aad, dek.expose()));
            blob
        }
        WrapAlgorithm::RsaOaepSha256 => rsa_key(version)?.public_key().encrypt(dek.expose()),
    };
    Ok(WrappedDek {
        key_id: key.id.clone(),
        version: version.version,
        algorithm,
        blob,
    })
}

pub fn unwrap(
    key: &LocalKey,
    version: &LocalVersion,
    wrapped: &WrappedDek,
    context: &WrapContext,
) -> Result<Dek> {
    if Some(wrapped.algorithm) != key.algorithm.wrap_algorithm() {
        return Err(ProviderError::WrongKeyType {
            key: key.id.clone(),
            expected: match wrapped.algorithm {
                WrapAlgorithm::Symmetric => "a symmetric key",
                WrapAlgorithm::RsaOaepSha256 => "an RSA key",
            },
            actual: key.algorithm.describe(),
        });
    }
    let plaintext = match wrapped.algorithm {
        WrapAlgorithm::Symmetric => {
            let blob = &wrapped.blob;
            if blob.len() != BLOB_LEN || blob[0] != BLOB_VERSION {
                return Err(ProviderError::UnwrapFailed);
            }
            let nonce: [u8; crypto::NONCE_LEN] = blob[1..1 + crypto::NONCE_LEN]
                .try_into()
                .expect("length checked");
            let aad = context_aad(&key.id, version.version, context);
            crypto::open(
                aes_key(version)?,
                &nonce,
                &aad,
                &blob[1 + crypto::NONCE_LEN..],
            )
            .map_err(|_| ProviderError::UnwrapFailed)?
        }
        WrapAlgorithm::RsaOaepSha256 => rsa_key(version)?
            .decrypt(&wrapped.blob)
            .map_err(|_| ProviderError::UnwrapFailed)?,
    };
    Dek::from_slice(&plaintext).ok_or(ProviderError::UnwrapFailed)
}

pub fn public_key(key: &LocalKey, version: &LocalVersion) -> Result<RsaPublicKey> {
    if !key.algorithm.is_sealing() {
        return Err(ProviderError::WrongKeyType {
            key: key.id.clone(),
            expected: "an asymmetric (RSA) key",
            actual: key.algorithm.describe(),
        });
    }
    Ok(rsa_key(version)?.public_key())
}

/// Signs with `version` of a signing key.
pub fn sign(key: &LocalKey, version: &LocalVersion, input: &ToSign) -> Result<Signature> {
    let algorithm = signing_algorithm(key)?;
    let bytes =
        signing::sign(algorithm, version.material.expose(), input).map_err(|e| match e {
            SigningError::InvalidPrivateKey(_) => {
                ProviderError::Storage(format!("stored signing key is unusable: {e}"))
            }
            other => ProviderError::InvalidRequest(other.to_string()),
        })?;
    Ok(Signature {
        key_id: key.id.clone(),
        version: version.version,
        algorithm,
        bytes,
    })
}

/// The public half of `version` of a signing key.
pub fn verifying_key(key: &LocalKey, version: &LocalVersion) -> Result<VerifyingKey> {
    let algorithm = signing_algorithm(key)?;
    let spki_der = signing::public_key(algorithm, version.material.expose())
        .map_err(|e| ProviderError::Storage(format!("stored signing key is unusable: {e}")))?;
    Ok(VerifyingKey {
        key_id: key.id.clone(),
        version: version.version,
        algorithm,
        spki_der,
    })
}

fn signing_algorithm(key: &LocalKey) -> Result<SigningAlgorithm> {
    key.algorithm
        .signing()
        .ok_or_else(|| ProviderError::WrongKeyType {
            key: key.id.clone(),
            expected: "a signing key (usage Sign)",
            actual: key.algorithm.describe(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{KeyAlgorithm, VersionState};
    use crate::secret::SecretBytes;

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Replays the committed local-wrap vector through this module's own
    /// `context_aad` and `unwrap` (the nonce is random in `wrap`, so only the
    /// unwrap direction can be checked against fixed bytes).
    #[test]
    fn committed_local_wrap_vector_unwraps() {
        let file: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/envelope-v1.json")).unwrap();
        let case = &file["local_symmetric_wrap"][0];
        let text = |field: &str| case[field].as_str().unwrap().to_owned();
        let context: WrapContext = serde_json::from_value(case["wrap_context"].clone()).unwrap();
        let number = u32::try_from(case["key_version"].as_u64().unwrap()).unwrap();
        let version = LocalVersion {
            version: number,
            state: VersionState::Enabled,
            created_at: 0,
            deletion_at: None,
            material: SecretBytes::new(unhex(&text("kek_hex"))),
        };
        let key = LocalKey {
            id: text("key_id"),
            name: "vector".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: None,
            description: None,
            primary: number,
            deletion_at: None,
            versions: Vec::new(),
            claim: None,
        };
        assert_eq!(
            context_aad(&key.id, number, &context),
            unhex(&text("aad_hex"))
        );
        let wrapped = WrappedDek {
            key_id: key.id.clone(),
            version: number,
            algorithm: WrapAlgorithm::Symmetric,
            blob: unhex(&text("blob_hex")),
        };
        let dek = unwrap(&key, &version, &wrapped, &context).unwrap();
        assert_eq!(&dek.expose()[..], &unhex(&text("dek_hex"))[..]);
        let mut other = context.clone();
        other.insert("keyward.io/namespace".into(), "elsewhere".into());
        assert!(matches!(
            unwrap(&key, &version, &wrapped, &other),
            Err(ProviderError::UnwrapFailed)
        ));
    }
}
