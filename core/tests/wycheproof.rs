//! Project Wycheproof vectors against the primitives exactly as Keyward calls
//! them: `keyward_core::crypto::{seal, open}` (AES-256-GCM, 96-bit nonce,
//! 128-bit tag) and `RsaPrivateKey::from_pkcs8_der` + `decrypt`
//! (RSA-OAEP-SHA256, MGF1-SHA256, no label). Labelled OAEP vectors are also
//! checked with the label inside `core/src/crypto/rsa_oaep.rs` (unit test).
//!
//! Each test asserts how many vectors it exercised, so a change in the vector
//! set or a filter that silently skips everything fails loudly.

use keyward_core::crypto::{self, NONCE_LEN, RsaPrivateKey, TAG_LEN};
use wycheproof::TestResult;

/// Counts from wycheproof 0.7.0's `aes_gcm_test.json`.
const GCM_USABLE_VALID: usize = 39;
const GCM_USABLE_INVALID: usize = 27;
/// 256-bit-key vectors whose IV is not 96 bits (or tag not 128 bits): the
/// Keyward API takes `&[u8; 12]` nonces and always appends a 16-byte tag, so
/// these inputs cannot even be expressed.
const GCM_INEXPRESSIBLE: usize = 39;

#[test]
fn aes_256_gcm_wycheproof() {
    let set = wycheproof::aead::TestSet::load(wycheproof::aead::TestName::AesGcm)
        .expect("Wycheproof AES-GCM vectors load");
    let (mut valid, mut invalid, mut inexpressible, mut other_key_sizes) = (0, 0, 0, 0);
    for group in &set.test_groups {
        if group.key_size != 256 {
            other_key_sizes += group.tests.len();
            continue;
        }
        if group.nonce_size != NONCE_LEN * 8 || group.tag_size != TAG_LEN * 8 {
            inexpressible += group.tests.len();
            continue;
        }
        for test in &group.tests {
            let id = test.tc_id;
            let key: &[u8; 32] = test.key[..].try_into().expect("256-bit key group");
            let nonce: &[u8; NONCE_LEN] = test.nonce[..].try_into().expect("96-bit IV group");
            let mut expected = test.ct.to_vec();
            expected.extend_from_slice(&test.tag);
            let opened = crypto::open(key, nonce, &test.aad, &expected);
            match test.result {
                TestResult::Valid | TestResult::Acceptable => {
                    let sealed = crypto::seal(key, nonce, &test.aad, &test.pt);
                    assert_eq!(sealed, expected, "tc {id}: ciphertext||tag differs");
                    let opened =
                        opened.unwrap_or_else(|_| panic!("tc {id}: valid vector rejected"));
                    assert_eq!(&opened[..], &test.pt[..], "tc {id}: wrong plaintext");
                    valid += 1;
                }
                TestResult::Invalid => {
                    assert!(
                        opened.is_err(),
                        "tc {id} ({}): invalid vector accepted",
                        test.comment
                    );
                    invalid += 1;
                }
            }
        }
    }
    println!(
        "AES-256-GCM: {valid} valid + {invalid} invalid vectors exercised; \
         {inexpressible} with other IV/tag sizes not expressible by the API; \
         {other_key_sizes} for 128/192-bit keys not applicable"
    );
    assert_eq!(valid, GCM_USABLE_VALID);
    assert_eq!(invalid, GCM_USABLE_INVALID);
    assert_eq!(inexpressible, GCM_INEXPRESSIBLE);
}

/// Returns (valid unlabelled, invalid, labelled) counts.
fn rsa_oaep_sha256(name: wycheproof::rsa_oaep::TestName, bits: usize) -> (usize, usize, usize) {
    let set = wycheproof::rsa_oaep::TestSet::load(name).expect("Wycheproof RSA-OAEP vectors load");
    let (mut valid, mut invalid, mut labelled) = (0, 0, 0);
    for group in &set.test_groups {
        assert_eq!(group.key_size, bits);
        assert_eq!(group.hash, wycheproof::HashFunction::Sha2_256);
        assert_eq!(group.mgf, wycheproof::Mgf::Mgf1);
        assert_eq!(group.mgf_hash, wycheproof::HashFunction::Sha2_256);
        let key = RsaPrivateKey::from_pkcs8_der(&group.pkcs8).expect("Wycheproof key loads");
        assert_eq!(key.public_key().bits(), bits);
        for test in &group.tests {
            let id = test.tc_id;
            let decrypted = key.decrypt(&test.ct);
            if test.result.must_fail() {
                assert!(
                    decrypted.is_err(),
                    "tc {id} ({}): invalid vector accepted",
                    test.comment
                );
                invalid += 1;
            } else if !test.label.is_empty() {
                // Keyward never uses a label: such a ciphertext must not open
                // without it. Decryption with the label is checked in the
                // unit test next to `decrypt_with_label`.
                assert!(
                    decrypted.is_err(),
                    "tc {id}: labelled vector opened without label"
                );
                labelled += 1;
            } else {
                let plaintext =
                    decrypted.unwrap_or_else(|e| panic!("tc {id}: valid vector rejected: {e}"));
                assert_eq!(&plaintext[..], &test.pt[..], "tc {id}: wrong plaintext");
                valid += 1;
            }
        }
    }
    println!(
        "RSA-OAEP-SHA256 {bits}: {valid} valid + {invalid} invalid exercised, \
         {labelled} labelled rejected without their label"
    );
    (valid, invalid, labelled)
}

#[test]
fn rsa_oaep_3072_sha256_wycheproof() {
    let counts = rsa_oaep_sha256(
        wycheproof::rsa_oaep::TestName::Rsa3072Sha256Mgf1Sha256,
        3072,
    );
    assert_eq!(counts, (10, 19, 8));
}

#[test]
fn rsa_oaep_4096_sha256_wycheproof() {
    let counts = rsa_oaep_sha256(
        wycheproof::rsa_oaep::TestName::Rsa4096Sha256Mgf1Sha256,
        4096,
    );
    assert_eq!(counts, (10, 19, 8));
}
