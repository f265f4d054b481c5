//! A tiny DER encoder for one structure: the SubjectPublicKeyInfo of an RSA
//! public key, built from the token's CKA_MODULUS and CKA_PUBLIC_EXPONENT
//! (PKCS#11 2.40 has no portable "give me the SPKI" attribute).
//!
//! ```text
//! SubjectPublicKeyInfo ::= SEQUENCE {
//!   algorithm  SEQUENCE { OID rsaEncryption, NULL },
//!   subjectPublicKey BIT STRING (RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }) }
//! ```

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
/// OID 1.2.840.113549.1.1.1 (rsaEncryption) followed by NULL parameters.
const RSA_ALGORITHM: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER: minimal big-endian, with a 0x00 pad when the top
/// bit is set (so it is not read as negative).
fn unsigned_integer(big_endian: &[u8]) -> Vec<u8> {
    let skip = big_endian.iter().take_while(|b| **b == 0).count();
    let digits = &big_endian[skip..];
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    tlv(INTEGER, &content)
}

pub fn rsa_spki_der(modulus: &[u8], public_exponent: &[u8]) -> Vec<u8> {
    let mut rsa_public_key = unsigned_integer(modulus);
    rsa_public_key.extend_from_slice(&unsigned_integer(public_exponent));
    let rsa_public_key = tlv(SEQUENCE, &rsa_public_key);
    let mut bits = vec![0u8]; // no unused bits
    bits.extend_from_slice(&rsa_public_key);
    let mut spki = RSA_ALGORITHM.to_vec();
    spki.extend_from_slice(&tlv(BIT_STRING, &bits));
    tlv(SEQUENCE, &spki)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::crypto::{RsaKeySize, RsaPrivateKey, RsaPublicKey};

    #[test]
    fn lengths_use_the_shortest_form() {
        assert_eq!(tlv(0x04, &[1; 3]), [0x04, 3, 1, 1, 1]);
        assert_eq!(&tlv(0x04, &[0; 0x80])[..3], &[0x04, 0x81, 0x80]);
        assert_eq!(&tlv(0x04, &[0; 0x1234])[..4], &[0x04, 0x82, 0x12, 0x34]);
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(unsigned_integer(&[0x01, 0x00, 0x01]), [2, 3, 1, 0, 1]);
        assert_eq!(unsigned_integer(&[0, 0, 0x80]), [2, 2, 0, 0x80]);
        assert_eq!(unsigned_integer(&[0]), [2, 1, 0]);
    }

    /// Rebuilding the SPKI of a real key from its n and e gives the same
    /// bytes aws-lc produces, and aws-lc accepts it.
    #[test]
    fn matches_a_reference_encoder() {
        let reference = RsaPrivateKey::generate(RsaKeySize::Bits3072).public_key();
        let der = reference.spki_der();
        // n sits at the end of the structure, followed by e = 65537 (2 03 010001).
        let exponent = [0x01, 0x00, 0x01];
        let n_start = der.len() - 5 - 384;
        let modulus = &der[n_start..der.len() - 5];
        let rebuilt = rsa_spki_der(modulus, &exponent);
        assert_eq!(rebuilt, der);
        assert_eq!(RsaPublicKey::from_spki_der(&rebuilt).unwrap().bits(), 3072);
    }
}
