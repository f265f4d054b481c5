//! Deletion on Key Vault. A whole key is soft-deleted within the vault's
//! retention (recoverable, never purged by Keyward); one version cannot be
//! deleted there, so Keyward disables it and tags when it counts as
//! destroyed (Keyward-enforced, documented in docs/providers.md).

use crate::errors::{At, from_azure};
use crate::naming::DESTROY_AT_TAG;
use crate::provider::AzureKeyVaultProvider;
use keyward_core::provider::key_record::unix_seconds;
use keyward_core::provider::{DeletionTarget, ProviderError, Result, VersionState};
use std::time::{Duration, SystemTime};

/// How long a cancel waits for a recovered key to read again (Key Vault
/// recovers asynchronously).
const RECOVER_POLLS: u32 = 40;
const RECOVER_POLL_EVERY: Duration = Duration::from_millis(250);

impl AzureKeyVaultProvider {
    pub(crate) async fn schedule(
        &self,
        key_id: &str,
        target: DeletionTarget,
        window: Duration,
    ) -> Result<SystemTime> {
        let name = self.key_name(key_id)?;
        let number = match target {
            DeletionTarget::WholeKey => return self.delete_whole_key(&name, window).await,
            DeletionTarget::Version(number) => number,
        };
        // Key Vault has no per-version deletion: Keyward disables the
        // version and records when it counts as destroyed.
        let versions = self.versions(&name).await?;
        let version = versions.get(number).ok_or(ProviderError::UnknownVersion {
            key: name.clone(),
            version: number,
        })?;
        if let Some(at) = version.destroy_at() {
            return Ok(at);
        }
        if number == versions.primary().number {
            return Err(ProviderError::InvalidRequest(format!(
                "version {number} is the primary version of `{name}`; rotate the key first, or delete the whole key"
            )));
        }
        let at = SystemTime::now() + window;
        let mut tags = version.tags.clone();
        tags.insert(DESTROY_AT_TAG.into(), unix_seconds(at).to_string());
        self.update_version(
            &name,
            version,
            Some(false),
            Some(tags),
            At::version(&name, number),
        )
        .await?;
        tracing::info!(key = %name, version = number, "scheduled destruction (Keyward-enforced: disabled and tagged)");
        Ok(keyward_core::provider::key_record::system_time(
            unix_seconds(at),
        ))
    }

    pub(crate) async fn cancel(&self, key_id: &str, target: DeletionTarget) -> Result<()> {
        let name = self.key_name(key_id)?;
        let number = match target {
            DeletionTarget::WholeKey => return self.recover(&name).await,
            DeletionTarget::Version(number) => number,
        };
        let versions = self.versions(&name).await?;
        let version = versions.get(number).ok_or(ProviderError::UnknownVersion {
            key: name.clone(),
            version: number,
        })?;
        match version.state(SystemTime::now()) {
            VersionState::Destroyed => Err(ProviderError::UnknownVersion {
                key: name,
                version: number,
            }),
            VersionState::PendingDeletion => {
                let mut tags = version.tags.clone();
                tags.remove(DESTROY_AT_TAG);
                // The version stays disabled until enabled (as AWS KMS and
                // the key records do).
                self.update_version(&name, version, None, Some(tags), At::version(&name, number))
                    .await?;
                tracing::info!(key = %name, version = number, "cancelled destruction; the version stays disabled until enabled");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn delete_whole_key(&self, name: &str, window: Duration) -> Result<SystemTime> {
        let versions = match self.versions(name).await {
            Ok(versions) => versions,
            Err(ProviderError::UnknownKey(_)) => {
                // Already soft-deleted: the same answer again.
                let info = self.info(name).await?;
                return info
                    .deletion_at
                    .ok_or_else(|| ProviderError::UnknownKey(name.to_owned()));
            }
            Err(other) => return Err(other),
        };
        let retention_days = versions.primary().recoverable_days.unwrap_or(90).max(0) as u64;
        let retention = Duration::from_secs(retention_days * 86_400);
        // The vault fixes the window; destroying sooner than asked would be
        // wrong, later is only more cautious.
        if window > retention + Duration::from_secs(60) {
            return Err(ProviderError::InvalidRequest(format!(
                "the vault keeps deleted keys {retention_days} days (its soft-delete retention); a {}-day window for `{name}` cannot be honoured",
                window.as_secs() / 86_400
            )));
        }
        let deleted = self
            .client()
            .delete_key(name, None)
            .await
            .map_err(|e| from_azure(&e, At::key(name)))?
            .into_model()
            .map_err(|e| from_azure(&e, At::key(name)))?;
        tracing::info!(key = %name, "deleted Key Vault key (soft delete; recoverable until purged)");
        Ok(deleted
            .scheduled_purge_date
            .map(SystemTime::from)
            .unwrap_or_else(|| SystemTime::now() + retention))
    }

    async fn recover(&self, name: &str) -> Result<()> {
        if self.deleted(name).await?.is_none() {
            // Nothing to recover: a live key (or a retried cancel).
            self.versions(name).await?;
            return Ok(());
        }
        self.client()
            .recover_deleted_key(name, None)
            .await
            .map_err(|e| from_azure(&e, At::key(name)))?;
        // Key Vault recovers asynchronously: wait until the key reads again.
        for _ in 0..RECOVER_POLLS {
            match self.versions(name).await {
                Ok(_) => {
                    tracing::info!(key = %name, "recovered soft-deleted Key Vault key");
                    return Ok(());
                }
                Err(ProviderError::UnknownKey(_)) => tokio::time::sleep(RECOVER_POLL_EVERY).await,
                Err(other) => return Err(other),
            }
        }
        Err(ProviderError::Unavailable(format!(
            "key `{name}` was recovered but is not readable yet; retry"
        )))
    }
}
