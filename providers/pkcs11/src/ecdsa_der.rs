//! CKM_ECDSA returns the signature as raw `r || s` (each as long as the
//! curve order), while Keyward's ECDSA signatures are DER, as AWS KMS,
//! Cloud KMS and `openssl dgst` give and take them:
//!
//! ```text
//! ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }
//! ```

use crate::der::{self, SEQUENCE};

/// The DER form of the raw signature `r || s`; `None` when `raw` cannot be
/// one (empty, or of odd length).
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut content = der::unsigned_integer(r);
    content.extend_from_slice(&der::unsigned_integer(s));
    Some(der::tlv(SEQUENCE, &content))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::crypto::signing::{self, SigningAlgorithm, ToSign};

    /// The raw `r || s` (32 bytes each) of a DER P-256 signature: the
    /// reverse of what is tested, to turn aws-lc's signatures into input.
    fn der_to_raw(der: &[u8]) -> Vec<u8> {
        assert_eq!(der[0], SEQUENCE);
        let mut at = 2;
        let mut raw = Vec::new();
        for _ in 0..2 {
            assert_eq!(der[at], der::INTEGER);
            let len = usize::from(der[at + 1]);
            let digits = &der[at + 2..at + 2 + len];
            let digits = &digits[digits.iter().take_while(|b| **b == 0).count()..];
            raw.extend(std::iter::repeat_n(0u8, 32 - digits.len()));
            raw.extend_from_slice(digits);
            at += 2 + len;
        }
        assert_eq!(at, der.len());
        raw
    }

    #[test]
    fn high_bits_get_a_zero_pad() {
        let mut raw = vec![0x80; 32];
        raw.extend_from_slice(&[0x7f; 32]);
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(&der[..2], &[0x30, 2 + 33 + 2 + 32]);
        assert_eq!(&der[2..5], &[0x02, 33, 0x00]);
        assert_eq!(&der[5..37], &[0x80; 32]);
        assert_eq!(&der[37..39], &[0x02, 32]);
        assert_eq!(&der[39..], &[0x7f; 32]);
    }

    #[test]
    fn leading_zeros_are_dropped() {
        let mut r = [0u8; 32];
        r[31] = 1;
        let mut s = [0u8; 32];
        s[2] = 0x90; // after two zero bytes, a high bit: still padded once
        let raw = [r, s].concat();
        let der = ecdsa_raw_to_der(&raw).unwrap();
        let mut expected = vec![0x30, 3 + 2 + 31, 0x02, 1, 1, 0x02, 31, 0x00];
        expected.extend_from_slice(&s[2..]);
        assert_eq!(der, expected);
        assert_eq!(der_to_raw(&der), raw);
    }

    #[test]
    fn odd_or_empty_input_is_refused() {
        assert_eq!(ecdsa_raw_to_der(&[]), None);
        assert_eq!(ecdsa_raw_to_der(&[1; 63]), None);
    }

    /// aws-lc's DER signatures, taken apart and put back, are byte for
    /// byte the same and verify; over many signatures every padding case
    /// (high bit, leading zero byte) comes up.
    #[test]
    fn round_trips_real_signatures() {
        let algorithm = SigningAlgorithm::EcdsaP256Sha256;
        let pkcs8 = signing::generate(algorithm);
        let spki = signing::public_key(algorithm, &pkcs8).unwrap();
        for i in 0..64u32 {
            let input = ToSign::Sha256(keyward_core::crypto::sha256(&i.to_be_bytes()));
            let reference = signing::sign(algorithm, &pkcs8, &input).unwrap();
            let raw = der_to_raw(&reference);
            let der = ecdsa_raw_to_der(&raw).unwrap();
            assert_eq!(der, reference);
            signing::verify(algorithm, &spki, &input, &der).unwrap();
        }
    }
}
