//! Annotations users (and the operator) put on Keyward objects.

/// Set to any new value to rotate a ManagedKey once.
pub const ROTATE: &str = "keyward.io/rotate";
/// Written by the operator before it rotates for [`ROTATE`]: `<value>@<version>`,
/// the request it handled and the version that request produces. A restart
/// between the two steps finishes the rotation instead of repeating it.
pub const ROTATE_HANDLED: &str = "keyward.io/rotate-handled";
/// `"true"` lets a key be destroyed although SealedSecrets still depend on it.
pub const FORCE_DESTROY: &str = "keyward.io/force-destroy";

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

#[cfg(test)]
mod tests {
    use super::*;

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
