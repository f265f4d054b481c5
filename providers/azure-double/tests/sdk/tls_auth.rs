//! HTTPS with the double's CA, and Key Vault's challenge-based bearer
//! authentication as the SDK performs it.

use crate::client::{self, status};
use azure_core::http::RetryOptions;
use azure_security_keyvault_keys::KeyClientOptions;
use keyward_azure_double::Double;

#[tokio::test]
async fn the_sdk_answers_the_challenge_then_sends_its_token() {
    let double = Double::start().await;
    let client = client::client(&double);
    crate::create_rsa(&client, "first", &[]).await;
    // The first request goes out bare (the SDK strips its body), gets the
    // 401 challenge, and is resent with the token and the body.
    assert_eq!(double.calls("Challenge"), 1);
    assert_eq!(double.calls("CreateKey"), 1);
    client.get_key("first", None).await.unwrap();
    assert_eq!(double.calls("Challenge"), 1, "the scope is cached");
    assert_eq!(double.calls("GetKey"), 1);
}

#[tokio::test]
async fn a_wrong_token_gets_401() {
    let double = Double::start().await;
    let client = client::client_with(
        &double,
        "not-the-token",
        client::options(client::http_client(&double), RetryOptions::none()),
    );
    let error = client.get_key("any", None).await.unwrap_err();
    assert_eq!(status(&error), (401, "Unauthorized".to_owned()));
    // Bare request, then once with the wrong token; no operation reached.
    assert_eq!(double.calls("Challenge"), 2);
    assert_eq!(double.calls("GetKey"), 0);
}

#[tokio::test]
async fn a_changed_token_is_refused_until_the_credential_has_it() {
    let double = Double::start().await;
    let client = client::client(&double);
    crate::create_rsa(&client, "k", &[]).await;
    double.set_token("rotated");
    let error = client.get_key("k", None).await.unwrap_err();
    assert_eq!(status(&error).0, 401);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_cannot_connect() {
    let double = Double::start().await;
    // The platform's roots only: the double's CA is not among them.
    let http = reqwest::Client::builder().build().unwrap();
    let client = client::client_with(
        &double,
        &double.token(),
        client::options(http, RetryOptions::none()),
    );
    let error = client.get_key("any", None).await.unwrap_err();
    assert!(
        matches!(
            error.kind(),
            azure_core::error::ErrorKind::Connection | azure_core::error::ErrorKind::Io
        ),
        "{error:?}"
    );
    assert_eq!(double.calls("Challenge"), 0, "no request got through");
}

#[tokio::test]
async fn the_default_challenge_check_refuses_a_loopback_vault() {
    let double = Double::start().await;
    let options = KeyClientOptions {
        verify_challenge_resource: None, // defaults to true
        ..client::options(client::http_client(&double), RetryOptions::none())
    };
    let client = client::client_with(&double, &double.token(), options);
    let error = client.get_key("any", None).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("doesn't match the requested domain"),
        "{error}"
    );
}

#[tokio::test]
async fn api_versions_other_than_the_known_ones_are_refused() {
    let double = Double::start().await;
    let options = KeyClientOptions {
        api_version: "7.0".to_owned(),
        ..client::options(client::http_client(&double), RetryOptions::none())
    };
    let client = client::client_with(&double, &double.token(), options);
    let error = client.get_key("any", None).await.unwrap_err();
    assert_eq!(status(&error), (400, "BadParameter".to_owned()));
}
