//! AWS-specific behaviour against moto: aliases, encryption context,
//! ReEncrypt, RSA keys, native rotation, deletion windows.
mod common;

use keyward_core::Dek;
use keyward_core::provider::{
    DeletionTarget, KeyAlgorithm, KeyProvider, KeySpec, ProviderError, VersionState, WrapContext,
};
use std::time::Duration;

fn spec(name: &str, algorithm: KeyAlgorithm) -> KeySpec {
    KeySpec {
        name: name.into(),
        algorithm,
        owner: Some(format!("uid-{name}")),
        description: None,
    }
}

fn context(namespace: &str) -> WrapContext {
    [("keyward.io/namespace".to_owned(), namespace.to_owned())].into()
}

const DAY: Duration = Duration::from_secs(24 * 3600);

#[tokio::test]
async fn primary_alias_follows_rotation_and_versions_keep_theirs() {
    let moto = common::Moto::start();
    let provider = common::provider(&moto.endpoint()).await;
    let key = provider
        .create_key(&spec("shop/db.main", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    assert_eq!(key.key_id, "alias/keyward/shop/db_main");
    assert_eq!(key.name, "shop/db.main");
    let client = provider.client();
    let kms_key = |alias: &'static str| async move {
        client
            .describe_key()
            .key_id(alias)
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap()
            .key_id
    };
    let v1 = kms_key("alias/keyward/shop/db_main/v1").await;
    assert_eq!(kms_key("alias/keyward/shop/db_main").await, v1);

    let rotated = provider.rotate_key(&key.key_id).await.unwrap();
    assert_eq!(rotated.primary_version, 2);
    let v2 = kms_key("alias/keyward/shop/db_main/v2").await;
    assert_ne!(v1, v2, "managed rotation makes a new KMS key");
    assert_eq!(kms_key("alias/keyward/shop/db_main").await, v2);
    assert_eq!(kms_key("alias/keyward/shop/db_main/v1").await, v1);

    let tags = client
        .list_resource_tags()
        .key_id(&v2)
        .send()
        .await
        .unwrap();
    let tag = |k: &str| {
        tags.tags()
            .iter()
            .find(|t| t.tag_key() == k)
            .map(|t| t.tag_value().to_owned())
    };
    assert_eq!(tag("keyward.io/key").as_deref(), Some("shop/db.main"));
    assert_eq!(tag("keyward.io/version").as_deref(), Some("2"));
    assert_eq!(tag("keyward.io/owner").as_deref(), Some("uid-shop/db.main"));

    // Any of the ways a caller may hold the key finds it.
    for reference in [
        key.key_id.as_str(),
        "shop/db.main",
        v1.as_str(),
        v2.as_str(),
    ] {
        let found = provider.describe_key(reference).await.unwrap();
        assert_eq!(found.key_id, key.key_id, "{reference}");
        assert_eq!(found.primary_version, 2, "{reference}");
    }
    // `shop/db_main` maps to the same alias but is another name.
    assert!(matches!(
        provider.describe_key("shop/db_main").await,
        Err(ProviderError::UnknownKey(_))
    ));
}

#[tokio::test]
async fn names_are_not_taken_over_and_bad_names_are_refused() {
    let moto = common::Moto::start();
    let provider = common::provider(&moto.endpoint()).await;
    provider
        .create_key(&spec("payments", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let other = KeySpec {
        owner: Some("someone-else".into()),
        ..spec("payments", KeyAlgorithm::Aes256)
    };
    let error = provider.create_key(&other).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::InvalidRequest(m) if m.contains("already exists")),
        "{error:?}"
    );
    let error = provider
        .create_key(&spec("payments", KeyAlgorithm::Rsa4096))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("algorithms cannot change"),
        "{error}"
    );
    for bad in ["a b", "keys/v2", "ümlaut"] {
        assert!(matches!(
            provider.create_key(&spec(bad, KeyAlgorithm::Aes256)).await,
            Err(ProviderError::InvalidRequest(_))
        ));
    }
}

#[tokio::test]
async fn encryption_context_must_match_exactly() {
    let moto = common::Moto::start();
    let provider = common::provider(&moto.endpoint()).await;
    let key = provider
        .create_key(&spec("ctx", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap();
    let opened = provider.unwrap_dek(&wrapped, &context("a")).await.unwrap();
    assert_eq!(opened.expose(), dek.expose());
    let mut extra = context("a");
    extra.insert("keyward.io/item".into(), "x".into());
    for wrong in [context("b"), extra, WrapContext::new()] {
        assert_eq!(
            provider.unwrap_dek(&wrapped, &wrong).await.unwrap_err(),
            ProviderError::UnwrapFailed,
            "{wrong:?}"
        );
    }
}

#[tokio::test]
async fn rewrap_uses_reencrypt_and_checks_the_context() {
    let moto = common::Moto::start();
    let proxy = common::Proxy::start(moto.port).await;
    let provider = common::provider(&proxy.endpoint()).await;
    let key = provider
        .create_key(&spec("rewrap", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let dek = Dek::generate();
    let old = provider
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap();
    provider.rotate_key(&key.key_id).await.unwrap();

    proxy.reset_calls();
    let moved = provider.rewrap(&old, &context("a")).await.unwrap();
    assert_eq!(moved.version, 2);
    assert_eq!(proxy.calls("ReEncrypt"), 1);
    assert_eq!(
        (proxy.calls("Decrypt"), proxy.calls("Encrypt")),
        (0, 0),
        "the DEK must not come back to Keyward during a rewrap"
    );
    let opened = provider.unwrap_dek(&moved, &context("a")).await.unwrap();
    assert_eq!(opened.expose(), dek.expose());
    assert_eq!(
        provider.rewrap(&old, &context("b")).await.unwrap_err(),
        ProviderError::UnwrapFailed
    );
    // The rewrapped DEK is bound to the same context as before.
    assert_eq!(
        provider
            .unwrap_dek(&moved, &context("b"))
            .await
            .unwrap_err(),
        ProviderError::UnwrapFailed
    );
}

#[tokio::test]
async fn rsa_keys_publish_their_public_key_per_version() {
    let moto = common::Moto::start();
    let provider = common::provider(&moto.endpoint()).await;
    let key = provider
        .create_key(&spec("sealing", KeyAlgorithm::Rsa4096))
        .await
        .unwrap();
    assert_eq!(key.algorithm, KeyAlgorithm::Rsa4096);
    let v1 = provider.public_key(&key.key_id, None).await.unwrap();
    assert_eq!((v1.version, v1.public_key.bits()), (1, 4096));

    // Provider-side wrap/unwrap goes through KMS RSAES_OAEP_SHA_256. moto
    // fakes it (not real OAEP), but the calls and the lifecycle are real.
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&key.key_id, &dek, &WrapContext::new())
        .await
        .unwrap();
    assert_eq!(
        provider
            .unwrap_dek(&wrapped, &WrapContext::new())
            .await
            .unwrap()
            .expose(),
        dek.expose()
    );

    provider.rotate_key(&key.key_id).await.unwrap();
    let v2 = provider.public_key(&key.key_id, None).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_ne!(v1.public_key.spki_der(), v2.public_key.spki_der());
    let again = provider.public_key(&key.key_id, Some(1)).await.unwrap();
    assert_eq!(again.public_key.spki_der(), v1.public_key.spki_der());
    let moved = provider
        .rewrap(&wrapped, &WrapContext::new())
        .await
        .unwrap();
    assert_eq!(moved.version, 2);

    provider
        .set_version_enabled(&key.key_id, 1, false)
        .await
        .unwrap();
    assert!(matches!(
        provider.unwrap_dek(&wrapped, &WrapContext::new()).await,
        Err(ProviderError::VersionDisabled { version: 1, .. })
    ));

    // What moto cannot do: open a DEK sealed offline with the real public
    // key (real AWS can). Documented in docs/providers.md.
    let offline = keyward_core::provider::WrappedDek {
        blob: v2.public_key.encrypt(dek.expose()),
        ..moved.clone()
    };
    assert!(
        provider
            .unwrap_dek(&offline, &WrapContext::new())
            .await
            .is_err(),
        "moto learned real RSA-OAEP: set real_rsa_oaep in the conformance run"
    );
}

#[tokio::test]
async fn native_rotation_is_available_for_symmetric_keys() {
    let moto = common::Moto::start();
    let provider = common::provider(&moto.endpoint()).await;
    let key = provider
        .create_key(&spec("native", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap();
    for bad in [89, 2561] {
        assert!(matches!(
            provider.enable_native_rotation(&key.key_id, bad).await,
            Err(ProviderError::InvalidRequest(_))
        ));
    }
    provider
        .enable_native_rotation(&key.key_id, 180)
        .await
        .unwrap();
    let status = provider.native_rotation(&key.key_id).await.unwrap();
    assert!(status.enabled, "{status:?}");
    provider.rotate_native_now(&key.key_id).await.unwrap();
    let opened = provider.unwrap_dek(&wrapped, &context("a")).await.unwrap();
    assert_eq!(opened.expose(), dek.expose());
    assert_eq!(
        provider
            .describe_key(&key.key_id)
            .await
            .unwrap()
            .primary_version,
        1,
        "native rotation does not make Keyward versions"
    );
    provider.disable_native_rotation(&key.key_id).await.unwrap();
    assert!(!provider.native_rotation(&key.key_id).await.unwrap().enabled);

    let rsa = provider
        .create_key(&spec("native-rsa", KeyAlgorithm::Rsa4096))
        .await
        .unwrap();
    assert!(matches!(
        provider.enable_native_rotation(&rsa.key_id, 365).await,
        Err(ProviderError::WrongKeyType { .. })
    ));
}

#[tokio::test]
async fn versions_are_deleted_one_by_one_within_the_aws_window() {
    let moto = common::Moto::start();
    let provider = common::provider(&moto.endpoint()).await;
    let key = provider
        .create_key(&spec("retire", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let dek = Dek::generate();
    let old = provider
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap();
    provider.rotate_key(&key.key_id).await.unwrap();

    let too_long = provider
        .schedule_deletion(&key.key_id, DeletionTarget::Version(1), DAY * 31)
        .await
        .unwrap_err();
    assert!(
        too_long.to_string().contains("at most 30 days"),
        "{too_long}"
    );
    let primary = provider
        .schedule_deletion(&key.key_id, DeletionTarget::Version(2), DAY * 7)
        .await
        .unwrap_err();
    assert!(
        primary.to_string().contains("rotate the key first"),
        "{primary}"
    );

    // A one-day request is raised to AWS's 7-day minimum, and says so.
    let at = provider
        .schedule_deletion(&key.key_id, DeletionTarget::Version(1), DAY)
        .await
        .unwrap();
    assert!(at > std::time::SystemTime::now() + DAY * 6, "{at:?}");
    let info = provider.describe_key(&key.key_id).await.unwrap();
    assert_eq!(info.versions[0].state, VersionState::PendingDeletion);
    assert_eq!(info.versions[1].state, VersionState::Enabled);
    assert!(info.deletion_at.is_none(), "only one version is going");
    assert!(matches!(
        provider.unwrap_dek(&old, &context("a")).await,
        Err(ProviderError::PendingDeletion { version: 1, .. })
    ));
    assert!(matches!(
        provider.set_version_enabled(&key.key_id, 1, true).await,
        Err(ProviderError::PendingDeletion { version: 1, .. })
    ));
    provider
        .cancel_deletion(&key.key_id, DeletionTarget::Version(1))
        .await
        .unwrap();
    let info = provider.describe_key(&key.key_id).await.unwrap();
    assert_eq!(
        info.versions[0].state,
        VersionState::Disabled,
        "AWS leaves a cancelled key disabled"
    );
    provider
        .set_version_enabled(&key.key_id, 1, true)
        .await
        .unwrap();
    provider.unwrap_dek(&old, &context("a")).await.unwrap();
    assert!(matches!(
        provider.set_version_enabled(&key.key_id, 9, true).await,
        Err(ProviderError::UnknownVersion { version: 9, .. })
    ));
}

#[tokio::test]
async fn create_finishes_a_create_that_stopped_half_way() {
    let moto = common::Moto::start();
    let provider = common::provider(&moto.endpoint()).await;
    let first = provider
        .create_key(&spec("half", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    // As if the operator crashed after creating version 1 but before the
    // primary alias: the retried create adopts the tagged key.
    provider
        .client()
        .delete_alias()
        .alias_name(&first.key_id)
        .send()
        .await
        .unwrap();
    let again = provider
        .create_key(&spec("half", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    assert_eq!(again.key_id, first.key_id);
    let keys = provider.client().list_keys().send().await.unwrap();
    assert_eq!(keys.keys().len(), 1, "no second KMS key");
}

/// Not a benchmark: per-operation latency on loopback, for the report.
#[tokio::test]
async fn latency_per_operation_on_loopback() {
    let moto = common::Moto::start();
    let mut config = common::config(&moto.endpoint());
    config.verify_key_state = false; // as in production: one call per operation
    let provider = keyward_provider_aws::AwsKmsProvider::connect(config)
        .await
        .unwrap();
    let key = provider
        .create_key(&spec("latency", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    provider.rotate_key(&key.key_id).await.unwrap();
    let dek = Dek::generate();
    let old = provider
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap();
    const N: u32 = 30;
    let mut report = Vec::new();
    macro_rules! measure {
        ($name:expr, $op:expr) => {{
            let started = std::time::Instant::now();
            for _ in 0..N {
                $op.await.unwrap();
            }
            report.push(format!("{} {:?}", $name, started.elapsed() / N));
        }};
    }
    measure!("wrap", provider.wrap_dek(&key.key_id, &dek, &context("a")));
    measure!("unwrap", provider.unwrap_dek(&old, &context("a")));
    measure!("rewrap", provider.rewrap(&old, &context("a")));
    measure!("describe(2 versions)", provider.describe_key(&key.key_id));
    eprintln!(
        "moto loopback latency per call (mean of {N}): {}",
        report.join(", ")
    );
}
