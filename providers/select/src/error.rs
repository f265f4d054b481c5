//! Errors in the user's terms: which flag, and what to do.

use std::fmt;

/// A provider flag that cannot work as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError {
    /// The flag without dashes, e.g. `aws-region`.
    pub flag: &'static str,
    pub message: String,
}

impl FlagError {
    pub(crate) fn new(flag: &'static str, message: impl Into<String>) -> Self {
        FlagError {
            flag,
            message: message.into(),
        }
    }

    /// The environment variable that sets the same flag.
    pub fn env_var(&self) -> String {
        format!(
            "KEYWARD_{}",
            self.flag.replace('-', "_").to_ascii_uppercase()
        )
    }
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--{} ({}) {}", self.flag, self.env_var(), self.message)
    }
}

impl std::error::Error for FlagError {}

/// Why this process cannot serve a ManagedKey's `spec.provider`: for a
/// Degraded condition (`reason`, `message`), never a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotServed {
    /// CamelCase condition reason.
    pub reason: &'static str,
    pub message: String,
}

impl NotServed {
    pub(crate) fn new(reason: &'static str, message: impl Into<String>) -> Self {
        NotServed {
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for NotServed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NotServed {}

/// Why [`crate::Providers::connect`] failed: a flag, or a provider that
/// would not set up (module not loadable, PIN refused, no credentials).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Flag(#[from] FlagError),
    #[error("cannot set up {product}: {error}")]
    Connect {
        product: &'static str,
        error: keyward_core::ProviderError,
    },
}

impl SetupError {
    pub(crate) fn connect(kind: crate::route::Kind, error: keyward_core::ProviderError) -> Self {
        SetupError::Connect {
            product: kind.product(),
            error,
        }
    }
}
