//! `maxOperations`: rotate the primary version early once it has done this
//! many wraps, unless the limit is one every new version would reach at once.
//!
//! The limit exists for AES-GCM with random 96-bit nonces (NIST SP 800-38D
//! 8.3: at most 2^32 invocations per key). Only encryption draws a nonce,
//! so `versions[].operations` counts the wraps (encryptions) the operator
//! makes under a version; unwraps are not counted. The operator wraps only
//! when it re-wraps a SealedSecret onto the primary (one wrap per DEK), and
//! sees no wraps done in another process (`keyward seal`, the webhook's
//! `/v1/rewrap`); docs/operations.md says so.
//!
//! The loop guard: a rotation re-wraps every dependant onto the new version
//! (Eager at once, Lazy as they change), one wrap each. A limit at or below
//! that number would be reached by the re-wrap alone and rotate again, and
//! again, for ever. Those wraps do use nonces under the new version, so
//! leaving them uncounted would understate what the limit protects;
//! instead such a limit is refused: the primary stays, and the key is
//! Degraded with the value to set.

use keyward_crds::{EffectivePolicy, KeyState, ManagedKeyStatus, RewrapMode};

/// Degraded reason for a limit the re-wrap of the dependants alone reaches.
pub const TOO_LOW: &str = "MaxOperationsTooLow";

/// What `maxOperations` asks of the primary version.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No limit, or the primary is below it.
    Within,
    /// The primary reached the limit: rotate.
    Rotate,
    /// The primary reached the limit, but so would a new version; the
    /// Degraded message says what to set.
    TooLow(String),
}

/// The verdict for the `primary` version. `policy_name`: the key's
/// `rotationPolicyRef`, for the message.
pub fn verdict(
    policy: &EffectivePolicy,
    status: &ManagedKeyStatus,
    primary: u32,
    policy_name: Option<&str>,
) -> Verdict {
    let Some(max) = policy.max_operations else {
        return Verdict::Within;
    };
    let used = status.version(primary).map_or(0, |v| v.operations);
    if used < max {
        return Verdict::Within;
    }
    let rewraps = rewraps_after_rotation(status, policy.rewrap);
    if rewraps < max {
        return Verdict::Rotate;
    }
    let policy = policy_name.map_or_else(
        || "a KeyRotationPolicy (spec.rotationPolicyRef)".to_owned(),
        |name| format!("KeyRotationPolicy {name}"),
    );
    Verdict::TooLow(format!(
        "maxOperations {max} cannot be met: a rotation re-wraps the key's {rewraps} SealedSecret(s) \
         onto the new version, one wrap each, so every new version would reach the limit at once \
         and rotate again; version {primary} has done {used} wrap(s) and stays primary. \
         Set spec.maxOperations in {policy} to at least {} (with room for the wraps you expect \
         between rotations), or remove it",
        rewraps.saturating_add(1)
    ))
}

/// Wraps the operator makes on a new version to re-wrap the dependants: one
/// per SealedSecret on a version it re-wraps from (the current primary,
/// Deactivated ones unless re-wrapping is Manual, Compromised ones always),
/// not counting those that wait for Git (it does not re-wrap them again).
pub fn rewraps_after_rotation(status: &ManagedKeyStatus, mode: RewrapMode) -> u64 {
    let operator_rewraps = mode != RewrapMode::Manual;
    status
        .versions
        .iter()
        .filter(|v| match v.state {
            KeyState::Active | KeyState::Deactivated => operator_rewraps,
            KeyState::Compromised => true,
            _ => false,
        })
        .map(|v| u64::from(v.dependants.saturating_sub(v.git_dependants)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_crds::{Algorithm, KeyUsage, KeyVersionStatus};

    fn policy(max: Option<u64>, rewrap: RewrapMode) -> EffectivePolicy {
        EffectivePolicy {
            max_operations: max,
            rewrap,
            ..EffectivePolicy::default_for(Algorithm::Rsa4096, KeyUsage::Seal)
        }
    }

    /// (state, operations, dependants) per version from 1; the last is primary.
    fn status(versions: &[(KeyState, u64, u32)]) -> ManagedKeyStatus {
        ManagedKeyStatus {
            primary_version: u32::try_from(versions.len()).ok(),
            state: Some(KeyState::Active),
            versions: versions
                .iter()
                .zip(1..)
                .map(
                    |(&(state, operations, dependants), version)| KeyVersionStatus {
                        operations,
                        dependants,
                        ..KeyVersionStatus::new(version, state)
                    },
                )
                .collect(),
            ..ManagedKeyStatus::default()
        }
    }

    fn last(status: &ManagedKeyStatus) -> u32 {
        status.primary_version.unwrap_or(1)
    }

    use KeyState::*;

    #[test]
    fn rotates_once_the_primary_reaches_a_limit_above_the_rewraps() {
        let eager = policy(Some(3), RewrapMode::Eager);
        let below = status(&[(Deactivated, 0, 0), (Active, 2, 2)]);
        assert_eq!(
            verdict(&eager, &below, last(&below), Some("p")),
            Verdict::Within
        );
        let reached = status(&[(Deactivated, 0, 0), (Active, 3, 2)]);
        assert_eq!(
            verdict(&eager, &reached, last(&reached), Some("p")),
            Verdict::Rotate
        );
        let past = status(&[(Deactivated, 0, 1), (Active, 9, 1)]);
        assert_eq!(
            verdict(&eager, &past, last(&past), Some("p")),
            Verdict::Rotate
        );
        // No limit (RSA default), or nothing recorded yet.
        let unlimited = policy(None, RewrapMode::Eager);
        assert_eq!(
            verdict(&unlimited, &past, last(&past), None),
            Verdict::Within
        );
        let empty = ManagedKeyStatus::default();
        assert_eq!(verdict(&eager, &empty, last(&empty), None), Verdict::Within);
    }

    #[test]
    fn a_limit_the_rewrap_alone_reaches_is_refused_with_what_to_set() {
        let eager = policy(Some(2), RewrapMode::Eager);
        // Two dependants (one still on the Deactivated v1): two wraps on
        // any new version, which already meets 2.
        let reached = status(&[(Deactivated, 0, 1), (Active, 2, 1)]);
        let Verdict::TooLow(message) = verdict(&eager, &reached, last(&reached), Some("few-ops"))
        else {
            panic!("not refused");
        };
        assert!(
            message.contains("maxOperations 2 cannot be met"),
            "{message}"
        );
        assert!(message.contains("2 SealedSecret(s)"), "{message}");
        assert!(
            message.contains("version 2 has done 2 wrap(s)"),
            "{message}"
        );
        assert!(
            message.contains("KeyRotationPolicy few-ops to at least 3"),
            "{message}"
        );
        // Below the limit nothing is said, however low it is.
        let below = status(&[(Deactivated, 0, 1), (Active, 1, 1)]);
        assert_eq!(
            verdict(&eager, &below, last(&below), Some("few-ops")),
            Verdict::Within
        );
        // Without a policy the message points at one.
        let Verdict::TooLow(message) = verdict(&eager, &reached, last(&reached), None) else {
            panic!("not refused");
        };
        assert!(message.contains("in a KeyRotationPolicy"), "{message}");
    }

    #[test]
    fn only_versions_the_operator_rewraps_from_count() {
        let versions = status(&[
            (Destroyed, 0, 4),
            (Suspended, 0, 8),
            (Compromised, 0, 16),
            (Deactivated, 0, 1),
            (Active, 0, 2),
        ]);
        assert_eq!(rewraps_after_rotation(&versions, RewrapMode::Eager), 19);
        assert_eq!(rewraps_after_rotation(&versions, RewrapMode::Lazy), 19);
        // Manual: `keyward rewrap` does it through the webhook, uncounted;
        // a Compromised version is re-wrapped whatever the mode.
        assert_eq!(rewraps_after_rotation(&versions, RewrapMode::Manual), 16);
        let manual = policy(Some(2), RewrapMode::Manual);
        let reached = status(&[(Deactivated, 0, 5), (Active, 2, 5)]);
        assert_eq!(
            verdict(&manual, &reached, last(&reached), None),
            Verdict::Rotate
        );
    }
}
