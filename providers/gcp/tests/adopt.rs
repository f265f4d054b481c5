//! Adopting CryptoKeys made outside Keyward (as Terraform makes them),
//! against the Cloud KMS REST double.
mod common;

use google_cloud_kms_v1::model::CryptoKey;
use google_cloud_kms_v1::model::crypto_key::CryptoKeyPurpose;
use keyward_core::Dek;
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec, ProviderError, WrapContext};
use keyward_gcp_double::{Double, KEY_RING};
use keyward_provider_gcp::GcpKmsProvider;

fn spec(name: &str, owner: &str) -> KeySpec {
    KeySpec {
        name: name.into(),
        algorithm: KeyAlgorithm::Aes256,
        owner: Some(owner.into()),
        description: None,
    }
}

/// `google_kms_crypto_key` with a label of its own.
async fn terraform_key(provider: &GcpKmsProvider, id: &str) -> String {
    let made = provider
        .client()
        .create_crypto_key()
        .set_parent(KEY_RING)
        .set_crypto_key_id(id)
        .set_crypto_key(
            CryptoKey::new()
                .set_purpose(CryptoKeyPurpose::EncryptDecrypt)
                .set_labels([("team", "payments")]),
        )
        .send()
        .await
        .unwrap();
    made.name
}

fn refused(result: Result<impl std::fmt::Debug, ProviderError>) -> String {
    match result {
        Err(ProviderError::InvalidRequest(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_crypto_key_made_elsewhere_is_labelled_and_used_as_it_is() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let name = terraform_key(&provider, "terraform-db").await;
    let adopted = provider
        .adopt_key(&name, &spec("payments/db", "payments/db"))
        .await
        .unwrap();
    assert_eq!(adopted.key_id, name);
    assert_eq!(adopted.primary_version, 1);
    let stored = kms.key(&name).unwrap();
    assert_eq!(
        stored.labels.get("team").map(String::as_str),
        Some("payments")
    );
    assert_eq!(
        stored.labels.get("keyward-adopted").map(String::as_str),
        Some("true")
    );

    let context: WrapContext = [("keyward.io/namespace".to_owned(), "payments".to_owned())].into();
    let dek = Dek::generate();
    let wrapped = provider.wrap_dek(&name, &dek, &context).await.unwrap();
    provider.rotate_key(&name).await.unwrap();
    let again = provider
        .adopt_key(&name, &spec("payments/db", "payments/db"))
        .await
        .unwrap();
    assert_eq!(again.primary_version, 2, "found again as it is now");
    let opened = provider.unwrap_dek(&wrapped, &context).await.unwrap();
    assert_eq!(opened.expose(), dek.expose());

    let message = refused(provider.adopt_key(&name, &spec("other", "other/key")).await);
    assert!(
        message.contains("already belongs to another Keyward key"),
        "{message}"
    );
    let message = refused(
        provider
            .adopt_key(&format!("{KEY_RING}/cryptoKeys/nothing"), &spec("n", "n/n"))
            .await,
    );
    assert!(message.contains("no CryptoKey"), "{message}");
    let mut rsa = spec("rsa", "r/r");
    rsa.algorithm = KeyAlgorithm::Rsa3072;
    let message = refused(provider.adopt_key(&name, &rsa).await);
    assert!(
        message.contains("not an asymmetric RSA3072 key"),
        "{message}"
    );
}
