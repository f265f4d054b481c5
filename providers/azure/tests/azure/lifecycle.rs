//! Keys, versions and deletion as Key Vault holds them.

use crate::common::{name_in, provider, spec};
use keyward_azure_double::{Double, Options};
use keyward_core::Dek;
use keyward_core::provider::{
    DeletionTarget, KeyAlgorithm, KeyProvider, ProviderError, VersionState, WrapContext,
};
use std::time::{Duration, SystemTime};

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyward_names_become_key_vault_names_tagged_with_versions() {
    let double = Double::start().await;
    let provider = provider(&double);
    let made = provider
        .create_key(&spec("keyward/shop/db", KeyAlgorithm::Rsa3072))
        .await
        .unwrap();
    // The key id is the key's URL (it routes envelopes back to this
    // vault); the name in it is the Keyward name made Key Vault-safe.
    let keys = format!("{}/keys/", double.vault_url());
    let name = made.key_id.strip_prefix(&keys).unwrap_or_default();
    assert!(name.starts_with("keyward-shop-db-"), "{}", made.key_id);
    let by_name = provider.describe_key("keyward/shop/db").await.unwrap();
    assert_eq!(by_name.key_id, made.key_id);
    assert_eq!(
        provider.describe_key(name).await.unwrap().key_id,
        made.key_id
    );

    provider.rotate_key(&made.key_id).await.unwrap();
    let snapshot = double.key(name).unwrap();
    let numbers: Vec<&str> = snapshot
        .versions
        .iter()
        .map(|v| v.tags["keyward-version"].as_str())
        .collect();
    assert_eq!(numbers, ["1", "2"]);
    assert_eq!(
        snapshot.versions[1].tags["keyward-owner"],
        "uid-keyward/shop/db"
    );
    assert_eq!(snapshot.versions[1].tags["keyward-algorithm"], "RSA3072");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_scheduled_for_deletion_is_disabled_then_destroyed() {
    let double = Double::start().await;
    let provider = provider(&double);
    let key = provider
        .create_key(&spec("versions", KeyAlgorithm::Rsa3072))
        .await
        .unwrap()
        .key_id;
    let dek = Dek::generate();
    let old = provider
        .wrap_dek(&key, &dek, &WrapContext::new())
        .await
        .unwrap();
    provider.rotate_key(&key).await.unwrap();

    let refused = provider
        .schedule_deletion(&key, DeletionTarget::Version(2), DAY)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("primary"), "{refused}");

    let at = provider
        .schedule_deletion(&key, DeletionTarget::Version(1), 30 * DAY)
        .await
        .unwrap();
    assert!(at > SystemTime::now() + 29 * DAY);
    let info = provider.describe_key(&key).await.unwrap();
    assert_eq!(info.versions[0].state, VersionState::PendingDeletion);
    assert_eq!(info.versions[0].deletion_at, Some(at));
    assert!(!double.key(name_in(&key)).unwrap().versions[0].enabled);
    let error = provider
        .unwrap_dek(&old, &WrapContext::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::PendingDeletion { version: 1, .. }),
        "{error:?}"
    );
    assert!(provider.set_version_enabled(&key, 1, true).await.is_err());

    // Cancelled: back, disabled until enabled.
    provider
        .cancel_deletion(&key, DeletionTarget::Version(1))
        .await
        .unwrap();
    let info = provider.describe_key(&key).await.unwrap();
    assert_eq!(info.versions[0].state, VersionState::Disabled);
    provider.set_version_enabled(&key, 1, true).await.unwrap();
    let opened = provider
        .unwrap_dek(&old, &WrapContext::new())
        .await
        .unwrap();
    assert_eq!(opened.expose(), dek.expose());

    // A window of zero: destroyed at once, and never the primary.
    provider
        .schedule_deletion(&key, DeletionTarget::Version(1), Duration::ZERO)
        .await
        .unwrap();
    let info = provider.describe_key(&key).await.unwrap();
    assert_eq!(info.versions[0].state, VersionState::Destroyed);
    assert_eq!(info.primary_version, 2);
    let error = provider
        .unwrap_dek(&old, &WrapContext::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::UnknownVersion { version: 1, .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_key_deletion_is_soft_and_recovered_by_cancel() {
    let double = Double::start().await;
    let provider = provider(&double);
    let key = provider
        .create_key(&spec("soft", KeyAlgorithm::Rsa3072))
        .await
        .unwrap()
        .key_id;
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&key, &dek, &WrapContext::new())
        .await
        .unwrap();
    let at = provider
        .schedule_deletion(&key, DeletionTarget::WholeKey, 30 * DAY)
        .await
        .unwrap();
    assert!(
        at > SystemTime::now() + 89 * DAY,
        "the vault's 90-day retention"
    );
    assert!(double.key(name_in(&key)).unwrap().deleted.is_some());
    // Asked again: the same date, nothing new.
    assert_eq!(
        provider
            .schedule_deletion(&key, DeletionTarget::WholeKey, 30 * DAY)
            .await
            .unwrap(),
        at
    );
    let info = provider.describe_key(&key).await.unwrap();
    assert_eq!(info.deletion_at, Some(at));
    assert!(
        info.versions
            .iter()
            .all(|v| v.state == VersionState::PendingDeletion)
    );
    let error = provider
        .wrap_dek(&key, &dek, &WrapContext::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::PendingDeletion { .. }),
        "{error:?}"
    );
    // Creating it again is refused while it is recoverable.
    let error = provider
        .create_key(&spec("soft", KeyAlgorithm::Rsa3072))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("deleted but recoverable"),
        "{error}"
    );

    provider
        .cancel_deletion(&key, DeletionTarget::WholeKey)
        .await
        .unwrap();
    assert!(
        provider
            .describe_key(&key)
            .await
            .unwrap()
            .deletion_at
            .is_none()
    );
    let opened = provider
        .unwrap_dek(&wrapped, &WrapContext::new())
        .await
        .unwrap();
    assert_eq!(opened.expose(), dek.expose());
    provider
        .wrap_dek(&key, &dek, &WrapContext::new())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_protection_is_respected_the_provider_never_purges() {
    let double = Double::start_with(Options {
        purge_protection: true,
        retention_days: 7,
        ..Options::default()
    })
    .await;
    let provider = provider(&double);
    let key = provider
        .create_key(&spec("protected", KeyAlgorithm::Rsa3072))
        .await
        .unwrap()
        .key_id;
    // A window longer than the vault keeps deleted keys cannot be honoured.
    let error = provider
        .schedule_deletion(&key, DeletionTarget::WholeKey, 30 * DAY)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("7 days"), "{error}");
    let at = provider
        .schedule_deletion(&key, DeletionTarget::WholeKey, 7 * DAY)
        .await
        .unwrap();
    assert!(at > SystemTime::now() + 6 * DAY);
    assert_eq!(
        double.calls("PurgeDeletedKey"),
        0,
        "the provider never purges"
    );
    assert!(double.key(name_in(&key)).unwrap().deleted.is_some());
    provider
        .cancel_deletion(&key, DeletionTarget::WholeKey)
        .await
        .unwrap();
    provider
        .wrap_dek(&key, &Dek::generate(), &WrapContext::new())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_taken_by_another_owner_is_refused() {
    let double = Double::start().await;
    let provider = provider(&double);
    provider
        .create_key(&spec("shared", KeyAlgorithm::Rsa3072))
        .await
        .unwrap();
    let mut other = spec("shared", KeyAlgorithm::Rsa3072);
    other.owner = Some("someone-else".into());
    let error = provider.create_key(&other).await.unwrap_err();
    assert!(error.to_string().contains("another owner"), "{error}");
    let error = provider
        .create_key(&spec("shared", KeyAlgorithm::Rsa4096))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("algorithms cannot change"),
        "{error}"
    );
}

/// `az keyvault key rotate` (or a rotation policy) on a Keyward key makes
/// a version that copies the current one's tags, `keyward-version`
/// included. That copy must not take the number: envelopes wrapped under
/// it name the version Keyward made, and still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_outside_keyward_does_not_take_a_version_number() {
    let double = Double::start().await;
    let provider = provider(&double);
    let key = provider
        .create_key(&spec("rotated-outside", KeyAlgorithm::Rsa3072))
        .await
        .unwrap()
        .key_id;
    let name = name_in(&key).to_owned();
    let dek = Dek::generate();
    let context = WrapContext::new();
    let before = provider.wrap_dek(&key, &dek, &context).await.unwrap();

    // Key Vault's times have whole seconds; a copy made within the same
    // second as the original cannot be told from it (see `distinct`).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // A fresh provider (no cached version ids), as the webhook after a restart.
    provider.client().rotate_key(&name, None).await.unwrap();
    let stored = double.key(&name).unwrap();
    assert_eq!(stored.versions.len(), 2);
    assert_eq!(stored.versions[1].tags["keyward-version"], "1", "the copy");
    let fresh = crate::common::provider(&double);
    let info = fresh.describe_key(&key).await.unwrap();
    assert_eq!((info.primary_version, info.versions.len()), (1, 1));
    let after = fresh.wrap_dek(&key, &dek, &context).await.unwrap();
    assert_eq!(after.version, 1);
    for wrapped in [&before, &after] {
        let opened = fresh.unwrap_dek(wrapped, &context).await.unwrap();
        assert_eq!(opened.expose(), dek.expose());
    }
    // Keyward's own rotation goes on numbering after it.
    let rotated = fresh.rotate_key(&key).await.unwrap();
    assert_eq!(rotated.primary_version, 2);
}
