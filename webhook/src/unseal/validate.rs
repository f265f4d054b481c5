//! Structural checks on what a caller sends, made before anything costs the
//! API server (TokenReview), a provider or the audit log. A request that
//! fails them is answered 400 with what is wrong, counted in
//! `keyward_unseal_invalid_total{reason}` and logged at bounded size; it
//! is not audited, since no caller was identified and its strings are
//! the caller's choice.

use super::UnsealRequest;
use keyward_crds::validation::{is_dns_label, is_dns_subdomain};

/// The most SealedSecrets one request may name. A pod lists its secrets
/// in one annotation; 32 is far above what pods use and keeps one request
/// to a bounded number of API reads and provider calls.
pub const MAX_SECRETS: usize = 32;

/// A projected ServiceAccount token is 1-2 KiB (a JWT with namespace, pod
/// and ServiceAccount names of at most 253 characters); 8 KiB leaves room.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The largest `/v1/unseal` body read: the token, two names and
/// `MAX_SECRETS` names of 253 characters fit in a fraction of it.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// At most this many characters of a caller's value are echoed or logged.
const SHOWN_CHARS: usize = 64;

/// Why a request was refused before authentication; a fixed set, so the
/// metric's label values stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not JSON of the expected shape.
    Body,
    /// Over [`MAX_BODY_BYTES`] (or cut off).
    TooLarge,
    /// Empty or over [`MAX_TOKEN_BYTES`].
    Token,
    Namespace,
    Pod,
    NoSecrets,
    /// Over [`MAX_SECRETS`], or more than a pod's rate-limit burst.
    TooManySecrets,
    SecretName,
}

impl Invalid {
    pub const ALL: [Invalid; 8] = [
        Invalid::Body,
        Invalid::TooLarge,
        Invalid::Token,
        Invalid::Namespace,
        Invalid::Pod,
        Invalid::NoSecrets,
        Invalid::TooManySecrets,
        Invalid::SecretName,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Invalid::Body => "body",
            Invalid::TooLarge => "too_large",
            Invalid::Token => "token",
            Invalid::Namespace => "namespace",
            Invalid::Pod => "pod",
            Invalid::NoSecrets => "no_secrets",
            Invalid::TooManySecrets => "too_many_secrets",
            Invalid::SecretName => "secret_name",
        }
    }
}

/// A refused request: the reason and a short message for the caller that
/// never contains the token and echoes at most [`SHOWN_CHARS`] of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Invalid,
    pub message: String,
}

fn reject<T>(reason: Invalid, message: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection {
        reason,
        message: message.into(),
    })
}

/// `value` as it may appear in a message or a log line: escaped, and cut
/// to [`SHOWN_CHARS`] characters.
pub fn shown(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(SHOWN_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(SHOWN_CHARS).is_some() {
        out.push_str(&format!("… ({} bytes)", value.len()));
    }
    out
}

/// Parses and checks a `/v1/unseal` body. `burst` is the per-pod rate
/// limit's burst: each secret costs one token, so a request for more
/// than that could never be served. Duplicate names are dropped (first
/// kept), so each secret is read and charged once.
pub fn parse(body: &[u8], burst: usize) -> Result<UnsealRequest, Rejection> {
    let Ok(mut request) = serde_json::from_slice::<UnsealRequest>(body) else {
        // serde's message can quote the input (the token): not echoed.
        return reject(
            Invalid::Body,
            "expected JSON {\"token\": string, \"namespace\": string, \"pod\": string, \"secrets\": [string]}",
        );
    };
    check(&mut request, burst)?;
    Ok(request)
}

/// The checks of [`parse`] on a decoded request.
pub fn check(request: &mut UnsealRequest, burst: usize) -> Result<(), Rejection> {
    check_token(&request.token)?;
    if !is_dns_label(&request.namespace) {
        return reject(
            Invalid::Namespace,
            format!(
                "namespace `{}` is not a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters)",
                shown(&request.namespace)
            ),
        );
    }
    if !is_dns_subdomain(&request.pod) {
        return reject(
            Invalid::Pod,
            format!(
                "pod name `{}` is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)",
                shown(&request.pod)
            ),
        );
    }
    let secrets = &mut request.secrets;
    if secrets.is_empty() {
        return reject(
            Invalid::NoSecrets,
            "`secrets` is empty: name at least one SealedSecret",
        );
    }
    if secrets.len() > MAX_SECRETS {
        return reject(
            Invalid::TooManySecrets,
            format!(
                "`secrets` names {} SealedSecrets; one request may name at most {MAX_SECRETS}",
                secrets.len()
            ),
        );
    }
    if let Some(bad) = secrets.iter().find(|name| !is_dns_subdomain(name)) {
        return reject(
            Invalid::SecretName,
            format!(
                "SealedSecret name `{}` is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)",
                shown(bad)
            ),
        );
    }
    let mut seen = std::collections::HashSet::with_capacity(secrets.len());
    secrets.retain(|name| seen.insert(name.clone()));
    if secrets.len() > burst {
        return reject(
            Invalid::TooManySecrets,
            format!(
                "`secrets` names {} SealedSecrets but each costs one of a pod's {burst} unseal tokens (--rate-burst); raise the burst or split the secrets between pods",
                secrets.len()
            ),
        );
    }
    Ok(())
}

/// A token is present and of plausible size; its content is TokenReview's.
pub fn check_token(token: &str) -> Result<(), Rejection> {
    if token.trim().is_empty() {
        return reject(Invalid::Token, "the token is empty");
    }
    if token.len() > MAX_TOKEN_BYTES {
        return reject(
            Invalid::Token,
            format!(
                "the token is {} bytes; a ServiceAccount token is at most {MAX_TOKEN_BYTES}",
                token.len()
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn body(value: Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    fn good() -> Value {
        json!({"token": "header.claims.signature", "namespace": "team-a",
               "pod": "api-7d9f.x", "secrets": ["db", "tls.cert"]})
    }

    fn with(field: &str, value: Value) -> Vec<u8> {
        let mut request = good();
        request[field] = value;
        body(request)
    }

    #[test]
    fn a_well_formed_request_passes() {
        let request = parse(&body(good()), 32).unwrap();
        assert_eq!(request.secrets, ["db", "tls.cert"]);
    }

    #[test]
    fn bad_inputs_are_refused_with_their_reason() {
        let long = "a".repeat(1024 * 1024);
        let names = |n: usize| Value::from((0..n).map(|i| format!("s{i}")).collect::<Vec<_>>());
        let cases: Vec<(&str, Vec<u8>, Invalid)> = vec![
            ("not JSON", b"{token".to_vec(), Invalid::Body),
            (
                "secrets not a list",
                with("secrets", json!("db")),
                Invalid::Body,
            ),
            ("token a number", with("token", json!(1)), Invalid::Body),
            (
                "missing pod",
                body(json!({"token": "t", "namespace": "n", "secrets": ["a"]})),
                Invalid::Body,
            ),
            ("empty token", with("token", json!("")), Invalid::Token),
            ("blank token", with("token", json!("  ")), Invalid::Token),
            (
                "huge token",
                with("token", json!("t".repeat(MAX_TOKEN_BYTES + 1))),
                Invalid::Token,
            ),
            (
                "empty namespace",
                with("namespace", json!("")),
                Invalid::Namespace,
            ),
            (
                "upper-case namespace",
                with("namespace", json!("Team")),
                Invalid::Namespace,
            ),
            (
                "dotted namespace",
                with("namespace", json!("team.a")),
                Invalid::Namespace,
            ),
            (
                "64-char namespace",
                with("namespace", json!("n".repeat(64))),
                Invalid::Namespace,
            ),
            (
                "1 MiB namespace",
                with("namespace", json!(long)),
                Invalid::Namespace,
            ),
            ("empty pod", with("pod", json!("")), Invalid::Pod),
            (
                "pod with a slash",
                with("pod", json!("../etc")),
                Invalid::Pod,
            ),
            (
                "254-char pod",
                with("pod", json!("p".repeat(254))),
                Invalid::Pod,
            ),
            ("pod ending in -", with("pod", json!("api-")), Invalid::Pod),
            ("no secrets", with("secrets", json!([])), Invalid::NoSecrets),
            (
                "33 secrets",
                with("secrets", names(33)),
                Invalid::TooManySecrets,
            ),
            (
                "10,000 secrets",
                with("secrets", names(10_000)),
                Invalid::TooManySecrets,
            ),
            (
                "empty secret name",
                with("secrets", json!(["db", ""])),
                Invalid::SecretName,
            ),
            (
                "secret with a slash",
                with("secrets", json!(["a/b"])),
                Invalid::SecretName,
            ),
            (
                "secret ..",
                with("secrets", json!([".."])),
                Invalid::SecretName,
            ),
            (
                "254-char secret",
                with("secrets", json!(["s".repeat(254)])),
                Invalid::SecretName,
            ),
            (
                "1 MiB secret",
                with("secrets", json!([long])),
                Invalid::SecretName,
            ),
        ];
        for (what, input, reason) in cases {
            let refused = parse(&input, MAX_SECRETS).err();
            assert_eq!(
                refused.as_ref().map(|r| r.reason),
                Some(reason),
                "{what}: {refused:?}"
            );
            let message = refused.map(|r| r.message).unwrap_or_default();
            assert!(
                message.len() < 300,
                "{what}: a {}-byte message",
                message.len()
            );
        }
    }

    #[test]
    fn edge_lengths_are_accepted() {
        let ok = |field: &str, value: Value| parse(&with(field, value), MAX_SECRETS);
        assert!(ok("namespace", json!("n".repeat(63))).is_ok());
        assert!(
            ok(
                "pod",
                json!(format!("{}.{}", "p".repeat(126), "q".repeat(126)))
            )
            .is_ok()
        );
        assert!(ok("secrets", json!(["s".repeat(253)])).is_ok());
        assert!(ok("token", json!("t".repeat(MAX_TOKEN_BYTES))).is_ok());
        let names: Vec<String> = (0..MAX_SECRETS).map(|i| format!("s{i}")).collect();
        assert!(ok("secrets", json!(names)).is_ok());
    }

    #[test]
    fn duplicates_are_dropped_before_the_burst_is_compared() {
        let request = parse(&with("secrets", json!(["db", "api", "db", "db"])), 2).unwrap();
        assert_eq!(request.secrets, ["db", "api"], "first kept, order kept");
        let refused = parse(&with("secrets", json!(["a", "b", "c"])), 2).unwrap_err();
        assert_eq!(refused.reason, Invalid::TooManySecrets);
        assert!(
            refused.message.contains("--rate-burst"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn messages_never_echo_the_token_and_cut_long_values() {
        let secret_token = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2ln";
        for input in [
            body(json!({"token": secret_token, "namespace": "n", "pod": "p", "secrets": "x"})),
            body(json!({"token": secret_token, "namespace": "N", "pod": "p", "secrets": ["x"]})),
            body(json!({"token": secret_token, "namespace": "n", "pod": "p", "secrets": []})),
        ] {
            let message = parse(&input, MAX_SECRETS).unwrap_err().message;
            assert!(!message.contains("eyJ"), "{message}");
        }
        let long = format!("{}\u{1b}[31m", "x".repeat(2000));
        let message = parse(&with("pod", json!(long)), MAX_SECRETS)
            .unwrap_err()
            .message;
        assert!(
            message.contains("… (2005 bytes)") && message.len() < 250,
            "{message}"
        );
        let escaped = parse(&with("pod", json!("a\u{1b}[31m")), MAX_SECRETS)
            .unwrap_err()
            .message;
        assert!(
            !escaped.contains('\u{1b}'),
            "control characters are escaped: {escaped}"
        );
    }

    #[test]
    fn labels_are_distinct() {
        let labels: std::collections::HashSet<_> = Invalid::ALL.iter().map(|i| i.label()).collect();
        assert_eq!(labels.len(), Invalid::ALL.len());
    }
}
