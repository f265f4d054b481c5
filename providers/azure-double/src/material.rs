//! Key material of a version and what creating one asks for: RSA keys
//! (RSA-OAEP-256 wrap, PS256 sign) and P-256 keys (ES256 sign), all via
//! `keyward_core::crypto`.

use crate::jwk;
use crate::wire::{Fault, bad_parameter};
use keyward_core::SecretBytes;
use keyward_core::crypto::signing::{self, SigningAlgorithm};
use keyward_core::crypto::{RsaKeySize, RsaPrivateKey};
use serde_json::{Value, json};

pub(crate) enum Material {
    Rsa(Box<RsaPrivateKey>),
    /// A P-256 private key, PKCS#8 DER.
    Ec(SecretBytes),
}

/// The kind of key a create (or a rotation) makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Rsa(RsaKeySize),
    EcP256,
}

impl Kind {
    /// From a create body's `kty`, `key_size` and `crv`. Key Vault would
    /// make RSA 2048 without `key_size`; Keyward never uses keys under
    /// 3072 bits, so the double refuses rather than make one.
    pub(crate) fn parse(body: &Value) -> Result<(Kind, &'static str), Fault> {
        let kty = match body["kty"].as_str() {
            Some("RSA") => "RSA",
            Some("RSA-HSM") => "RSA-HSM",
            Some("EC") => "EC",
            Some("EC-HSM") => "EC-HSM",
            Some(t @ ("oct" | "oct-HSM")) => {
                return Err(bad_parameter(format!(
                    "Key type {t} is only available in Managed HSM, which the double does not model."
                )));
            }
            Some(other) => return Err(bad_parameter(format!("Invalid kty `{other}`."))),
            None => return Err(bad_parameter("The parameter kty is required.")),
        };
        if !body["public_exponent"].is_null() && body["public_exponent"] != json!(65537) {
            return Err(bad_parameter(
                "The double only makes keys with public exponent 65537.",
            ));
        }
        let kind = if kty.starts_with("RSA") {
            match body["key_size"].as_u64() {
                Some(3072) => Kind::Rsa(RsaKeySize::Bits3072),
                Some(4096) => Kind::Rsa(RsaKeySize::Bits4096),
                _ => {
                    return Err(bad_parameter(
                        "The double makes RSA keys of key_size 3072 or 4096 only.",
                    ));
                }
            }
        } else {
            match body["crv"].as_str() {
                None | Some("P-256") => Kind::EcP256,
                Some(other) => {
                    return Err(bad_parameter(format!(
                        "The double makes EC keys on P-256 only, not {other}."
                    )));
                }
            }
        };
        Ok((kind, kty))
    }

    /// Key Vault's default `key_ops` for the key type.
    pub(crate) fn default_ops(self) -> Vec<String> {
        let ops: &[&str] = match self {
            Kind::Rsa(_) => &[
                "encrypt",
                "decrypt",
                "sign",
                "verify",
                "wrapKey",
                "unwrapKey",
            ],
            Kind::EcP256 => &["sign", "verify"],
        };
        ops.iter().map(|s| s.to_string()).collect()
    }
}

impl Material {
    /// Fresh material; slow for RSA, so call it off the async runtime.
    pub(crate) fn generate(kind: Kind) -> Material {
        match kind {
            Kind::Rsa(size) => Material::Rsa(Box::new(RsaPrivateKey::generate(size))),
            Kind::EcP256 => {
                let pkcs8 = signing::generate(SigningAlgorithm::EcdsaP256Sha256);
                Material::Ec(SecretBytes::from(pkcs8.as_slice()))
            }
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            Material::Rsa(key) if key.public_key().bits() == 4096 => {
                Kind::Rsa(RsaKeySize::Bits4096)
            }
            Material::Rsa(_) => Kind::Rsa(RsaKeySize::Bits3072),
            Material::Ec(_) => Kind::EcP256,
        }
    }

    /// The public key, SubjectPublicKeyInfo DER.
    pub(crate) fn spki(&self) -> Vec<u8> {
        match self {
            Material::Rsa(key) => key.public_key().spki_der().to_vec(),
            Material::Ec(pkcs8) => {
                signing::public_key(SigningAlgorithm::EcdsaP256Sha256, pkcs8.expose())
                    .expect("a P-256 key the double made")
            }
        }
    }

    /// The JWK members for the public key (`kty`, `key_ops` and `kid`
    /// are added by the caller).
    pub(crate) fn public_jwk(&self) -> Value {
        let spki = self.spki();
        match self {
            Material::Rsa(_) => {
                let (n, e) = jwk::rsa_components(&spki).expect("an RSA SPKI");
                json!({ "n": crate::wire::b64url(&n), "e": crate::wire::b64url(&e) })
            }
            Material::Ec(_) => {
                let (x, y) = jwk::ec_components(&spki).expect("a P-256 SPKI");
                json!({
                    "crv": "P-256",
                    "x": crate::wire::b64url(&x),
                    "y": crate::wire::b64url(&y),
                })
            }
        }
    }
}
