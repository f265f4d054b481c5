//! Signing keys on the token: each version is a key pair generated there
//! (RSA for RSA-PSS, EC P-256 for ECDSA, Ed25519), its private half
//! sensitive, never extractable and usable only to sign; signatures are
//! made by the token and put in the form core's `verify` takes.

use crate::ecdsa_der::ecdsa_raw_to_der;
use crate::pool::OpResult;
use crate::spki::{ED25519_PARAMS, P256_PARAMS, ed25519_spki_der, p256_spki_der};
use crate::token::{rsa_spki_der_of, version_object};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::Session;
use keyward_core::crypto::signing::{SigningAlgorithm, SigningError, ToSign, scheme_of};
use keyward_core::provider::ProviderError;

/// RSA-PSS salt length: as long as the SHA-256 digest, like AWS KMS and
/// Cloud KMS (and what core's verifier expects).
const PSS_SALT_LEN: u64 = 32;
const P256_RAW_SIGNATURE_LEN: usize = 64;
const ED25519_SIGNATURE_LEN: usize = 64;

/// The public half: verifies only. Public so the SPKI can be read back.
fn public_template(label: &[u8], id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::Label(label.to_vec()),
        Attribute::Id(id.to_vec()),
    ]
}

/// The private half: signs only, and its value never leaves the token.
fn private_template(label: &[u8], id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Label(label.to_vec()),
        Attribute::Id(id.to_vec()),
    ]
}

/// Generates one version's key pair for `scheme` on the token.
pub fn generate(
    session: &Session,
    scheme: SigningAlgorithm,
    label: Vec<u8>,
    id: Vec<u8>,
) -> OpResult<()> {
    let mut public = public_template(&label, &id);
    let mechanism = match scheme {
        SigningAlgorithm::RsaPss3072Sha256 | SigningAlgorithm::RsaPss4096Sha256 => {
            let bits: u64 = if scheme == SigningAlgorithm::RsaPss3072Sha256 {
                3072
            } else {
                4096
            };
            public.push(Attribute::ModulusBits(bits.into()));
            public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            Mechanism::RsaPkcsKeyPairGen
        }
        SigningAlgorithm::EcdsaP256Sha256 => {
            public.push(Attribute::EcParams(P256_PARAMS.to_vec()));
            Mechanism::EccKeyPairGen
        }
        SigningAlgorithm::Ed25519 => {
            public.push(Attribute::EcParams(ED25519_PARAMS.to_vec()));
            Mechanism::EccEdwardsKeyPairGen
        }
    };
    session.generate_key_pair(&mechanism, &public, &private_template(&label, &id))?;
    Ok(())
}

fn refused(error: SigningError) -> ProviderError {
    ProviderError::InvalidRequest(error.to_string())
}

fn unexpected(what: &str, scheme: SigningAlgorithm, len: usize) -> ProviderError {
    ProviderError::Storage(format!(
        "the token returned a {len}-byte {what} for {}",
        scheme.describe()
    ))
}

/// Signs `input` with version `version`'s private key, in the token:
/// RSA-PSS and ECDSA over the SHA-256 digest, Ed25519 over the message.
pub fn sign(
    session: &Session,
    key_id: &str,
    version: u32,
    scheme: SigningAlgorithm,
    input: &ToSign,
) -> OpResult<Vec<u8>> {
    input.checked(scheme).map_err(refused)?;
    let key = version_object(session, key_id, version, ObjectClass::PRIVATE_KEY)?;
    match scheme {
        SigningAlgorithm::RsaPss3072Sha256 | SigningAlgorithm::RsaPss4096Sha256 => {
            // CKM_RSA_PKCS_PSS signs a digest made outside the token, so a
            // large artefact's hash is all that ever reaches it.
            let params = PkcsPssParams {
                hash_alg: MechanismType::SHA256,
                mgf: PkcsMgfType::MGF1_SHA256,
                s_len: PSS_SALT_LEN.into(),
            };
            let signature = session.sign(&Mechanism::RsaPkcsPss(params), key, &input.sha256())?;
            let modulus_len = if scheme == SigningAlgorithm::RsaPss3072Sha256 {
                384
            } else {
                512
            };
            if signature.len() != modulus_len {
                return Err(unexpected("signature", scheme, signature.len()).into());
            }
            Ok(signature)
        }
        SigningAlgorithm::EcdsaP256Sha256 => {
            let raw = session.sign(&Mechanism::Ecdsa, key, &input.sha256())?;
            if raw.len() != P256_RAW_SIGNATURE_LEN {
                return Err(unexpected("signature", scheme, raw.len()).into());
            }
            Ok(ecdsa_raw_to_der(&raw).ok_or_else(|| unexpected("signature", scheme, raw.len()))?)
        }
        SigningAlgorithm::Ed25519 => {
            // Pure Ed25519 (RFC 8032): no parameters, the message itself.
            let ToSign::Message(message) = input else {
                return Err(refused(SigningError::DigestForEd25519).into());
            };
            let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
            let signature = session.sign(&mechanism, key, message)?;
            if signature.len() != ED25519_SIGNATURE_LEN {
                return Err(unexpected("signature", scheme, signature.len()).into());
            }
            Ok(signature)
        }
    }
}

/// The SubjectPublicKeyInfo DER of version `version`'s public key, checked
/// to be a key of `scheme` by the parser verifiers use.
pub fn verifying_key_der(
    session: &Session,
    key_id: &str,
    version: u32,
    scheme: SigningAlgorithm,
) -> OpResult<Vec<u8>> {
    let der = match scheme {
        SigningAlgorithm::RsaPss3072Sha256 | SigningAlgorithm::RsaPss4096Sha256 => {
            rsa_spki_der_of(session, key_id, version)?
        }
        SigningAlgorithm::EcdsaP256Sha256 | SigningAlgorithm::Ed25519 => {
            let point = ec_point(session, key_id, version)?;
            let der = if scheme == SigningAlgorithm::Ed25519 {
                ed25519_spki_der(&point)
            } else {
                p256_spki_der(&point)
            };
            der.ok_or_else(|| unexpected("CKA_EC_POINT", scheme, point.len()))?
        }
    };
    if scheme_of(&der) != Some(scheme) {
        return Err(ProviderError::Storage(format!(
            "the token's public key of version {version} of `{key_id}` is not a {} key",
            scheme.describe()
        ))
        .into());
    }
    Ok(der)
}

fn ec_point(session: &Session, key_id: &str, version: u32) -> OpResult<Vec<u8>> {
    let key = version_object(session, key_id, version, ObjectClass::PUBLIC_KEY)?;
    let attributes = session.get_attributes(key, &[AttributeType::EcPoint])?;
    let point = attributes.into_iter().find_map(|a| match a {
        Attribute::EcPoint(point) => Some(point),
        _ => None,
    });
    Ok(point.ok_or_else(|| {
        ProviderError::Storage(format!(
            "the token did not return CKA_EC_POINT of version {version} of `{key_id}`"
        ))
    })?)
}
