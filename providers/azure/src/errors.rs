//! Key Vault errors as [`ProviderError`]s. Messages carry the HTTP status,
//! Key Vault's error code and message (never request data) and name the
//! key and version.

use azure_core::error::ErrorKind;
use keyward_core::provider::ProviderError;

/// What a failed call was about, for the error message and the mapping.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub key: &'a str,
    pub version: Option<u32>,
    /// An unwrap: a 400 means the wrapped value does not open with this
    /// version, not a malformed request.
    pub unwrap: bool,
}

impl<'a> At<'a> {
    pub fn key(key: &'a str) -> Self {
        At {
            key,
            version: None,
            unwrap: false,
        }
    }

    pub fn version(key: &'a str, version: u32) -> Self {
        At {
            key,
            version: Some(version),
            unwrap: false,
        }
    }

    pub fn unwrapping(self) -> Self {
        At {
            unwrap: true,
            ..self
        }
    }

    fn what(&self) -> String {
        match self.version {
            Some(version) => format!("version {version} of key `{}`", self.key),
            None => format!("key `{}`", self.key),
        }
    }
}

/// Key Vault's error code, message and inner code from a failed
/// response's JSON body (`{"error": {"code", "message", "innererror"}}`).
fn details(error: &azure_core::Error) -> (Option<String>, String, Option<String>) {
    let ErrorKind::HttpResponse {
        error_code,
        raw_response,
        ..
    } = error.kind()
    else {
        return (None, String::new(), None);
    };
    let body: Option<serde_json::Value> = raw_response
        .as_ref()
        .and_then(|raw| serde_json::from_slice(raw.body().as_ref()).ok());
    let error_body = body.as_ref().map(|b| &b["error"]);
    let code = error_code.clone().or_else(|| {
        error_body
            .and_then(|e| e["code"].as_str())
            .map(str::to_owned)
    });
    let message = error_body
        .and_then(|e| e["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    let inner = error_body
        .and_then(|e| e["innererror"]["code"].as_str())
        .map(str::to_owned);
    (code, message, inner)
}

/// Maps any failure of a Key Vault call.
pub fn from_azure(error: &azure_core::Error, at: At<'_>) -> ProviderError {
    match error.kind() {
        ErrorKind::HttpResponse { status, .. } => {
            let (code, message, inner) = details(error);
            classify(
                u16::from(*status),
                code.as_deref(),
                inner.as_deref(),
                &message,
                at,
            )
        }
        ErrorKind::Credential => ProviderError::Unavailable(format!(
            "could not get an Entra ID token for Key Vault ({error}); check the workload identity"
        )),
        ErrorKind::Connection | ErrorKind::Io => ProviderError::Unavailable(format!(
            "could not reach Key Vault for {} ({error})",
            at.what()
        )),
        ErrorKind::DataConversion => ProviderError::Unavailable(format!(
            "Key Vault sent an unreadable response for {} ({error})",
            at.what()
        )),
        _ => {
            ProviderError::Unavailable(format!("Key Vault call for {} failed: {error}", at.what()))
        }
    }
}

/// Maps an HTTP status and Key Vault error code (and inner code).
pub fn classify(
    status: u16,
    code: Option<&str>,
    inner: Option<&str>,
    message: &str,
    at: At<'_>,
) -> ProviderError {
    let code = code.unwrap_or("no error code");
    let detail = if message.is_empty() {
        format!("HTTP {status} {code}")
    } else {
        format!("HTTP {status} {code}: {message}")
    };
    match status {
        404 => match at.version {
            Some(version) => ProviderError::UnknownVersion {
                key: at.key.to_owned(),
                version,
            },
            None => ProviderError::UnknownKey(at.key.to_owned()),
        },
        403 if inner == Some("KeyDisabled") || message.contains("disabled") => {
            ProviderError::VersionDisabled {
                key: at.key.to_owned(),
                version: at.version.unwrap_or(0),
            }
        }
        403 if matches!(inner, Some("KeyExpired" | "KeyNotYetValid")) => {
            ProviderError::InvalidRequest(format!(
                "{} is outside its validity period (nbf/exp): {detail}",
                at.what()
            ))
        }
        401 | 403 => ProviderError::InvalidRequest(format!(
            "Key Vault refused the request for {} ({detail}); check the identity's token and its Key Vault role",
            at.what()
        )),
        409 if inner == Some("ObjectIsDeletedButRecoverable") => {
            ProviderError::InvalidRequest(format!(
                "{} is deleted but recoverable (soft delete); cancel the deletion to recover it, or pick another name",
                at.what()
            ))
        }
        409 => ProviderError::InvalidRequest(format!("conflict on {}: {detail}", at.what())),
        400 if at.unwrap => ProviderError::UnwrapFailed,
        408 => {
            ProviderError::Unavailable(format!("Key Vault timed out on {}: {detail}", at.what()))
        }
        429 => ProviderError::Throttled(format!("{} ({detail})", at.what())),
        s if s >= 500 => {
            ProviderError::Unavailable(format!("Key Vault failed on {}: {detail}", at.what()))
        }
        _ => ProviderError::InvalidRequest(format!("Key Vault refused {}: {detail}", at.what())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_provider_errors() {
        let at = At::version("kek", 2);
        assert_eq!(
            classify(404, Some("KeyNotFound"), None, "", at),
            ProviderError::UnknownVersion {
                key: "kek".into(),
                version: 2
            }
        );
        assert_eq!(
            classify(404, Some("KeyNotFound"), None, "", At::key("kek")),
            ProviderError::UnknownKey("kek".into())
        );
        assert!(matches!(
            classify(403, Some("Forbidden"), Some("KeyDisabled"), "", at),
            ProviderError::VersionDisabled { version: 2, .. }
        ));
        assert!(classify(429, Some("Throttled"), None, "", at).is_retryable());
        assert!(classify(503, None, None, "", at).is_retryable());
        assert_eq!(
            classify(400, Some("BadParameter"), None, "", at.unwrapping()),
            ProviderError::UnwrapFailed
        );
        let deleted = classify(
            409,
            Some("Conflict"),
            Some("ObjectIsDeletedButRecoverable"),
            "",
            at,
        );
        assert!(deleted.to_string().contains("deleted but recoverable"));
        let auth = classify(401, Some("Unauthorized"), None, "bad token", at);
        assert!(!auth.is_retryable() && auth.to_string().contains("token"));
    }
}
