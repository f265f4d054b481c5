//! The cryptographic operations on a key version: `wrapkey`/`unwrapkey`
//! (RSA-OAEP-256) and `sign`/`verify` (PS256, ES256), with Key Vault's
//! rules on `key_ops`, `enabled` and the `nbf`/`exp` window.

use crate::jwk;
use crate::material::Material;
use crate::vault::Version;
use crate::wire::{self, Fault, bad_parameter, fault};
use keyward_core::crypto::signing::{self, SigningAlgorithm, ToSign};
use keyward_core::crypto::{RsaKeySize, RsaPublicKey};
use serde_json::{Value, json};

/// OAEP with SHA-256 spends 2 * 32 + 2 bytes of the modulus on padding.
const OAEP_SHA256_OVERHEAD: usize = 66;

/// Refuses `op` on `version` as Key Vault does. Disabled versions refuse
/// everything. Outside `nbf`..`exp` only the operations that create new
/// protected data (wrap, sign) are refused: Microsoft documents that
/// not-yet-valid and expired keys still decrypt, unwrap and verify, so
/// data protected while the key was valid stays readable.
fn permitted(version: &Version, op: &'static str, now: i64) -> Result<(), Fault> {
    if !version.key_ops.iter().any(|o| o == op) {
        return Err(fault(
            403,
            "Forbidden",
            format!("Operation {op} is not permitted on this key."),
        ));
    }
    if !version.enabled {
        return Err(fault(
            403,
            "Forbidden",
            format!("Operation {op} is not allowed on a disabled key."),
        )
        .with_inner("KeyDisabled"));
    }
    let creates = matches!(op, "wrapKey" | "sign");
    if creates && version.nbf.is_some_and(|nbf| now < nbf) {
        return Err(fault(
            403,
            "Forbidden",
            format!("Operation {op} is not allowed on a key that is not yet valid."),
        )
        .with_inner("KeyNotYetValid"));
    }
    if creates && version.exp.is_some_and(|exp| now >= exp) {
        return Err(fault(
            403,
            "Forbidden",
            format!("Operation {op} is not allowed on an expired key."),
        )
        .with_inner("KeyExpired"));
    }
    Ok(())
}

fn value_of(body: &Value, field: &str) -> Result<Vec<u8>, Fault> {
    wire::unb64url(&body[field]).ok_or_else(|| {
        bad_parameter(format!(
            "The parameter {field} is missing or not base64url."
        ))
    })
}

fn rsa_oaep_256(body: &Value, version: &Version) -> Result<(), Fault> {
    match body["alg"].as_str() {
        Some("RSA-OAEP-256") if matches!(version.material, Material::Rsa(_)) => Ok(()),
        Some("RSA-OAEP-256") => Err(bad_parameter("RSA-OAEP-256 needs an RSA key.")),
        Some(other) => Err(bad_parameter(format!(
            "Algorithm {other} is not served by the double (RSA-OAEP-256 only)."
        ))),
        None => Err(bad_parameter("The parameter alg is required.")),
    }
}

fn result(kid: &str, bytes: &[u8]) -> Value {
    json!({ "kid": kid, "value": wire::b64url(bytes) })
}

pub(crate) fn wrap(version: &Version, kid: &str, body: &Value, now: i64) -> Result<Value, Fault> {
    permitted(version, "wrapKey", now)?;
    rsa_oaep_256(body, version)?;
    let plaintext = value_of(body, "value")?;
    let Material::Rsa(key) = &version.material else {
        unreachable!("checked by rsa_oaep_256")
    };
    let public: RsaPublicKey = key.public_key();
    if plaintext.is_empty() || plaintext.len() > public.bits() / 8 - OAEP_SHA256_OVERHEAD {
        return Err(bad_parameter(
            "The value is too long (or empty) for RSA-OAEP-256 with this key.",
        ));
    }
    Ok(result(kid, &public.encrypt(&plaintext)))
}

pub(crate) fn unwrap(version: &Version, kid: &str, body: &Value, now: i64) -> Result<Value, Fault> {
    permitted(version, "unwrapKey", now)?;
    rsa_oaep_256(body, version)?;
    let ciphertext = value_of(body, "value")?;
    let Material::Rsa(key) = &version.material else {
        unreachable!("checked by rsa_oaep_256")
    };
    let plaintext = key
        .decrypt(&ciphertext)
        .map_err(|_| bad_parameter("Decryption failed: the ciphertext does not match this key."))?;
    Ok(result(kid, &plaintext))
}

/// The signing scheme for `alg` on this version's key.
fn scheme(version: &Version, body: &Value) -> Result<SigningAlgorithm, Fault> {
    let alg = body["alg"]
        .as_str()
        .ok_or_else(|| bad_parameter("The parameter alg is required."))?;
    match (alg, version.material.kind()) {
        ("PS256", crate::material::Kind::Rsa(RsaKeySize::Bits3072)) => {
            Ok(SigningAlgorithm::RsaPss3072Sha256)
        }
        ("PS256", crate::material::Kind::Rsa(RsaKeySize::Bits4096)) => {
            Ok(SigningAlgorithm::RsaPss4096Sha256)
        }
        ("ES256", crate::material::Kind::EcP256) => Ok(SigningAlgorithm::EcdsaP256Sha256),
        (alg, _) => Err(bad_parameter(format!(
            "Algorithm {alg} is not valid for this key (the double serves PS256 with RSA, ES256 with P-256)."
        ))),
    }
}

fn digest(body: &Value, field: &str) -> Result<ToSign, Fault> {
    let bytes = value_of(body, field)?;
    let digest = <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| bad_parameter("The digest must be a SHA-256 digest (32 bytes)."))?;
    Ok(ToSign::Sha256(digest))
}

fn pkcs8(material: &Material) -> &[u8] {
    match material {
        Material::Rsa(key) => key.pkcs8_der(),
        Material::Ec(pkcs8) => pkcs8.expose(),
    }
}

pub(crate) fn sign(version: &Version, kid: &str, body: &Value, now: i64) -> Result<Value, Fault> {
    permitted(version, "sign", now)?;
    let scheme = scheme(version, body)?;
    let input = digest(body, "value")?;
    let signature = signing::sign(scheme, pkcs8(&version.material), &input)
        .map_err(|e| bad_parameter(e.to_string()))?;
    // Key Vault (JWS) gives ECDSA signatures as raw r || s.
    let signature = match scheme {
        SigningAlgorithm::EcdsaP256Sha256 => jwk::ecdsa_der_to_raw(&signature)
            .expect("aws-lc-rs gives well-formed DER")
            .to_vec(),
        _ => signature,
    };
    Ok(result(kid, &signature))
}

pub(crate) fn verify(version: &Version, body: &Value, now: i64) -> Result<Value, Fault> {
    permitted(version, "verify", now)?;
    let scheme = scheme(version, body)?;
    let input = digest(body, "digest")?;
    let signature = value_of(body, "value")?;
    let signature = match scheme {
        SigningAlgorithm::EcdsaP256Sha256 => jwk::ecdsa_raw_to_der(&signature),
        _ => Some(signature),
    };
    let valid = signature.is_some_and(|signature| {
        signing::verify(scheme, &version.material.spki(), &input, &signature).is_ok()
    });
    Ok(json!({ "value": valid }))
}
