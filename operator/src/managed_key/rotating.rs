//! The `Rotating` condition: True while SealedSecrets still have to be
//! re-wrapped off a retired version after a rotation or compromise, False
//! once none has to (or the policy defers re-wrapping). It mirrors what the
//! SealedSecret controller will do (`rewrap::decide`), from the dependant
//! counts this reconcile just took.

use super::status::set_condition;
use k8s_openapi::jiff::Timestamp;
use keyward_crds::conditions::ROTATING;
use keyward_crds::{KeyState, KeyVersionStatus, ManagedKeyStatus, RewrapMode};

/// Retired versions with dependants, split by whether the operator
/// re-wraps them now (`eager`) or leaves them (`deferred`), and those only
/// Git's copies hold (`for_git`): (version, count).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PendingRewraps {
    pub eager: Vec<(u32, u32)>,
    pub deferred: Vec<(u32, u32)>,
    pub for_git: Vec<(u32, u32)>,
}

pub fn pending(status: &ManagedKeyStatus, mode: RewrapMode) -> PendingRewraps {
    let mut out = PendingRewraps::default();
    let Some(primary) = status.primary_version else {
        return out;
    };
    // Re-wrapping needs an Active primary to wrap onto.
    let can_rewrap = status.state == Some(KeyState::Active)
        && status.version(primary).map(|v| v.state) == Some(KeyState::Active);
    for v in status.versions.iter().filter(|v| is_retired(v, primary)) {
        if v.git_dependants > 0 {
            out.for_git.push((v.version, v.git_dependants));
        }
        let in_cluster = v.dependants.saturating_sub(v.git_dependants);
        if in_cluster == 0 {
            continue;
        }
        let eager = can_rewrap
            && (v.state == KeyState::Compromised || mode == RewrapMode::Eager)
            && v.destroy_scheduled_at.is_none();
        if eager {
            out.eager.push((v.version, in_cluster));
        } else {
            out.deferred.push((v.version, in_cluster));
        }
    }
    out
}

fn is_retired(v: &KeyVersionStatus, primary: u32) -> bool {
    v.version != primary
        && v.dependants > 0
        && matches!(v.state, KeyState::Deactivated | KeyState::Compromised)
}

/// Sets `Rotating` from the pending re-wraps.
pub fn set(
    status: &mut ManagedKeyStatus,
    mode: RewrapMode,
    generation: Option<i64>,
    now: Timestamp,
) {
    let pending = pending(status, mode);
    let primary = status.primary_version.unwrap_or(0);
    let (is_true, reason, message) = if !pending.eager.is_empty() {
        (
            true,
            "RewrappingDependants",
            format!(
                "re-wrapping onto version {primary}: {}",
                describe(&pending.eager)
            ),
        )
    } else if !pending.deferred.is_empty() {
        (
            false,
            "RewrapDeferred",
            format!(
                "rotated to version {primary}; not re-wrapped now (policy rewrap: {mode:?}, or no Active primary): {}",
                describe(&pending.deferred)
            ),
        )
    } else if !pending.for_git.is_empty() {
        (
            false,
            "WaitingForGit",
            format!(
                "rotated to version {primary}; the cluster is done, Git's copies still need older versions (run `keyward rewrap` over the repository and commit): {}",
                describe(&pending.for_git)
            ),
        )
    } else {
        (
            false,
            "Idle",
            "no rotation or re-wrap in progress".to_owned(),
        )
    };
    set_condition(
        &mut status.conditions,
        ROTATING,
        is_true,
        reason,
        message,
        generation,
        now,
    );
}

fn describe(versions: &[(u32, u32)]) -> String {
    versions
        .iter()
        .map(|(version, count)| format!("{count} SealedSecret(s) on version {version}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_crds::conditions;

    fn version(n: u32, state: KeyState, dependants: u32) -> KeyVersionStatus {
        KeyVersionStatus {
            dependants,
            ..KeyVersionStatus::new(n, state)
        }
    }

    fn status(versions: Vec<KeyVersionStatus>) -> ManagedKeyStatus {
        ManagedKeyStatus {
            primary_version: versions.last().map(|v| v.version),
            state: Some(KeyState::Active),
            versions,
            ..ManagedKeyStatus::default()
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_000).unwrap()
    }

    #[test]
    fn rotating_while_dependants_wait_for_an_eager_rewrap_then_idle() {
        use KeyState::*;
        let mut s = status(vec![
            version(1, Deactivated, 2),
            version(2, Compromised, 1),
            version(3, Active, 4),
        ]);
        assert_eq!(
            pending(&s, RewrapMode::Eager),
            PendingRewraps {
                eager: vec![(1, 2), (2, 1)],
                deferred: vec![],
                for_git: vec![],
            }
        );
        // Lazy: a compromised version is still re-wrapped at once.
        assert_eq!(
            pending(&s, RewrapMode::Lazy),
            PendingRewraps {
                eager: vec![(2, 1)],
                deferred: vec![(1, 2)],
                for_git: vec![],
            }
        );
        // The applier put Git's copies back on version 1: the cluster is done.
        let mut waiting = s.clone();
        waiting.versions[0].git_dependants = 2;
        assert_eq!(
            pending(&waiting, RewrapMode::Eager),
            PendingRewraps {
                eager: vec![(2, 1)],
                deferred: vec![],
                for_git: vec![(1, 2)],
            }
        );
        set(&mut s, RewrapMode::Eager, Some(4), now());
        let c = conditions::find(&s.conditions, ROTATING).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "RewrappingDependants")
        );
        assert!(
            c.message.contains("2 SealedSecret(s) on version 1"),
            "{}",
            c.message
        );
        assert_eq!(c.observed_generation, Some(4));

        // The re-wraps land: dependants move to the primary.
        s.versions[0].dependants = 0;
        s.versions[1].dependants = 0;
        set(&mut s, RewrapMode::Eager, Some(4), now());
        let c = conditions::find(&s.conditions, ROTATING).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "Idle"));
    }

    #[test]
    fn deferred_or_impossible_rewraps_are_not_rotating() {
        use KeyState::*;
        let mut s = status(vec![version(1, Deactivated, 3), version(2, Active, 0)]);
        set(&mut s, RewrapMode::Manual, None, now());
        let c = conditions::find(&s.conditions, ROTATING).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "RewrapDeferred")
        );
        // A Suspended key cannot wrap onto its primary.
        let mut suspended = status(vec![version(1, Compromised, 1), version(2, Suspended, 0)]);
        suspended.state = Some(Suspended);
        assert!(pending(&suspended, RewrapMode::Eager).eager.is_empty());
        // Destroyed versions and versions already scheduled are no one's job.
        let mut gone = status(vec![version(1, Destroyed, 1), version(2, Active, 0)]);
        assert_eq!(pending(&gone, RewrapMode::Eager), PendingRewraps::default());
        gone.versions[0].state = Compromised;
        gone.versions[0].destroy_scheduled_at =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        assert!(pending(&gone, RewrapMode::Eager).eager.is_empty());
    }
}
