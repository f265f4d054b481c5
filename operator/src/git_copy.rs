//! A SealedSecret's copy in Git against the cluster's. The operator moves
//! the cluster copy forward after a rotation at most once per primary
//! version: when an applier (Argo CD self-heal, Flux drift correction, a
//! `kubectl apply` loop) puts Git's older copy back, the operator leaves it
//! there instead of re-wrapping it again, which would make the two rewrite
//! each other's spec without end. A compromise is the exception: its
//! re-seal is always made, and admission refuses to store a copy that goes
//! back onto a Compromised version, so no applier can revert it.
//!
//! Either way Git is behind until someone runs `keyward rewrap` over the
//! repository and the applier brings the result. Until then `gitBehind`
//! names the versions Git's copy needs, and retention keeps them.

use crate::annotations::{SpecChange, parse_rewrapped_to};
use crate::rewrap::Reason;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use keyward_crds::{GitBehind, ManagedKeyStatus};
use std::collections::{BTreeMap, BTreeSet};

/// Whether the re-wrap `reason` calls for was already made onto the key's
/// current primary, and the spec is older again: an applier reverted it.
pub fn reverted(rewrapped_to: Option<&str>, key: &ManagedKeyStatus, reason: Reason) -> bool {
    if reason == Reason::Compromised {
        return false;
    }
    let (Some(primary), Some(key_id)) = (key.primary_version, key.provider_key_id.as_deref())
    else {
        return false;
    };
    parse_rewrapped_to(rewrapped_to) == Some((primary, key_id))
}

/// The versions of `items` (item -> (version, provider key id)) other than
/// `primary`: what a copy behind the primary needs.
pub fn behind_primary(items: &BTreeMap<String, (u32, String)>, primary: u32) -> BTreeSet<u32> {
    items
        .values()
        .map(|(version, _)| *version)
        .filter(|version| *version != primary)
        .collect()
}

/// What happened to the cluster copy in this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The operator re-wrapped it; Git's copy needed these versions.
    Rewrapped(BTreeSet<u32>),
    /// A re-wrap was due but withheld: the spec is Git's copy, put back
    /// after the operator's re-wrap; it needs these versions.
    Withheld(BTreeSet<u32>),
    /// Neither.
    Nothing,
}

/// `status.gitBehind` after this reconcile. It keeps its `since` while Git
/// stays behind, and clears when a copy is applied that needs no re-wrap:
/// the applied spec is Git's, now current.
pub fn git_behind(
    previous: Option<&GitBehind>,
    change: SpecChange,
    step: Step,
    now: Timestamp,
) -> Option<GitBehind> {
    let behind = |versions: BTreeSet<u32>| {
        (!versions.is_empty()).then(|| GitBehind {
            versions: versions.into_iter().collect(),
            since: previous.map_or(Time(now), |p| p.since.clone()),
        })
    };
    match step {
        Step::Rewrapped(versions) | Step::Withheld(versions) => behind(versions),
        Step::Nothing if change == SpecChange::Applied => None,
        Step::Nothing => previous.cloned(),
    }
}

/// The `GitBehind` condition: (status, reason, message).
pub fn condition(
    behind: Option<&GitBehind>,
    rewrapped_since_git: bool,
    key: &str,
) -> (bool, &'static str, String) {
    let Some(behind) = behind else {
        return (
            false,
            "GitCurrent",
            "the applied copy needs no re-wrap".into(),
        );
    };
    let versions: Vec<String> = behind.versions.iter().map(u32::to_string).collect();
    let versions = versions.join(", ");
    if rewrapped_since_git {
        (
            true,
            "ClusterAhead",
            format!(
                "the cluster copy is re-wrapped; Git's copy is still on version(s) {versions} of \
                 {key}, kept until it catches up: run `keyward rewrap` over it and commit"
            ),
        )
    } else {
        (
            true,
            "AppliedCopyBehind",
            format!(
                "Git's copy was applied again after the operator re-wrapped it; the operator does \
                 not re-wrap it twice, and keeps version(s) {versions} of {key} until Git catches \
                 up: run `keyward rewrap` over it and commit"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::rewrapped_to;

    fn key(primary: u32) -> ManagedKeyStatus {
        ManagedKeyStatus {
            provider_key_id: Some("local-1".into()),
            primary_version: Some(primary),
            ..ManagedKeyStatus::default()
        }
    }

    #[test]
    fn a_rewrap_is_withheld_only_when_it_was_made_onto_this_primary() {
        let made = rewrapped_to(2, "local-1");
        assert!(reverted(Some(&made), &key(2), Reason::Eager));
        assert!(reverted(Some(&made), &key(2), Reason::Lazy));
        // A new rotation since: the next re-wrap is due once more.
        assert!(!reverted(Some(&made), &key(3), Reason::Eager));
        // Never made, another provider key, or a compromise: not withheld.
        assert!(!reverted(None, &key(2), Reason::Eager));
        assert!(!reverted(Some("2:local-9"), &key(2), Reason::Eager));
        assert!(!reverted(Some("junk"), &key(2), Reason::Eager));
        assert!(!reverted(Some(&made), &key(2), Reason::Compromised));
    }

    #[test]
    fn git_behind_keeps_its_start_and_clears_when_a_current_copy_is_applied() {
        let at = |s: i64| Timestamp::from_second(s).unwrap();
        let first = git_behind(None, SpecChange::None, Step::Rewrapped([1].into()), at(10));
        assert_eq!(
            first.as_ref().map(|b| (b.versions.clone(), b.since.0)),
            Some((vec![1], at(10)))
        );
        // The applier restores Git's copy: still behind, since unchanged.
        let withheld = git_behind(
            first.as_ref(),
            SpecChange::Applied,
            Step::Withheld([1].into()),
            at(20),
        );
        assert_eq!(withheld.as_ref().map(|b| b.since.0), Some(at(10)));
        // Nothing new (a no-op re-apply, a key event): kept as it was.
        assert_eq!(
            git_behind(withheld.as_ref(), SpecChange::None, Step::Nothing, at(30)),
            withheld
        );
        // The rewrapped copy from Git is applied: current.
        assert_eq!(
            git_behind(
                withheld.as_ref(),
                SpecChange::Applied,
                Step::Nothing,
                at(40)
            ),
            None
        );
        // A re-wrap of a copy already on the primary needs nothing from Git.
        assert_eq!(
            git_behind(
                None,
                SpecChange::None,
                Step::Rewrapped(BTreeSet::new()),
                at(50)
            ),
            None
        );
    }

    #[test]
    fn the_condition_says_which_side_is_behind_and_what_to_run() {
        let behind = GitBehind {
            versions: vec![1, 2],
            since: Time(Timestamp::from_second(0).unwrap()),
        };
        let (on, reason, message) = condition(Some(&behind), true, "apps/db");
        assert!(on && reason == "ClusterAhead" && message.contains("version(s) 1, 2 of apps/db"));
        let (_, reason, message) = condition(Some(&behind), false, "apps/db");
        assert_eq!(reason, "AppliedCopyBehind");
        assert!(message.contains("keyward rewrap"), "{message}");
        assert_eq!(condition(None, false, "apps/db").1, "GitCurrent");
    }
}
