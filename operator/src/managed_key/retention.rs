//! Old versions at the end of their life: a Deactivated version whose
//! decrypt retention has passed, or a Compromised one whose dependants have
//! all been re-wrapped, is scheduled for destruction at the provider after
//! the key's deletion window. Never while a SealedSecret still needs it,
//! unless `keyward.io/force-destroy: "true"`.

use super::outcome::Outcome;
use super::status::{timestamp, version_mut};
use crate::context::Context;
use crate::error::Result;
use crate::schedule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use keyward_core::ProviderError;
use keyward_core::provider::DeletionTarget;
use keyward_crds::{HumanDuration, KeyState, KeyVersionStatus};
use std::collections::BTreeMap;
use std::time::Duration;

/// What to do about retired versions now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Retirement {
    /// Versions to schedule for destruction now.
    pub due: Vec<u32>,
    /// Versions past retention that dependants still hold.
    pub held: Vec<(u32, u32)>,
    /// The earliest retention end still ahead.
    pub next: Option<Timestamp>,
}

pub fn retirement(
    versions: &[KeyVersionStatus],
    primary: u32,
    retention: HumanDuration,
    forced: bool,
    now: Timestamp,
) -> Retirement {
    let mut out = Retirement::default();
    for v in versions {
        if v.version == primary || v.destroy_scheduled_at.is_some() {
            continue;
        }
        let ends = match v.state {
            // Decrypt-only for re-wrapping: gone as soon as nothing needs it.
            KeyState::Compromised => now,
            KeyState::Deactivated => match &v.deactivated_at {
                Some(at) => schedule::next_rotation(at.0, retention),
                None => continue,
            },
            _ => continue,
        };
        if ends > now {
            out.next = Some(out.next.map_or(ends, |n: Timestamp| n.min(ends)));
        } else if v.dependants == 0 || forced {
            out.due.push(v.version);
        } else {
            out.held.push((v.version, v.dependants));
        }
    }
    out
}

/// Versions pending destruction that a SealedSecret uses after all: a
/// re-wrap that was in flight when the version was retired lands on it
/// after the count. Their deletion is cancelled so they can still be
/// re-wrapped off. A Compromised version comes back only for such a
/// re-wrap of the operator's own (`rewrapped`: version -> count): its
/// material may be in an attacker's hands, and a dependant someone applied
/// (an old copy, with admission bypassed) must not pin it.
pub fn needed_again(
    versions: &[KeyVersionStatus],
    rewrapped: &BTreeMap<u32, u32>,
    forced: bool,
) -> Vec<u32> {
    if forced {
        return Vec::new();
    }
    pending_with_dependants(versions)
        .filter(|v| v.state != KeyState::Compromised || own_rewraps(rewrapped, v.version) > 0)
        .map(|v| v.version)
        .collect()
}

/// Compromised versions pending destruction that SealedSecrets other than
/// the operator's own re-wraps use: those values no longer open, and the
/// owners are told.
pub fn stranded(versions: &[KeyVersionStatus], rewrapped: &BTreeMap<u32, u32>) -> Vec<(u32, u32)> {
    pending_with_dependants(versions)
        .filter(|v| v.state == KeyState::Compromised && own_rewraps(rewrapped, v.version) == 0)
        .map(|v| (v.version, v.dependants))
        .collect()
}

fn own_rewraps(rewrapped: &BTreeMap<u32, u32>, version: u32) -> u32 {
    rewrapped.get(&version).copied().unwrap_or(0)
}

fn pending_with_dependants(
    versions: &[KeyVersionStatus],
) -> impl Iterator<Item = &KeyVersionStatus> {
    versions.iter().filter(|v| {
        v.destroy_scheduled_at.is_some()
            && v.destroyed_at.is_none()
            && v.state != KeyState::Destroyed
            && v.dependants > 0
    })
}

/// Cancels the pending destruction of versions SealedSecrets still use and
/// re-enables them for decryption (the provider leaves a cancelled version
/// disabled); they are scheduled again once nothing uses them.
async fn keep_needed(
    versions: &mut [KeyVersionStatus],
    rewrapped: &BTreeMap<u32, u32>,
    key_id: &str,
    forced: bool,
    ctx: &Context,
    out: &mut Outcome,
) -> Result<()> {
    for version in needed_again(versions, rewrapped, forced) {
        ctx.metrics.provider_call();
        match ctx
            .provider
            .cancel_deletion(key_id, DeletionTarget::Version(version))
            .await
        {
            Ok(()) => {}
            // Destroyed meanwhile: nothing left to keep.
            Err(ProviderError::UnknownVersion { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
        ctx.metrics.provider_call();
        ctx.provider
            .set_version_enabled(key_id, version, true)
            .await?;
        let Some(entry) = version_mut(versions, version) else {
            continue;
        };
        entry.destroy_scheduled_at = None;
        let dependants = entry.dependants;
        out.event(
            true,
            "VersionDestructionCancelled",
            "CancelDeletion",
            format!(
                "version {version} ({}) was scheduled for destruction but {dependants} SealedSecret(s) use it; kept until they are re-wrapped",
                entry.state
            ),
        );
        out.audit(
            "key.version.cancel-deletion",
            &[
                ("providerKeyId", key_id.to_owned()),
                ("version", version.to_string()),
                ("dependants", dependants.to_string()),
            ],
        );
    }
    Ok(())
}

/// Schedules the due versions' destruction and records when.
#[allow(clippy::too_many_arguments)]
pub async fn destroy_retired(
    versions: &mut [KeyVersionStatus],
    rewrapped: &BTreeMap<u32, u32>,
    key_id: &str,
    primary: u32,
    retention: HumanDuration,
    window: HumanDuration,
    forced: bool,
    adopted: Option<u32>,
    ctx: &Context,
    out: &mut Outcome,
    now: Timestamp,
) -> Result<()> {
    keep_needed(versions, rewrapped, key_id, forced, ctx, out).await?;
    for (version, count) in stranded(versions, rewrapped) {
        out.event(
            true,
            "ExposedVersionInUse",
            "ScheduleDeletion",
            format!(
                "{count} SealedSecret(s) use version {version}, which is Compromised and scheduled for destruction: it is not brought back, so they no longer open; re-seal their values (keyward seal) and commit"
            ),
        );
    }
    let plan = retirement(versions, primary, retention, forced, now);
    out.deadlines.extend(plan.next);
    for (version, count) in &plan.held {
        tracing::debug!(
            key_id,
            version,
            count,
            "retention over, but SealedSecrets still need the version"
        );
    }
    for version in plan.due {
        if Some(version) == adopted {
            // Made outside Keyward and kept on deletion (`Retain`): the
            // version stays Deactivated, its key left to whoever made it.
            tracing::debug!(
                key_id,
                version,
                "retention over; adopted version left in place"
            );
            continue;
        }
        ctx.metrics.provider_call();
        let window = Duration::from_secs(window.as_secs());
        let at = match ctx
            .provider
            .schedule_deletion(key_id, DeletionTarget::Version(version), window)
            .await
        {
            Ok(at) => Time(timestamp(at)),
            Err(ProviderError::UnknownVersion { .. }) => Time(now),
            Err(e) => return Err(e.into()),
        };
        let Some(entry) = version_mut(versions, version) else {
            continue;
        };
        let was = entry.state;
        entry.destroy_scheduled_at = Some(at.clone());
        out.event(
            was == KeyState::Compromised,
            "VersionDestructionScheduled",
            "ScheduleDeletion",
            format!(
                "version {version} ({was}) is needed by no SealedSecret{}; it will be destroyed at {}",
                if forced { " (or force-destroy is set)" } else { "" },
                at.0
            ),
        );
        out.audit(
            "key.version.schedule-deletion",
            &[
                ("providerKeyId", key_id.to_owned()),
                ("version", version.to_string()),
                ("state", was.to_string()),
                ("at", at.0.to_string()),
                ("forced", forced.to_string()),
            ],
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(
        n: u32,
        state: KeyState,
        deactivated: Option<i64>,
        dependants: u32,
    ) -> KeyVersionStatus {
        KeyVersionStatus {
            deactivated_at: deactivated.map(|s| Time(Timestamp::from_second(s).unwrap())),
            dependants,
            ..KeyVersionStatus::new(n, state)
        }
    }

    #[test]
    fn retired_versions_go_only_when_retention_passed_and_nothing_needs_them() {
        let now = Timestamp::from_second(1_000).unwrap();
        let retention = HumanDuration::from_secs(100);
        let versions = [
            version(1, KeyState::Deactivated, Some(800), 0), // due
            version(2, KeyState::Deactivated, Some(850), 2), // held
            version(3, KeyState::Deactivated, Some(950), 0), // at 1050
            version(4, KeyState::Compromised, Some(990), 0), // due at once
            version(5, KeyState::Compromised, Some(990), 1), // held until re-wrapped
            version(6, KeyState::Suspended, None, 0),        // not retired
            version(7, KeyState::Active, None, 0),           // primary
        ];
        let plan = retirement(&versions, 7, retention, false, now);
        assert_eq!(plan.due, [1, 4]);
        assert_eq!(plan.held, [(2, 2), (5, 1)]);
        assert_eq!(plan.next, Some(Timestamp::from_second(1_050).unwrap()));
        let forced = retirement(&versions, 7, retention, true, now);
        assert_eq!(forced.due, [1, 2, 4, 5]);
        let mut scheduled = versions.clone();
        for v in &mut scheduled {
            v.destroy_scheduled_at = Some(Time(now));
        }
        assert_eq!(
            retirement(&scheduled, 7, retention, true, now),
            Retirement::default()
        );
    }

    #[test]
    fn a_retired_version_that_gained_a_dependant_is_kept_unless_compromised() {
        let now = Timestamp::from_second(1_000).unwrap();
        let mut versions = vec![
            version(1, KeyState::Deactivated, Some(900), 1), // re-wrap landed late
            version(2, KeyState::Deactivated, Some(900), 0), // really unused
            version(3, KeyState::Destroyed, Some(900), 1),   // too late
            version(4, KeyState::Compromised, Some(900), 2), // applied copies: not pinned
            version(5, KeyState::Compromised, Some(900), 1), // the operator's own re-wrap
            version(6, KeyState::Active, None, 3),
        ];
        for v in &mut versions[..5] {
            v.destroy_scheduled_at = Some(Time(now));
        }
        let rewrapped = [(5, 1), (6, 3)].into();
        assert_eq!(needed_again(&versions, &rewrapped, false), [1, 5]);
        assert_eq!(stranded(&versions, &rewrapped), [(4, 2)]);
        assert!(
            needed_again(&versions, &rewrapped, true).is_empty(),
            "force-destroy wins"
        );
    }
}
