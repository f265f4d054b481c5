//! Cloud KMS automatic rotation as the provider sees it: a schedule set
//! with `set_native_rotation`, fired by the double's test hook (a real
//! period is at least 24 h), then read back through `describe_key` and
//! `native_rotation`.
mod common;

use keyward_core::Dek;
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec, VersionState, WrapContext};
use keyward_gcp_double::{Double, RotationHookError};
use keyward_provider_gcp::NativeRotation;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: Duration = Duration::from_secs(86_400);

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

/// Whole seconds: what Cloud KMS keeps of a timestamp set through the API.
fn whole_seconds(at: SystemTime) -> SystemTime {
    let secs = at.duration_since(UNIX_EPOCH).unwrap().as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn assert_near(actual: SystemTime, expected: SystemTime, what: &str) {
    let gap = match actual.duration_since(expected) {
        Ok(later) => later,
        Err(earlier) => earlier.duration(),
    };
    assert!(
        gap <= Duration::from_secs(5),
        "{what}: {actual:?} is {gap:?} away from {expected:?}"
    );
}

#[tokio::test]
async fn a_fired_schedule_makes_a_new_primary_and_moves_next_rotation_by_the_period() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let key = provider.create_key(&spec("auto")).await.unwrap();
    let dek = Dek::generate();
    let before = provider
        .wrap_dek(&key.key_id, &dek, &context())
        .await
        .unwrap();
    assert_eq!(before.version, 1);

    let schedule = NativeRotation {
        period: 7 * DAY,
        next_rotation: whole_seconds(SystemTime::now() + 3 * DAY),
    };
    provider
        .set_native_rotation(&key.key_id, Some(schedule))
        .await
        .unwrap();
    // Nothing is due yet: no request rotates the key.
    assert_eq!(
        provider
            .describe_key(&key.key_id)
            .await
            .unwrap()
            .primary_version,
        1
    );

    let fired_at = SystemTime::now();
    assert_eq!(kms.fire_scheduled_rotation(&key.key_id), Ok(2));

    let info = provider.describe_key(&key.key_id).await.unwrap();
    assert_eq!(info.primary_version, 2, "{info:?}");
    assert_eq!(info.versions.len(), 2);
    assert!(
        info.versions
            .iter()
            .all(|v| v.state == VersionState::Enabled),
        "{info:?}"
    );
    let now = provider
        .native_rotation(&key.key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.period, schedule.period, "the period never changes");
    assert_near(
        now.next_rotation,
        fired_at + schedule.period,
        "next rotation",
    );

    // New data keys go to the new primary; the old version still opens.
    let after = provider
        .wrap_dek(&key.key_id, &dek, &context())
        .await
        .unwrap();
    assert_eq!(after.version, 2);
    for wrapped in [&before, &after] {
        let opened = provider.unwrap_dek(wrapped, &context()).await.unwrap();
        assert_eq!(opened.expose(), dek.expose());
    }
    let stored = kms.key(&key.key_id).unwrap();
    assert_eq!((stored.primary, stored.versions), (Some(2), 2));
}

#[tokio::test]
async fn a_passed_next_rotation_time_rotates_once_on_the_next_request() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let key = provider.create_key(&spec("overdue")).await.unwrap();
    let period = 30 * DAY;
    provider
        .set_native_rotation(
            &key.key_id,
            Some(NativeRotation {
                period,
                next_rotation: whole_seconds(SystemTime::now() + DAY),
            }),
        )
        .await
        .unwrap();
    // Three periods and a bit ago: the service would have rotated by now.
    let missed_since = whole_seconds(SystemTime::now() - 3 * period - DAY);
    kms.set_next_rotation_time(&key.key_id, missed_since)
        .unwrap();

    let info = provider.describe_key(&key.key_id).await.unwrap();
    assert_eq!(
        info.primary_version, 2,
        "one rotation for the missed periods"
    );
    assert_eq!(info.versions.len(), 2);
    let next = provider
        .native_rotation(&key.key_id)
        .await
        .unwrap()
        .unwrap()
        .next_rotation;
    assert_eq!(
        next,
        missed_since + 4 * period,
        "the next time is the first period boundary after now"
    );
    assert!(next > SystemTime::now());
    // Evaluated again on every request: nothing more is due.
    assert_eq!(
        provider
            .describe_key(&key.key_id)
            .await
            .unwrap()
            .versions
            .len(),
        2
    );
}

#[tokio::test]
async fn manual_rotation_keeps_the_schedule_and_unscheduled_keys_never_rotate() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let key = provider.create_key(&spec("manual")).await.unwrap();

    assert_eq!(
        kms.fire_scheduled_rotation(&key.key_id),
        Err(RotationHookError::NoSchedule(key.key_id.clone()))
    );
    let unknown = format!("{}/cryptoKeys/nope", keyward_gcp_double::KEY_RING);
    assert_eq!(
        kms.fire_scheduled_rotation(&unknown),
        Err(RotationHookError::UnknownKey(unknown.clone()))
    );
    assert!(
        kms.set_next_rotation_time(&key.key_id, SystemTime::now())
            .is_err()
    );

    let schedule = NativeRotation {
        period: 90 * DAY,
        next_rotation: whole_seconds(SystemTime::now() + 10 * DAY),
    };
    provider
        .set_native_rotation(&key.key_id, Some(schedule))
        .await
        .unwrap();
    // Keyward's own rotation (CreateCryptoKeyVersion + primary update)
    // does not move Cloud KMS's schedule.
    assert_eq!(
        provider
            .rotate_key(&key.key_id)
            .await
            .unwrap()
            .primary_version,
        2
    );
    assert_eq!(
        provider.native_rotation(&key.key_id).await.unwrap(),
        Some(schedule)
    );

    // Cleared: the hook refuses, and an overdue time cannot be left behind.
    provider
        .set_native_rotation(&key.key_id, None)
        .await
        .unwrap();
    assert!(matches!(
        kms.fire_scheduled_rotation(&key.key_id),
        Err(RotationHookError::NoSchedule(_))
    ));
    assert_eq!(
        provider
            .describe_key(&key.key_id)
            .await
            .unwrap()
            .versions
            .len(),
        2
    );
}
