//! AWS *native* rotation: KMS replaces the key material of one KMS key on a
//! schedule (`EnableKeyRotation` with `RotationPeriodInDays`) or on demand
//! (`RotateKeyOnDemand`), keeps every old material for decryption, and picks
//! the right one from the ciphertext. Nothing changes on the Keyward side:
//! the key keeps its version number, wrapped DEKs keep working, and old
//! material cannot be disabled or destroyed on its own. The operator uses
//! this when a `KeyRotationPolicy` asks for native rotation; managed rotation
//! (a new KMS key per version) is
//! [`keyward_core::provider::KeyProvider::rotate_key`].
//!
//! Only symmetric keys rotate natively; AWS refuses RSA keys.

use crate::errors::{At, from_sdk};
use crate::keys::KmsVersion;
use crate::naming::{self, NATIVE_ROTATION_DAYS};
use crate::provider::AwsKmsProvider;
use keyward_core::provider::{
    KeyAlgorithm, NativeRotation as Reported, NativeRotationEffect, NativeSchedule, ProviderError,
    Result,
};
use std::time::{Duration, SystemTime};

const DAY: u64 = 24 * 3600;

/// What AWS reports about native rotation of a key's primary version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeRotation {
    pub enabled: bool,
    pub period_days: Option<u32>,
    pub next_rotation: Option<SystemTime>,
}

impl AwsKmsProvider {
    /// Turns on scheduled native rotation of the primary version's KMS key.
    pub async fn enable_native_rotation(&self, key: &str, period_days: u32) -> Result<()> {
        if !NATIVE_ROTATION_DAYS.contains(&period_days) {
            return Err(ProviderError::InvalidRequest(format!(
                "AWS KMS rotates every 90 to 2560 days; {period_days} is outside that range"
            )));
        }
        let (key_id, kms_key_id) = self.symmetric_primary(key).await?;
        self.client
            .enable_key_rotation()
            .key_id(kms_key_id)
            .rotation_period_in_days(period_days as i32)
            .send()
            .await
            .map_err(|e| from_sdk(e, At::key(&key_id)))?;
        tracing::info!(key = %key_id, period_days, "enabled native rotation");
        Ok(())
    }

    pub async fn disable_native_rotation(&self, key: &str) -> Result<()> {
        let (key_id, kms_key_id) = self.symmetric_primary(key).await?;
        self.client
            .disable_key_rotation()
            .key_id(kms_key_id)
            .send()
            .await
            .map_err(|e| from_sdk(e, At::key(&key_id)))?;
        Ok(())
    }

    /// Rotates the primary version's key material now (AWS allows a few
    /// on-demand rotations per key in its lifetime; see the AWS quotas).
    pub async fn rotate_native_now(&self, key: &str) -> Result<()> {
        let (key_id, kms_key_id) = self.symmetric_primary(key).await?;
        self.client
            .rotate_key_on_demand()
            .key_id(kms_key_id)
            .send()
            .await
            .map_err(|e| from_sdk(e, At::key(&key_id)))?;
        tracing::info!(key = %key_id, "rotated key material on demand");
        Ok(())
    }

    pub async fn native_rotation(&self, key: &str) -> Result<NativeRotation> {
        let (key_id, kms_key_id) = self.symmetric_primary(key).await?;
        let output = self
            .client
            .get_key_rotation_status()
            .key_id(kms_key_id)
            .send()
            .await
            .map_err(|e| from_sdk(e, At::key(&key_id)))?;
        Ok(NativeRotation {
            enabled: output.key_rotation_enabled(),
            period_days: output
                .rotation_period_in_days()
                .and_then(|d| u32::try_from(d).ok()),
            next_rotation: output
                .next_rotation_date()
                .and_then(|d| SystemTime::try_from(*d).ok()),
        })
    }

    /// [`keyward_core::provider::KeyProvider::native_rotation`]: `None`
    /// when rotation is off.
    pub(crate) async fn native_rotation_status(&self, key: &str) -> Result<Option<Reported>> {
        let status = self.native_rotation(key).await?;
        Ok(status.enabled.then(|| Reported {
            period: status
                .period_days
                .map(|days| Duration::from_secs(u64::from(days) * DAY)),
            next_rotation: status.next_rotation,
            shows_as: NativeRotationEffect::SameVersion,
        }))
    }

    /// [`keyward_core::provider::KeyProvider::set_native_rotation`]. AWS
    /// counts the period from now, so `schedule.first` is not used.
    pub(crate) async fn apply_native_schedule(
        &self,
        key: &str,
        schedule: Option<NativeSchedule>,
    ) -> Result<()> {
        let Some(schedule) = schedule else {
            return self.disable_native_rotation(key).await;
        };
        let seconds = schedule.period.as_secs();
        if !seconds.is_multiple_of(DAY) {
            return Err(ProviderError::InvalidRequest(format!(
                "AWS KMS rotates natively in whole days; {}s is not, so use a period in days (90d to 2560d) or strategy Managed",
                seconds
            )));
        }
        let days = u32::try_from(seconds / DAY).unwrap_or(u32::MAX);
        self.enable_native_rotation(key, days).await?;
        self.stop_previous_native_rotation(key).await;
        Ok(())
    }

    /// After a managed rotation the schedule moves to the new primary's KMS
    /// key; the previous version's key only decrypts now, and each material
    /// AWS would keep adding to it is billed. Best effort: that key may be
    /// disabled or gone, and nothing depends on its schedule.
    async fn stop_previous_native_rotation(&self, key: &str) {
        let Ok((key_id, primary)) = self.symmetric_primary_version(key).await else {
            return;
        };
        let Some(previous) = primary.checked_sub(1).filter(|v| *v > 0) else {
            return;
        };
        let alias = naming::version_alias(&key_id, previous);
        let Ok(metadata) = self.describe_kms(&alias, At::key(&key_id)).await else {
            return;
        };
        let stopped = self
            .client
            .disable_key_rotation()
            .key_id(metadata.key_id())
            .send()
            .await;
        if let Err(error) = stopped {
            tracing::debug!(key = %key_id, previous, error = %from_sdk(error, At::key(&key_id)), "previous version keeps its native rotation");
        }
    }

    async fn symmetric_primary(&self, key: &str) -> Result<(String, String)> {
        let (key_id, primary) = self.symmetric_primary_key(key).await?;
        Ok((key_id, primary.kms_key_id))
    }

    async fn symmetric_primary_version(&self, key: &str) -> Result<(String, u32)> {
        let (key_id, primary) = self.symmetric_primary_key(key).await?;
        Ok((key_id, primary.version))
    }

    async fn symmetric_primary_key(&self, key: &str) -> Result<(String, KmsVersion)> {
        let key_id = self.key_id_for(key).await?;
        let resolved = self.resolve(&key_id, None).await?;
        if resolved.algorithm != KeyAlgorithm::Aes256 {
            return Err(ProviderError::WrongKeyType {
                key: key_id,
                expected: "a symmetric key (AWS rotates only those natively)",
                actual: resolved.algorithm.describe(),
            });
        }
        Ok((key_id, resolved.primary))
    }
}
