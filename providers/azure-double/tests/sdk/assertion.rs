//! Kubernetes-like service-account tokens for the workload identity
//! tests: an RS256 issuer key made per test, its JWKS (as
//! `/openid/v1/jwks` serves it), and projected tokens written to a file
//! as the kubelet does.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use keyward_azure_double::Federation;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
pub const SUBJECT: &str = "system:serviceaccount:keyward-system:keyward-operator";
pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A service-account issuer's signing key.
pub struct Issuer {
    key: KeyPair,
    pub kid: String,
}

impl Issuer {
    pub fn new(kid: &str) -> Issuer {
        Issuer {
            key: KeyPair::generate(KeySize::Rsa2048).expect("RSA key"),
            kid: kid.to_owned(),
        }
    }

    pub fn jwks(&self) -> serde_json::Value {
        let public = self.key.public_key();
        serde_json::json!({ "keys": [{
            "use": "sig",
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        }]})
    }

    /// The federation that trusts this issuer's tokens for the operator's
    /// service account, signature checked.
    pub fn federation(&self) -> Federation {
        Federation {
            jwks: Some(self.jwks()),
            ..Federation::new(CLIENT_ID, ISSUER, SUBJECT)
        }
    }

    /// An RS256 JWT of `claims`, with this issuer's `kid`.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({ "alg": "RS256", "kid": self.kid });
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .expect("sign");
        format!("{input}.{}", b64(&signature))
    }
}

/// The claims of a projected token for the operator, valid for an hour.
pub fn claims() -> serde_json::Value {
    let now = now();
    serde_json::json!({
        "aud": [Federation::DEFAULT_AUDIENCE],
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "iss": ISSUER,
        "sub": SUBJECT,
        "kubernetes.io": {
            "namespace": "keyward-system",
            "serviceaccount": { "name": "keyward-operator", "uid": "0d6d1c2e" }
        }
    })
}

/// `token` in a file, as the kubelet projects it.
pub fn token_file(token: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(token.as_bytes()).expect("write token");
    file
}
