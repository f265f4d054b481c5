//! Throttling, outages and AWS-enforced key states, through a fault-injecting
//! proxy in front of moto. Each failure must be a clear error (retryable
//! where waiting helps) and the same provider must recover by itself.
mod common;

use common::{Fault, Moto, Proxy};
use keyward_core::Dek;
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec, ProviderError, WrapContext};
use keyward_provider_aws::AwsKmsProvider;
use std::time::{Duration, Instant};

fn spec(name: &str) -> KeySpec {
    KeySpec {
        name: name.into(),
        algorithm: KeyAlgorithm::Aes256,
        owner: Some(format!("uid-{name}")),
        description: None,
    }
}

fn context() -> WrapContext {
    [("keyward.io/namespace".to_owned(), "shop".to_owned())].into()
}

fn throttling(times_for: Option<&'static str>) -> Fault {
    Fault {
        status: 400,
        code: "ThrottlingException",
        message: "Rate exceeded",
        operation: times_for,
    }
}

/// Production settings: AWS enforces key state, no pre-flight DescribeKey.
async fn production_like(endpoint: &str) -> AwsKmsProvider {
    let mut config = common::config(endpoint);
    config.verify_key_state = false;
    AwsKmsProvider::connect(config).await.unwrap()
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_then_reported_and_recovers() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port).await;
    let provider = production_like(&proxy.endpoint()).await;
    let key = provider.create_key(&spec("busy")).await.unwrap();
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&key.key_id, &dek, &context())
        .await
        .unwrap();

    // Two throttles, then KMS answers: the SDK's retries absorb them.
    proxy.reset_calls();
    proxy.inject(throttling(Some("Decrypt")), 2);
    let started = Instant::now();
    let opened = provider.unwrap_dek(&wrapped, &context()).await.unwrap();
    let absorbed = started.elapsed();
    assert_eq!(opened.expose(), dek.expose());
    assert_eq!(
        proxy.calls("Decrypt"),
        3,
        "2 throttled attempts + 1 success"
    );

    // More throttles than attempts (3): a retryable Throttled error.
    proxy.reset_calls();
    proxy.inject(throttling(Some("Decrypt")), 5);
    let started = Instant::now();
    let error = provider.unwrap_dek(&wrapped, &context()).await.unwrap_err();
    let exhausted = started.elapsed();
    assert!(matches!(error, ProviderError::Throttled(_)), "{error:?}");
    assert!(error.is_retryable());
    assert!(error.to_string().contains("ThrottlingException"), "{error}");
    assert_eq!(proxy.calls("Decrypt"), 3, "max_attempts bounds the retries");
    eprintln!(
        "throttling: 2 throttles absorbed in {absorbed:?}; 3 attempts exhausted in {exhausted:?}"
    );

    proxy.clear_faults();

    // The production defaults (4 attempts, 200 ms initial, 5 s cap, full
    // jitter): three throttles in a row cost at most 0.2+0.4+0.8 s.
    let defaults = {
        let mut config = common::config(&proxy.endpoint());
        config.verify_key_state = false;
        config.retry = keyward_provider_aws::RetrySettings::default();
        AwsKmsProvider::connect(config).await.unwrap()
    };
    proxy.reset_calls();
    proxy.inject(throttling(Some("Decrypt")), 3);
    let started = Instant::now();
    defaults.unwrap_dek(&wrapped, &context()).await.unwrap();
    let with_defaults = started.elapsed();
    assert_eq!(proxy.calls("Decrypt"), 4);
    assert!(
        with_defaults < Duration::from_millis(1400 + 500),
        "{with_defaults:?}"
    );
    eprintln!("throttling, default retry settings: 3 throttles absorbed in {with_defaults:?}");

    // Throttling stops: the first provider works again without a restart.
    proxy.inject(throttling(Some("Decrypt")), 5);
    assert!(provider.unwrap_dek(&wrapped, &context()).await.is_err());
    proxy.clear_faults();
    let mut recovered = false;
    for _ in 0..5 {
        match provider.unwrap_dek(&wrapped, &context()).await {
            Ok(dek2) => {
                assert_eq!(dek2.expose(), dek.expose());
                recovered = true;
                break;
            }
            Err(ProviderError::Throttled(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(
        recovered,
        "the provider did not recover after throttling ended"
    );
}

#[tokio::test]
async fn aws_key_state_errors_map_to_provider_errors() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port).await;
    let provider = production_like(&proxy.endpoint()).await;
    let key = provider.create_key(&spec("states")).await.unwrap();
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&key.key_id, &dek, &context())
        .await
        .unwrap();
    let cases = [
        ("DisabledException", "is disabled."),
        ("KMSInvalidStateException", "is pending deletion."),
        (
            "IncorrectKeyException",
            "The key ID in the request does not identify a CMK",
        ),
        ("NotFoundException", "Alias is not found."),
        (
            "AccessDeniedException",
            "User is not authorized to perform: kms:Decrypt",
        ),
    ];
    for (code, message) in cases {
        proxy.inject(
            Fault {
                status: 400,
                code,
                message,
                operation: Some("Decrypt"),
            },
            1,
        );
        let error = provider.unwrap_dek(&wrapped, &context()).await.unwrap_err();
        let expected = match code {
            "DisabledException" => {
                matches!(error, ProviderError::VersionDisabled { version: 1, .. })
            }
            "KMSInvalidStateException" => {
                matches!(error, ProviderError::PendingDeletion { version: 1, .. })
            }
            "IncorrectKeyException" => error == ProviderError::UnwrapFailed,
            "NotFoundException" => {
                matches!(error, ProviderError::UnknownVersion { version: 1, .. })
            }
            _ => matches!(error, ProviderError::InvalidRequest(ref m) if m.contains("IAM")),
        };
        assert!(expected, "{code} became {error:?}");
        assert!(!error.is_retryable(), "{code}");
    }
    // Disabled primary on wrap: the message names the version.
    proxy.inject(
        Fault {
            status: 400,
            code: "DisabledException",
            message: "is disabled.",
            operation: Some("Encrypt"),
        },
        1,
    );
    let error = provider
        .wrap_dek(&key.key_id, &dek, &context())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::VersionDisabled { .. }),
        "{error:?}"
    );
    // A 5xx from KMS is retried, then Unavailable.
    proxy.inject(
        Fault {
            status: 500,
            code: "KMSInternalException",
            message: "internal",
            operation: Some("Decrypt"),
        },
        3,
    );
    let error = provider.unwrap_dek(&wrapped, &context()).await.unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn closed_port_is_unavailable_within_a_bounded_time() {
    let port = common::free_port(); // nothing listens here
    let provider = production_like(&format!("http://127.0.0.1:{port}")).await;
    let started = Instant::now();
    let error = provider.describe_key("anything").await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    assert!(error.is_retryable());
    eprintln!("closed port: {error} after {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn outage_mid_test_is_unavailable_and_the_provider_recovers() {
    let mut moto = Moto::start();
    let proxy = Proxy::start(moto.port).await;
    let provider = production_like(&proxy.endpoint()).await;
    let key = provider.create_key(&spec("outage")).await.unwrap();
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&key.key_id, &dek, &context())
        .await
        .unwrap();

    // The network drops every connection: Unavailable, then back to normal.
    proxy.set_down(true);
    let error = provider.unwrap_dek(&wrapped, &context()).await.unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    proxy.set_down(false);
    let opened = provider.unwrap_dek(&wrapped, &context()).await.unwrap();
    assert_eq!(opened.expose(), dek.expose());

    // moto itself stops (its keys are in memory, so they go with it).
    let port = moto.port;
    moto.stop();
    let started = Instant::now();
    let error = provider.unwrap_dek(&wrapped, &context()).await.unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    eprintln!("moto stopped: {error} after {:?}", started.elapsed());
    let _moto = Moto::start_on(port);
    // Same provider value, no restart: it works against the new server.
    let again = provider.create_key(&spec("outage")).await.unwrap();
    provider
        .wrap_dek(&again.key_id, &dek, &context())
        .await
        .unwrap();
}
