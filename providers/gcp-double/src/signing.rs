//! Signing keys (`ASYMMETRIC_SIGN`) in the double: the version algorithms
//! it makes, their key material (`keyward_core::crypto::signing`, the
//! same schemes Cloud KMS uses) and the `AsymmetricSign` request body.

use crate::wire::{self, Status};
use keyward_core::SecretBytes;
use keyward_core::crypto::pem::spki_to_pem;
use keyward_core::crypto::signing::{self, SigningAlgorithm, ToSign};
use serde_json::Value;

/// Cloud KMS's limit on `AsymmetricSignRequest.data`.
const MAX_DATA: usize = 64 * 1024;

/// The scheme of a Cloud KMS signing algorithm the double makes.
pub(crate) fn scheme_of(algorithm: &str) -> Option<SigningAlgorithm> {
    match algorithm {
        "RSA_SIGN_PSS_3072_SHA256" => Some(SigningAlgorithm::RsaPss3072Sha256),
        "RSA_SIGN_PSS_4096_SHA256" => Some(SigningAlgorithm::RsaPss4096Sha256),
        "EC_SIGN_P256_SHA256" => Some(SigningAlgorithm::EcdsaP256Sha256),
        "EC_SIGN_ED25519" => Some(SigningAlgorithm::Ed25519),
        _ => None,
    }
}

/// A fresh private key (PKCS#8 DER). Slow for RSA: call it off the async
/// runtime.
pub(crate) fn generate(scheme: SigningAlgorithm) -> SecretBytes {
    let pkcs8 = signing::generate(scheme);
    SecretBytes::from(pkcs8.as_slice())
}

/// The `PUBLIC KEY` PEM GetPublicKey answers with.
pub(crate) fn public_pem(
    scheme: SigningAlgorithm,
    pkcs8: &SecretBytes,
) -> Result<String, (Status, String)> {
    let spki = signing::public_key(scheme, pkcs8.expose())
        .map_err(|e| (Status::InvalidArgument, format!("internal: {e}")))?;
    Ok(spki_to_pem(&spki))
}

/// Signs an `AsymmetricSign` body (`digest.sha256` or `data`) with
/// `pkcs8`. RSA-PSS and ECDSA take either (data is hashed here, as Cloud
/// KMS does); Ed25519 takes only data.
pub(crate) fn sign(
    scheme: SigningAlgorithm,
    pkcs8: &SecretBytes,
    body: &Value,
) -> Result<Vec<u8>, (Status, String)> {
    let input = to_sign(scheme, body)?;
    signing::sign(scheme, pkcs8.expose(), &input)
        .map_err(|e| (Status::InvalidArgument, e.to_string()))
}

fn to_sign(scheme: SigningAlgorithm, body: &Value) -> Result<ToSign, (Status, String)> {
    let invalid = |message: &str| Err((Status::InvalidArgument, message.to_owned()));
    let digest = &body["digest"];
    // proto3: an absent `data` is empty data, so a request with neither
    // field signs the empty message.
    let data = wire::unb64(&body["data"]);
    let Some(data) = data else {
        return invalid("invalid data");
    };
    if digest.is_null() {
        if data.len() > MAX_DATA {
            return invalid("data is limited to 64 KiB");
        }
        // Ed25519 data past keyward_core's MAX_MESSAGE is refused by
        // `signing::sign`; Cloud KMS would sign it (not modelled).
        return Ok(match scheme {
            SigningAlgorithm::Ed25519 => ToSign::Message(data),
            _ => ToSign::Sha256(keyward_core::crypto::sha256(&data)),
        });
    }
    if !data.is_empty() {
        return invalid("only one of digest and data may be set");
    }
    if !scheme.signs_digest() {
        return invalid("EC_SIGN_ED25519 signs data, not a digest; set data");
    }
    let Some(sha256) = wire::unb64(&digest["sha256"]) else {
        return invalid("invalid digest");
    };
    let Ok(sha256) = <[u8; 32]>::try_from(sha256.as_slice()) else {
        return invalid("the digest must be a SHA-256 digest (digest.sha256, 32 bytes)");
    };
    Ok(ToSign::Sha256(sha256))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_read_as_cloud_kms_reads_them() {
        let digest = [7u8; 32];
        let ecdsa = SigningAlgorithm::EcdsaP256Sha256;
        assert_eq!(
            to_sign(ecdsa, &json!({"digest": {"sha256": wire::b64(&digest)}})),
            Ok(ToSign::Sha256(digest))
        );
        assert_eq!(
            to_sign(ecdsa, &json!({"data": wire::b64(b"abc")})),
            Ok(ToSign::Sha256(keyward_core::crypto::sha256(b"abc")))
        );
        assert_eq!(
            to_sign(
                SigningAlgorithm::Ed25519,
                &json!({"data": wire::b64(b"abc")})
            ),
            Ok(ToSign::Message(b"abc".to_vec()))
        );
        let refused = [
            (
                SigningAlgorithm::Ed25519,
                json!({"digest": {"sha256": wire::b64(&digest)}}),
            ),
            (
                ecdsa,
                json!({"digest": {"sha256": wire::b64(&digest)}, "data": wire::b64(b"x")}),
            ),
            (ecdsa, json!({"digest": {"sha384": wire::b64(&[0u8; 48])}})),
            (ecdsa, json!({"digest": {"sha256": wire::b64(&[0u8; 31])}})),
        ];
        for (scheme, body) in refused {
            assert!(
                matches!(to_sign(scheme, &body), Err((Status::InvalidArgument, _))),
                "{body}"
            );
        }
    }
}
