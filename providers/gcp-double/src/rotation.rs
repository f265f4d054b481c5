//! Automatic rotation as Cloud KMS does it for symmetric keys: once a
//! key's `nextRotationTime` has passed, the service creates a new version,
//! makes it primary and moves `nextRotationTime` on by `rotationPeriod`.
//! Versions created by hand do not move the schedule.
//!
//! The double has no clock of its own: schedules are evaluated lazily,
//! before each request is answered and in [`crate::Double::key`]. Several
//! periods missed between two requests make one rotation (the real service,
//! always running, would have made one per period), and the next time
//! lands on the first period boundary after now.

use crate::kms::{self, Key, Kms, Shared};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a rotation hook refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationHookError {
    /// The double holds no crypto key of that name.
    UnknownKey(String),
    /// The key has no `rotationPeriod`/`nextRotationTime`: Cloud KMS would
    /// never rotate it by itself.
    NoSchedule(String),
}

impl std::fmt::Display for RotationHookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RotationHookError::UnknownKey(name) => {
                write!(f, "the Cloud KMS double holds no crypto key {name}")
            }
            RotationHookError::NoSchedule(name) => write!(
                f,
                "{name} has no rotationPeriod/nextRotationTime; set them first (GcpKmsProvider::set_native_rotation)"
            ),
        }
    }
}

impl std::error::Error for RotationHookError {}

fn secs(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}

fn schedule(key: &Key) -> Option<(i64, i64)> {
    key.rotation_period.zip(key.next_rotation)
}

/// Rotates every key whose `nextRotationTime` is at or before `now`.
pub(crate) fn rotate_due(shared: &Shared, kms: &mut Kms, now: SystemTime) {
    let now = secs(now);
    let mut due: Vec<String> = kms
        .keys
        .iter()
        .filter(|(_, key)| schedule(key).is_some_and(|(_, next)| next <= now))
        .map(|(name, _)| name.clone())
        .collect();
    due.sort();
    for name in due {
        rotate(shared, kms, &name, now);
    }
}

/// One scheduled rotation of a due key: new primary version, schedule
/// moved to the first period boundary after `now`.
fn rotate(shared: &Shared, kms: &mut Kms, name: &str, now: i64) -> Option<u32> {
    // Only ENCRYPT_DECRYPT keys can have a schedule (UpdateCryptoKey
    // refuses the others), so the new version is ENABLED at once.
    let number = kms::add_version(shared, kms, name).ok()?;
    let key = kms.keys.get_mut(name)?;
    key.primary = Some(number);
    if let Some((period, next)) = schedule(key) {
        let periods = (now - next).div_euclid(period.max(1)) + 1;
        key.next_rotation = Some(next + periods * period.max(1));
    }
    Some(number)
}

/// [`crate::Double::fire_scheduled_rotation`].
pub(crate) fn fire_now(
    shared: &Shared,
    kms: &mut Kms,
    name: &str,
    now: SystemTime,
) -> Result<u32, RotationHookError> {
    set_next(kms, name, now)?;
    rotate(shared, kms, name, secs(now)).ok_or_else(|| RotationHookError::UnknownKey(name.into()))
}

/// [`crate::Double::set_next_rotation_time`].
pub(crate) fn set_next(kms: &mut Kms, name: &str, at: SystemTime) -> Result<(), RotationHookError> {
    let key = kms
        .keys
        .get_mut(name)
        .ok_or_else(|| RotationHookError::UnknownKey(name.into()))?;
    if schedule(key).is_none() {
        return Err(RotationHookError::NoSchedule(name.into()));
    }
    key.next_rotation = Some(secs(at));
    Ok(())
}
