//! `spec.existingKey` on Key Vault: a key made outside Keyward (as
//! Terraform makes one) becomes version 1 of a Keyward key; what cannot be
//! adopted is refused with what to do.

use crate::common::{provider, spec};
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, CurveName, KeyAttributes, KeyOperation, KeyType,
};
use keyward_azure_double::Double;
use keyward_core::Dek;
use keyward_core::provider::{KeyAlgorithm, KeyProvider, ProviderError, WrapContext};
use keyward_provider_azure::AzureKeyVaultProvider;
use std::collections::HashMap;

/// What `azurerm_key_vault_key` makes: an RSA-HSM key with a tag.
async fn made_outside(
    provider: &AzureKeyVaultProvider,
    name: &str,
    kty: KeyType,
    size: Option<i32>,
    ops: &[KeyOperation],
    enabled: bool,
) {
    let parameters = CreateKeyParameters {
        kty: Some(kty),
        key_size: size,
        curve: size.is_none().then_some(CurveName::P256),
        key_ops: Some(ops.to_vec()),
        key_attributes: Some(KeyAttributes {
            enabled: Some(enabled),
            ..Default::default()
        }),
        tags: Some(HashMap::from([("managed-by".into(), "terraform".into())])),
        ..Default::default()
    };
    provider
        .client()
        .create_key(name, parameters.try_into().unwrap(), None)
        .await
        .unwrap();
}

const WRAPPING: [KeyOperation; 2] = [KeyOperation::WrapKey, KeyOperation::UnwrapKey];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_outside_becomes_version_one_and_rotates_in_place() {
    let double = Double::start().await;
    let provider = provider(&double);
    // Two versions made outside: the current (second) one is adopted.
    for _ in 0..2 {
        made_outside(
            &provider,
            "tf-payments",
            KeyType::RsaHsm,
            Some(3072),
            &WRAPPING,
            true,
        )
        .await;
    }
    let reference = format!("{}/keys/tf-payments", double.vault_url());
    let wanted = spec("keyward/shop/payments", KeyAlgorithm::Rsa3072);
    let adopted = provider.adopt_key(&reference, &wanted).await.unwrap();
    assert_eq!(adopted.key_id, reference);
    assert_eq!(adopted.primary_version, 1);
    assert_eq!(adopted.owner, wanted.owner);

    let stored = double.key("tf-payments").unwrap();
    let (older, current) = (&stored.versions[0], &stored.versions[1]);
    assert!(!older.tags.contains_key("keyward-version"), "{older:?}");
    assert_eq!(current.tags["keyward-version"], "1");
    assert_eq!(current.tags["keyward-algorithm"], "RSA3072");
    assert_eq!(current.tags["keyward-owner"], "uid-keyward/shop/payments");
    // Room for Keyward's 6 tags next to the 9 user tags admission allows.
    assert_eq!(current.tags.len(), 4, "{current:?}");
    assert_eq!(current.tags["managed-by"], "terraform");

    let dek = Dek::generate();
    let context = WrapContext::new();
    let wrapped = provider
        .wrap_dek(&adopted.key_id, &dek, &context)
        .await
        .unwrap();
    assert_eq!(wrapped.version, 1);
    let public = provider.public_key(&adopted.key_id, None).await.unwrap();
    assert_eq!(public.public_key.bits(), 3072);

    let rotated = provider.rotate_key(&adopted.key_id).await.unwrap();
    assert_eq!(rotated.primary_version, 2);
    let stored = double.key("tf-payments").unwrap();
    assert_eq!(stored.versions.len(), 3);
    assert_eq!(
        stored.versions[2].kty, "RSA-HSM",
        "rotation kept HSM protection"
    );
    assert_eq!(stored.versions[2].tags["keyward-version"], "2");
    let opened = provider.unwrap_dek(&wrapped, &context).await.unwrap();
    assert_eq!(opened.expose(), dek.expose());

    // The same ManagedKey adopting again (a retry, a rebuilt cluster)
    // finds the key as it is now; another one is refused.
    let again = provider.adopt_key(&reference, &wanted).await.unwrap();
    assert_eq!(
        (again.key_id, again.primary_version),
        (reference.clone(), 2)
    );
    let other = spec("keyward/shop/other", KeyAlgorithm::Rsa3072);
    let err = provider.adopt_key(&reference, &other).await.unwrap_err();
    assert!(err.to_string().contains("already a Keyward key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_cannot_serve_are_refused_with_what_to_do() {
    let double = Double::start().await;
    let provider = provider(&double);
    let vault = double.vault_url();
    let sealing = spec("keyward/shop/db", KeyAlgorithm::Rsa3072);
    let refusal = |reference: String, wanted| {
        let provider = &provider;
        async move {
            match provider.adopt_key(&reference, &wanted).await {
                Err(ProviderError::InvalidRequest(message)) => message,
                other => panic!("{reference}: {other:?}"),
            }
        }
    };

    let message = refusal(format!("{vault}/keys/nothing"), sealing.clone()).await;
    assert!(message.contains("no key `nothing`"), "{message}");
    let message = refusal("https://elsewhere.example/keys/db".into(), sealing.clone()).await;
    assert!(message.contains("not a key of vault"), "{message}");

    made_outside(&provider, "big", KeyType::Rsa, Some(4096), &WRAPPING, true).await;
    let message = refusal(format!("{vault}/keys/big"), sealing.clone()).await;
    assert!(message.contains("is RSA 4096, not"), "{message}");
    let version = &double.key("big").unwrap().versions[0].id;
    let message = refusal(format!("{vault}/keys/big/{version}"), sealing.clone()).await;
    assert!(message.contains("names a version"), "{message}");

    made_outside(
        &provider,
        "ec",
        KeyType::Ec,
        None,
        &[KeyOperation::Sign],
        true,
    )
    .await;
    let message = refusal(format!("{vault}/keys/ec"), sealing.clone()).await;
    assert!(message.contains("EC P-256"), "{message}");
    let signing = spec("keyward/shop/signer", KeyAlgorithm::EcP256);
    assert!(
        provider
            .adopt_key(&format!("{vault}/keys/ec"), &signing)
            .await
            .is_ok()
    );

    let wrap_only = [KeyOperation::WrapKey];
    made_outside(
        &provider,
        "half",
        KeyType::Rsa,
        Some(3072),
        &wrap_only,
        true,
    )
    .await;
    let message = refusal(format!("{vault}/keys/half"), sealing.clone()).await;
    assert!(message.contains("does not permit unwrapKey"), "{message}");

    made_outside(&provider, "off", KeyType::Rsa, Some(3072), &WRAPPING, false).await;
    let message = refusal(format!("{vault}/keys/off"), sealing.clone()).await;
    assert!(message.contains("is disabled; enable it"), "{message}");

    made_outside(&provider, "gone", KeyType::Rsa, Some(3072), &WRAPPING, true).await;
    provider.client().delete_key("gone", None).await.unwrap();
    let message = refusal(format!("{vault}/keys/gone"), sealing.clone()).await;
    assert!(message.contains("soft-deleted; recover it"), "{message}");

    // None of the refusals tagged anything.
    for name in ["big", "half", "off"] {
        let stored = double.key(name).unwrap();
        assert!(
            stored.versions[0]
                .tags
                .keys()
                .all(|t| !t.starts_with("keyward-")),
            "{name}: {stored:?}"
        );
    }
}
