//! HTTP and JSON details of the Key Vault keys REST API for the double:
//! routes, api-versions, error bodies, base64url and time encodings.

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response};
use std::time::{SystemTime, UNIX_EPOCH};

/// The api-versions the double answers. `2025-07-01` is what
/// `azure_security_keyvault_keys` 1.0 sends; `7.5`/`7.6` are the numbered
/// versions before it, identical for every call the double serves.
pub const API_VERSIONS: &[&str] = &["7.5", "7.6", "2025-07-01"];

/// An error as Key Vault sends it: HTTP status, `error.code`, and an
/// optional `error.innererror.code` (Key Vault's finer reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub status: u16,
    pub code: &'static str,
    pub inner: Option<&'static str>,
    pub message: String,
}

pub type Answer = Result<serde_json::Value, Fault>;

pub fn fault(status: u16, code: &'static str, message: impl Into<String>) -> Fault {
    Fault {
        status,
        code,
        inner: None,
        message: message.into(),
    }
}

pub fn bad_parameter(message: impl Into<String>) -> Fault {
    fault(400, "BadParameter", message)
}

impl Fault {
    pub fn with_inner(mut self, inner: &'static str) -> Fault {
        self.inner = Some(inner);
        self
    }
}

fn json_response(status: u16) -> hyper::http::response::Builder {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
}

pub fn ok(status: u16, value: Option<&serde_json::Value>) -> Response<Full<Bytes>> {
    let body = value.map(|v| v.to_string()).unwrap_or_default();
    json_response(status)
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

pub fn error(fault: &Fault) -> Response<Full<Bytes>> {
    let mut error = serde_json::json!({ "code": fault.code, "message": fault.message });
    if let Some(inner) = fault.inner {
        error["innererror"] = serde_json::json!({ "code": inner });
    }
    let builder = json_response(fault.status);
    // Key Vault also names the code in a header; azure_core reads it
    // first when it builds `ErrorKind::HttpResponse { error_code }`.
    let builder = builder.header("x-ms-error-code", fault.code);
    let builder = if fault.status == 429 || fault.status == 503 {
        builder.header("retry-after", "1")
    } else {
        builder
    };
    builder
        .body(Full::new(Bytes::from(
            serde_json::json!({ "error": error }).to_string(),
        )))
        .expect("valid response")
}

/// The 401 that starts Key Vault's challenge-based authentication: the
/// client learns the tenant and the token audience from it.
pub fn challenge(tenant: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": { "code": "Unauthorized", "message": message } });
    Response::builder()
        .status(401)
        .header("content-type", "application/json; charset=utf-8")
        .header(
            "www-authenticate",
            format!(
                "Bearer authorization=\"https://login.microsoftonline.com/{tenant}\", resource=\"https://vault.azure.net\""
            ),
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

/// Which operation a request is, and the names in its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub rpc: &'static str,
    pub name: String,
    /// The key version; `None` means the latest (an empty segment, as the
    /// SDK sends `/keys/NAME/` when no version is given).
    pub version: Option<String>,
}

pub fn route(method: &Method, path: &str) -> Option<Route> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (rpc, name, version) = match (method.as_str(), parts.as_slice()) {
        ("POST", ["keys", n, "create"]) => ("CreateKey", n, None),
        ("POST", ["keys", n, "rotate"]) => ("RotateKey", n, None),
        ("GET", ["keys", n, "versions"]) => ("ListKeyVersions", n, None),
        ("GET", ["keys", n, "rotationpolicy"]) => ("GetKeyRotationPolicy", n, None),
        ("PUT", ["keys", n, "rotationpolicy"]) => ("UpdateKeyRotationPolicy", n, None),
        ("GET", ["keys", n]) => ("GetKey", n, None),
        ("GET", ["keys", n, v]) => ("GetKey", n, Some(*v)),
        ("PATCH", ["keys", n]) => ("UpdateKey", n, None),
        ("PATCH", ["keys", n, v]) => ("UpdateKey", n, Some(*v)),
        ("DELETE", ["keys", n]) => ("DeleteKey", n, None),
        ("GET", ["deletedkeys", n]) => ("GetDeletedKey", n, None),
        ("DELETE", ["deletedkeys", n]) => ("PurgeDeletedKey", n, None),
        ("POST", ["deletedkeys", n, "recover"]) => ("RecoverDeletedKey", n, None),
        ("POST", ["keys", n, op]) => (crypto_rpc(op)?, n, None),
        ("POST", ["keys", n, v, op]) => (crypto_rpc(op)?, n, Some(*v)),
        _ => return None,
    };
    Some(Route {
        rpc,
        name: (*name).to_owned(),
        version: version.map(str::to_owned),
    })
}

fn crypto_rpc(op: &str) -> Option<&'static str> {
    Some(match op.to_ascii_lowercase().as_str() {
        "wrapkey" => "WrapKey",
        "unwrapkey" => "UnwrapKey",
        "sign" => "Sign",
        "verify" => "Verify",
        _ => return None,
    })
}

/// Key Vault object names: 1-127 characters, letters, digits and dashes.
pub fn valid_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Key Vault's binary fields are base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads base64url, padded or not (and standard base64, leniently).
pub fn unb64url(value: &serde_json::Value) -> Option<Vec<u8>> {
    let text = value.as_str()?.trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .ok()
}

/// Seconds since the Unix epoch: Key Vault's `created`, `nbf`, `exp`...
pub fn unix(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An ISO 8601 duration of the forms Key Vault's rotation policies use
/// (`P90D`, `P1Y`, `P3M`, `P2W`, combinations of them) in days; months
/// count 30 days and years 365, as the double only needs an order of
/// magnitude for its checks.
pub fn iso_days(text: &str) -> Option<i64> {
    let mut rest = text.strip_prefix('P')?;
    if rest.is_empty() {
        return None;
    }
    let mut days = 0i64;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: i64 = rest[..digits].parse().ok()?;
        let unit = rest[digits..].chars().next()?;
        days += n * match unit {
            'Y' => 365,
            'M' => 30,
            'W' => 7,
            'D' => 1,
            _ => return None,
        };
        rest = &rest[digits + 1..];
    }
    Some(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_cover_what_the_sdk_sends() {
        let post = Method::POST;
        let get = Method::GET;
        let r = route(&get, "/keys/k/").unwrap();
        assert_eq!((r.rpc, r.version), ("GetKey", None));
        let r = route(&get, "/keys/k/abc").unwrap();
        assert_eq!((r.rpc, r.version.as_deref()), ("GetKey", Some("abc")));
        assert_eq!(route(&post, "/keys/k/abc/wrapkey").unwrap().rpc, "WrapKey");
        assert_eq!(route(&post, "/keys/k//unwrapkey").unwrap().version, None);
        assert_eq!(
            route(&get, "/keys/k/versions").unwrap().rpc,
            "ListKeyVersions"
        );
        assert_eq!(
            route(&post, "/deletedkeys/k/recover").unwrap().rpc,
            "RecoverDeletedKey"
        );
        assert!(route(&post, "/keys/k/abc/export").is_none());
        assert!(route(&get, "/secrets/s").is_none());
    }

    #[test]
    fn durations_read_as_key_vault_writes_them() {
        assert_eq!(iso_days("P90D"), Some(90));
        assert_eq!(iso_days("P1Y"), Some(365));
        assert_eq!(iso_days("P1Y2M"), Some(425));
        assert_eq!(iso_days("P2W"), Some(14));
        assert_eq!(iso_days("PT1H"), None);
        assert_eq!(iso_days("P"), None);
        assert_eq!(iso_days("90D"), None);
    }
}
