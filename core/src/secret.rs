//! Types that hold key material and plaintext: wiped on drop, redacted in
//! `Debug`, never `Display`ed.

use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// A 256-bit data-encryption key. One per sealed secret.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct Dek([u8; Dek::LEN]);

impl Dek {
    pub const LEN: usize = 32;

    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut key = [0u8; Self::LEN];
        crate::crypto::fill_random(&mut key);
        Dek(key)
    }

    /// Takes ownership of raw key bytes; `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; Self::LEN] = bytes.try_into().ok()?;
        Some(Dek(array))
    }

    pub fn expose(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl fmt::Debug for Dek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Dek(<redacted>)")
    }
}

/// Plaintext secret bytes (a secret value, a key file, a keyring).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        SecretBytes::new(bytes)
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(bytes: &[u8]) -> Self {
        SecretBytes::new(bytes.to_vec())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_material() {
        let dek = Dek::from_slice(&[0xAB; 32]).unwrap();
        let value = SecretBytes::from(&b"hunter2"[..]);
        let printed = format!("{dek:?} {value:?}");
        assert!(!printed.contains("171") && !printed.to_lowercase().contains("ab"));
        assert!(!printed.contains("hunter2"));
        assert!(printed.contains("redacted"));
    }

    #[test]
    fn dek_requires_exactly_32_bytes() {
        assert!(Dek::from_slice(&[0; 31]).is_none());
        assert!(Dek::from_slice(&[0; 33]).is_none());
        assert!(Dek::from_slice(&[0; 32]).is_some());
    }

    #[test]
    fn generated_deks_differ() {
        assert_ne!(Dek::generate().expose(), Dek::generate().expose());
    }
}
