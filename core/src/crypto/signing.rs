//! Signing keys: RSA-PSS with SHA-256 (salt as long as the digest, the
//! scheme AWS KMS `RSASSA_PSS_SHA_256` and Cloud KMS `RSA_SIGN_PSS_*_SHA256`
//! use), ECDSA on P-256 with SHA-256 (DER signatures, as both KMSs and
//! `openssl dgst` give them) and Ed25519 (RFC 8032, over the message
//! itself). RSA and ECDSA sign a SHA-256 digest, so a large artefact is
//! hashed where it lies and only the digest travels; Ed25519 has no
//! digest form, so it signs messages of at most [`MAX_MESSAGE`] bytes.

use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair, ParsedPublicKey, RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256, UnparsedPublicKey,
};
use std::fmt;
use std::io::Read;
use zeroize::Zeroizing;

/// The longest message signed whole (Ed25519, or any message sent rather
/// than its digest): AWS KMS's limit for raw messages, so a request that
/// works on one provider works on all.
pub const MAX_MESSAGE: usize = 4096;

/// A signing scheme and key size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    RsaPss3072Sha256,
    RsaPss4096Sha256,
    EcdsaP256Sha256,
    Ed25519,
}

impl SigningAlgorithm {
    /// Whether the scheme signs a SHA-256 digest (RSA-PSS, ECDSA) rather
    /// than the message itself (Ed25519).
    pub const fn signs_digest(self) -> bool {
        !matches!(self, SigningAlgorithm::Ed25519)
    }

    /// The name JOSE gives the scheme (RFC 7518, RFC 8037), for JWTs.
    pub const fn jose_name(self) -> &'static str {
        match self {
            SigningAlgorithm::RsaPss3072Sha256 | SigningAlgorithm::RsaPss4096Sha256 => "PS256",
            SigningAlgorithm::EcdsaP256Sha256 => "ES256",
            SigningAlgorithm::Ed25519 => "EdDSA",
        }
    }

    /// How to check a signature with OpenSSL, for documentation and errors.
    pub const fn describe(self) -> &'static str {
        match self {
            SigningAlgorithm::RsaPss3072Sha256 => "RSA-PSS 3072 with SHA-256",
            SigningAlgorithm::RsaPss4096Sha256 => "RSA-PSS 4096 with SHA-256",
            SigningAlgorithm::EcdsaP256Sha256 => "ECDSA P-256 with SHA-256",
            SigningAlgorithm::Ed25519 => "Ed25519",
        }
    }
}

/// What is signed: a SHA-256 digest, or a message of at most [`MAX_MESSAGE`] bytes.
#[derive(Clone, PartialEq, Eq)]
pub enum ToSign {
    Sha256([u8; 32]),
    Message(Vec<u8>),
}

impl fmt::Debug for ToSign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToSign::Sha256(_) => f.write_str("Sha256(..)"),
            ToSign::Message(message) => write!(f, "Message({} bytes)", message.len()),
        }
    }
}

impl ToSign {
    /// The input `algorithm` takes for `data`: its SHA-256 for RSA-PSS and
    /// ECDSA, `data` itself for Ed25519 (refused past [`MAX_MESSAGE`]).
    pub fn for_data(algorithm: SigningAlgorithm, data: &[u8]) -> Result<Self, SigningError> {
        if algorithm.signs_digest() {
            return Ok(ToSign::Sha256(super::sha256(data)));
        }
        if data.len() > MAX_MESSAGE {
            return Err(SigningError::MessageTooLong(data.len()));
        }
        Ok(ToSign::Message(data.to_vec()))
    }

    /// The SHA-256 digest `algorithm` signs, or the message Ed25519 signs;
    /// refuses a digest for Ed25519 and an over-long message.
    pub fn checked(&self, algorithm: SigningAlgorithm) -> Result<(), SigningError> {
        match self {
            ToSign::Sha256(_) if !algorithm.signs_digest() => Err(SigningError::DigestForEd25519),
            ToSign::Message(message) if message.len() > MAX_MESSAGE => {
                Err(SigningError::MessageTooLong(message.len()))
            }
            _ => Ok(()),
        }
    }

    /// The SHA-256 digest to sign, hashing a message here when needed.
    pub fn sha256(&self) -> [u8; 32] {
        match self {
            ToSign::Sha256(digest) => *digest,
            ToSign::Message(message) => super::sha256(message),
        }
    }
}

/// What `keyward sign` sends for the data `reader` yields: the data itself
/// when it is at most [`MAX_MESSAGE`] bytes (every scheme takes that),
/// else its SHA-256, hashed as it streams, so a large artefact is never
/// held in memory.
pub fn read_to_sign(mut reader: impl Read) -> std::io::Result<ToSign> {
    let mut head = Vec::with_capacity(MAX_MESSAGE + 1);
    (&mut reader)
        .take(MAX_MESSAGE as u64 + 1)
        .read_to_end(&mut head)?;
    if head.len() <= MAX_MESSAGE {
        return Ok(ToSign::Message(head));
    }
    let mut context = aws_lc_rs::digest::Context::new(&SHA256);
    context.update(&head);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        context.update(&buffer[..read]);
    }
    let digest = context.finish();
    Ok(ToSign::Sha256(
        digest.as_ref().try_into().expect("SHA-256 is 32 bytes"),
    ))
}

/// The scheme a public key (SubjectPublicKeyInfo DER) is for: RSA keys
/// of 3072 or 4096 bits (RSA-PSS), P-256 (ECDSA) or Ed25519; `None` for
/// any other key.
pub fn scheme_of(spki_der: &[u8]) -> Option<SigningAlgorithm> {
    if ParsedPublicKey::new(&ED25519, spki_der).is_ok() {
        return Some(SigningAlgorithm::Ed25519);
    }
    if ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, spki_der).is_ok() {
        return Some(SigningAlgorithm::EcdsaP256Sha256);
    }
    let rsa = aws_lc_rs::rsa::PublicEncryptingKey::from_der(spki_der).ok()?;
    match rsa.key_size_bits() {
        3072 => Some(SigningAlgorithm::RsaPss3072Sha256),
        4096 => Some(SigningAlgorithm::RsaPss4096Sha256),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("the private key is not a {0} key in PKCS#8 form")]
    InvalidPrivateKey(&'static str),
    #[error("not a {0} public key in SubjectPublicKeyInfo form")]
    InvalidPublicKey(&'static str),
    #[error(
        "Ed25519 signs the message itself, not a digest; send the message (at most {MAX_MESSAGE} bytes)"
    )]
    DigestForEd25519,
    #[error(
        "a message signed whole may be at most {MAX_MESSAGE} bytes, this one is {0}; sign its SHA-256 with an RSA or ECDSA key, or sign a file that lists the artefact's digest"
    )]
    MessageTooLong(usize),
    #[error("the signature does not verify with this public key")]
    BadSignature,
    #[error("signing failed")]
    SignFailed,
}

/// A fresh private key for `algorithm`, as PKCS#8 DER wiped on drop.
pub fn generate(algorithm: SigningAlgorithm) -> Zeroizing<Vec<u8>> {
    let der: Pkcs8V1Der = match algorithm {
        SigningAlgorithm::RsaPss3072Sha256 | SigningAlgorithm::RsaPss4096Sha256 => {
            let size = if algorithm == SigningAlgorithm::RsaPss3072Sha256 {
                KeySize::Rsa3072
            } else {
                KeySize::Rsa4096
            };
            let key = RsaKeyPair::generate(size).expect("RSA key generation");
            key.as_der().expect("PKCS#8 encoding of a fresh key")
        }
        SigningAlgorithm::EcdsaP256Sha256 => {
            let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
                .expect("P-256 key generation");
            return Zeroizing::new(
                key.to_pkcs8v1()
                    .expect("PKCS#8 encoding of a fresh key")
                    .as_ref()
                    .to_vec(),
            );
        }
        SigningAlgorithm::Ed25519 => {
            let key = Ed25519KeyPair::generate().expect("Ed25519 key generation");
            return Zeroizing::new(
                key.to_pkcs8v1()
                    .expect("PKCS#8 encoding of a fresh key")
                    .as_ref()
                    .to_vec(),
            );
        }
    };
    Zeroizing::new(der.as_ref().to_vec())
}

/// The SubjectPublicKeyInfo DER of the private key `pkcs8`.
pub fn public_key(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<Vec<u8>, SigningError> {
    let invalid = || SigningError::InvalidPrivateKey(algorithm.describe());
    let der: PublicKeyX509Der = match algorithm {
        SigningAlgorithm::RsaPss3072Sha256 | SigningAlgorithm::RsaPss4096Sha256 => {
            rsa_key(algorithm, pkcs8)?.public_key().as_der()
        }
        SigningAlgorithm::EcdsaP256Sha256 => {
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8)
                .map_err(|_| invalid())?
                .public_key()
                .as_der()
        }
        SigningAlgorithm::Ed25519 => Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|_| invalid())?
            .public_key()
            .as_der(),
    }
    .map_err(|_| invalid())?;
    Ok(der.as_ref().to_vec())
}

/// Signs `input` with the private key `pkcs8`.
pub fn sign(
    algorithm: SigningAlgorithm,
    pkcs8: &[u8],
    input: &ToSign,
) -> Result<Vec<u8>, SigningError> {
    input.checked(algorithm)?;
    let invalid = || SigningError::InvalidPrivateKey(algorithm.describe());
    match (algorithm, input) {
        (SigningAlgorithm::Ed25519, ToSign::Message(message)) => {
            let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| invalid())?;
            Ok(key.sign(message).as_ref().to_vec())
        }
        (SigningAlgorithm::Ed25519, ToSign::Sha256(_)) => Err(SigningError::DigestForEd25519),
        (SigningAlgorithm::EcdsaP256Sha256, input) => {
            let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8)
                .map_err(|_| invalid())?;
            let signature = key
                .sign_digest(&digest(&input.sha256()))
                .map_err(|_| SigningError::SignFailed)?;
            Ok(signature.as_ref().to_vec())
        }
        (rsa, input) => {
            let key = rsa_key(rsa, pkcs8)?;
            let mut signature = vec![0u8; key.public_modulus_len()];
            key.sign_digest(&RSA_PSS_SHA256, &digest(&input.sha256()), &mut signature)
                .map_err(|_| SigningError::SignFailed)?;
            Ok(signature)
        }
    }
}

/// Checks `signature` over `input` with the public key `spki_der`.
pub fn verify(
    algorithm: SigningAlgorithm,
    spki_der: &[u8],
    input: &ToSign,
    signature: &[u8],
) -> Result<(), SigningError> {
    input.checked(algorithm)?;
    let verified = match algorithm {
        SigningAlgorithm::Ed25519 => {
            let ToSign::Message(message) = input else {
                return Err(SigningError::DigestForEd25519);
            };
            UnparsedPublicKey::new(&ED25519, spki_der).verify(message, signature)
        }
        SigningAlgorithm::EcdsaP256Sha256 => {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, spki_der)
                .verify_digest(&digest(&input.sha256()), signature)
        }
        SigningAlgorithm::RsaPss3072Sha256 | SigningAlgorithm::RsaPss4096Sha256 => {
            check_rsa_size(algorithm, spki_der)?;
            UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, spki_der)
                .verify_digest(&digest(&input.sha256()), signature)
        }
    };
    verified.map_err(|_| SigningError::BadSignature)
}

fn rsa_key(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<RsaKeyPair, SigningError> {
    let key = RsaKeyPair::from_pkcs8(pkcs8)
        .map_err(|_| SigningError::InvalidPrivateKey(algorithm.describe()))?;
    if key.public_modulus_len() * 8 != rsa_bits(algorithm) {
        return Err(SigningError::InvalidPrivateKey(algorithm.describe()));
    }
    Ok(key)
}

fn check_rsa_size(algorithm: SigningAlgorithm, spki_der: &[u8]) -> Result<(), SigningError> {
    let key = aws_lc_rs::rsa::PublicEncryptingKey::from_der(spki_der)
        .map_err(|_| SigningError::InvalidPublicKey(algorithm.describe()))?;
    if key.key_size_bits() != rsa_bits(algorithm) {
        return Err(SigningError::InvalidPublicKey(algorithm.describe()));
    }
    Ok(())
}

fn rsa_bits(algorithm: SigningAlgorithm) -> usize {
    match algorithm {
        SigningAlgorithm::RsaPss4096Sha256 => 4096,
        _ => 3072,
    }
}

fn digest(sha256: &[u8; 32]) -> Digest {
    Digest::import_less_safe(sha256, &SHA256).expect("a SHA-256 digest is 32 bytes")
}
