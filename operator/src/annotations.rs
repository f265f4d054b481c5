//! Annotations users (and the operator) put on Keyward objects.

/// Set to any new value to rotate a ManagedKey once.
pub const ROTATE: &str = "keyward.io/rotate";
/// Written by the operator before it rotates for [`ROTATE`]: `<value>@<version>`,
/// the request it handled and the version that request produces. A restart
/// between the two steps finishes the rotation instead of repeating it.
pub const ROTATE_HANDLED: &str = "keyward.io/rotate-handled";
/// Written by the operator before it handles `spec.state: Compromised`: the
/// version reported compromised. While it is there the report is handled
/// (or being finished after a restart); the operator removes it once
/// `spec.state` moves on, so the next Compromised is a new report.
pub const COMPROMISE_HANDLED: &str = "keyward.io/compromise-handled";
/// Written by the operator in the same write as a re-wrapped
/// `spec.encryptedData`: the generation that write produced. A spec change
/// at that generation is the operator's own, even if its status write was
/// lost (a crash in between).
pub const REWRAPPED_GENERATION: &str = "keyward.io/rewrapped-generation";

/// On a SealedSecret: the key version the operator last re-wrapped it
/// onto, `<version>:<provider key id>`. Written with the re-wrap itself, so
/// it survives a lost status write, and an applier that puts Git's older
/// copy back leaves it (it owns only the fields it applies): the operator
/// then knows it was reverted and does not write the same re-wrap again.
pub const REWRAPPED_TO: &str = "keyward.io/rewrapped-to";

/// On a SealedSecret with no copy kept anywhere (made imperatively):
/// `"true"` stops retention from keeping old versions for a Git copy.
pub const NO_GIT_COPY: &str = "keyward.io/no-git-copy";

/// The value of [`REWRAPPED_TO`] for `version` of `key_id`.
pub fn rewrapped_to(version: u32, key_id: &str) -> String {
    format!("{version}:{key_id}")
}

/// Parses [`REWRAPPED_TO`]; `None` for a missing or foreign value.
pub fn parse_rewrapped_to(value: Option<&str>) -> Option<(u32, &str)> {
    let (version, key_id) = value?.split_once(':')?;
    Some((version.parse().ok()?, key_id))
}
/// On a ManagedKey: the id of a cluster whose live claim on the provider
/// key this cluster may take over now, without waiting for the claim's
/// lease to run out (that cluster was rebuilt and is gone).
pub const TAKE_OVER_FROM: &str = "keyward.io/take-over-from";

pub use keyward_crds::destruction::FORCE_DESTROY;

/// The finalizer that makes deleting a ManagedKey schedule provider deletion.
pub const FINALIZER: &str = "keyward.io/cleanup";

/// A handled rotation request, parsed from [`ROTATE_HANDLED`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandledRotation {
    pub request: String,
    pub target_version: u32,
}

impl HandledRotation {
    pub fn parse(text: &str) -> Option<Self> {
        let (request, version) = text.rsplit_once('@')?;
        Some(HandledRotation {
            request: request.to_owned(),
            target_version: version.parse().ok()?,
        })
    }

    pub fn render(&self) -> String {
        format!("{}@{}", self.request, self.target_version)
    }
}

/// What to do about a manual rotation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManualRotation {
    /// No request, or it is done.
    Nothing,
    /// A new request: record it as handled (target `version`), then rotate.
    Record(HandledRotation),
    /// Recorded earlier but the provider has not rotated yet (restart).
    Finish,
}

/// Decides from the annotations and the provider's primary version.
pub fn manual_rotation(
    requested: Option<&str>,
    handled: Option<&str>,
    primary: u32,
) -> ManualRotation {
    let Some(requested) = requested.filter(|r| !r.is_empty()) else {
        return ManualRotation::Nothing;
    };
    match handled.and_then(HandledRotation::parse) {
        Some(done) if done.request == requested => {
            if primary < done.target_version {
                ManualRotation::Finish
            } else {
                ManualRotation::Nothing
            }
        }
        _ => ManualRotation::Record(HandledRotation {
            request: requested.to_owned(),
            target_version: primary + 1,
        }),
    }
}

/// Which version a `spec.state: Compromised` report is about, and whether
/// the operator must record that before acting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompromiseReport {
    /// Handled earlier: the version is marked and a newer one is primary.
    Handled,
    /// Act on `version`; `record` first when the report is new.
    Handle { version: u32, record: bool },
}

/// `handled`: the [`COMPROMISE_HANDLED`] annotation; `recorded_primary`: the
/// primary version the status showed when the report came; `provider_primary`:
/// the provider's primary now; `marked`: whether the status already marks
/// the recorded version Compromised.
pub fn compromise_report(
    handled: Option<&str>,
    recorded_primary: u32,
    provider_primary: u32,
    marked: impl Fn(u32) -> bool,
) -> CompromiseReport {
    match handled.and_then(|v| v.parse::<u32>().ok()) {
        Some(version) if provider_primary > version && marked(version) => CompromiseReport::Handled,
        Some(version) => CompromiseReport::Handle {
            version,
            record: false,
        },
        None => CompromiseReport::Handle {
            version: recorded_primary,
            record: true,
        },
    }
}

/// Whose spec change a SealedSecret's generation is, from the generation
/// its status last observed and the [`REWRAPPED_GENERATION`] annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecChange {
    /// Nothing changed since the last status write.
    None,
    /// The operator's own re-wrap (its status write may have been lost).
    Rewrapped,
    /// Someone else applied the spec (usually from Git), or it is new.
    Applied,
}

pub fn spec_change(
    observed: Option<i64>,
    generation: Option<i64>,
    rewrapped: Option<&str>,
) -> SpecChange {
    if observed == generation {
        SpecChange::None
    } else if generation.is_some() && rewrapped.and_then(|g| g.parse().ok()) == generation {
        SpecChange::Rewrapped
    } else {
        SpecChange::Applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compromise_report_is_recorded_once_and_a_new_one_is_not_mistaken_for_it() {
        let none = |_| false;
        // New report while v2 is primary: record, then act on v2.
        assert_eq!(
            compromise_report(None, 2, 2, none),
            CompromiseReport::Handle {
                version: 2,
                record: true
            }
        );
        // Crash after recording, before rotating: finish, do not record again.
        assert_eq!(
            compromise_report(Some("2"), 2, 2, none),
            CompromiseReport::Handle {
                version: 2,
                record: false
            }
        );
        // Crash after rotating, before the status write: mark v2 (no new rotation).
        assert_eq!(
            compromise_report(Some("2"), 2, 3, none),
            CompromiseReport::Handle {
                version: 2,
                record: false
            }
        );
        assert_eq!(
            compromise_report(Some("2"), 3, 3, |v| v == 2),
            CompromiseReport::Handled
        );
        // Acknowledged (the operator removed the marker), then v3 reported:
        // an older Compromised version does not make it "handled".
        assert_eq!(
            compromise_report(None, 3, 3, |v| v == 2),
            CompromiseReport::Handle {
                version: 3,
                record: true
            }
        );
    }

    #[test]
    fn the_operators_own_rewrap_is_told_from_a_spec_applied_elsewhere() {
        assert_eq!(spec_change(Some(3), Some(3), None), SpecChange::None);
        assert_eq!(
            spec_change(Some(3), Some(4), Some("4")),
            SpecChange::Rewrapped
        );
        // Re-applied from Git after the re-wrap: a newer generation.
        assert_eq!(
            spec_change(Some(4), Some(5), Some("4")),
            SpecChange::Applied
        );
        assert_eq!(spec_change(Some(3), Some(4), None), SpecChange::Applied);
        assert_eq!(spec_change(None, Some(1), None), SpecChange::Applied);
    }

    #[test]
    fn a_rotation_request_is_handled_once_even_across_a_restart() {
        assert_eq!(manual_rotation(None, None, 1), ManualRotation::Nothing);
        let first = manual_rotation(Some("now"), None, 1);
        let ManualRotation::Record(done) = first else {
            panic!("{first:?}")
        };
        assert_eq!(done.target_version, 2);
        let recorded = done.render();
        // Crash before the provider rotated: finish it.
        assert_eq!(
            manual_rotation(Some("now"), Some(&recorded), 1),
            ManualRotation::Finish
        );
        // Rotated: nothing more, even on later reconciles and rotations.
        assert_eq!(
            manual_rotation(Some("now"), Some(&recorded), 2),
            ManualRotation::Nothing
        );
        assert_eq!(
            manual_rotation(Some("now"), Some(&recorded), 5),
            ManualRotation::Nothing
        );
        // A new value is a new request.
        assert_eq!(
            manual_rotation(Some("again"), Some(&recorded), 5),
            ManualRotation::Record(HandledRotation {
                request: "again".into(),
                target_version: 6
            })
        );
        assert_eq!(
            HandledRotation::parse("a@b@7").unwrap().request,
            "a@b",
            "the value itself may contain @"
        );
    }
}
