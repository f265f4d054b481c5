//! The primitives Keyward uses, all from `aws-lc-rs` (AWS-LC): AES-256-GCM
//! for data and for symmetric DEK wrapping, RSA-OAEP-SHA256 for offline
//! sealing, X25519 with HKDF-SHA256 to hand a DEK to an online sealer
//! ([`dek_transport`]), RSA-PSS, ECDSA P-256 and Ed25519 for signing keys
//! ([`signing`]), and the system CSPRNG. Why AWS-LC: see `docs/crypto-choices.md`.

mod aes_gcm;
pub mod dek_transport;
pub mod pem;
mod rsa_oaep;
pub mod signing;

pub use aes_gcm::{AeadError, NONCE_LEN, TAG_LEN, open, seal};
pub use rsa_oaep::{
    OaepError, RsaKeySize, RsaPrivateKey, RsaPublicKey, public_key_from_pem, public_key_to_pem,
};

/// Fills `buf` from the operating system's CSPRNG. Aborts if it is unavailable:
/// continuing without randomness would reuse nonces and keys.
pub fn fill_random(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("the system random number generator is unavailable");
}

/// A fresh random 96-bit GCM nonce.
pub fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    nonce
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}
