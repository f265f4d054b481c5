//! User-facing validation errors shared by every resource's `validate()`.
//!
//! The admission webhook returns [`Invalid`]'s `Display` output verbatim to
//! `kubectl`, so every message names the field and says what to write instead.

use std::fmt;

/// One problem with one field, e.g. `spec.deletionWindow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the offending field, as a user sees it in YAML.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in one object; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    errors: Vec<FieldError>,
}

impl Invalid {
    /// The individual field errors, in the order they were found.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// Whether any error concerns `field` (exactly, or a child of it).
    pub fn mentions(&self, field: &str) -> bool {
        self.errors.iter().any(|e| {
            e.field == field
                || e.field
                    .strip_prefix(field)
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        })
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects field errors while a spec is checked, so a user sees all of
/// them at once instead of fixing one per `kubectl apply`.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    errors: Vec<FieldError>,
}

impl Collector {
    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Adds every error of an already finished check.
    pub(crate) fn extend(&mut self, invalid: Invalid) {
        self.errors.extend(invalid.errors);
    }

    /// The errors so far; callers only use it after pushing at least one.
    pub(crate) fn into_invalid(self) -> Invalid {
        Invalid {
            errors: self.errors,
        }
    }

    pub(crate) fn finish(self) -> Result<(), Invalid> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Invalid {
                errors: self.errors,
            })
        }
    }
}

/// RFC 1123 subdomain, the rule for object and ServiceAccount names.
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// RFC 1123 label, the rule for namespace names.
pub fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_dns_subdomain(name)
}

/// Schema pattern matching [`is_dns_subdomain`] closely enough for the API
/// server to reject obvious typos before the webhook sees them.
pub(crate) const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Schema pattern for RFC 1123 labels (namespaces).
pub(crate) const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns_subdomain("payments-db"));
        assert!(is_dns_subdomain("a.b-c"));
        assert!(!is_dns_subdomain("Payments"));
        assert!(!is_dns_subdomain("-a"));
        assert!(!is_dns_subdomain(""));
        assert!(is_dns_label("team-a"));
        assert!(!is_dns_label("team.a"));
    }

    #[test]
    fn display_joins_all_errors() {
        let mut c = Collector::default();
        c.push("spec.a", "is wrong");
        c.push("spec.b", "is also wrong");
        let err = c.finish().unwrap_err();
        assert_eq!(err.to_string(), "spec.a: is wrong; spec.b: is also wrong");
        assert!(err.mentions("spec.a"));
        assert!(err.mentions("spec"));
        assert!(!err.mentions("spec.c"));
    }
}
