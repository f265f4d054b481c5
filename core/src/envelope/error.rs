use crate::provider::ProviderError;
use thiserror::Error;

/// Why a sealed value could not be read or opened. Each failure the format
/// can detect has its own variant; none carries plaintext or key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvelopeError {
    #[error(
        "not a Keyward envelope (expected base64 starting with the `KWRD` header); seal values with `keyward seal`"
    )]
    NotAnEnvelope,
    #[error(
        "envelope format version {0} is not supported by this Keyward (it reads versions 1 and 2); upgrade Keyward"
    )]
    UnsupportedVersion(u8),
    #[error("envelope is truncated: it ends inside the {0}; the value was cut when copied")]
    Truncated(&'static str),
    #[error("envelope is malformed: {0}")]
    Malformed(&'static str),
    #[error("key `{key}` version {version} is not known to the provider: {reason}")]
    UnknownKey {
        key: String,
        version: u32,
        reason: String,
    },
    #[error(
        "value was sealed for {field} `{sealed_for}` but is being opened as {field} `{opened_as}`; re-seal it for `{opened_as}` with `keyward seal`"
    )]
    ContextMismatch {
        field: &'static str,
        sealed_for: String,
        opened_as: String,
    },
    #[error(
        "value was sealed for ServiceAccounts {sealed_for} but the SealedSecret's spec.access lets {opened_for} unseal it; spec.access may only name ServiceAccounts the value was sealed for: restore it, or re-seal with `keyward seal --service-account`"
    )]
    AccessWidened {
        sealed_for: String,
        opened_for: String,
    },
    #[error(
        "authentication failed: the sealed value or its header was modified, or the wrong data key was used"
    )]
    AuthenticationFailed,
    #[error("{0}")]
    Provider(ProviderError),
    #[error("cannot seal: {0}")]
    InvalidInput(String),
}

impl From<ProviderError> for EnvelopeError {
    fn from(error: ProviderError) -> Self {
        match error {
            ProviderError::UnknownKey(key) => EnvelopeError::UnknownKey {
                key,
                version: 0,
                reason: "the key does not exist".into(),
            },
            ProviderError::UnknownVersion { key, version } => EnvelopeError::UnknownKey {
                key,
                version,
                reason: "that version does not exist or was destroyed".into(),
            },
            ProviderError::UnwrapFailed => EnvelopeError::AuthenticationFailed,
            other => EnvelopeError::Provider(other),
        }
    }
}

/// An envelope error for one named item of a secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("item `{item}`: {error}")]
pub struct ItemError {
    pub item: String,
    pub error: EnvelopeError,
}
