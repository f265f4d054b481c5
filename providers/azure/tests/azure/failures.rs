//! Throttling, outages, a wrong token, and what Key Vault cannot make.

use crate::common::{config, provider, provider_no_retry, spec};
use azure_core::http::RetryOptions;
use keyward_azure_double::Double;
use keyward_core::Dek;
use keyward_core::provider::{KeyAlgorithm, KeyProvider, ProviderError, WrapContext};
use keyward_provider_azure::AzureKeyVaultProvider;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_by_the_sdk_after_retry_after() {
    let double = Double::start().await;
    let provider = provider(&double);
    let key = provider
        .create_key(&spec("throttled", KeyAlgorithm::Rsa3072))
        .await
        .unwrap()
        .key_id;
    double.throttle(1, Some("WrapKey"));
    double.reset_calls();
    let started = Instant::now();
    provider
        .wrap_dek(&key, &Dek::generate(), &WrapContext::new())
        .await
        .expect("retried after the 429");
    assert_eq!(double.calls("WrapKey"), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 honoured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retries_a_429_is_throttled_and_a_503_unavailable_both_retryable() {
    let double = Double::start().await;
    let provider = provider_no_retry(&double);
    let key = provider
        .create_key(&spec("faults", KeyAlgorithm::Rsa3072))
        .await
        .unwrap()
        .key_id;
    double.throttle(1, None);
    let error = provider.describe_key(&key).await.unwrap_err();
    assert!(matches!(error, ProviderError::Throttled(_)), "{error:?}");
    assert!(error.is_retryable());

    double.set_down(true);
    let error = provider
        .wrap_dek(&key, &Dek::generate(), &WrapContext::new())
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    assert!(error.is_retryable());
    double.set_down(false);
    provider.describe_key(&key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_a_clear_error_not_retried() {
    let double = Double::start().await;
    let provider =
        AzureKeyVaultProvider::new(config(&double, "not-the-token", RetryOptions::none())).unwrap();
    let error = provider.describe_key("anything").await.unwrap_err();
    assert!(!error.is_retryable(), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("401") && text.contains("token"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aes256_and_ed25519_are_refused_with_the_reason() {
    let double = Double::start().await;
    let provider = provider(&double);
    let error = provider
        .create_key(&spec("aes", KeyAlgorithm::Aes256))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ProviderError::InvalidRequest(why) if why.contains("no symmetric keys") && why.contains("RSA3072 with usage Seal")),
        "{error:?}"
    );
    let error = provider
        .create_key(&spec("ed", KeyAlgorithm::Ed25519))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ProviderError::InvalidRequest(why) if why.contains("ED25519")),
        "{error:?}"
    );
    assert_eq!(double.calls("CreateKey"), 0, "nothing was created");
}
