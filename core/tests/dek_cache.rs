//! The DEK cache in front of the real local provider: one call per wrapped
//! DEK while fresh, a new call after the TTL, nothing served for a version
//! disabled through the cache, and never more entries than its capacity.

use keyward_conformance::{CountingProvider, fresh_local_provider};
use keyward_core::Dek;
use keyward_core::provider::{
    DekCache, KeyAlgorithm, KeyProvider, KeySpec, ProviderError, WrapContext,
};
use std::time::Duration;

fn context() -> WrapContext {
    [("keyward.io/namespace".to_owned(), "shop".to_owned())].into()
}

#[tokio::test]
async fn cache_expires_forgets_disabled_keys_and_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let provider = fresh_local_provider(dir.path());
    let spec = KeySpec {
        name: "app".into(),
        algorithm: KeyAlgorithm::Aes256,
        owner: None,
        description: None,
    };
    let key = provider.create_key(&spec).await.unwrap();
    let cache = DekCache::new(
        CountingProvider::new(&provider),
        Duration::from_millis(300),
        4,
    );

    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&key.key_id, &dek, &context())
        .await
        .unwrap();
    for _ in 0..5 {
        assert_eq!(
            cache
                .unwrap_dek(&wrapped, &context())
                .await
                .unwrap()
                .expose(),
            dek.expose()
        );
    }
    assert_eq!(
        cache.inner().unwraps(),
        1,
        "fresh entries are served from the cache"
    );

    let other: WrapContext = [("keyward.io/namespace".to_owned(), "dev".to_owned())].into();
    let refused = cache.unwrap_dek(&wrapped, &other).await.unwrap_err();
    assert_eq!(
        refused,
        ProviderError::UnwrapFailed,
        "the context is part of the cache key"
    );

    tokio::time::sleep(Duration::from_millis(350)).await;
    cache.unwrap_dek(&wrapped, &context()).await.unwrap();
    assert_eq!(
        cache.inner().unwraps(),
        3,
        "an expired entry costs a new provider call"
    );

    cache
        .set_version_enabled(&key.key_id, 1, false)
        .await
        .unwrap();
    let error = cache.unwrap_dek(&wrapped, &context()).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::VersionDisabled { .. }),
        "{error:?}"
    );
    cache
        .set_version_enabled(&key.key_id, 1, true)
        .await
        .unwrap();

    for _ in 0..10 {
        let dek = Dek::generate();
        let wrapped = provider
            .wrap_dek(&key.key_id, &dek, &context())
            .await
            .unwrap();
        cache.unwrap_dek(&wrapped, &context()).await.unwrap();
        assert!(cache.len() <= 4, "capacity exceeded: {}", cache.len());
    }
}
