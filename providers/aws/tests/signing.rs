//! Signing keys on AWS KMS, against moto: an ECP256 key signs through the
//! provider and OpenSSL verifies with the public key KMS gives; a rotated
//! key signs with its new version while the old one still verifies; a
//! disabled primary signs nothing; RSA-PSS and Ed25519 are refused at
//! creation, saying so. moto hashes even a DIGEST message again, so these
//! sign messages (RAW), which real KMS and moto treat alike.
mod common;

use keyward_conformance::openssl_accepts;
use keyward_core::ProviderError;
use keyward_core::crypto::signing::{self, SigningAlgorithm, ToSign};
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec};

fn spec(name: &str, algorithm: KeyAlgorithm) -> KeySpec {
    KeySpec {
        name: name.to_owned(),
        algorithm,
        owner: Some(format!("uid-{name}")),
        description: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecp256_key_signs_and_openssl_verifies() {
    let moto = common::Moto::start();
    let provider = common::provider(&moto.endpoint()).await;
    let key = provider
        .create_key(&spec("release", KeyAlgorithm::EcP256))
        .await
        .unwrap();
    let data = b"keyward-1.0.0.tar.gz sha256 0123abcd\n";
    let input = ToSign::Message(data.to_vec());
    let signed = provider.sign(&key.key_id, None, &input).await.unwrap();
    assert_eq!(
        (signed.version, signed.algorithm),
        (1, SigningAlgorithm::EcdsaP256Sha256)
    );
    let public = provider.verifying_key(&key.key_id, None).await.unwrap();
    signing::verify(signed.algorithm, &public.spki_der, &input, &signed.bytes).unwrap();

    assert!(openssl_accepts(
        signed.algorithm,
        &public.spki_der,
        data,
        &signed.bytes
    ));
    assert!(!openssl_accepts(
        signed.algorithm,
        &public.spki_der,
        b"another manifest",
        &signed.bytes
    ));

    provider.rotate_key(&key.key_id).await.unwrap();
    let second = provider.sign(&key.key_id, None, &input).await.unwrap();
    assert_eq!(second.version, 2);
    let v1 = provider.verifying_key(&key.key_id, Some(1)).await.unwrap();
    assert_eq!(v1.spki_der, public.spki_der);
    let v2 = provider.verifying_key(&key.key_id, Some(2)).await.unwrap();
    signing::verify(second.algorithm, &v2.spki_der, &input, &second.bytes).unwrap();
    assert!(signing::verify(second.algorithm, &v1.spki_der, &input, &second.bytes).is_err());

    provider
        .set_version_enabled(&key.key_id, 2, false)
        .await
        .unwrap();
    assert!(provider.sign(&key.key_id, None, &input).await.is_err());
    let wrapped = provider
        .wrap_dek(
            &key.key_id,
            &keyward_core::Dek::generate(),
            &Default::default(),
        )
        .await;
    assert!(
        matches!(wrapped, Err(ProviderError::WrongKeyType { .. })),
        "{wrapped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untested_signing_keys_are_refused_with_the_reason() {
    let moto = common::Moto::start();
    let provider = common::provider(&moto.endpoint()).await;
    for algorithm in [KeyAlgorithm::RsaPss3072, KeyAlgorithm::Ed25519] {
        let error = provider
            .create_key(&spec("refused", algorithm))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("does not make") && error.to_string().contains("use ECP256"),
            "{error}"
        );
    }
}
