//! `strategy: Native`: the provider rotates the key on its own schedule
//! (AWS KMS automatic key rotation, Cloud KMS `rotationPeriod`) and the
//! operator keeps that schedule in line with the policy and reports it.
//!
//! The two providers differ in what a rotation is. Cloud KMS makes a new
//! primary version, which the operator adopts like one it made itself
//! (`sync_versions`) and re-wraps dependants onto. AWS KMS swaps material
//! inside the same KMS key: Keyward's version, and every envelope, stay as
//! they are, and old material can neither be disabled nor destroyed on its
//! own. So manual and emergency (Compromised) rotations always make a new
//! Keyward version, which a compromise needs to retire the exposed one.

use super::lifecycle;
use super::outcome::Outcome;
use super::status::timestamp;
use crate::context::Context;
use crate::error::Result;
use crate::schedule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use keyward_core::ProviderError;
use keyward_core::provider::{KeyInfo, NativeRotation, NativeRotationEffect, NativeSchedule};
use keyward_crds::{EffectivePolicy, ManagedKey, ManagedKeyStatus, NativeRotationStatus};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use std::time::{Duration, SystemTime};

/// A first native rotation closer than this is treated as due now: the
/// operator rotates itself rather than race the provider.
const FIRST_ROTATION_MARGIN: Duration = Duration::from_secs(300);

/// After the provider's rotation time, look again this much later to
/// adopt the new version (Cloud KMS) and refresh the next time.
const ADOPT_AFTER: Duration = Duration::from_secs(120);

/// Degraded reason when the provider cannot rotate this key natively.
pub const UNAVAILABLE: &str = "NativeRotationUnavailable";

/// What the caller does about the schedule after [`keep`].
pub enum Native {
    /// The provider rotates; the operator only checks back.
    Provider,
    /// Native rotation is not possible: rotate on Keyward's own schedule.
    FallBack,
}

/// Turns the provider's rotation on for the primary version with the
/// policy's period (rotating first if the key is already due), or reports
/// why it cannot and leaves rotation to the operator.
#[allow(clippy::too_many_arguments)]
pub async fn keep(
    key: &ManagedKey,
    policy: &EffectivePolicy,
    status: &mut ManagedKeyStatus,
    mut info: KeyInfo,
    ctx: &Context,
    out: &mut Outcome,
    now: Timestamp,
) -> Result<(KeyInfo, Native)> {
    let on_primary = status
        .native_rotation
        .as_ref()
        .is_some_and(|native| native.version == info.primary_version);
    if !on_primary && let Some(created) = primary_created(&info) {
        let first = schedule::next_rotation(created, policy.rotation_period);
        if schedule::is_due(first, later(now, FIRST_ROTATION_MARGIN)) {
            // Due before the provider could rotate: do it now, then hand the
            // new version's schedule to the provider.
            info = lifecycle::rotate(status, &info, ctx, out, "scheduled", now).await?;
        }
    }
    let period = Duration::from(policy.rotation_period);
    let reported = match ctx.provider.native_rotation(&info.key_id).await {
        Ok(reported) => reported,
        Err(refused) => return fall_back(key, status, info, refused, ctx, out).await,
    };
    let wanted_first = primary_created(&info)
        .map(|created| schedule::next_rotation(created, policy.rotation_period))
        .unwrap_or_else(|| later(now, period));
    let recorded = status.native_rotation.as_ref();
    let in_line = reported.is_some_and(|r| r.period.is_none_or(|p| p == period))
        && recorded.is_some_and(|r| {
            r.version == info.primary_version && Duration::from(r.period) == period
        });
    let reported = if in_line {
        reported
    } else {
        let asked = NativeSchedule {
            period,
            first: SystemTime::from(wanted_first),
        };
        if let Err(refused) = ctx
            .provider
            .set_native_rotation(&info.key_id, Some(asked))
            .await
        {
            return fall_back(key, status, info, refused, ctx, out).await;
        }
        out.event(
            false,
            "NativeRotationOn",
            "EnableNativeRotation",
            format!(
                "the provider rotates version {} every {}",
                info.primary_version, policy.rotation_period
            ),
        );
        out.audit(
            "key.native-rotation",
            &[
                ("version", info.primary_version.to_string()),
                ("period", policy.rotation_period.to_string()),
            ],
        );
        ctx.provider.native_rotation(&info.key_id).await?
    };
    let next = reported.and_then(|r| r.next_rotation).map(timestamp);
    status.native_rotation = Some(NativeRotationStatus {
        version: info.primary_version,
        period: policy.rotation_period,
        next_rotation_at: next.map(Time),
        effect: effect(reported),
    });
    status.next_rotation_at = next.map(Time);
    if let Some(next) = next {
        out.deadlines.push(later(next, ADOPT_AFTER));
    }
    Ok((info, Native::Provider))
}

/// Turns the provider's rotation off when the key no longer wants it (the
/// policy moved to Managed, or the key left Active: a suspended or
/// deactivated Cloud KMS key must not grow new primary versions).
pub async fn stop(
    key: &ManagedKey,
    status: &mut ManagedKeyStatus,
    key_id: &str,
    ctx: &Context,
    out: &mut Outcome,
) -> Result<()> {
    if status.native_rotation.is_none() {
        return Ok(());
    }
    match ctx.provider.set_native_rotation(key_id, None).await {
        Ok(()) | Err(ProviderError::UnknownKey(_)) => {}
        Err(e) => return Err(e.into()),
    }
    clear(key, status, ctx).await?;
    out.event(
        false,
        "NativeRotationOff",
        "DisableNativeRotation",
        "the provider no longer rotates this key on its own".into(),
    );
    out.audit("key.native-rotation", &[("period", "off".into())]);
    Ok(())
}

/// Says so when the provider made a new primary version by itself since
/// the last reconcile (Cloud KMS automatic rotation).
pub fn note_provider_rotation(
    status: &ManagedKeyStatus,
    recorded_primary: u32,
    info: &KeyInfo,
    out: &mut Outcome,
) {
    let native = status
        .native_rotation
        .as_ref()
        .is_some_and(|n| n.effect == keyward_crds::NativeRotationEffect::NewVersion);
    if !native || info.primary_version <= recorded_primary {
        return;
    }
    let primary = info.primary_version;
    out.event(
        false,
        "RotatedByProvider",
        "Rotate",
        format!(
            "the provider made version {primary} primary on its schedule; version {recorded_primary} is Deactivated (decrypt-only)"
        ),
    );
    out.audit(
        "key.rotate",
        &[
            ("from", recorded_primary.to_string()),
            ("to", primary.to_string()),
            ("reason", "native".into()),
        ],
    );
}

async fn fall_back(
    key: &ManagedKey,
    status: &mut ManagedKeyStatus,
    info: KeyInfo,
    refused: ProviderError,
    ctx: &Context,
    out: &mut Outcome,
) -> Result<(KeyInfo, Native)> {
    if refused.is_retryable() {
        return Err(refused.into());
    }
    clear(key, status, ctx).await?;
    out.degrade(
        UNAVAILABLE,
        format!("{refused}; Keyward rotates this key on the policy's schedule meanwhile"),
    );
    Ok((info, Native::FallBack))
}

/// Drops `status.nativeRotation` with a merge patch before the status is
/// applied: a server-side apply that merely omits an object field leaves
/// `null` behind on Kubernetes 1.20, which the schema then refuses.
async fn clear(key: &ManagedKey, status: &mut ManagedKeyStatus, ctx: &Context) -> Result<()> {
    if status.native_rotation.take().is_none() {
        return Ok(());
    }
    let namespace = key.namespace().unwrap_or_default();
    let api: Api<ManagedKey> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({"status": {"nativeRotation": null}});
    api.patch_status(
        &key.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

fn effect(reported: Option<NativeRotation>) -> keyward_crds::NativeRotationEffect {
    match reported.map(|r| r.shows_as) {
        Some(NativeRotationEffect::SameVersion) => keyward_crds::NativeRotationEffect::SameVersion,
        _ => keyward_crds::NativeRotationEffect::NewVersion,
    }
}

fn primary_created(info: &KeyInfo) -> Option<Timestamp> {
    info.versions
        .iter()
        .find(|v| v.version == info.primary_version)
        .map(|v| timestamp(v.created_at))
}

fn later(at: Timestamp, by: Duration) -> Timestamp {
    let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
    at.checked_add(SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::MAX)
}
