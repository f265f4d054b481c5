//! Adopting KMS keys made outside Keyward (as Terraform would make them),
//! against moto.
mod common;

use keyward_core::Dek;
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec, ProviderError, WrapContext};
use keyward_provider_aws::AwsKmsProvider;

fn spec(name: &str, algorithm: KeyAlgorithm) -> KeySpec {
    KeySpec {
        name: name.into(),
        algorithm,
        owner: Some(format!("apps/{name}")),
        description: None,
    }
}

/// A customer managed key with an alias, made straight through the SDK.
async fn terraform_key(provider: &AwsKmsProvider, alias: &str, rsa: bool) -> String {
    let client = provider.client();
    let mut create = client.create_key().description("made by terraform");
    if rsa {
        create = create
            .key_spec(aws_sdk_kms::types::KeySpec::Rsa3072)
            .key_usage(aws_sdk_kms::types::KeyUsageType::EncryptDecrypt);
    }
    let made = create.send().await.unwrap().key_metadata.unwrap();
    client
        .create_alias()
        .alias_name(alias)
        .target_key_id(made.key_id())
        .send()
        .await
        .unwrap();
    made.arn.unwrap()
}

fn refused(result: Result<impl std::fmt::Debug, ProviderError>) -> String {
    match result {
        Err(ProviderError::InvalidRequest(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_key_made_elsewhere_becomes_version_1_and_is_found_again() {
    let moto = common::Moto::start();
    let provider = common::provider(&moto.endpoint()).await;
    let arn = terraform_key(&provider, "alias/terraform/payments", false).await;
    let context: WrapContext = [("keyward.io/namespace".to_owned(), "apps".to_owned())].into();

    // By alias: version 1 is the Terraform key, used as it is.
    let adopted = provider
        .adopt_key(
            "alias/terraform/payments",
            &spec("payments", KeyAlgorithm::Aes256),
        )
        .await
        .unwrap();
    assert_eq!(adopted.key_id, "alias/keyward/payments");
    assert_eq!(adopted.primary_version, 1);
    assert_eq!(adopted.owner.as_deref(), Some("apps/payments"));
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&adopted.key_id, &dek, &context)
        .await
        .unwrap();
    let direct = provider
        .client()
        .describe_key()
        .key_id("alias/keyward/payments/v1")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(direct.arn(), Some(arn.as_str()), "v1 is the adopted key");

    // Rotated, then adopted again by ARN (a rebuilt cluster, same manifest):
    // the same Keyward key as it is now.
    provider.rotate_key(&adopted.key_id).await.unwrap();
    let again = provider
        .adopt_key(&arn, &spec("payments", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    assert_eq!(again.key_id, adopted.key_id);
    assert_eq!(again.primary_version, 2);
    let opened = provider.unwrap_dek(&wrapped, &context).await.unwrap();
    assert_eq!(opened.expose(), dek.expose());

    // The same key under another name, or by another owner: refused.
    let message = refused(
        provider
            .adopt_key(&arn, &spec("payments-copy", KeyAlgorithm::Aes256))
            .await,
    );
    assert!(
        message.contains("already Keyward key `payments`"),
        "{message}"
    );
}

#[tokio::test]
async fn keys_keyward_cannot_use_are_refused_with_the_reason() {
    let moto = common::Moto::start();
    let provider = common::provider(&moto.endpoint()).await;
    let message = refused(
        provider
            .adopt_key(
                "alias/terraform/missing",
                &spec("missing", KeyAlgorithm::Aes256),
            )
            .await,
    );
    assert!(
        message.contains("no KMS key `alias/terraform/missing`"),
        "{message}"
    );

    terraform_key(&provider, "alias/terraform/rsa", true).await;
    let message = refused(
        provider
            .adopt_key("alias/terraform/rsa", &spec("rsa", KeyAlgorithm::Aes256))
            .await,
    );
    assert!(message.contains("not a symmetric AES256 key"), "{message}");

    let disabled = terraform_key(&provider, "alias/terraform/off", false).await;
    let disabled_id = disabled.rsplit('/').next().unwrap();
    provider
        .client()
        .disable_key()
        .key_id(disabled_id)
        .send()
        .await
        .unwrap();
    let message = refused(
        provider
            .adopt_key(&disabled, &spec("off", KeyAlgorithm::Aes256))
            .await,
    );
    assert!(message.contains("not Enabled"), "{message}");

    // A Keyward key's own version is not a key to adopt.
    let made = provider
        .create_key(&spec("made", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let message = refused(
        provider
            .adopt_key(&made.key_id, &spec("other", KeyAlgorithm::Aes256))
            .await,
    );
    assert!(message.contains("already Keyward key `made`"), "{message}");
}
