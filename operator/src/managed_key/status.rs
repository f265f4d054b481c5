//! Building a ManagedKey's status from what the provider reports and what
//! the operator recorded before. Pure functions: the reconcile does the I/O.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use keyward_core::provider::{KeyInfo, VersionState};
use keyward_crds::{KeyState, KeyVersionStatus};
use std::collections::BTreeMap;
use std::time::SystemTime;

pub fn timestamp(time: SystemTime) -> Timestamp {
    Timestamp::try_from(time).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Merges the provider's versions into the recorded ones. A version new to
/// the status gets `new_primary_state` if it is the primary (PreActivation
/// for a brand-new key, Active after a rotation), Deactivated otherwise.
/// Only the primary can be Active: a previous primary still recorded as
/// Active (a restart between rotating and writing status) becomes
/// Deactivated. Versions the provider destroyed are marked Destroyed.
pub fn sync_versions(
    versions: &mut Vec<KeyVersionStatus>,
    info: &KeyInfo,
    new_primary_state: KeyState,
    now: Timestamp,
) {
    for provided in &info.versions {
        let created = Time(timestamp(provided.created_at));
        let entry = match versions
            .iter_mut()
            .position(|v| v.version == provided.version)
        {
            Some(index) => &mut versions[index],
            None => {
                let state = if provided.version == info.primary_version {
                    new_primary_state
                } else {
                    KeyState::Deactivated
                };
                versions.push(KeyVersionStatus {
                    activated_at: (state == KeyState::Active).then_some(Time(now)),
                    ..KeyVersionStatus::new(provided.version, state)
                });
                versions.last_mut().expect("just pushed")
            }
        };
        entry.created_at.get_or_insert(created);
        if provided.state == VersionState::Destroyed && entry.destroyed_at.is_none() {
            entry.state = KeyState::Destroyed;
            entry.destroyed_at = Some(Time(provided.deletion_at.map_or(now, timestamp)));
        }
    }
    for version in versions.iter_mut() {
        if version.state == KeyState::Active && version.version != info.primary_version {
            version.state = KeyState::Deactivated;
            version.deactivated_at.get_or_insert(Time(now));
        }
    }
    versions.sort_by_key(|v| v.version);
}

/// Records how many SealedSecrets use each version (zero when absent).
/// `counts` includes Git copies; `git_only` says how many of them need a
/// version only in Git. Those do not count for a Compromised version: its
/// material may be in an attacker's hands, so a stale Git copy does not
/// keep it enabled (its cluster copy was re-sealed, and admission refuses
/// to store a copy that goes back onto it).
pub fn set_dependants(
    versions: &mut [KeyVersionStatus],
    counts: &BTreeMap<u32, u32>,
    git_only: &BTreeMap<u32, u32>,
) {
    for version in versions {
        let count = |map: &BTreeMap<u32, u32>| map.get(&version.version).copied().unwrap_or(0);
        version.dependants = match version.state {
            KeyState::Compromised => count(counts).saturating_sub(count(git_only)),
            _ => count(counts),
        };
    }
}

/// Of the dependants, those that need each version only for a Git copy.
pub fn set_git_dependants(versions: &mut [KeyVersionStatus], counts: &BTreeMap<u32, u32>) {
    for version in versions {
        version.git_dependants = counts.get(&version.version).copied().unwrap_or(0);
    }
}

/// Versions that SealedSecrets still need and that are not destroyed yet.
pub fn versions_with_dependants(versions: &[KeyVersionStatus]) -> Vec<(u32, u32)> {
    versions
        .iter()
        .filter(|v| v.dependants > 0 && v.state != KeyState::Destroyed)
        .map(|v| (v.version, v.dependants))
        .collect()
}

pub fn version_mut(
    versions: &mut [KeyVersionStatus],
    number: u32,
) -> Option<&mut KeyVersionStatus> {
    versions.iter_mut().find(|v| v.version == number)
}

/// kstatus's `Reconciling` and `Stalled`, from what the other conditions
/// say: `Reconciling` with `in_progress` (reason, message) while the
/// operator is still at work, `Stalled` whenever `Degraded` is True (same
/// reason and message; then not `Reconciling`). Flux's
/// `wait`, `kubectl wait` and kstatus readers then agree with `Ready`.
pub fn set_kstatus_conditions(
    conditions: &mut Vec<Condition>,
    in_progress: Option<(&str, String)>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let degraded = keyward_crds::conditions::find(conditions, keyward_crds::conditions::DEGRADED)
        .filter(|c| c.status == "True")
        .map(|c| (c.reason.clone(), c.message.clone()));
    // Stalled wins: kstatus reads Reconciling first, and a key that needs a
    // change from you must read Failed, not InProgress for ever.
    let (reconciling, reason, message) = match in_progress.filter(|_| degraded.is_none()) {
        Some((reason, message)) => (true, reason, message),
        None => (false, "Reconciled", "nothing in progress".to_owned()),
    };
    set_condition(
        conditions,
        keyward_crds::conditions::RECONCILING,
        reconciling,
        reason,
        message,
        generation,
        now,
    );
    let (stalled, reason, message) = match &degraded {
        Some((reason, message)) => (true, reason.as_str(), message.clone()),
        None => (
            false,
            "Progressing",
            "nothing blocks the operator".to_owned(),
        ),
    };
    set_condition(
        conditions,
        keyward_crds::conditions::STALLED,
        stalled,
        reason,
        message,
        generation,
        now,
    );
}

/// Sets a condition, keeping its `lastTransitionTime` when the status
/// (True/False) did not change.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    is_true: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if is_true { "True" } else { "False" };
    // The API server refuses an empty message (it serialises as null).
    let message = if message.is_empty() {
        reason.to_owned()
    } else {
        message
    };
    let last_transition_time = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time,
    });
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::provider::{KeyAlgorithm, VersionInfo};
    use std::time::{Duration, UNIX_EPOCH};

    fn info(primary: u32, versions: &[(u32, VersionState)]) -> KeyInfo {
        KeyInfo {
            key_id: "local-1".into(),
            name: "k".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: Some("uid".into()),
            primary_version: primary,
            versions: versions
                .iter()
                .map(|(version, state)| VersionInfo {
                    version: *version,
                    state: *state,
                    created_at: UNIX_EPOCH + Duration::from_secs(u64::from(*version) * 100),
                    deletion_at: None,
                })
                .collect(),
            deletion_at: None,
            claim: None,
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(10_000).unwrap()
    }

    #[test]
    fn a_new_key_gets_its_first_version_with_the_initial_state() {
        let mut versions = Vec::new();
        sync_versions(
            &mut versions,
            &info(1, &[(1, VersionState::Enabled)]),
            KeyState::PreActivation,
            now(),
        );
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0].state, KeyState::PreActivation);
        assert_eq!(
            versions[0].created_at,
            Some(Time(Timestamp::from_second(100).unwrap()))
        );
        assert!(versions[0].activated_at.is_none());
    }

    #[test]
    fn after_a_rotation_only_the_new_primary_is_active() {
        let mut versions = Vec::new();
        let before = info(1, &[(1, VersionState::Enabled)]);
        sync_versions(&mut versions, &before, KeyState::Active, now());
        assert_eq!(versions[0].state, KeyState::Active);
        let rotated = info(2, &[(1, VersionState::Enabled), (2, VersionState::Enabled)]);
        sync_versions(&mut versions, &rotated, KeyState::Active, now());
        let states: Vec<_> = versions.iter().map(|v| (v.version, v.state)).collect();
        assert_eq!(states, [(1, KeyState::Deactivated), (2, KeyState::Active)]);
        assert_eq!(versions[0].deactivated_at, Some(Time(now())));
        // Idempotent.
        let again = versions.clone();
        sync_versions(&mut versions, &rotated, KeyState::Active, now());
        assert_eq!(versions, again);
    }

    #[test]
    fn provider_destroyed_versions_are_marked_and_dependants_counted() {
        let mut versions = Vec::new();
        sync_versions(
            &mut versions,
            &info(2, &[(1, VersionState::Enabled), (2, VersionState::Enabled)]),
            KeyState::Active,
            now(),
        );
        set_dependants(&mut versions, &[(1, 3)].into(), &BTreeMap::new());
        assert_eq!(versions_with_dependants(&versions), [(1, 3)]);
        sync_versions(
            &mut versions,
            &info(
                2,
                &[(1, VersionState::Destroyed), (2, VersionState::Enabled)],
            ),
            KeyState::Active,
            now(),
        );
        assert_eq!(versions[0].state, KeyState::Destroyed);
        assert!(versions[0].destroyed_at.is_some());
        assert!(versions_with_dependants(&versions).is_empty());
        set_dependants(&mut versions, &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(versions[0].dependants, 0);
    }

    #[test]
    fn condition_transition_time_moves_only_when_status_flips() {
        let mut conditions = Vec::new();
        let t1 = Timestamp::from_second(1).unwrap();
        let t2 = Timestamp::from_second(2).unwrap();
        set_condition(
            &mut conditions,
            "Ready",
            true,
            "Active",
            "a".into(),
            Some(1),
            t1,
        );
        set_condition(
            &mut conditions,
            "Ready",
            true,
            "Active",
            "b".into(),
            Some(2),
            t2,
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, Time(t1));
        assert_eq!(conditions[0].message, "b");
        set_condition(
            &mut conditions,
            "Ready",
            false,
            "Suspended",
            "c".into(),
            Some(3),
            t2,
        );
        assert_eq!(conditions[0].last_transition_time, Time(t2));
        set_condition(
            &mut conditions,
            "Degraded",
            false,
            "AsExpected",
            String::new(),
            Some(3),
            t2,
        );
        assert_eq!(conditions[0].type_, "Degraded");
    }

    #[test]
    fn kstatus_conditions_follow_degraded_and_never_both() {
        use keyward_crds::conditions::{DEGRADED, RECONCILING, STALLED, find};
        let now = Timestamp::from_second(0).unwrap();
        let mut conditions = Vec::new();
        set_kstatus_conditions(
            &mut conditions,
            Some(("Rotating", "busy".into())),
            Some(1),
            now,
        );
        let status = |c: &Vec<Condition>, t: &str| find(c, t).map(|c| c.status.clone());
        assert_eq!(status(&conditions, RECONCILING).as_deref(), Some("True"));
        assert_eq!(status(&conditions, STALLED).as_deref(), Some("False"));
        set_condition(
            &mut conditions,
            DEGRADED,
            true,
            "ProviderRefused",
            "no".into(),
            Some(1),
            now,
        );
        set_kstatus_conditions(
            &mut conditions,
            Some(("Rotating", "busy".into())),
            Some(1),
            now,
        );
        assert_eq!(status(&conditions, RECONCILING).as_deref(), Some("False"));
        let stalled = find(&conditions, STALLED).unwrap();
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "ProviderRefused")
        );
    }

    #[test]
    fn git_copies_count_for_retired_versions_but_not_compromised_ones() {
        let mut versions = vec![
            KeyVersionStatus::new(1, KeyState::Deactivated),
            KeyVersionStatus::new(2, KeyState::Compromised),
        ];
        let counts = [(1, 2), (2, 3)].into();
        let git_only = [(1, 2), (2, 1)].into();
        set_dependants(&mut versions, &counts, &git_only);
        assert_eq!(versions[0].dependants, 2, "held for Git");
        assert_eq!(versions[1].dependants, 2, "cluster copies only");
    }
}
