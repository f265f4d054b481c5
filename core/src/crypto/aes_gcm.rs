//! AES-256-GCM with a 96-bit nonce and a 128-bit tag appended to the ciphertext.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// Deliberately carries no detail: which byte failed must not leak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("AES-256-GCM authentication failed")]
pub struct AeadError;

fn cipher(key: &[u8; KEY_LEN]) -> LessSafeKey {
    // A 32-byte key is always accepted by AES_256_GCM.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES-256 key"))
}

/// Encrypts `plaintext`; returns ciphertext followed by the 16-byte tag.
pub fn seal(key: &[u8; KEY_LEN], nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(plaintext.len() + TAG_LEN);
    buffer.extend_from_slice(plaintext);
    cipher(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            &mut buffer,
        )
        .expect("AES-GCM sealing only fails for inputs over 64 GiB");
    buffer
}

/// Decrypts `ciphertext || tag`. The plaintext is wiped when dropped.
pub fn open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AeadError> {
    if ciphertext_and_tag.len() < TAG_LEN {
        return Err(AeadError);
    }
    let mut buffer = Zeroizing::new(ciphertext_and_tag.to_vec());
    let plaintext_len = cipher(key)
        .open_in_place(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            &mut buffer,
        )
        .map_err(|_| AeadError)?
        .len();
    buffer.truncate(plaintext_len);
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let key = [7u8; 32];
        let nonce = [9u8; 12];
        let sealed = seal(&key, &nonce, b"aad", b"value");
        assert_eq!(sealed.len(), 5 + TAG_LEN);
        assert_eq!(&open(&key, &nonce, b"aad", &sealed).unwrap()[..], b"value");
        assert_eq!(open(&key, &nonce, b"other", &sealed), Err(AeadError));
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert_eq!(open(&key, &nonce, b"aad", &flipped), Err(AeadError));
        assert_eq!(open(&key, &nonce, b"aad", &sealed[..10]), Err(AeadError));
    }
}
