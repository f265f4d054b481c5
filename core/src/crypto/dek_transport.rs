//! Handing a fresh DEK to one client across a path that must not learn it:
//! the API server, its audit log and any other admission webhook see the
//! request and the answer of an online seal. The client sends the public
//! half of a one-use X25519 key; the sender answers with its own one-use
//! public key and the DEK under AES-256-GCM, keyed by HKDF-SHA256 of the
//! shared secret. Both halves are fresh per request, so the derived key
//! is used once and a zero nonce is safe. `binding` (what the DEK is for)
//! is the AEAD's associated data: an answer moved to another request, or
//! edited on the way, does not open.

use super::aes_gcm::{self, NONCE_LEN};
use crate::secret::Dek;
use aws_lc_rs::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::rand::SystemRandom;
use zeroize::Zeroizing;

/// Length of an X25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

const SALT: &[u8] = b"keyward dek transport v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("the recipient key is not a 32-byte X25519 public key")]
    BadPublicKey,
    #[error("the data key answer does not open: it was made for another request or changed")]
    DoesNotOpen,
}

/// The client's side: made before the request, consumed by [`open`](Self::open).
pub struct Recipient {
    private: EphemeralPrivateKey,
    public: [u8; PUBLIC_KEY_LEN],
}

/// The sender's answer: its one-use public key and the encrypted DEK.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedDek {
    pub sender_public: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl Recipient {
    pub fn generate() -> Self {
        let private = EphemeralPrivateKey::generate(&X25519, &SystemRandom::new())
            .expect("X25519 key generation");
        let public = private
            .compute_public_key()
            .expect("X25519 public key")
            .as_ref()
            .try_into()
            .expect("an X25519 public key is 32 bytes");
        Recipient { private, public }
    }

    pub fn public_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public
    }

    /// The DEK in `sealed`, if it was sealed to this recipient for `binding`.
    pub fn open(self, sealed: &SealedDek, binding: &[u8]) -> Result<Dek, TransportError> {
        if sealed.sender_public.len() != PUBLIC_KEY_LEN {
            return Err(TransportError::BadPublicKey);
        }
        let key = derive(
            self.private,
            &sealed.sender_public,
            &sealed.sender_public,
            &self.public,
        )?;
        let plain = aes_gcm::open(&key, &[0; NONCE_LEN], binding, &sealed.ciphertext)
            .map_err(|_| TransportError::DoesNotOpen)?;
        Dek::from_slice(&plain).ok_or(TransportError::DoesNotOpen)
    }
}

/// Seals `dek` to `recipient_public` for `binding`.
pub fn seal_to(
    recipient_public: &[u8],
    dek: &Dek,
    binding: &[u8],
) -> Result<SealedDek, TransportError> {
    if recipient_public.len() != PUBLIC_KEY_LEN {
        return Err(TransportError::BadPublicKey);
    }
    let own = Recipient::generate();
    let sender_public = own.public.to_vec();
    let key = derive(
        own.private,
        recipient_public,
        &sender_public,
        recipient_public,
    )?;
    let ciphertext = aes_gcm::seal(&key, &[0; NONCE_LEN], binding, dek.expose());
    Ok(SealedDek {
        sender_public,
        ciphertext,
    })
}

/// HKDF-SHA256 of the X25519 secret, with both public keys as info so the
/// key belongs to this one exchange.
fn derive(
    private: EphemeralPrivateKey,
    peer: &[u8],
    sender_public: &[u8],
    recipient_public: &[u8],
) -> Result<Zeroizing<[u8; 32]>, TransportError> {
    let peer = UnparsedPublicKey::new(&X25519, peer);
    // AWS-LC refuses a low-order peer point (an all-zero secret).
    agreement::agree_ephemeral(private, peer, TransportError::BadPublicKey, |secret| {
        let prk = Salt::new(HKDF_SHA256, SALT).extract(secret);
        let info = [sender_public, recipient_public];
        let mut key = Zeroizing::new([0u8; 32]);
        prk.expand(&info, HKDF_SHA256)
            .and_then(|okm| okm.fill(key.as_mut()))
            .map_err(|_| TransportError::BadPublicKey)?;
        Ok(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recipient_opens_what_was_sealed_to_it() {
        let dek = Dek::generate();
        let recipient = Recipient::generate();
        let sealed = seal_to(recipient.public_key(), &dek, b"ns/db").unwrap();
        assert_eq!(
            recipient.open(&sealed, b"ns/db").unwrap().expose(),
            dek.expose()
        );
    }

    #[test]
    fn another_binding_or_recipient_or_edit_does_not_open() {
        let dek = Dek::generate();
        let answer = |edit: fn(&mut SealedDek)| {
            let recipient = Recipient::generate();
            let mut sealed = seal_to(recipient.public_key(), &dek, b"ns/db").unwrap();
            edit(&mut sealed);
            (recipient, sealed)
        };
        let (recipient, sealed) = answer(|_| {});
        assert_eq!(
            recipient.open(&sealed, b"ns/other").err(),
            Some(TransportError::DoesNotOpen)
        );
        assert!(Recipient::generate().open(&sealed, b"ns/db").is_err());
        let (recipient, sealed) = answer(|s| s.sender_public[0] ^= 1);
        assert!(recipient.open(&sealed, b"ns/db").is_err());
        let (recipient, sealed) = answer(|s| s.ciphertext[3] ^= 1);
        assert!(recipient.open(&sealed, b"ns/db").is_err());
    }

    #[test]
    fn malformed_and_low_order_public_keys_are_refused() {
        let dek = Dek::generate();
        assert_eq!(
            seal_to(&[1; 31], &dek, b"").err(),
            Some(TransportError::BadPublicKey)
        );
        // The all-zero point gives an all-zero secret: refused, not used.
        assert_eq!(
            seal_to(&[0; 32], &dek, b"").err(),
            Some(TransportError::BadPublicKey)
        );
    }

    #[test]
    fn each_answer_uses_a_fresh_sender_key() {
        let dek = Dek::generate();
        let recipient = Recipient::generate();
        let a = seal_to(recipient.public_key(), &dek, b"x").unwrap();
        let b = seal_to(recipient.public_key(), &dek, b"x").unwrap();
        assert_ne!(a.sender_public, b.sender_public);
        assert_ne!(a.ciphertext, b.ciphertext);
    }
}
