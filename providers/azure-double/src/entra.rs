//! A Microsoft Entra ID token endpoint on the double's own port, so a
//! workload identity can be tested end to end without Entra: the official
//! `azure_identity` `WorkloadIdentityCredential`, pointed at the double
//! as its authority host, POSTs `/{tenant}/oauth2/v2.0/token` with a
//! Kubernetes service-account JWT as its client assertion, and gets the
//! bearer token the Key Vault side accepts. The double checks the
//! assertion as Entra checks it against a federated identity credential
//! ([`Federation`]): tenant, client id, issuer, subject, audience, time
//! and (given the issuer's JWKS) the RS256 signature. Refusals have
//! Entra's JSON error shape with AADSTS-style codes; the codes and texts
//! approximate Entra's and never echo the assertion.
//!
//! Not bearer-authenticated, so routed before the Key Vault checks.

use crate::jwt::Jwt;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response};
use keyward_double_kit::RequestParts;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// What Kubernetes and Entra allow between clocks.
const SKEW_SECONDS: i64 = 60;
/// The lifetime of the tokens issued (Entra's `expires_in` is about an hour).
const EXPIRES_IN: u32 = 3599;

/// A federated identity credential as Entra holds it for an application:
/// it trusts assertions from `issuer` about `subject` for `audience`.
#[derive(Debug, Clone, PartialEq)]
pub struct Federation {
    /// The application (client) id the workload names.
    pub client_id: String,
    /// The service-account issuer (`iss`), compared exactly.
    pub issuer: String,
    /// `system:serviceaccount:NAMESPACE:NAME` (`sub`), compared exactly.
    pub subject: String,
    /// One of the assertion's `aud`; [`Federation::DEFAULT_AUDIENCE`] by default.
    pub audience: String,
    /// The issuer's JWK Set (as Kubernetes serves at `/openid/v1/jwks`):
    /// when given, the assertion's RS256 signature must verify with it.
    pub jwks: Option<serde_json::Value>,
}

impl Federation {
    /// The audience Entra expects of a federated assertion.
    pub const DEFAULT_AUDIENCE: &'static str = "api://AzureADTokenExchange";

    /// A federation with the default audience and no signature check.
    pub fn new(client_id: &str, issuer: &str, subject: &str) -> Federation {
        Federation {
            client_id: client_id.to_owned(),
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            audience: Federation::DEFAULT_AUDIENCE.to_owned(),
            jwks: None,
        }
    }
}

/// The endpoint's state in the double.
#[derive(Default)]
pub(crate) struct State {
    /// The application registrations' federated credentials, one per
    /// client id (an operator and a webhook identity, say).
    pub(crate) federations: Mutex<Vec<Federation>>,
    pub(crate) issued: AtomicU32,
    pub(crate) last_refusal: Mutex<Option<String>>,
}

/// A refusal: HTTP status, OAuth `error`, AADSTS code and description.
#[derive(Debug)]
struct Refusal {
    status: u16,
    error: &'static str,
    code: u32,
    description: String,
}

fn refuse(status: u16, error: &'static str, code: u32, description: impl Into<String>) -> Refusal {
    Refusal {
        status,
        error,
        code,
        description: format!("AADSTS{code}: {} (Keyward test double)", description.into()),
    }
}

/// `invalid_client` (401): the assertion does not satisfy the federation.
fn invalid_client(code: u32, description: impl Into<String>) -> Refusal {
    refuse(401, "invalid_client", code, description)
}

/// The tenant of a token request path, `/{tenant}/oauth2/v2.0/token`.
pub(crate) fn token_path(path: &str) -> Option<&str> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [tenant, "oauth2", "v2.0", "token"] => Some(tenant),
        _ => None,
    }
}

/// [`answer`]s a request whose path is a token path.
pub(crate) fn serve(
    state: &State,
    tenant: &str,
    token: &str,
    request: &RequestParts,
) -> Response<Full<Bytes>> {
    let content_type = request
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let request = TokenRequest {
        method: &request.method,
        tenant: token_path(&request.path).unwrap_or_default(),
        content_type,
        body: &request.body,
    };
    answer(state, tenant, token, &request)
}

/// What the endpoint reads of a request to it.
struct TokenRequest<'a> {
    method: &'a Method,
    /// The tenant in the path.
    tenant: &'a str,
    content_type: Option<&'a str>,
    body: &'a [u8],
}

/// Answers a token request to the double's `tenant`: the accepted `token`
/// on success, Entra's error JSON otherwise (also kept as the state's
/// last refusal).
fn answer(
    state: &State,
    tenant: &str,
    token: &str,
    request: &TokenRequest<'_>,
) -> Response<Full<Bytes>> {
    let federations = state.federations.lock().unwrap().clone();
    match grant(&federations, tenant, request) {
        Ok(()) => {
            state.issued.fetch_add(1, Ordering::SeqCst);
            json(
                200,
                &serde_json::json!({
                    "token_type": "Bearer",
                    "expires_in": EXPIRES_IN,
                    "ext_expires_in": EXPIRES_IN,
                    "access_token": token,
                }),
            )
        }
        Err(refusal) => {
            *state.last_refusal.lock().unwrap() = Some(refusal.description.clone());
            json(
                refusal.status,
                &serde_json::json!({
                    "error": refusal.error,
                    "error_description": refusal.description,
                    "error_codes": [refusal.code],
                    "error_uri": format!("https://login.microsoftonline.com/error?code={}", refusal.code),
                }),
            )
        }
    }
}

fn json(status: u16, value: &serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .header("cache-control", "no-store, no-cache")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("valid response")
}

fn grant(
    federations: &[Federation],
    tenant: &str,
    request: &TokenRequest<'_>,
) -> Result<(), Refusal> {
    if request.method != Method::POST {
        return Err(refuse(
            405,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
        ));
    }
    if request.tenant != tenant {
        return Err(refuse(
            400,
            "invalid_request",
            90002,
            format!("Tenant '{}' not found.", request.tenant),
        ));
    }
    // A body that is not a form has none of the parameters.
    let is_form = request
        .content_type
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let form = if is_form {
        keyward_double_kit::parse_query(&String::from_utf8_lossy(request.body))
    } else {
        Default::default()
    };
    let param = |name: &'static str| {
        form.get(name).map(String::as_str).ok_or_else(|| {
            refuse(
                400,
                "invalid_request",
                900144,
                format!("The request body must contain the following parameter: '{name}'."),
            )
        })
    };
    let grant_type = param("grant_type")?;
    if grant_type != "client_credentials" {
        return Err(refuse(
            400,
            "unsupported_grant_type",
            70003,
            format!(
                "The app requested an unsupported grant type '{grant_type}'; the double serves only 'client_credentials'."
            ),
        ));
    }
    let client_id = param("client_id")?;
    let scope = param("scope")?;
    let assertion_type = param("client_assertion_type")?;
    let assertion = param("client_assertion")?;
    if assertion_type != ASSERTION_TYPE {
        return Err(refuse(
            400,
            "invalid_request",
            50027,
            format!(
                "The client_assertion_type '{assertion_type}' is not supported; expected '{ASSERTION_TYPE}'."
            ),
        ));
    }
    if federations.is_empty() {
        return Err(refuse(
            400,
            "invalid_request",
            70021,
            "No federated identity credential is configured on the double (Options::federation).",
        ));
    }
    let Some(federation) = federations.iter().find(|f| f.client_id == client_id) else {
        return Err(refuse(
            400,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        ));
    };
    if scope.split(' ').any(|s| !s.ends_with("/.default")) {
        return Err(refuse(
            400,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier."
            ),
        ));
    }
    check_assertion(federation, assertion)
}

/// The assertion against the federation: claims first, then signature,
/// then time (as Entra reports a mismatch before an expiry).
fn check_assertion(federation: &Federation, assertion: &str) -> Result<(), Refusal> {
    let jwt = Jwt::parse(assertion).map_err(|why| {
        invalid_client(50027, format!("JWT token is invalid or malformed: {why}."))
    })?;
    let issuer = jwt.text("iss").unwrap_or_default();
    if issuer != federation.issuer {
        return Err(invalid_client(
            700211,
            format!(
                "No matching federated identity record found for presented assertion issuer '{issuer}'. Please note that the matching is done using a case-sensitive comparison."
            ),
        ));
    }
    let subject = jwt.text("sub").unwrap_or_default();
    if subject != federation.subject {
        return Err(invalid_client(
            700213,
            format!(
                "No matching federated identity record found for presented assertion subject '{subject}'. Please note that the matching is done using a case-sensitive comparison."
            ),
        ));
    }
    let audiences = jwt.audiences();
    if !audiences.contains(&federation.audience.as_str()) {
        return Err(invalid_client(
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience '{}'.",
                audiences.join("', '")
            ),
        ));
    }
    if let Some(jwks) = &federation.jwks {
        jwt.verify(jwks).map_err(|why| {
            invalid_client(
                700027,
                format!("Client assertion failed signature validation: {why}."),
            )
        })?;
    }
    let malformed =
        |why: String| invalid_client(50027, format!("JWT token is invalid or malformed: {why}."));
    let now = crate::wire::unix(SystemTime::now());
    let exp = jwt
        .time("exp")
        .map_err(malformed)?
        .ok_or_else(|| malformed("it has no 'exp' claim".to_owned()))?;
    let nbf = jwt.time("nbf").map_err(malformed)?;
    if exp + SKEW_SECONDS <= now {
        return Err(invalid_client(
            700024,
            format!(
                "Client assertion is not within its valid time range: it expired {}s ago.",
                now - exp
            ),
        ));
    }
    if let Some(nbf) = nbf.filter(|nbf| *nbf - SKEW_SECONDS > now) {
        return Err(invalid_client(
            700024,
            format!(
                "Client assertion is not within its valid time range: it is not valid for {}s yet.",
                nbf - now
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_paths_name_the_tenant() {
        assert_eq!(token_path("/t1/oauth2/v2.0/token"), Some("t1"));
        assert_eq!(token_path("/t1/oauth2/token"), None);
        assert_eq!(token_path("/keys/k/create"), None);
    }

    #[test]
    fn without_a_federation_nothing_is_granted() {
        let body = format!(
            "grant_type=client_credentials&client_id=c&scope=s%2F.default&client_assertion_type={}&client_assertion=x.y.z",
            ASSERTION_TYPE.replace(':', "%3A")
        );
        let request = TokenRequest {
            method: &Method::POST,
            tenant: "t",
            content_type: Some("application/x-www-form-urlencoded"),
            body: body.as_bytes(),
        };
        let refusal = grant(&[], "t", &request).unwrap_err();
        assert_eq!(
            (refusal.status, refusal.error, refusal.code),
            (400, "invalid_request", 70021)
        );
    }
}
