//! Types that hold key material and plaintext: each in its own heap block
//! that never moves (so moving the value copies a pointer, not the secret),
//! locked into RAM once the process asked for it ([`crate::hardening`]),
//! wiped on drop, redacted in `Debug`, never `Display`ed.

use crate::locked::Locked;
use std::fmt;
use zeroize::Zeroizing;

/// A 256-bit data-encryption key. One per sealed secret.
#[derive(Clone)]
pub struct Dek(Locked<[u8; Dek::LEN]>);

impl Dek {
    pub const LEN: usize = 32;
    const WHAT: &str = "a data key";

    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut key = Locked::zeroed(Self::WHAT);
        crate::crypto::fill_random(key.expose_mut());
        Dek(key)
    }

    /// Copies raw key bytes; `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let mut key = Locked::zeroed(Self::WHAT);
        key.expose_mut().copy_from_slice(bytes);
        Some(Dek(key))
    }

    pub fn expose(&self) -> &[u8; Self::LEN] {
        self.0.expose()
    }
}

impl fmt::Debug for Dek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Dek(<redacted>)")
    }
}

/// Plaintext secret bytes (a secret value, a key file, a keyring).
#[derive(Clone)]
pub struct SecretBytes(Locked<[u8]>);

impl SecretBytes {
    const WHAT: &str = "key material or a secret value";

    /// Takes the bytes into a locked block of exactly their length; the
    /// vector they came in is wiped (spare capacity included).
    pub fn new(bytes: Vec<u8>) -> Self {
        let bytes = Zeroizing::new(bytes);
        SecretBytes(Locked::copy_of(&bytes, Self::WHAT))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    pub fn len(&self) -> usize {
        self.expose().len()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl Default for SecretBytes {
    fn default() -> Self {
        SecretBytes(Locked::copy_of(&[], Self::WHAT))
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        crate::crypto::constant_time_eq(self.expose(), other.expose())
    }
}

impl Eq for SecretBytes {}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        SecretBytes::new(bytes)
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(bytes: &[u8]) -> Self {
        SecretBytes(Locked::copy_of(bytes, Self::WHAT))
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.len())
    }
}

/// `value` as JSON, for documents that hold secrets. `serde_json::to_vec`
/// grows its buffer as it writes and frees each outgrown block unwiped,
/// secrets included; here every outgrown block is wiped first.
pub fn to_json_wiped<T: serde::Serialize + ?Sized>(
    value: &T,
) -> serde_json::Result<Zeroizing<Vec<u8>>> {
    let mut out = WipedBuffer(Zeroizing::new(Vec::with_capacity(1024)));
    serde_json::to_writer(&mut out, value)?;
    Ok(out.0)
}

struct WipedBuffer(Zeroizing<Vec<u8>>);

impl std::io::Write for WipedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let needed = self.0.len() + bytes.len();
        if needed > self.0.capacity() {
            let mut bigger = Vec::with_capacity(needed.max(self.0.capacity() * 2));
            bigger.extend_from_slice(&self.0);
            // The old block is wiped as it is dropped.
            self.0 = Zeroizing::new(bigger);
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
    fn wiped_json_is_plain_json() {
        let value: std::collections::BTreeMap<String, String> =
            (0..200).map(|i| (format!("k{i}"), "v".repeat(i))).collect();
        let wiped = to_json_wiped(&value).unwrap();
        assert_eq!(*wiped, serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn secret_bytes_compare_by_content() {
        assert_eq!(
            SecretBytes::from(&b"a"[..]),
            SecretBytes::new(b"a".to_vec())
        );
        assert_ne!(SecretBytes::from(&b"a"[..]), SecretBytes::default());
    }

    #[test]
    fn generated_deks_differ() {
        assert_ne!(Dek::generate().expose(), Dek::generate().expose());
    }
}
