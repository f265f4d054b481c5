//! Cloud KMS errors as [`ProviderError`]s. Messages carry the Cloud KMS
//! status and message (never request data) and name the key and version.

use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::Code;
use keyward_core::provider::ProviderError;

/// What a failed call was about, for the error message and the mapping.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub key: &'a str,
    pub version: Option<u32>,
    /// A decrypt call: `INVALID_ARGUMENT` means the ciphertext or its AAD
    /// did not match, not a malformed request.
    pub decrypt: bool,
}

impl<'a> At<'a> {
    pub fn key(key: &'a str) -> Self {
        At {
            key,
            version: None,
            decrypt: false,
        }
    }

    pub fn version(key: &'a str, version: u32) -> Self {
        At {
            key,
            version: Some(version),
            decrypt: false,
        }
    }

    pub fn decrypting(self) -> Self {
        At {
            decrypt: true,
            ..self
        }
    }
}

/// Maps any failure of a Cloud KMS call.
pub fn from_gax(error: &GaxError, at: At<'_>) -> ProviderError {
    if let Some(status) = error.status() {
        return classify(status.code, &status.message, at);
    }
    if let Some(code) = error.http_status_code() {
        let detail = format!("HTTP {code} from Cloud KMS");
        return match code {
            429 => ProviderError::Throttled(detail),
            404 => not_found(at),
            s if s >= 500 => ProviderError::Unavailable(detail),
            _ => ProviderError::InvalidRequest(detail),
        };
    }
    if error.is_authentication() {
        return ProviderError::Unavailable(format!(
            "could not get Google credentials ({}); check Workload Identity or GOOGLE_APPLICATION_CREDENTIALS",
            source_chain(error)
        ));
    }
    if error.is_connect() {
        return ProviderError::Unavailable("could not connect to Cloud KMS".into());
    }
    if error.is_timeout() {
        return ProviderError::Unavailable("Cloud KMS did not answer in time".into());
    }
    if error.is_io() {
        return ProviderError::Unavailable("the connection to Cloud KMS failed mid-request".into());
    }
    if error.is_deserialization() {
        return ProviderError::Unavailable(format!(
            "Cloud KMS sent an unreadable response: {}",
            source_chain(error)
        ));
    }
    if error.is_serialization() || error.is_binding() {
        return ProviderError::InvalidRequest(format!(
            "could not build the Cloud KMS request: {}",
            source_chain(error)
        ));
    }
    ProviderError::Unavailable(source_chain(error))
}

fn not_found(at: At<'_>) -> ProviderError {
    match at.version {
        Some(version) => ProviderError::UnknownVersion {
            key: at.key.to_owned(),
            version,
        },
        None => ProviderError::UnknownKey(at.key.to_owned()),
    }
}

/// Maps a Cloud KMS status (gRPC code name + message).
pub fn classify(code: Code, message: &str, at: At<'_>) -> ProviderError {
    let key = at.key.to_owned();
    // Cloud KMS names the version in state errors ("…/cryptoKeyVersions/3
    // is not enabled…"); prefer it over the caller's guess.
    let version = message
        .split_whitespace()
        .find_map(crate::naming::version_number)
        .or(at.version)
        .unwrap_or(0);
    let detail = || format!("{}: {message}", code.name());
    match code {
        Code::NotFound => not_found(at),
        Code::FailedPrecondition if message.contains("DESTROY_SCHEDULED") => {
            ProviderError::PendingDeletion { key, version }
        }
        Code::FailedPrecondition if message.contains("DESTROYED") => {
            ProviderError::UnknownVersion { key, version }
        }
        Code::FailedPrecondition if message.contains("PENDING_GENERATION") => {
            ProviderError::Unavailable(format!(
                "version {version} of key `{key}` is still being generated; retry shortly"
            ))
        }
        Code::FailedPrecondition
            if message.contains("DISABLED") || message.contains("not enabled") =>
        {
            ProviderError::VersionDisabled { key, version }
        }
        Code::FailedPrecondition => ProviderError::InvalidRequest(format!(
            "Cloud KMS refused the request for key `{key}`: {}",
            detail()
        )),
        Code::InvalidArgument if at.decrypt => ProviderError::UnwrapFailed,
        Code::ResourceExhausted => {
            ProviderError::Throttled(format!("{} (retries exhausted)", detail()))
        }
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Internal
        | Code::Unknown
        | Code::Aborted => ProviderError::Unavailable(detail()),
        Code::PermissionDenied | Code::Unauthenticated => ProviderError::InvalidRequest(format!(
            "Google denied access to key `{key}` ({}); check the IAM roles on the key ring (docs/providers.md); Cloud KMS also answers this for keys that do not exist",
            detail()
        )),
        _ => ProviderError::InvalidRequest(format!("Cloud KMS refused the request: {}", detail())),
    }
}

/// Whether a failed attempt may be sent again. Throttling and
/// `UNAVAILABLE` are the server saying "not now"; a refused connection was
/// never sent. Timeouts and broken connections may have reached the
/// server, so only idempotent calls repeat after them.
pub fn is_retryable(error: &GaxError, idempotent: bool) -> bool {
    if let Some(status) = error.status() {
        return matches!(status.code, Code::ResourceExhausted | Code::Unavailable)
            || (idempotent && matches!(status.code, Code::DeadlineExceeded | Code::Internal));
    }
    if let Some(code) = error.http_status_code() {
        return code == 429 || code == 503 || (idempotent && code >= 500);
    }
    if error.is_connect() || error.is_transient_and_before_rpc() {
        return true;
    }
    idempotent && (error.is_timeout() || error.is_io())
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

    fn map(code: Code, message: &str) -> ProviderError {
        classify(code, message, At::version("k", 2))
    }

    #[test]
    fn cloud_kms_codes_map_to_provider_errors() {
        assert_eq!(
            map(Code::NotFound, "x"),
            ProviderError::UnknownVersion {
                key: "k".into(),
                version: 2
            }
        );
        assert_eq!(
            classify(Code::NotFound, "", At::key("k")),
            ProviderError::UnknownKey("k".into())
        );
        assert_eq!(
            map(
                Code::FailedPrecondition,
                "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3 is not enabled, current state is: DISABLED."
            ),
            ProviderError::VersionDisabled {
                key: "k".into(),
                version: 3
            }
        );
        assert!(matches!(
            map(
                Code::FailedPrecondition,
                "The request cannot be fulfilled. Resource is in state DESTROY_SCHEDULED."
            ),
            ProviderError::PendingDeletion { version: 2, .. }
        ));
        assert_eq!(
            classify(
                Code::InvalidArgument,
                "Decryption failed",
                At::version("k", 1).decrypting()
            ),
            ProviderError::UnwrapFailed
        );
        assert!(matches!(
            map(Code::InvalidArgument, "bad field"),
            ProviderError::InvalidRequest(_)
        ));
        let throttled = map(Code::ResourceExhausted, "Quota exceeded");
        assert!(matches!(throttled, ProviderError::Throttled(_)));
        assert!(throttled.is_retryable());
        for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Internal] {
            let error = map(code, "");
            assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
        }
        let denied = map(
            Code::PermissionDenied,
            "Permission 'cloudkms.cryptoKeyVersions.useToDecrypt' denied",
        );
        assert!(!denied.is_retryable());
        assert!(denied.to_string().contains("IAM"), "{denied}");
    }
}
