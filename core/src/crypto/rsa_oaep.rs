//! RSA-OAEP with SHA-256 (and MGF1-SHA-256), no label: the scheme AWS KMS
//! (`RSAES_OAEP_SHA_256`), Cloud KMS (`RSA_DECRYPT_OAEP_*_SHA256`) and PKCS#11
//! tokens all offer, so a value sealed offline opens with any provider.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use std::fmt;
use zeroize::Zeroizing;

/// Keys below 3072 bits are refused: NIST SP 800-57 gives 2048-bit RSA only
/// 112-bit security, below the 128 bits of the AES-256 data it protects.
pub const MIN_RSA_BITS: usize = 3072;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OaepError {
    #[error("not an RSA public key in SubjectPublicKeyInfo form")]
    InvalidPublicKey,
    #[error("not an RSA private key in PKCS#8 form")]
    InvalidPrivateKey,
    #[error("RSA key has {0} bits; Keyward needs at least {MIN_RSA_BITS}")]
    KeyTooSmall(usize),
    #[error("no PEM `PUBLIC KEY` block found")]
    NoPemBlock,
    #[error("RSA-OAEP decryption failed")]
    DecryptFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaKeySize {
    Bits3072,
    Bits4096,
}

/// The public half: safe to publish, used to seal offline.
#[derive(Clone)]
pub struct RsaPublicKey {
    spki_der: Vec<u8>,
    bits: usize,
}

impl RsaPublicKey {
    pub fn from_spki_der(der: &[u8]) -> Result<Self, OaepError> {
        let key = PublicEncryptingKey::from_der(der).map_err(|_| OaepError::InvalidPublicKey)?;
        let bits = key.key_size_bits();
        if bits < MIN_RSA_BITS {
            return Err(OaepError::KeyTooSmall(bits));
        }
        Ok(RsaPublicKey {
            spki_der: der.to_vec(),
            bits,
        })
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    pub fn bits(&self) -> usize {
        self.bits
    }

    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let key = PublicEncryptingKey::from_der(&self.spki_der).expect("validated on construction");
        let key = OaepPublicEncryptingKey::new(key).expect("RSA key accepted for OAEP");
        let mut out = vec![0u8; key.ciphertext_size()];
        let len = key
            .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None)
            .expect("a 32-byte DEK fits any RSA key of 3072 bits or more")
            .len();
        out.truncate(len);
        out
    }
}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaPublicKey({} bits)", self.bits)
    }
}

/// The private half, kept as PKCS#8 DER that is wiped on drop.
pub struct RsaPrivateKey {
    pkcs8_der: Zeroizing<Vec<u8>>,
}

impl RsaPrivateKey {
    pub fn generate(size: RsaKeySize) -> Self {
        let size = match size {
            RsaKeySize::Bits3072 => KeySize::Rsa3072,
            RsaKeySize::Bits4096 => KeySize::Rsa4096,
        };
        let key = PrivateDecryptingKey::generate(size).expect("RSA key generation");
        let der: Pkcs8V1Der = key.as_der().expect("PKCS#8 encoding of a fresh key");
        RsaPrivateKey {
            pkcs8_der: Zeroizing::new(der.as_ref().to_vec()),
        }
    }

    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, OaepError> {
        let key =
            PrivateDecryptingKey::from_pkcs8(der).map_err(|_| OaepError::InvalidPrivateKey)?;
        if key.key_size_bits() < MIN_RSA_BITS {
            return Err(OaepError::KeyTooSmall(key.key_size_bits()));
        }
        Ok(RsaPrivateKey {
            pkcs8_der: Zeroizing::new(der.to_vec()),
        })
    }

    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8_der
    }

    pub fn public_key(&self) -> RsaPublicKey {
        let key = self.decrypting_key();
        let der: PublicKeyX509Der = key.public_key().as_der().expect("SPKI encoding");
        RsaPublicKey {
            spki_der: der.as_ref().to_vec(),
            bits: key.key_size_bits(),
        }
    }

    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, OaepError> {
        decrypt_with_label(self.decrypting_key(), ciphertext, None)
    }

    fn decrypting_key(&self) -> PrivateDecryptingKey {
        PrivateDecryptingKey::from_pkcs8(&self.pkcs8_der).expect("validated on construction")
    }
}

/// Exposed for the Wycheproof tests, which include labelled vectors.
pub(crate) fn decrypt_with_label(
    key: PrivateDecryptingKey,
    ciphertext: &[u8],
    label: Option<&[u8]>,
) -> Result<Zeroizing<Vec<u8>>, OaepError> {
    let key = OaepPrivateDecryptingKey::new(key).map_err(|_| OaepError::InvalidPrivateKey)?;
    let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
    let len = key
        .decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, label)
        .map_err(|_| OaepError::DecryptFailed)?
        .len();
    out.truncate(len);
    Ok(out)
}

impl fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RsaPrivateKey(<redacted>)")
    }
}

pub fn public_key_to_pem(key: &RsaPublicKey) -> String {
    super::pem::spki_to_pem(key.spki_der())
}

/// Reads the first `PUBLIC KEY` block; text around it (such as Keyward's
/// `keyward-*:` header lines) is ignored, as RFC 7468 allows.
pub fn public_key_from_pem(pem: &str) -> Result<RsaPublicKey, OaepError> {
    let der = super::pem::spki_from_pem(pem).map_err(|error| match error {
        super::pem::PemError::NoBlock => OaepError::NoPemBlock,
        super::pem::PemError::NotBase64 => OaepError::InvalidPublicKey,
    })?;
    RsaPublicKey::from_spki_der(&der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_pem() {
        let private = RsaPrivateKey::generate(RsaKeySize::Bits3072);
        let public = public_key_from_pem(&public_key_to_pem(&private.public_key())).unwrap();
        assert_eq!(public.bits(), 3072);
        let ciphertext = public.encrypt(b"0123456789abcdef0123456789abcdef");
        assert_eq!(ciphertext.len(), 384);
        assert_eq!(
            &private.decrypt(&ciphertext).unwrap()[..],
            b"0123456789abcdef0123456789abcdef"
        );
        let mut tampered = ciphertext;
        tampered[100] ^= 0x40;
        assert_eq!(
            private.decrypt(&tampered).unwrap_err(),
            OaepError::DecryptFailed
        );
    }

    /// The labelled Wycheproof vectors need `decrypt_with_label`, which is
    /// crate-private (Keyward itself never uses a label); the unlabelled and
    /// invalid ones run through the public API in `tests/wycheproof.rs`.
    #[test]
    fn wycheproof_labelled_vectors_open_with_their_label() {
        use wycheproof::rsa_oaep::{TestName, TestSet};
        let mut labelled = 0;
        for name in [
            TestName::Rsa3072Sha256Mgf1Sha256,
            TestName::Rsa4096Sha256Mgf1Sha256,
        ] {
            for group in TestSet::load(name).unwrap().test_groups {
                let key = || PrivateDecryptingKey::from_pkcs8(&group.pkcs8).unwrap();
                for test in group.tests.iter().filter(|t| !t.label.is_empty()) {
                    let result = decrypt_with_label(key(), &test.ct, Some(&test.label));
                    if test.result.must_fail() {
                        assert!(result.is_err(), "tc {}", test.tc_id);
                    } else {
                        assert_eq!(&result.unwrap()[..], &test.pt[..], "tc {}", test.tc_id);
                        let mut wrong = test.label.to_vec();
                        wrong[0] ^= 1;
                        assert!(decrypt_with_label(key(), &test.ct, Some(&wrong)).is_err());
                    }
                    labelled += 1;
                }
            }
        }
        assert_eq!(labelled, 16, "8 labelled vectors per key size");
    }

    #[test]
    fn pem_errors_are_specific() {
        assert_eq!(
            public_key_from_pem("hello").unwrap_err(),
            OaepError::NoPemBlock
        );
        let garbage = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert_eq!(
            public_key_from_pem(garbage).unwrap_err(),
            OaepError::InvalidPublicKey
        );
    }
}
