//! AWS KMS errors as [`ProviderError`]s. Messages carry the AWS error code
//! and message (never request data), and name the Keyward key and version.

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use keyward_core::provider::ProviderError;

/// What a failed call was about, for the error message.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub key: &'a str,
    pub version: Option<u32>,
}

impl<'a> At<'a> {
    pub fn key(key: &'a str) -> Self {
        At { key, version: None }
    }

    pub fn version(key: &'a str, version: u32) -> Self {
        At {
            key,
            version: Some(version),
        }
    }
}

/// Maps any SDK failure of a KMS call.
pub fn from_sdk<E>(error: SdkError<E>, at: At<'_>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &error {
        SdkError::ServiceError(_) => {
            let status = error.raw_response().map(|r| r.status().as_u16());
            classify(error.code(), status, error.message().unwrap_or(""), at)
        }
        SdkError::TimeoutError(_) => {
            ProviderError::Unavailable("AWS KMS did not answer in time".into())
        }
        SdkError::DispatchFailure(failure) => ProviderError::Unavailable(format!(
            "could not reach AWS KMS ({})",
            if failure.is_timeout() {
                "timed out".to_owned()
            } else if failure.is_io() {
                "connection failed".to_owned()
            } else {
                source_chain(&error)
            }
        )),
        SdkError::ResponseError(_) => ProviderError::Unavailable(format!(
            "AWS KMS sent an unreadable response: {}",
            source_chain(&error)
        )),
        SdkError::ConstructionFailure(_) => ProviderError::InvalidRequest(format!(
            "could not build the AWS KMS request: {}",
            source_chain(&error)
        )),
        _ => ProviderError::Unavailable(source_chain(&error)),
    }
}

/// Maps a KMS error code (and HTTP status) to the provider error.
pub fn classify(
    code: Option<&str>,
    status: Option<u16>,
    message: &str,
    at: At<'_>,
) -> ProviderError {
    let key = at.key.to_owned();
    let version = at.version.unwrap_or(0);
    let detail = || format!("{}: {message}", code.unwrap_or("error"));
    match code.unwrap_or("") {
        "NotFoundException" => match at.version {
            Some(version) => ProviderError::UnknownVersion { key, version },
            None => ProviderError::UnknownKey(key),
        },
        "DisabledException" => ProviderError::VersionDisabled { key, version },
        // On a usable-looking key, an invalid state is almost always a
        // scheduled deletion (other states: pending import, unavailable
        // custom key store, still being created).
        "KMSInvalidStateException"
            if message.contains("pending deletion") || message.is_empty() =>
        {
            ProviderError::PendingDeletion { key, version }
        }
        "KMSInvalidStateException" => ProviderError::VersionDisabled { key, version },
        "InvalidCiphertextException" | "IncorrectKeyException" => ProviderError::UnwrapFailed,
        "ThrottlingException" | "LimitExceededException" | "TooManyRequestsException" => {
            ProviderError::Throttled(format!("{} (retries exhausted)", detail()))
        }
        "KMSInternalException"
        | "DependencyTimeoutException"
        | "KeyUnavailableException"
        | "ServiceUnavailableException"
        | "InternalFailure" => ProviderError::Unavailable(detail()),
        "AccessDeniedException" => ProviderError::InvalidRequest(format!(
            "AWS denied access to key `{key}` ({}); check the IAM and key policies (docs/providers.md)",
            detail()
        )),
        "InvalidKeyUsageException" | "UnsupportedOperationException" => {
            ProviderError::InvalidRequest(format!("key `{key}` cannot do this: {}", detail()))
        }
        _ => match status {
            Some(429) => ProviderError::Throttled(detail()),
            Some(s) if s >= 500 => ProviderError::Unavailable(detail()),
            _ => {
                ProviderError::InvalidRequest(format!("AWS KMS refused the request: {}", detail()))
            }
        },
    }
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(code: &str, status: u16, message: &str) -> ProviderError {
        classify(Some(code), Some(status), message, At::version("k", 2))
    }

    #[test]
    fn kms_codes_map_to_provider_errors() {
        assert_eq!(
            map("NotFoundException", 400, "x"),
            ProviderError::UnknownVersion {
                key: "k".into(),
                version: 2
            }
        );
        assert_eq!(
            classify(Some("NotFoundException"), Some(400), "", At::key("k")),
            ProviderError::UnknownKey("k".into())
        );
        assert!(matches!(
            map("DisabledException", 400, "key is disabled"),
            ProviderError::VersionDisabled { version: 2, .. }
        ));
        assert!(matches!(
            map(
                "KMSInvalidStateException",
                400,
                "arn:aws:kms:...:key/... is pending deletion."
            ),
            ProviderError::PendingDeletion { version: 2, .. }
        ));
        assert_eq!(
            map("InvalidCiphertextException", 400, ""),
            ProviderError::UnwrapFailed
        );
        assert_eq!(
            map("IncorrectKeyException", 400, ""),
            ProviderError::UnwrapFailed
        );
        for code in ["ThrottlingException", "LimitExceededException"] {
            let error = map(code, 400, "Rate exceeded");
            assert!(matches!(error, ProviderError::Throttled(_)), "{error:?}");
            assert!(error.is_retryable());
        }
        for code in ["KMSInternalException", "DependencyTimeoutException"] {
            let error = map(code, 500, "");
            assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
        }
        assert!(matches!(
            map("SomethingNew", 503, ""),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            map("SomethingNew", 429, ""),
            ProviderError::Throttled(_)
        ));
        let denied = map("AccessDeniedException", 400, "User: x is not authorized");
        assert!(!denied.is_retryable());
        assert!(denied.to_string().contains("IAM"), "{denied}");
    }
}
