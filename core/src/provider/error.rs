use std::time::Duration;
use thiserror::Error;

/// What a provider can report. Messages name the key and say what to do;
/// they never contain key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProviderError {
    #[error("key `{0}` does not exist in this provider")]
    UnknownKey(String),
    #[error("key `{key}` has no version {version} (it may have been destroyed)")]
    UnknownVersion { key: String, version: u32 },
    #[error(
        "version {version} of key `{key}` is disabled; enable it (spec.state=Active) to use it"
    )]
    VersionDisabled { key: String, version: u32 },
    #[error(
        "version {version} of key `{key}` is scheduled for destruction; cancel the deletion to use it"
    )]
    PendingDeletion { key: String, version: u32 },
    #[error("key `{key}` is {actual}; this operation needs {expected}")]
    WrongKeyType {
        key: String,
        expected: &'static str,
        actual: &'static str,
    },
    #[error(
        "the data key could not be unwrapped: wrong context, wrong key version, or tampered data"
    )]
    UnwrapFailed,
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("provider is throttling requests: {0}")]
    Throttled(String),
    #[error("provider is unavailable: {0}")]
    Unavailable(String),
    #[error("key storage error: {0}")]
    Storage(String),
    /// The call was abandoned at the caller's deadline (the provider may
    /// still be working on it; nothing was returned).
    #[error("key provider `{provider}` did not answer within {}", seconds(after))]
    TimedOut {
        provider: &'static str,
        after: Duration,
    },
}

/// `5 s`, `2.5 s`, `0.25 s`: what an operator reads in an error.
fn seconds(duration: &Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

impl ProviderError {
    /// Whether the same call may succeed later without anything changing.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::Throttled(_)
                | ProviderError::Unavailable(_)
                | ProviderError::TimedOut { .. }
        )
    }
}
