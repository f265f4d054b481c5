//! Signing keys on Cloud KMS, against the REST double: ECDSA P-256,
//! Ed25519 and RSA-PSS keys sign through the provider and the `openssl`
//! binary verifies with the public key the provider hands out; a disabled
//! primary signs nothing; throttled `AsymmetricSign` calls are retried,
//! then reported as retryable; a signing key made elsewhere is adopted.
mod common;

use google_cloud_gax::error::rpc::Code;
use google_cloud_kms_v1::model::crypto_key::CryptoKeyPurpose;
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionAlgorithm;
use google_cloud_kms_v1::model::{CryptoKey, CryptoKeyVersionTemplate, Digest};
use keyward_conformance::openssl_accepts;
use keyward_core::Dek;
use keyward_core::crypto::sha256;
use keyward_core::crypto::signing::{self, ToSign};
use keyward_core::provider::{
    KeyAlgorithm, KeyProvider, KeySpec, ProviderError, VersionState, WrapContext,
};
use keyward_gcp_double::{Double, KEY_RING};
use keyward_provider_gcp::{GcpKmsProvider, NativeRotation};
use std::time::{Duration, Instant, SystemTime};

fn spec(name: &str, algorithm: KeyAlgorithm) -> KeySpec {
    KeySpec {
        name: name.into(),
        algorithm,
        owner: Some(format!("uid-{name}")),
        description: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_from_cloud_kms_verify_with_openssl() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let data = b"keyward-1.2.3.tar.gz sha256 0123abcd\n";
    // ECDSA signs the file's digest, Ed25519 the file itself; RSA-PSS is
    // given the file and the provider sends Cloud KMS its digest.
    let cases = [
        (
            KeyAlgorithm::EcP256,
            "EC_SIGN_P256_SHA256",
            ToSign::Sha256(sha256(data)),
        ),
        (
            KeyAlgorithm::Ed25519,
            "EC_SIGN_ED25519",
            ToSign::Message(data.to_vec()),
        ),
        (
            KeyAlgorithm::RsaPss3072,
            "RSA_SIGN_PSS_3072_SHA256",
            ToSign::Message(data.to_vec()),
        ),
    ];
    for (algorithm, cloud_algorithm, input) in cases {
        let scheme = algorithm.signing().unwrap();
        let name = format!("release-{}", algorithm.as_str().to_lowercase());
        let key = provider.create_key(&spec(&name, algorithm)).await.unwrap();
        assert_eq!(key.algorithm, algorithm);
        let stored = kms.key(&key.key_id).unwrap();
        assert_eq!(
            (stored.purpose, stored.algorithm),
            ("ASYMMETRIC_SIGN", cloud_algorithm)
        );

        kms.reset_calls();
        let signed = provider.sign(&key.key_id, None, &input).await.unwrap();
        assert_eq!((signed.version, signed.algorithm), (1, scheme));
        assert_eq!(kms.calls("AsymmetricSign"), 1);
        let public = provider.verifying_key(&key.key_id, None).await.unwrap();
        assert_eq!((public.version, public.algorithm), (1, scheme));
        assert!(
            openssl_accepts(scheme, &public.spki_der, data, &signed.bytes),
            "{algorithm}"
        );
        assert!(
            !openssl_accepts(scheme, &public.spki_der, b"another file", &signed.bytes),
            "{algorithm}: openssl accepted a signature over other data"
        );

        // A signing key is no sealing key, wraps nothing and never rotates
        // by itself in Cloud KMS.
        assert!(matches!(
            provider.public_key(&key.key_id, None).await.unwrap_err(),
            ProviderError::WrongKeyType { .. }
        ));
        assert!(matches!(
            provider
                .wrap_dek(&key.key_id, &Dek::generate(), &WrapContext::new())
                .await
                .unwrap_err(),
            ProviderError::WrongKeyType { .. }
        ));
        let schedule = NativeRotation {
            period: Duration::from_secs(30 * 86_400),
            next_rotation: SystemTime::now() + Duration::from_secs(86_400),
        };
        assert!(matches!(
            provider
                .set_native_rotation(&key.key_id, Some(schedule))
                .await
                .unwrap_err(),
            ProviderError::WrongKeyType { .. }
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_throttling_of_asymmetric_sign() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let key = provider
        .create_key(&spec("tags", KeyAlgorithm::EcP256))
        .await
        .unwrap();
    let input = ToSign::Sha256(sha256(b"v1.0.0"));
    let first = provider.sign(&key.key_id, None, &input).await.unwrap();
    let rotated = provider.rotate_key(&key.key_id).await.unwrap();
    assert_eq!(rotated.primary_version, 2);
    assert_eq!(kms.key(&key.key_id).unwrap().versions, 2);

    // A disabled primary signs nothing, and the older version does not
    // stand in for it; its public half still verifies what it signed.
    provider
        .set_version_enabled(&key.key_id, 2, false)
        .await
        .unwrap();
    let described = provider.describe_key(&key.key_id).await.unwrap();
    assert_eq!(described.primary_version, 2);
    kms.reset_calls();
    assert_eq!(
        provider.sign(&key.key_id, None, &input).await.unwrap_err(),
        ProviderError::VersionDisabled {
            key: key.key_id.clone(),
            version: 2
        }
    );
    assert_eq!(kms.calls("AsymmetricSign"), 0, "refused before signing");
    let old = provider.verifying_key(&key.key_id, Some(1)).await.unwrap();
    signing::verify(old.algorithm, &old.spki_der, &input, &first.bytes).unwrap();
    // Cloud KMS itself refuses the disabled version, as the provider maps it.
    let version_2 = format!("{}/cryptoKeyVersions/2", key.key_id);
    let refused = provider
        .client()
        .asymmetric_sign()
        .set_name(&version_2)
        .set_digest(Digest::new().set_sha256(input.sha256().to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refused.status().map(|s| s.code),
        Some(Code::FailedPrecondition)
    );
    provider
        .set_version_enabled(&key.key_id, 2, true)
        .await
        .unwrap();
    assert_eq!(
        provider
            .sign(&key.key_id, None, &input)
            .await
            .unwrap()
            .version,
        2
    );

    // Two throttles are absorbed by the retries (3 attempts)...
    kms.reset_calls();
    kms.throttle(2, Some("AsymmetricSign"));
    let signed = provider.sign(&key.key_id, None, &input).await.unwrap();
    assert_eq!(kms.calls("AsymmetricSign"), 3, "2 throttled + 1 success");
    let public = provider.verifying_key(&key.key_id, None).await.unwrap();
    signing::verify(signed.algorithm, &public.spki_der, &input, &signed.bytes).unwrap();
    // ...more than the attempts are a retryable Throttled error.
    kms.reset_calls();
    kms.throttle(10, Some("AsymmetricSign"));
    let error = provider.sign(&key.key_id, None, &input).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Throttled(m) if m.contains("RESOURCE_EXHAUSTED")),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(
        kms.calls("AsymmetricSign"),
        3,
        "max_attempts bounds the retries"
    );
    kms.throttle(0, None);

    // Wrong inputs and wrong keys are refused before any AsymmetricSign.
    let ed25519 = provider
        .create_key(&spec("ed", KeyAlgorithm::Ed25519))
        .await
        .unwrap();
    let aes = provider
        .create_key(&spec("aes", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    kms.reset_calls();
    assert!(matches!(
        provider.sign(&ed25519.key_id, None, &input).await.unwrap_err(),
        ProviderError::InvalidRequest(m) if m.contains("Ed25519")
    ));
    let too_long = ToSign::Message(vec![0; signing::MAX_MESSAGE + 1]);
    assert!(matches!(
        provider
            .sign(&ed25519.key_id, None, &too_long)
            .await
            .unwrap_err(),
        ProviderError::InvalidRequest(_)
    ));
    assert!(matches!(
        provider.sign(&aes.key_id, None, &input).await.unwrap_err(),
        ProviderError::WrongKeyType { .. }
    ));
    assert!(matches!(
        provider.verifying_key(&aes.key_id, None).await.unwrap_err(),
        ProviderError::WrongKeyType { .. }
    ));
    assert_eq!(kms.calls("AsymmetricSign"), 0);
    // Cloud KMS refuses to sign with an encryption key.
    let refused = provider
        .client()
        .asymmetric_sign()
        .set_name(format!("{}/cryptoKeyVersions/1", aes.key_id))
        .set_data(b"x".to_vec())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refused.status().map(|s| s.code),
        Some(Code::InvalidArgument)
    );
}

/// `gcloud kms keys create --purpose asymmetric-signing` (or Terraform):
/// a signing key made outside Keyward.
async fn made_elsewhere(provider: &GcpKmsProvider, kms: &Double, id: &str) -> String {
    let made = provider
        .client()
        .create_crypto_key()
        .set_parent(KEY_RING)
        .set_crypto_key_id(id)
        .set_crypto_key(
            CryptoKey::new()
                .set_purpose(CryptoKeyPurpose::AsymmetricSign)
                .set_version_template(
                    CryptoKeyVersionTemplate::new()
                        .set_algorithm(CryptoKeyVersionAlgorithm::EcSignP256Sha256),
                )
                .set_labels([("team", "release")]),
        )
        .send()
        .await
        .unwrap();
    // Its first version is generated in the background.
    let deadline = Instant::now() + Duration::from_secs(10);
    while kms.key(&made.name).unwrap().version_states.get(&1) != Some(&"ENABLED") {
        assert!(Instant::now() < deadline, "version 1 never generated");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    made.name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_made_elsewhere_is_adopted_and_signs() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let name = made_elsewhere(&provider, &kms, "gcloud-release").await;

    let wrong = provider
        .adopt_key(&name, &spec("release", KeyAlgorithm::Ed25519))
        .await
        .unwrap_err();
    assert!(
        matches!(&wrong, ProviderError::InvalidRequest(m) if m.contains("not an ED25519 signing key")),
        "{wrong:?}"
    );
    let adopted = provider
        .adopt_key(&name, &spec("release", KeyAlgorithm::EcP256))
        .await
        .unwrap();
    assert_eq!(
        (adopted.algorithm, adopted.primary_version),
        (KeyAlgorithm::EcP256, 1)
    );
    assert_eq!(adopted.versions[0].state, VersionState::Enabled);
    let labels = kms.key(&name).unwrap().labels;
    assert_eq!(
        labels.get("keyward-adopted").map(String::as_str),
        Some("true")
    );
    assert_eq!(labels.get("team").map(String::as_str), Some("release"));

    let input = ToSign::Sha256(sha256(b"manifest"));
    let signed = provider.sign(&name, None, &input).await.unwrap();
    let public = provider.verifying_key(&name, None).await.unwrap();
    assert!(openssl_accepts(
        public.algorithm,
        &public.spki_der,
        b"manifest",
        &signed.bytes
    ));
}
