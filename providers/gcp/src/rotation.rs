//! Cloud KMS native (automatic) rotation: `rotationPeriod` and
//! `nextRotationTime` on a symmetric crypto key. Cloud KMS then creates a
//! new primary version on schedule by itself; Keyward sees it on the next
//! `describe_key`. Asymmetric keys cannot rotate automatically.

use crate::errors::At;
use crate::keys::{is_symmetric, to_system_time};
use crate::provider::GcpKmsProvider;
use crate::retry::Idempotent;
use google_cloud_kms_v1::model::CryptoKey;
use google_cloud_wkt::FieldMask;
use keyward_core::provider::{
    KeyProvider, NativeRotation as Reported, NativeRotationEffect, NativeSchedule, ProviderError,
    Result,
};
use std::time::{Duration, SystemTime};

/// Cloud KMS limits on `rotationPeriod`.
pub const MIN_ROTATION_PERIOD: Duration = Duration::from_secs(24 * 3600);
pub const MAX_ROTATION_PERIOD: Duration = Duration::from_secs(876_000 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeRotation {
    pub period: Duration,
    pub next_rotation: SystemTime,
}

impl GcpKmsProvider {
    /// Turns automatic rotation on (`Some`) or off (`None`).
    pub async fn set_native_rotation(
        &self,
        key_id: &str,
        rotation: Option<NativeRotation>,
    ) -> Result<()> {
        let name = self.crypto_key_name(key_id)?;
        let algorithm = self.algorithm(&name).await?;
        if !is_symmetric(algorithm) {
            return Err(ProviderError::WrongKeyType {
                key: name,
                expected: "a symmetric key (Cloud KMS rotates only those automatically)",
                actual: algorithm.describe(),
            });
        }
        let mut update = CryptoKey::new().set_name(&name);
        if let Some(rotation) = rotation {
            if !(MIN_ROTATION_PERIOD..=MAX_ROTATION_PERIOD).contains(&rotation.period) {
                return Err(ProviderError::InvalidRequest(format!(
                    "a rotation period must be between 24 hours and 100 years, got {:?}",
                    rotation.period
                )));
            }
            let next =
                google_cloud_wkt::Timestamp::try_from(rotation.next_rotation).map_err(|e| {
                    ProviderError::InvalidRequest(format!("invalid next rotation time: {e}"))
                })?;
            update = update
                .set_rotation_period(google_cloud_wkt::Duration::clamp(
                    rotation.period.as_secs() as i64,
                    0,
                ))
                .set_next_rotation_time(next);
        }
        self.call("UpdateCryptoKey", Idempotent::Yes, At::key(&name), || {
            self.client
                .update_crypto_key()
                .set_crypto_key(update.clone())
                .set_update_mask(
                    FieldMask::default().set_paths(["rotation_period", "next_rotation_time"]),
                )
                .send()
        })
        .await?;
        tracing::info!(key = %name, ?rotation, "set native rotation");
        Ok(())
    }

    /// The key's automatic rotation schedule, if any.
    pub async fn native_rotation(&self, key_id: &str) -> Result<Option<NativeRotation>> {
        let name = self.crypto_key_name(key_id)?;
        let key = self.get_key(&name).await?;
        let period = key
            .rotation_period()
            .and_then(|d| u64::try_from(d.seconds()).ok())
            .map(Duration::from_secs);
        let next = to_system_time(key.next_rotation_time.as_ref());
        Ok(match (period, next) {
            (Some(period), Some(next_rotation)) => Some(NativeRotation {
                period,
                next_rotation,
            }),
            _ => None,
        })
    }

    /// [`KeyProvider::native_rotation`] in the provider-neutral shape.
    pub(crate) async fn native_rotation_status(&self, key_id: &str) -> Result<Option<Reported>> {
        Ok(self
            .native_rotation(key_id)
            .await?
            .map(|rotation| Reported {
                period: Some(rotation.period),
                next_rotation: Some(rotation.next_rotation),
                shows_as: NativeRotationEffect::NewVersion,
            }))
    }

    /// [`KeyProvider::set_native_rotation`]: `first` becomes `nextRotationTime`.
    pub(crate) async fn apply_native_schedule(
        &self,
        key_id: &str,
        schedule: Option<NativeSchedule>,
    ) -> Result<()> {
        let rotation = schedule.map(|s| NativeRotation {
            period: s.period,
            next_rotation: s.first,
        });
        self.set_native_rotation(key_id, rotation).await
    }

    /// Same as [`KeyProvider::describe_key`], for callers holding the
    /// concrete type.
    pub async fn describe(&self, key_id: &str) -> Result<keyward_core::provider::KeyInfo> {
        self.describe_key(key_id).await
    }
}
