//! SubjectPublicKeyInfo DER of a version's public key, built from the
//! token's attributes (PKCS#11 2.40 has no portable "give me the SPKI"
//! attribute): CKA_MODULUS and CKA_PUBLIC_EXPONENT for RSA, CKA_EC_POINT
//! for P-256 and Ed25519.
//!
//! ```text
//! SubjectPublicKeyInfo ::= SEQUENCE {
//!   algorithm        SEQUENCE { OID, parameters },
//!   subjectPublicKey BIT STRING }
//! RSA:     rsaEncryption, NULL;        RSAPublicKey ::= SEQUENCE { n, e }
//! P-256:   id-ecPublicKey, prime256v1; the uncompressed point 04||x||y
//! Ed25519: id-Ed25519, no parameters;  the 32-byte key (RFC 8410)
//! ```

use crate::der::{self, SEQUENCE};

/// OID 1.2.840.113549.1.1.1 (rsaEncryption) followed by NULL parameters.
const RSA_ALGORITHM: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
/// OID 1.2.840.10045.2.1 (id-ecPublicKey).
const EC_PUBLIC_KEY_OID: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// OID 1.2.840.10045.3.1.7 (prime256v1): both the SPKI parameters and the
/// CKA_EC_PARAMS a P-256 key pair is generated with.
pub const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// OID 1.3.101.112 (id-Ed25519): the SPKI algorithm and the CKA_EC_PARAMS
/// an Ed25519 key pair is generated with. PKCS#11 3.0 also allows the
/// PrintableString "edwards25519" (SoftHSM2 2.6.1 takes both); the OID is
/// what the SPKI carries anyway, so one constant serves both.
pub const ED25519_PARAMS: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

const P256_POINT_LEN: usize = 65;
const ED25519_KEY_LEN: usize = 32;

fn spki(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut content = algorithm.to_vec();
    content.extend_from_slice(&der::bit_string(key));
    der::tlv(SEQUENCE, &content)
}

pub fn rsa_spki_der(modulus: &[u8], public_exponent: &[u8]) -> Vec<u8> {
    let mut rsa_public_key = der::unsigned_integer(modulus);
    rsa_public_key.extend_from_slice(&der::unsigned_integer(public_exponent));
    spki(&RSA_ALGORITHM, &der::tlv(SEQUENCE, &rsa_public_key))
}

/// The P-256 SPKI from CKA_EC_POINT, which PKCS#11 defines as a DER OCTET
/// STRING around the uncompressed point; some tokens give the bare point,
/// so that is taken too. `None` when it is neither.
pub fn p256_spki_der(ec_point: &[u8]) -> Option<Vec<u8>> {
    let point = match der::octet_string_content(ec_point) {
        Some(inner) => inner,
        None => ec_point,
    };
    if point.len() != P256_POINT_LEN || point[0] != 0x04 {
        return None;
    }
    let mut algorithm = EC_PUBLIC_KEY_OID.to_vec();
    algorithm.extend_from_slice(&P256_PARAMS);
    Some(spki(&der::tlv(SEQUENCE, &algorithm), point))
}

/// The Ed25519 SPKI from CKA_EC_POINT: the 32-byte key, in an OCTET STRING
/// (PKCS#11 3.0, SoftHSM2) or bare (some 2.40-era tokens).
pub fn ed25519_spki_der(ec_point: &[u8]) -> Option<Vec<u8>> {
    let key = match der::octet_string_content(ec_point) {
        Some(inner) => inner,
        None => ec_point,
    };
    if key.len() != ED25519_KEY_LEN {
        return None;
    }
    Some(spki(&der::tlv(SEQUENCE, &ED25519_PARAMS), key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::crypto::signing::{self, SigningAlgorithm, ToSign};
    use keyward_core::crypto::{RsaKeySize, RsaPrivateKey, RsaPublicKey};

    /// Rebuilding the SPKI of a real key from its n and e gives the same
    /// bytes aws-lc produces, and aws-lc accepts it.
    #[test]
    fn rsa_matches_a_reference_encoder() {
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

    /// A fresh key of `algorithm` from core: its SPKI, and the public key
    /// bytes that end it (what a token's CKA_EC_POINT carries).
    fn reference(algorithm: SigningAlgorithm, key_len: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let pkcs8 = signing::generate(algorithm);
        let der = signing::public_key(algorithm, &pkcs8).unwrap();
        let key = der[der.len() - key_len..].to_vec();
        (pkcs8.to_vec(), der, key)
    }

    /// Both CKA_EC_POINT forms give the SPKI aws-lc produces, which core
    /// recognises as the right scheme and which verifies a signature.
    fn rebuilds(algorithm: SigningAlgorithm, key_len: usize, build: fn(&[u8]) -> Option<Vec<u8>>) {
        let (pkcs8, der, key) = reference(algorithm, key_len);
        let wrapped = der::tlv(der::OCTET_STRING, &key);
        assert_eq!(build(&wrapped).as_deref(), Some(&der[..]), "{algorithm:?}");
        assert_eq!(build(&key).as_deref(), Some(&der[..]), "{algorithm:?}");
        assert_eq!(signing::scheme_of(&der), Some(algorithm));
        let input = ToSign::for_data(algorithm, b"spki").unwrap();
        let signature = signing::sign(algorithm, &pkcs8, &input).unwrap();
        signing::verify(algorithm, &build(&wrapped).unwrap(), &input, &signature).unwrap();
    }

    #[test]
    fn p256_matches_a_reference_encoder() {
        rebuilds(
            SigningAlgorithm::EcdsaP256Sha256,
            P256_POINT_LEN,
            p256_spki_der,
        );
    }

    #[test]
    fn ed25519_matches_a_reference_encoder() {
        rebuilds(SigningAlgorithm::Ed25519, ED25519_KEY_LEN, ed25519_spki_der);
    }

    #[test]
    fn malformed_points_are_refused() {
        let mut compressed = vec![0x02];
        compressed.extend_from_slice(&[7; 32]);
        assert_eq!(p256_spki_der(&compressed), None);
        assert_eq!(
            p256_spki_der(&der::tlv(der::OCTET_STRING, &compressed)),
            None
        );
        assert_eq!(p256_spki_der(&[0x04; 64]), None);
        assert_eq!(ed25519_spki_der(&[1; 31]), None);
        assert_eq!(
            ed25519_spki_der(&der::tlv(der::OCTET_STRING, &[1; 33])),
            None
        );
    }
}
