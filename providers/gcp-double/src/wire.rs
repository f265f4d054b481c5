//! HTTP and JSON details of the Cloud KMS REST API for the double: routes,
//! error bodies, enum and time encodings.

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response};
use std::time::{SystemTime, UNIX_EPOCH};

/// The google.rpc.Code values the double answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InvalidArgument,
    FailedPrecondition,
    NotFound,
    AlreadyExists,
    ResourceExhausted,
}

impl Status {
    fn http(self) -> u16 {
        match self {
            Status::InvalidArgument | Status::FailedPrecondition => 400,
            Status::NotFound => 404,
            Status::AlreadyExists => 409,
            Status::ResourceExhausted => 429,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Status::InvalidArgument => "INVALID_ARGUMENT",
            Status::FailedPrecondition => "FAILED_PRECONDITION",
            Status::NotFound => "NOT_FOUND",
            Status::AlreadyExists => "ALREADY_EXISTS",
            Status::ResourceExhausted => "RESOURCE_EXHAUSTED",
        }
    }
}

pub type Answer = Result<serde_json::Value, (Status, String)>;

pub fn ok(value: &serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json; charset=UTF-8")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("valid response")
}

pub fn error(status: Status, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "error": { "code": status.http(), "message": message, "status": status.name() }
    });
    Response::builder()
        .status(status.http())
        .header("content-type", "application/json; charset=UTF-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

/// Which RPC a request is, and the resource it names.
#[derive(Debug, Clone)]
pub struct Route {
    pub rpc: &'static str,
    pub ring: String,
    pub key: Option<String>,
    pub version: Option<String>,
}

pub fn route(method: &Method, path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v1/")?;
    let (resource, verb) = match rest.rsplit_once(':') {
        Some((resource, verb)) if !verb.contains('/') => (resource, Some(verb)),
        _ => (rest, None),
    };
    let parts: Vec<&str> = resource.split('/').collect();
    if parts.len() < 6
        || parts[0] != "projects"
        || parts[2] != "locations"
        || parts[4] != "keyRings"
    {
        return None;
    }
    let ring = parts[..6].join("/");
    let key = (parts.len() >= 8 && parts[6] == "cryptoKeys").then(|| parts[..8].join("/"));
    let version =
        (parts.len() >= 10 && parts[8] == "cryptoKeyVersions").then(|| parts[9].to_owned());
    let tail: Vec<&str> = parts[6..].to_vec();
    let rpc = match (method.as_str(), tail.as_slice(), verb) {
        ("POST", ["cryptoKeys"], None) => "CreateCryptoKey",
        ("GET", ["cryptoKeys", _], None) => "GetCryptoKey",
        ("PATCH", ["cryptoKeys", _], None) => "UpdateCryptoKey",
        ("POST", ["cryptoKeys", _], Some("encrypt")) => "Encrypt",
        ("POST", ["cryptoKeys", _], Some("decrypt")) => "Decrypt",
        ("POST", ["cryptoKeys", _], Some("updatePrimaryVersion")) => {
            "UpdateCryptoKeyPrimaryVersion"
        }
        ("GET", ["cryptoKeys", _, "cryptoKeyVersions"], None) => "ListCryptoKeyVersions",
        ("POST", ["cryptoKeys", _, "cryptoKeyVersions"], None) => "CreateCryptoKeyVersion",
        ("GET", ["cryptoKeys", _, "cryptoKeyVersions", _], None) => "GetCryptoKeyVersion",
        ("PATCH", ["cryptoKeys", _, "cryptoKeyVersions", _], None) => "UpdateCryptoKeyVersion",
        ("POST", ["cryptoKeys", _, "cryptoKeyVersions", _], Some("destroy")) => {
            "DestroyCryptoKeyVersion"
        }
        ("POST", ["cryptoKeys", _, "cryptoKeyVersions", _], Some("restore")) => {
            "RestoreCryptoKeyVersion"
        }
        ("POST", ["cryptoKeys", _, "cryptoKeyVersions", _], Some("asymmetricDecrypt")) => {
            "AsymmetricDecrypt"
        }
        ("POST", ["cryptoKeys", _, "cryptoKeyVersions", _], Some("asymmetricSign")) => {
            "AsymmetricSign"
        }
        ("GET", ["cryptoKeys", _, "cryptoKeyVersions", _, "publicKey"], None) => "GetPublicKey",
        _ => return None,
    };
    Some(Route {
        rpc,
        ring,
        key,
        version,
    })
}

/// The client sends enums as numbers (`$alt=json;enum-encoding=int`); the
/// REST reference shows names. Accept both, answer with names.
pub fn enum_name(value: &serde_json::Value, names: &[(i64, &'static str)]) -> Option<&'static str> {
    match value {
        serde_json::Value::Number(n) => {
            let n = n.as_i64()?;
            names.iter().find(|(v, _)| *v == n).map(|(_, name)| *name)
        }
        serde_json::Value::String(s) => names
            .iter()
            .find(|(_, name)| name == s)
            .map(|(_, name)| *name),
        _ => None,
    }
}

pub const PURPOSES: &[(i64, &str)] = &[
    (1, "ENCRYPT_DECRYPT"),
    (5, "ASYMMETRIC_SIGN"),
    (6, "ASYMMETRIC_DECRYPT"),
];
pub const PROTECTION_LEVELS: &[(i64, &str)] = &[(1, "SOFTWARE"), (2, "HSM"), (3, "EXTERNAL")];
pub const ALGORITHMS: &[(i64, &str)] = &[
    (1, "GOOGLE_SYMMETRIC_ENCRYPTION"),
    (3, "RSA_SIGN_PSS_3072_SHA256"),
    (4, "RSA_SIGN_PSS_4096_SHA256"),
    (9, "RSA_DECRYPT_OAEP_3072_SHA256"),
    (10, "RSA_DECRYPT_OAEP_4096_SHA256"),
    (12, "EC_SIGN_P256_SHA256"),
    (40, "EC_SIGN_ED25519"),
];
pub const STATES: &[(i64, &str)] = &[
    (1, "ENABLED"),
    (2, "DISABLED"),
    (3, "DESTROYED"),
    (4, "DESTROY_SCHEDULED"),
    (5, "PENDING_GENERATION"),
];

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(value: &serde_json::Value) -> Option<Vec<u8>> {
    match value {
        serde_json::Value::Null => Some(Vec::new()),
        serde_json::Value::String(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
            .ok(),
        _ => None,
    }
}

/// `"2592000s"` (google.protobuf.Duration in JSON) to seconds.
pub fn duration_secs(value: &serde_json::Value) -> Option<i64> {
    let text = value.as_str()?.strip_suffix('s')?;
    let whole = text.split('.').next()?;
    whole.parse().ok()
}

/// RFC 3339 UTC, as google.protobuf.Timestamp in JSON.
pub fn timestamp(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses the `YYYY-MM-DDTHH:MM:SS[.frac]Z` form back to seconds.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let time = time.split('.').next()?;
    let mut t = time.split(':').map(|p| p.parse::<i64>());
    let (h, min, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + s)
}
