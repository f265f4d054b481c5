//! Cloud KMS specifics against the REST test double: owner labels, AAD
//! binding, protection level, destruction windows, native rotation,
//! offline sealing, throttling and outages.
mod common;

use keyward_core::Dek;
use keyward_core::provider::{
    DeletionTarget, KeyAlgorithm, KeyProvider, KeySpec, ProviderError, VersionState, WrapAlgorithm,
    WrapContext, WrappedDek,
};
use keyward_gcp_double::Double;
use keyward_provider_gcp::{
    GcpKmsProvider, NativeRotation, ProtectionLevel, RetrySettings, naming,
};
use std::time::{Duration, Instant, SystemTime};

fn spec(name: &str, algorithm: KeyAlgorithm) -> KeySpec {
    KeySpec {
        name: name.into(),
        algorithm,
        owner: Some(format!("uid-{name}").to_lowercase().replace('/', "-")),
        description: None,
    }
}

fn context(namespace: &str) -> WrapContext {
    [
        ("keyward.io/namespace".to_owned(), namespace.to_owned()),
        ("keyward.io/secret".to_owned(), "db".to_owned()),
    ]
    .into()
}

#[tokio::test]
async fn create_is_idempotent_through_the_owner_label() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let spec = KeySpec {
        name: "shop/payments".into(),
        algorithm: KeyAlgorithm::Aes256,
        owner: Some("3f0c6a4e-9b1d-4c0e-8a55-0d1f2e3a4b5c".into()),
        description: None,
    };
    let first = provider.create_key(&spec).await.unwrap();
    let again = provider.create_key(&spec).await.unwrap();
    assert_eq!(first.key_id, again.key_id);
    assert_eq!(
        again.versions.len(),
        1,
        "a retried create made a second version"
    );
    // `/` is not allowed in a CryptoKey id: sanitized plus a hash.
    let id = naming::short_id(&first.key_id);
    assert!(
        id.starts_with("shop-payments-") && id.len() == "shop-payments-".len() + 8,
        "{id}"
    );
    let stored = kms.key(&first.key_id).expect("key in the double");
    assert_eq!(
        stored.labels.get("keyward-owner").map(String::as_str),
        Some("3f0c6a4e-9b1d-4c0e-8a55-0d1f2e3a4b5c")
    );
    assert_eq!(
        stored.labels.get("keyward-managed").map(String::as_str),
        Some("true")
    );
    assert_eq!(stored.purpose, "ENCRYPT_DECRYPT");
    assert_eq!(stored.algorithm, "GOOGLE_SYMMETRIC_ENCRYPTION");
    // describe by Keyward name and by resource name find the same key.
    assert_eq!(
        provider.describe_key("shop/payments").await.unwrap().key_id,
        first.key_id
    );
    assert_eq!(
        provider.describe_key(&first.key_id).await.unwrap().owner,
        spec.owner
    );

    // Same name, another owner: refused, nothing changes.
    let intruder = KeySpec {
        owner: Some("another-uid".into()),
        ..spec.clone()
    };
    let error = provider.create_key(&intruder).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::InvalidRequest(m) if m.contains("another owner")),
        "{error:?}"
    );
    // Same owner, other algorithm: refused.
    let retyped = KeySpec {
        algorithm: KeyAlgorithm::Rsa3072,
        ..spec.clone()
    };
    assert!(matches!(
        provider.create_key(&retyped).await.unwrap_err(),
        ProviderError::InvalidRequest(_)
    ));
    // An owner that is not a valid label value is stored hashed.
    let odd = provider
        .create_key(&KeySpec {
            name: "odd-owner".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: Some("Team Payments/UID".into()),
            description: None,
        })
        .await
        .unwrap();
    let label = &kms.key(&odd.key_id).unwrap().labels["keyward-owner"];
    assert!(label.starts_with("h-") && label.len() == 63, "{label}");
    // A key in another key ring is not ours.
    let foreign = "projects/x/locations/y/keyRings/z/cryptoKeys/k";
    assert!(matches!(
        provider.describe_key(foreign).await.unwrap_err(),
        ProviderError::UnknownKey(_)
    ));
}

#[tokio::test]
async fn wrap_context_is_bound_as_additional_authenticated_data() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let key = provider
        .create_key(&spec("aad", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let other = provider
        .create_key(&spec("aad-other", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&key.key_id, &dek, &context("shop"))
        .await
        .unwrap();
    assert_eq!(wrapped.version, 1);
    assert_eq!(wrapped.algorithm, WrapAlgorithm::Symmetric);
    let opened = provider
        .unwrap_dek(&wrapped, &context("shop"))
        .await
        .unwrap();
    assert_eq!(opened.expose(), dek.expose());
    for wrong in [context("dev"), WrapContext::new()] {
        assert_eq!(
            provider.unwrap_dek(&wrapped, &wrong).await.unwrap_err(),
            ProviderError::UnwrapFailed
        );
    }
    // A blob presented as another key's: Cloud KMS refuses it.
    let moved = WrappedDek {
        key_id: other.key_id.clone(),
        ..wrapped.clone()
    };
    assert_eq!(
        provider
            .unwrap_dek(&moved, &context("shop"))
            .await
            .unwrap_err(),
        ProviderError::UnwrapFailed
    );
    // A symmetric blob labelled RSA-OAEP never reaches Cloud KMS.
    let relabelled = WrappedDek {
        algorithm: WrapAlgorithm::RsaOaepSha256,
        ..wrapped.clone()
    };
    kms.reset_calls();
    assert_eq!(
        provider
            .unwrap_dek(&relabelled, &context("shop"))
            .await
            .unwrap_err(),
        ProviderError::UnwrapFailed
    );
    assert_eq!(kms.calls("AsymmetricDecrypt"), 0);
}

#[tokio::test]
async fn protection_level_and_destroy_window_are_passed_at_creation() {
    let kms = Double::start().await;
    let mut config = common::config(&kms.endpoint());
    config.protection_level = ProtectionLevel::Hsm;
    config.destroy_scheduled_duration = Duration::from_secs(7 * 24 * 3600);
    let provider = GcpKmsProvider::connect(config).await.unwrap();
    let key = provider
        .create_key(&spec("hsm", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let stored = kms.key(&key.key_id).unwrap();
    assert_eq!(stored.protection_level, "HSM");
    assert_eq!(stored.destroy_scheduled_secs, 7 * 24 * 3600);

    // A window longer than the key's fixed destroyScheduledDuration would
    // destroy too early: refused. A shorter one is honoured late.
    let error = provider
        .schedule_deletion(
            &key.key_id,
            DeletionTarget::WholeKey,
            Duration::from_secs(30 * 86_400),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ProviderError::InvalidRequest(m) if m.contains("destroyScheduledDuration")),
        "{error:?}"
    );
    let at = provider
        .schedule_deletion(
            &key.key_id,
            DeletionTarget::WholeKey,
            Duration::from_secs(2 * 86_400),
        )
        .await
        .unwrap();
    assert!(at > SystemTime::now() + Duration::from_secs(6 * 86_400));

    // Out-of-range windows are refused before any call.
    let mut bad = common::config(&kms.endpoint());
    bad.destroy_scheduled_duration = Duration::from_secs(3600);
    assert!(GcpKmsProvider::connect(bad).await.is_err());
}

#[tokio::test]
async fn version_states_follow_cloud_kms_rules() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let key = provider
        .create_key(&spec("states", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let dek = Dek::generate();
    let old = provider
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap();
    let rotated = provider.rotate_key(&key.key_id).await.unwrap();
    assert_eq!(rotated.primary_version, 2);

    // The primary cannot be destroyed on its own; an older version can.
    assert!(matches!(
        provider
            .schedule_deletion(
                &key.key_id,
                DeletionTarget::Version(2),
                Duration::from_secs(86_400)
            )
            .await
            .unwrap_err(),
        ProviderError::InvalidRequest(_)
    ));
    provider
        .schedule_deletion(
            &key.key_id,
            DeletionTarget::Version(1),
            Duration::from_secs(86_400),
        )
        .await
        .unwrap();
    let error = provider.unwrap_dek(&old, &context("a")).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::PendingDeletion { version: 1, .. }),
        "{error:?}"
    );
    let error = provider
        .set_version_enabled(&key.key_id, 1, true)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::PendingDeletion { version: 1, .. }),
        "{error:?}"
    );
    let info = provider.describe_key(&key.key_id).await.unwrap();
    assert!(info.deletion_at.is_none(), "only one version is going");
    assert_eq!(info.versions[0].state, VersionState::PendingDeletion);

    // Restore brings it back disabled, as Cloud KMS does.
    provider
        .cancel_deletion(&key.key_id, DeletionTarget::Version(1))
        .await
        .unwrap();
    let info = provider.describe_key(&key.key_id).await.unwrap();
    assert_eq!(info.versions[0].state, VersionState::Disabled);
    let error = provider.unwrap_dek(&old, &context("a")).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::VersionDisabled { version: 1, .. }),
        "{error:?}"
    );
    provider
        .set_version_enabled(&key.key_id, 1, true)
        .await
        .unwrap();
    provider.unwrap_dek(&old, &context("a")).await.unwrap();

    // A disabled primary refuses to wrap, naming the version.
    provider
        .set_version_enabled(&key.key_id, 2, false)
        .await
        .unwrap();
    let error = provider
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::VersionDisabled { version: 2, .. }),
        "{error:?}"
    );
    assert!(matches!(
        provider
            .set_version_enabled(&key.key_id, 9, true)
            .await
            .unwrap_err(),
        ProviderError::UnknownVersion { version: 9, .. }
    ));
}

#[tokio::test]
async fn native_rotation_schedule_is_set_read_and_cleared() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let key = provider
        .create_key(&spec("native", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let next = SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_800); // 2100-01-01
    let rotation = NativeRotation {
        period: Duration::from_secs(90 * 86_400),
        next_rotation: next,
    };
    provider
        .set_native_rotation(&key.key_id, Some(rotation))
        .await
        .unwrap();
    let stored = kms.key(&key.key_id).unwrap();
    assert_eq!(stored.rotation_period_secs, Some(90 * 86_400));
    assert_eq!(stored.next_rotation_secs, Some(4_102_444_800));
    assert_eq!(
        provider.native_rotation(&key.key_id).await.unwrap(),
        Some(rotation)
    );
    provider
        .set_native_rotation(&key.key_id, None)
        .await
        .unwrap();
    assert_eq!(provider.native_rotation(&key.key_id).await.unwrap(), None);

    let too_short = NativeRotation {
        period: Duration::from_secs(3600),
        next_rotation: next,
    };
    assert!(matches!(
        provider
            .set_native_rotation(&key.key_id, Some(too_short))
            .await
            .unwrap_err(),
        ProviderError::InvalidRequest(_)
    ));
    let rsa = provider
        .create_key(&spec("native-rsa", KeyAlgorithm::Rsa3072))
        .await
        .unwrap();
    assert!(matches!(
        provider
            .set_native_rotation(&rsa.key_id, Some(rotation))
            .await
            .unwrap_err(),
        ProviderError::WrongKeyType { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_seal_with_the_pem_public_key_opens_with_asymmetric_decrypt() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let started = Instant::now();
    let key = provider
        .create_key(&spec("seal", KeyAlgorithm::Rsa4096))
        .await
        .unwrap();
    eprintln!(
        "RSA-4096 key created (generation awaited) in {:?}",
        started.elapsed()
    );
    let stored = kms.key(&key.key_id).unwrap();
    assert_eq!(stored.purpose, "ASYMMETRIC_DECRYPT");
    assert_eq!(stored.algorithm, "RSA_DECRYPT_OAEP_4096_SHA256");

    let public = provider.public_key(&key.key_id, None).await.unwrap();
    assert_eq!((public.version, public.public_key.bits()), (1, 4096));
    // Sealing offline: only the public key, no provider call.
    let dek = Dek::generate();
    let sealed = WrappedDek {
        key_id: public.key_id.clone(),
        version: public.version,
        algorithm: WrapAlgorithm::RsaOaepSha256,
        blob: public.public_key.encrypt(dek.expose()),
    };
    kms.reset_calls();
    let opened = provider
        .unwrap_dek(&sealed, &WrapContext::new())
        .await
        .unwrap();
    assert_eq!(opened.expose(), dek.expose());
    assert_eq!(kms.calls("AsymmetricDecrypt"), 1);

    // Rotation: no primary in Cloud KMS; the newest enabled version seals.
    let rotated = provider.rotate_key(&key.key_id).await.unwrap();
    assert_eq!(rotated.primary_version, 2);
    let newer = provider.public_key(&key.key_id, None).await.unwrap();
    assert_eq!(newer.version, 2);
    assert_ne!(newer.public_key.spki_der(), public.public_key.spki_der());
    provider
        .unwrap_dek(&sealed, &WrapContext::new())
        .await
        .unwrap();
    let online = provider
        .wrap_dek(&key.key_id, &dek, &WrapContext::new())
        .await
        .unwrap();
    assert_eq!(online.version, 2);
    provider
        .unwrap_dek(&online, &WrapContext::new())
        .await
        .unwrap();

    // Disabling version 1 blocks its unwraps; version 2 stays the sealer.
    provider
        .set_version_enabled(&key.key_id, 1, false)
        .await
        .unwrap();
    assert!(matches!(
        provider
            .unwrap_dek(&sealed, &WrapContext::new())
            .await
            .unwrap_err(),
        ProviderError::VersionDisabled { version: 1, .. }
    ));
    // A wrong-sized or garbage ciphertext is an unwrap failure.
    let garbage = WrappedDek {
        blob: vec![7; 512],
        ..online.clone()
    };
    assert_eq!(
        provider
            .unwrap_dek(&garbage, &WrapContext::new())
            .await
            .unwrap_err(),
        ProviderError::UnwrapFailed
    );
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_then_reported_and_recovers() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let key = provider
        .create_key(&spec("busy", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap();

    // Two throttles, then an answer: absorbed by the retries (3 attempts).
    kms.reset_calls();
    kms.throttle(2, Some("Decrypt"));
    let started = Instant::now();
    let opened = provider.unwrap_dek(&wrapped, &context("a")).await.unwrap();
    let absorbed = started.elapsed();
    assert_eq!(opened.expose(), dek.expose());
    assert_eq!(kms.calls("Decrypt"), 3, "2 throttled attempts + 1 success");

    // More throttles than attempts: a retryable Throttled error.
    kms.reset_calls();
    kms.throttle(10, Some("Decrypt"));
    let started = Instant::now();
    let error = provider
        .unwrap_dek(&wrapped, &context("a"))
        .await
        .unwrap_err();
    let exhausted = started.elapsed();
    assert!(
        matches!(&error, ProviderError::Throttled(m) if m.contains("RESOURCE_EXHAUSTED")),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(kms.calls("Decrypt"), 3, "max_attempts bounds the retries");
    eprintln!(
        "throttling: 2 throttles absorbed in {absorbed:?}; 3 attempts exhausted in {exhausted:?}"
    );

    // Production defaults (4 attempts, 200 ms initial, full jitter): three
    // throttles cost at most 0.2 + 0.4 + 0.8 s of backoff.
    let mut config = common::config(&kms.endpoint());
    config.retry = RetrySettings::default();
    let defaults = GcpKmsProvider::connect(config).await.unwrap();
    kms.reset_calls();
    kms.throttle(3, Some("Decrypt"));
    let started = Instant::now();
    defaults.unwrap_dek(&wrapped, &context("a")).await.unwrap();
    let with_defaults = started.elapsed();
    assert_eq!(kms.calls("Decrypt"), 4);
    assert!(
        with_defaults < Duration::from_millis(1400 + 500),
        "{with_defaults:?}"
    );
    eprintln!("throttling, default retry settings: 3 throttles absorbed in {with_defaults:?}");

    // Throttling ends: the same provider works again, no restart.
    kms.throttle(0, None);
    let again = provider.unwrap_dek(&wrapped, &context("a")).await.unwrap();
    assert_eq!(again.expose(), dek.expose());
}

#[tokio::test]
async fn outages_are_unavailable_within_a_bounded_time_and_recover() {
    let kms = Double::start().await;
    let mut config = common::config(&kms.endpoint());
    config.retry = RetrySettings::default();
    let provider = GcpKmsProvider::connect(config).await.unwrap();
    let key = provider
        .create_key(&spec("outage", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap();

    // Every connection is dropped: Unavailable, then back to normal.
    kms.set_down(true);
    let started = Instant::now();
    let error = provider
        .unwrap_dek(&wrapped, &context("a"))
        .await
        .unwrap_err();
    let dropped = started.elapsed();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    assert!(error.is_retryable());
    assert!(dropped < Duration::from_secs(5), "{dropped:?}");
    kms.set_down(false);
    let opened = provider.unwrap_dek(&wrapped, &context("a")).await.unwrap();
    assert_eq!(opened.expose(), dek.expose());

    // The server goes away: connections are refused.
    let endpoint = kms.endpoint();
    kms.stop();
    let started = Instant::now();
    let error = provider
        .unwrap_dek(&wrapped, &context("a"))
        .await
        .unwrap_err();
    let refused = started.elapsed();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    assert!(refused < Duration::from_secs(5), "{refused:?}");
    eprintln!(
        "dropped connections: {error} after {dropped:?}; server stopped: after {refused:?} ({endpoint})"
    );

    // A hung server (accepts, never answers) is cut off by the attempt
    // timeout and the operation deadline.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = common::config(&format!("http://{}", hung.local_addr().unwrap()));
    config.timeouts.attempt = Duration::from_millis(300);
    config.timeouts.operation = Duration::from_secs(2);
    let stuck = GcpKmsProvider::connect(config).await.unwrap();
    let started = Instant::now();
    let error = stuck.describe_key("anything").await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    eprintln!("hung server: {error} after {took:?}");
    drop(hung);
}
