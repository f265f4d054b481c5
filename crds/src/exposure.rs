//! Which versions a compromise exposed. `spec.state: Compromised` says the
//! key's primary version is compromised; the incident usually exposed more
//! (a leaked keyring backup, a stolen KMS credential or HSM PIN reaches
//! every version), so by default every version whose material still exists
//! is retired with it. [`EXPOSED_VERSIONS`] narrows that to a list when
//! the incident is known to have reached only some.

use crate::{KeyState, KeyVersionStatus};
use std::collections::BTreeSet;

/// ManagedKey annotation, read when `spec.state` becomes Compromised:
/// `all` (the default when absent), `primary` (only the primary version),
/// or version numbers, e.g. `"2,3"`. The primary version is exposed in
/// every case.
pub const EXPOSED_VERSIONS: &str = "keyward.io/exposed-versions";

/// What [`EXPOSED_VERSIONS`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exposed {
    /// Every version whose material still exists.
    Every,
    /// These versions (and the primary).
    Listed(BTreeSet<u32>),
}

impl Exposed {
    /// Parses the annotation's value; `None` (absent) is [`Exposed::Every`].
    /// `Err` says what a valid value looks like.
    pub fn parse(value: Option<&str>) -> Result<Exposed, String> {
        let Some(value) = value.map(str::trim) else {
            return Ok(Exposed::Every);
        };
        if value.eq_ignore_ascii_case("all") {
            return Ok(Exposed::Every);
        }
        if value.eq_ignore_ascii_case("primary") {
            return Ok(Exposed::Listed(BTreeSet::new()));
        }
        let listed: Result<BTreeSet<u32>, _> = value
            .split(',')
            .map(|v| v.trim().parse::<u32>().ok().filter(|v| *v > 0).ok_or(v))
            .collect();
        match listed {
            Ok(listed) => Ok(Exposed::Listed(listed)),
            Err(bad) => Err(format!(
                "{EXPOSED_VERSIONS}: `{}` is not a version number; write `all`, `primary`, or version numbers separated by commas, e.g. \"2,3\"",
                bad.trim()
            )),
        }
    }

    /// The versions to mark Compromised among `versions`: the primary, and
    /// those exposed whose material exists and is not already on its way
    /// out (Destroyed, or scheduled for destruction).
    pub fn select(&self, versions: &[KeyVersionStatus], primary: u32) -> BTreeSet<u32> {
        let mut chosen: BTreeSet<u32> = versions
            .iter()
            .filter(|v| {
                v.state != KeyState::Destroyed
                    && v.destroy_scheduled_at.is_none()
                    && v.destroyed_at.is_none()
            })
            .map(|v| v.version)
            .filter(|v| match self {
                Exposed::Every => true,
                Exposed::Listed(listed) => listed.contains(v),
            })
            .collect();
        chosen.insert(primary);
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn versions() -> Vec<KeyVersionStatus> {
        let mut all: Vec<KeyVersionStatus> = [
            (1, KeyState::Destroyed),
            (2, KeyState::Deactivated),
            (3, KeyState::Deactivated),
            (4, KeyState::Deactivated),
            (5, KeyState::Active),
        ]
        .into_iter()
        .map(|(v, s)| KeyVersionStatus::new(v, s))
        .collect();
        all[1].destroy_scheduled_at = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        all
    }

    #[test]
    fn by_default_every_version_with_material_is_exposed() {
        assert_eq!(Exposed::parse(None), Ok(Exposed::Every));
        assert_eq!(Exposed::parse(Some(" ALL ")), Ok(Exposed::Every));
        // 1 is gone and 2 is on its way out already.
        assert_eq!(Exposed::Every.select(&versions(), 5), [3, 4, 5].into());
    }

    #[test]
    fn a_list_narrows_it_but_the_primary_is_always_exposed() {
        let listed = Exposed::parse(Some("3, 9")).unwrap();
        assert_eq!(listed, Exposed::Listed([3, 9].into()));
        assert_eq!(listed.select(&versions(), 5), [3, 5].into());
        let primary = Exposed::parse(Some("primary")).unwrap();
        assert_eq!(primary.select(&versions(), 5), [5].into());
    }

    #[test]
    fn a_bad_list_says_what_to_write() {
        for bad in ["", "2,,3", "v2", "0", "-1"] {
            let error = Exposed::parse(Some(bad)).unwrap_err();
            assert!(
                error.contains("write `all`, `primary`, or version numbers"),
                "{bad}: {error}"
            );
        }
    }
}
