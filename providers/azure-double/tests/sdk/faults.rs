//! Throttling and outages as the SDK's retry policy sees them.

use crate::client::{self, status};
use azure_security_keyvault_keys::models::{EncryptionAlgorithm, KeyOperationParameters};
use keyward_azure_double::Double;
use std::time::{Duration, Instant};

fn oaep(value: &[u8]) -> KeyOperationParameters {
    KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep256),
        value: Some(value.to_vec()),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_sdk_retries_a_429_after_retry_after() {
    let double = Double::start().await;
    let client = client::client(&double);
    crate::create_rsa(&client, "kek", &[]).await;
    double.throttle(1, Some("WrapKey"));
    let started = Instant::now();
    client
        .wrap_key("kek", oaep(&[0u8; 32]).try_into().unwrap(), None)
        .await
        .expect("retried after the 429");
    assert_eq!(double.calls("WrapKey"), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 honoured"
    );
}

#[tokio::test]
async fn without_retries_a_429_and_a_503_reach_the_caller() {
    let double = Double::start().await;
    let client = client::client_no_retry(&double);
    crate::create_rsa(&client, "kek", &[]).await;
    double.throttle(1, None);
    let error = client.get_key("kek", None).await.unwrap_err();
    assert_eq!(status(&error), (429, "Throttled".to_owned()));
    double.set_down(true);
    let error = client.get_key("kek", None).await.unwrap_err();
    assert_eq!(status(&error), (503, "ServiceUnavailable".to_owned()));
    double.set_down(false);
    client.get_key("kek", None).await.unwrap();
}
