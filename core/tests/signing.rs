//! Signing keys: every scheme signs and verifies, a changed message or
//! signature or another key's public half is refused, and OpenSSL (what a
//! user verifies with) accepts the signatures and the exported public keys.

use keyward_conformance::openssl_accepts;
use keyward_core::crypto::signing::{self, MAX_MESSAGE, SigningAlgorithm, SigningError, ToSign};

const ALL: [SigningAlgorithm; 4] = [
    SigningAlgorithm::RsaPss3072Sha256,
    SigningAlgorithm::RsaPss4096Sha256,
    SigningAlgorithm::EcdsaP256Sha256,
    SigningAlgorithm::Ed25519,
];

#[test]
fn every_scheme_signs_and_refuses_what_it_did_not_sign() {
    for algorithm in ALL {
        let private = signing::generate(algorithm);
        let public = signing::public_key(algorithm, &private).unwrap();
        let input = ToSign::for_data(algorithm, b"release v1.2.3").unwrap();
        let signature = signing::sign(algorithm, &private, &input).unwrap();
        signing::verify(algorithm, &public, &input, &signature)
            .unwrap_or_else(|e| panic!("{algorithm:?}: {e}"));

        let other = ToSign::for_data(algorithm, b"release v1.2.4").unwrap();
        assert_eq!(
            signing::verify(algorithm, &public, &other, &signature),
            Err(SigningError::BadSignature),
            "{algorithm:?}"
        );
        let mut tampered = signature.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            signing::verify(algorithm, &public, &input, &tampered),
            Err(SigningError::BadSignature),
            "{algorithm:?}"
        );
        let stranger = signing::public_key(algorithm, &signing::generate(algorithm)).unwrap();
        assert_eq!(
            signing::verify(algorithm, &stranger, &input, &signature),
            Err(SigningError::BadSignature),
            "{algorithm:?}"
        );
    }
}

#[test]
fn a_digest_and_the_message_it_came_from_sign_alike() {
    let algorithm = SigningAlgorithm::EcdsaP256Sha256;
    let private = signing::generate(algorithm);
    let public = signing::public_key(algorithm, &private).unwrap();
    let message = ToSign::Message(b"artefact".to_vec());
    let signature = signing::sign(algorithm, &private, &message).unwrap();
    let digest = ToSign::Sha256(keyward_core::crypto::sha256(b"artefact"));
    signing::verify(algorithm, &public, &digest, &signature).unwrap();
}

#[test]
fn ed25519_takes_messages_only_and_no_longer_than_the_limit() {
    let algorithm = SigningAlgorithm::Ed25519;
    let private = signing::generate(algorithm);
    assert_eq!(
        signing::sign(algorithm, &private, &ToSign::Sha256([7; 32])),
        Err(SigningError::DigestForEd25519)
    );
    let long = vec![0u8; MAX_MESSAGE + 1];
    assert_eq!(
        ToSign::for_data(algorithm, &long),
        Err(SigningError::MessageTooLong(MAX_MESSAGE + 1))
    );
    assert_eq!(
        signing::sign(algorithm, &private, &ToSign::Message(long)),
        Err(SigningError::MessageTooLong(MAX_MESSAGE + 1))
    );
    assert!(signing::sign(algorithm, &private, &ToSign::Message(vec![1; MAX_MESSAGE])).is_ok());
}

#[test]
fn a_key_of_another_scheme_or_size_is_refused() {
    let rsa3072 = signing::generate(SigningAlgorithm::RsaPss3072Sha256);
    let input = ToSign::Sha256([1; 32]);
    assert!(matches!(
        signing::sign(SigningAlgorithm::RsaPss4096Sha256, &rsa3072, &input),
        Err(SigningError::InvalidPrivateKey(_))
    ));
    assert!(matches!(
        signing::sign(SigningAlgorithm::EcdsaP256Sha256, &rsa3072, &input),
        Err(SigningError::InvalidPrivateKey(_))
    ));
    let public = signing::public_key(SigningAlgorithm::RsaPss3072Sha256, &rsa3072).unwrap();
    let signature = signing::sign(SigningAlgorithm::RsaPss3072Sha256, &rsa3072, &input).unwrap();
    assert!(matches!(
        signing::verify(
            SigningAlgorithm::RsaPss4096Sha256,
            &public,
            &input,
            &signature
        ),
        Err(SigningError::InvalidPublicKey(_))
    ));
}

#[test]
fn openssl_verifies_every_scheme_with_the_exported_public_key() {
    let data = b"keyward 1.0.0 release tarball";
    for algorithm in ALL {
        let private = signing::generate(algorithm);
        let public = signing::public_key(algorithm, &private).unwrap();
        let input = ToSign::for_data(algorithm, data).unwrap();
        let signature = signing::sign(algorithm, &private, &input).unwrap();
        assert!(
            openssl_accepts(algorithm, &public, data, &signature),
            "{algorithm:?}"
        );
        assert!(
            !openssl_accepts(algorithm, &public, b"another tarball", &signature),
            "{algorithm:?}: openssl accepted a signature over other data"
        );
    }
}

#[test]
fn short_input_is_sent_whole_and_long_input_as_its_streamed_digest() {
    let short = vec![5u8; MAX_MESSAGE];
    assert_eq!(
        signing::read_to_sign(&short[..]).unwrap(),
        ToSign::Message(short.clone())
    );
    let long = vec![5u8; 300_000];
    assert_eq!(
        signing::read_to_sign(&long[..]).unwrap(),
        ToSign::Sha256(keyward_core::crypto::sha256(&long))
    );
}

#[test]
fn the_scheme_is_read_from_the_public_key() {
    for algorithm in ALL {
        let public = signing::public_key(algorithm, &signing::generate(algorithm)).unwrap();
        assert_eq!(signing::scheme_of(&public), Some(algorithm));
    }
    assert_eq!(signing::scheme_of(b"not a key"), None);
}
