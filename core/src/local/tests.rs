use super::*;
use crate::provider::{KeyAlgorithm, VersionState};

fn provider(dir: &Path) -> LocalProvider {
    let root = RootKey::generate();
    root.save_new(&dir.join(ROOT_KEY_FILE)).unwrap();
    let store = KeyringStore::new(dir, root);
    store.initialise().unwrap();
    LocalProvider::new(store)
}

fn spec(name: &str, algorithm: KeyAlgorithm) -> KeySpec {
    KeySpec {
        name: name.into(),
        algorithm,
        owner: None,
        description: None,
    }
}

fn context(namespace: &str) -> WrapContext {
    [("keyward.io/namespace".to_owned(), namespace.to_owned())].into()
}

#[tokio::test]
async fn symmetric_wrap_is_bound_to_context_and_survives_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let local = provider(dir.path());
    let key = local
        .create_key(&spec("app", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let dek = Dek::generate();
    let wrapped = local
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap();
    assert_eq!(
        local
            .unwrap_dek(&wrapped, &context("a"))
            .await
            .unwrap()
            .expose(),
        dek.expose()
    );
    assert_eq!(
        local.unwrap_dek(&wrapped, &context("b")).await.unwrap_err(),
        ProviderError::UnwrapFailed
    );

    local.rotate_key("app").await.unwrap();
    assert_eq!(
        local
            .unwrap_dek(&wrapped, &context("a"))
            .await
            .unwrap()
            .expose(),
        dek.expose()
    );
    let rewrapped = local.rewrap(&wrapped, &context("a")).await.unwrap();
    assert_eq!(rewrapped.version, 2);
    assert_eq!(
        local
            .unwrap_dek(&rewrapped, &context("a"))
            .await
            .unwrap()
            .expose(),
        dek.expose()
    );
}

#[tokio::test]
async fn rsa_key_unwraps_what_its_public_key_sealed_offline() {
    let dir = tempfile::tempdir().unwrap();
    let local = provider(dir.path());
    let key = local
        .create_key(&spec("seal", KeyAlgorithm::Rsa3072))
        .await
        .unwrap();
    let public = local.public_key(&key.key_id, None).await.unwrap();
    let dek = Dek::generate();
    let wrapped = WrappedDek {
        key_id: key.key_id.clone(),
        version: public.version,
        algorithm: crate::provider::WrapAlgorithm::RsaOaepSha256,
        blob: public.public_key.encrypt(dek.expose()),
    };
    assert_eq!(
        local
            .unwrap_dek(&wrapped, &context("x"))
            .await
            .unwrap()
            .expose(),
        dek.expose()
    );
    let symmetric = local
        .create_key(&spec("sym", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let error = local.public_key(&symmetric.key_id, None).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::WrongKeyType { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn suspended_version_refuses_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let local = provider(dir.path());
    let key = local
        .create_key(&spec("app", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let dek = Dek::generate();
    let wrapped = local
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap();
    local
        .set_version_enabled(&key.key_id, 1, false)
        .await
        .unwrap();
    let refused = local.unwrap_dek(&wrapped, &context("a")).await.unwrap_err();
    assert!(matches!(refused, ProviderError::VersionDisabled { .. }));
    local
        .set_version_enabled(&key.key_id, 1, true)
        .await
        .unwrap();
    assert!(local.unwrap_dek(&wrapped, &context("a")).await.is_ok());
}

#[tokio::test]
async fn keyring_is_encrypted_at_rest_and_needs_its_root_key() {
    let dir = tempfile::tempdir().unwrap();
    let local = provider(dir.path());
    local
        .create_key(&spec("visible-name", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let bytes = std::fs::read(dir.path().join(KEYRING_FILE)).unwrap();
    assert!(!bytes.windows(12).any(|w| w == b"visible-name"));

    let stranger = LocalProvider::new(KeyringStore::new(dir.path(), RootKey::generate()));
    let error = stranger.describe_key("visible-name").await.unwrap_err();
    assert!(error.to_string().contains("wrong root key"), "{error}");
}

#[tokio::test]
async fn concurrent_rotations_lose_no_version() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(provider(dir.path()));
    local
        .create_key(&spec("busy", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let local = Arc::clone(&local);
            tokio::spawn(async move { local.rotate_key("busy").await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let info = local.describe_key("busy").await.unwrap();
    let numbers: Vec<u32> = info.versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, (1..=17).collect::<Vec<_>>());
    assert_eq!(info.primary_version, 17);
    assert!(
        info.versions
            .iter()
            .all(|v| v.state == VersionState::Enabled)
    );
}

#[tokio::test]
async fn interrupted_write_leaves_the_previous_keyring_readable() {
    let dir = tempfile::tempdir().unwrap();
    let local = provider(dir.path());
    local
        .create_key(&spec("kept", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    // What a crash between writing and renaming leaves behind: a partial temp file.
    std::fs::write(
        dir.path().join(".keyring.kwk.999.1.tmp"),
        b"KWKR\x01partial",
    )
    .unwrap();
    assert_eq!(local.describe_key("kept").await.unwrap().name, "kept");
    local.rotate_key("kept").await.unwrap();

    // A keyring cut short is reported, never half-read.
    let path = dir.path().join(KEYRING_FILE);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let error = local.describe_key("kept").await.unwrap_err();
    assert!(error.to_string().contains("modified"), "{error}");
}

#[test]
fn root_key_is_never_overwritten_and_must_not_be_world_readable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(ROOT_KEY_FILE);
    RootKey::generate().save_new(&path).unwrap();
    assert!(
        RootKey::generate()
            .save_new(&path)
            .unwrap_err()
            .to_string()
            .contains("refusing")
    );
    assert!(RootKey::load(&path).is_ok());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(
        RootKey::load(&path)
            .unwrap_err()
            .to_string()
            .contains("chmod 600")
    );
}

/// The webhook reads the keyring through a cache while the operator
/// rotates: wrapping under the version the cluster names sees past it.
#[tokio::test]
async fn wrapping_under_a_named_version_sees_past_a_stale_cache() {
    let dir = tempfile::tempdir().unwrap();
    let operator = provider(dir.path());
    let root = RootKey::load(&dir.path().join(ROOT_KEY_FILE)).unwrap();
    let webhook = LocalProvider::new(KeyringStore::new(dir.path(), root));
    webhook
        .store()
        .set_cache_ttl(std::time::Duration::from_secs(60));
    let key = operator
        .create_key(&spec("app", KeyAlgorithm::Aes256))
        .await
        .unwrap()
        .key_id;
    let dek = Dek::generate();
    let ctx = context("shop");
    assert_eq!(webhook.wrap_dek(&key, &dek, &ctx).await.unwrap().version, 1);

    operator.rotate_key(&key).await.unwrap();
    // The cached keyring still calls version 1 primary: the window closed here.
    assert_eq!(webhook.wrap_dek(&key, &dek, &ctx).await.unwrap().version, 1);
    let wrapped = webhook
        .wrap_dek_with_version(&key, 2, &dek, &ctx)
        .await
        .unwrap();
    assert_eq!(wrapped.version, 2);
    let opened = operator.unwrap_dek(&wrapped, &ctx).await.unwrap();
    assert_eq!(opened.expose(), dek.expose());

    // A version nobody made is refused, not replaced by the primary.
    let missing = webhook.wrap_dek_with_version(&key, 9, &dek, &ctx).await;
    assert!(
        matches!(
            missing,
            Err(ProviderError::UnknownVersion { version: 9, .. })
        ),
        "{missing:?}"
    );

    // Disabled, and seen so by the webhook (a rotation to version 3 makes
    // it reload), then enabled again: the cached "disabled" does not
    // outlive the cluster's word that version 2 is the one to use.
    operator.set_version_enabled(&key, 2, false).await.unwrap();
    operator.rotate_key(&key).await.unwrap();
    let third = webhook.wrap_dek_with_version(&key, 3, &dek, &ctx).await;
    assert_eq!(third.unwrap().version, 3);
    let disabled = webhook.wrap_dek_with_version(&key, 2, &dek, &ctx).await;
    assert!(
        matches!(disabled, Err(ProviderError::VersionDisabled { .. })),
        "{disabled:?}"
    );
    operator.set_version_enabled(&key, 2, true).await.unwrap();
    let resumed = webhook.wrap_dek_with_version(&key, 2, &dek, &ctx).await;
    assert_eq!(resumed.unwrap().version, 2);
}
