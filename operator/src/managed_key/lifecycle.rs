//! Drives a key from the state it is in (status) to `spec.state` through the
//! shared state machine, mapping each step onto provider calls.

use super::apply::{destruction_blocker, mark};
use super::outcome::Outcome;
use super::status::{sync_versions, timestamp, version_mut};
use crate::annotations::{self, CompromiseReport};
use crate::context::Context;
use crate::error::Result;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use keyward_core::provider::{DeletionTarget, KeyInfo, VersionState};
use keyward_crds::exposure::{EXPOSED_VERSIONS, Exposed};
use keyward_crds::{KeyState, ManagedKey, ManagedKeyStatus, Transition, transition};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

#[allow(clippy::too_many_arguments)]
pub async fn drive(
    key: &ManagedKey,
    status: &mut ManagedKeyStatus,
    info: KeyInfo,
    recorded_primary: u32,
    ctx: &Context,
    out: &mut Outcome,
    now: Timestamp,
) -> Result<KeyInfo> {
    let current = status.state.unwrap_or(KeyState::PreActivation);
    let desired = key.spec.state;
    let primary = info.primary_version;

    if current == KeyState::Destroyed && desired != KeyState::Destroyed {
        return cancel_destruction(status, info, desired, ctx, out, now).await;
    }
    let waiting = key
        .spec
        .activate_at
        .as_ref()
        .map(|t| t.0)
        .filter(|at| *at > now);
    if current == KeyState::PreActivation
        && matches!(desired, KeyState::Active | KeyState::PreActivation)
        && (waiting.is_some() || desired == KeyState::PreActivation)
    {
        set_enabled(&info, primary, false, ctx).await?;
        status.state = Some(KeyState::PreActivation);
        mark(status, primary, KeyState::PreActivation);
        out.deadlines.extend(waiting);
        return Ok(info);
    }
    let handled = key
        .annotations()
        .get(annotations::COMPROMISE_HANDLED)
        .map(String::as_str);
    if desired != KeyState::Compromised && handled.is_some() {
        // spec.state moved on: that report is acknowledged, and the next
        // Compromised is a new one.
        set_compromise_marker(key, None, ctx).await?;
    }
    let report = annotations::compromise_report(handled, recorded_primary, primary, |v| {
        status
            .version(v)
            .is_some_and(|s| s.state == KeyState::Compromised)
    });
    if desired == KeyState::Compromised
        && current == KeyState::Active
        && report == CompromiseReport::Handled
    {
        return Ok(info);
    }

    let step = match transition(current, desired) {
        Ok(step) => step,
        Err(illegal) => {
            out.degrade("IllegalTransition", illegal.to_string());
            return Ok(info);
        }
    };
    match step {
        Transition::Unchanged(state) => {
            // Repair the provider side after a restart between call and status.
            match state {
                KeyState::Active => set_enabled(&info, primary, true, ctx).await?,
                KeyState::Suspended => set_enabled(&info, primary, false, ctx).await?,
                _ => {}
            }
            Ok(info)
        }
        Transition::Activate | Transition::Resume => {
            set_enabled(&info, primary, true, ctx).await?;
            status.state = Some(KeyState::Active);
            if let Some(entry) = version_mut(&mut status.versions, primary) {
                entry.state = KeyState::Active;
                entry.activated_at.get_or_insert(Time(now));
            }
            let (reason, action) = match step {
                Transition::Activate => ("Activated", "key.activate"),
                _ => ("Resumed", "key.resume"),
            };
            out.event(
                false,
                reason,
                reason,
                format!("version {primary} is Active"),
            );
            out.audit(action, &[("version", primary.to_string())]);
            Ok(info)
        }
        Transition::Suspend => {
            set_enabled(&info, primary, false, ctx).await?;
            status.state = Some(KeyState::Suspended);
            mark(status, primary, KeyState::Suspended);
            out.event(
                true,
                "Suspended",
                "Suspend",
                format!("version {primary} is disabled at the provider: it neither encrypts nor decrypts"),
            );
            out.audit("key.suspend", &[("version", primary.to_string())]);
            Ok(info)
        }
        Transition::Deactivate => {
            status.state = Some(KeyState::Deactivated);
            if let Some(entry) = version_mut(&mut status.versions, primary) {
                entry.state = KeyState::Deactivated;
                entry.deactivated_at.get_or_insert(Time(now));
            }
            out.event(
                false,
                "Deactivated",
                "Deactivate",
                format!("version {primary} only decrypts from now on"),
            );
            out.audit("key.deactivate", &[("version", primary.to_string())]);
            Ok(info)
        }
        Transition::MarkCompromised { from } => {
            let CompromiseReport::Handle { version, record } = report else {
                return Ok(info);
            };
            // Recorded first: a restart finishes this report, never repeats it.
            if record {
                set_compromise_marker(key, Some(version), ctx).await?;
            }
            let exposed = exposed_by(key, out).select(&status.versions, version);
            compromise(status, info, version, &exposed, from, ctx, out, now).await
        }
        Transition::ScheduleDestruction { .. } => destroy(key, status, info, ctx, out).await,
    }
}

/// What the key's [`EXPOSED_VERSIONS`] annotation says; one that does not
/// parse exposes every version (retiring too many loses nothing: their
/// dependants are re-sealed first), with a warning.
fn exposed_by(key: &ManagedKey, out: &mut Outcome) -> Exposed {
    let value = key.annotations().get(EXPOSED_VERSIONS).map(String::as_str);
    Exposed::parse(value).unwrap_or_else(|why| {
        out.event(
            true,
            "InvalidExposedVersions",
            "EmergencyRotation",
            format!("{why}; every version that still exists is treated as exposed"),
        );
        Exposed::Every
    })
}

/// Every exposed version (`target`, the reported one, among them) is
/// marked Compromised: it serves no pod, takes no new value, and decrypts
/// only so its dependants can be re-sealed under fresh data keys, after
/// which `retention` schedules its destruction (the provider disables it
/// at once). A new version replaces the primary at once.
#[allow(clippy::too_many_arguments)]
async fn compromise(
    status: &mut ManagedKeyStatus,
    mut info: KeyInfo,
    target: u32,
    exposed: &BTreeSet<u32>,
    from: KeyState,
    ctx: &Context,
    out: &mut Outcome,
    now: Timestamp,
) -> Result<KeyInfo> {
    if from == KeyState::Suspended {
        set_enabled(&info, target, true, ctx).await?;
    }
    for version in exposed {
        if let Some(entry) = version_mut(&mut status.versions, *version) {
            entry.state = KeyState::Compromised;
            entry.deactivated_at.get_or_insert(Time(now));
        }
    }
    let numbers: Vec<String> = exposed.iter().map(u32::to_string).collect();
    if info.primary_version == target {
        ctx.metrics.provider_call();
        info = ctx.provider.rotate_key(&info.key_id).await?;
        ctx.metrics.rotated("compromised");
    }
    sync_versions(&mut status.versions, &info, KeyState::Active, now);
    status.primary_version = Some(info.primary_version);
    status.state = Some(KeyState::Active);
    let replacement = info.primary_version;
    out.event(
        true,
        "Compromised",
        "EmergencyRotation",
        format!(
            "version(s) {} marked Compromised (decrypt-only, to re-seal their SealedSecrets under fresh data keys; then scheduled for destruction); version {replacement} is the new primary. Set spec.state: Active to acknowledge",
            numbers.join(", ")
        ),
    );
    out.audit(
        "key.compromise",
        &[
            ("version", target.to_string()),
            ("exposed", numbers.join(",")),
            ("replacement", replacement.to_string()),
        ],
    );
    Ok(info)
}

async fn destroy(
    key: &ManagedKey,
    status: &mut ManagedKeyStatus,
    info: KeyInfo,
    ctx: &Context,
    out: &mut Outcome,
) -> Result<KeyInfo> {
    if let Some(message) = destruction_blocker(key, status) {
        out.degrade("DependantsExist", message);
        return Ok(info);
    }
    let window = Duration::from_secs(key.spec.deletion_window.as_secs());
    ctx.metrics.provider_call();
    let at = ctx
        .provider
        .schedule_deletion(&info.key_id, DeletionTarget::WholeKey, window)
        .await?;
    let at = Time(timestamp(at));
    let primary = info.primary_version;
    status.state = Some(KeyState::Destroyed);
    for version in status.versions.iter_mut() {
        if version.state != KeyState::Destroyed {
            version.destroy_scheduled_at = Some(at.clone());
        }
    }
    mark(status, primary, KeyState::Destroyed);
    out.event(
        true,
        "DestructionScheduled",
        "ScheduleDeletion",
        format!(
            "provider key {} will be destroyed at {}; move spec.state back before then to cancel",
            info.key_id, at.0
        ),
    );
    out.audit(
        "key.schedule-deletion",
        &[
            ("providerKeyId", info.key_id.clone()),
            ("at", at.0.to_string()),
        ],
    );
    Ok(info)
}

/// A destruction is cancelled by moving back to a state it was legal from,
/// while the deletion window is still open.
async fn cancel_destruction(
    status: &mut ManagedKeyStatus,
    info: KeyInfo,
    desired: KeyState,
    ctx: &Context,
    out: &mut Outcome,
    now: Timestamp,
) -> Result<KeyInfo> {
    let pending = info.deletion_at.map(timestamp).filter(|at| *at > now);
    if transition(desired, KeyState::Destroyed).is_err() || pending.is_none() {
        out.degrade(
            "IllegalTransition",
            format!(
                "a Destroyed key can only go back to Deactivated or Compromised, and only before its deletion window ends; asked for {desired}"
            ),
        );
        return Ok(info);
    }
    ctx.metrics.provider_call();
    ctx.provider
        .cancel_deletion(&info.key_id, DeletionTarget::WholeKey)
        .await?;
    status.state = Some(desired);
    for version in status.versions.iter_mut() {
        version.destroy_scheduled_at = None;
    }
    mark(status, info.primary_version, desired);
    out.event(
        false,
        "DestructionCancelled",
        "CancelDeletion",
        format!(
            "destruction of provider key {} cancelled; the key is {desired}",
            info.key_id
        ),
    );
    out.audit(
        "key.cancel-deletion",
        &[
            ("providerKeyId", info.key_id.clone()),
            ("state", desired.to_string()),
        ],
    );
    Ok(info)
}

/// New primary version; the previous one becomes Deactivated (decrypt-only).
pub async fn rotate(
    status: &mut ManagedKeyStatus,
    info: &KeyInfo,
    ctx: &Context,
    out: &mut Outcome,
    reason: &'static str,
    now: Timestamp,
) -> Result<KeyInfo> {
    let previous = info.primary_version;
    ctx.metrics.provider_call();
    let info = ctx.provider.rotate_key(&info.key_id).await?;
    ctx.metrics.rotated(reason);
    sync_versions(&mut status.versions, &info, KeyState::Active, now);
    status.primary_version = Some(info.primary_version);
    let primary = info.primary_version;
    out.event(
        false,
        "Rotated",
        "Rotate",
        format!("version {primary} is primary ({reason} rotation); version {previous} is Deactivated (decrypt-only)"),
    );
    out.audit(
        "key.rotate",
        &[
            ("from", previous.to_string()),
            ("to", primary.to_string()),
            ("reason", reason.to_owned()),
        ],
    );
    Ok(info)
}

/// Records (`Some`) or clears (`None`) the compromise report being handled.
async fn set_compromise_marker(
    key: &ManagedKey,
    version: Option<u32>,
    ctx: &Context,
) -> Result<()> {
    let namespace = key.namespace().unwrap_or_default();
    let api: Api<ManagedKey> = Api::namespaced(ctx.client.clone(), &namespace);
    let value = version.map(|v| v.to_string());
    let patch = json!({"metadata": {"annotations": {annotations::COMPROMISE_HANDLED: value}}});
    api.patch(
        &key.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Enables or disables a version only when the provider says otherwise.
async fn set_enabled(info: &KeyInfo, version: u32, enabled: bool, ctx: &Context) -> Result<()> {
    let current = info
        .versions
        .iter()
        .find(|v| v.version == version)
        .map(|v| v.state);
    let needed = match current {
        Some(VersionState::Enabled) => !enabled,
        Some(VersionState::Disabled) => enabled,
        _ => false,
    };
    if needed {
        ctx.metrics.provider_call();
        ctx.provider
            .set_version_enabled(&info.key_id, version, enabled)
            .await?;
    }
    Ok(())
}
