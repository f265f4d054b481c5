//! The client assertion a workload presents to the double's Entra token
//! endpoint: a compact JWT (a Kubernetes projected service-account
//! token), read and, when the federation holds the issuer's JWKS,
//! verified (RS256 only, as Kubernetes signs). Kept apart from the
//! endpoint so the JOSE details are in one place; nothing here ever
//! formats the assertion itself into a message.

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;

/// A JWT split into what the double checks.
#[derive(Debug)]
pub(crate) struct Jwt {
    pub(crate) header: serde_json::Value,
    pub(crate) claims: serde_json::Value,
    /// `BASE64URL(header) "." BASE64URL(payload)`, what the signature covers.
    signing_input: String,
    signature: Vec<u8>,
}

fn unb64url(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|e| format!("not base64url: {e}"))
}

fn json_object(part: &str, what: &str) -> Result<serde_json::Value, String> {
    let bytes = unb64url(part).map_err(|e| format!("the {what} is {e}"))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| format!("the {what} is not JSON"))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(format!("the {what} is not a JSON object"))
    }
}

impl Jwt {
    /// Splits a compact JWS; the error says which part is wrong, never
    /// what it holds.
    pub(crate) fn parse(compact: &str) -> Result<Jwt, String> {
        let parts: Vec<&str> = compact.trim().split('.').collect();
        let [header, payload, signature] = parts.as_slice() else {
            return Err(format!(
                "a compact JWT has 3 dot-separated parts, this has {}",
                parts.len()
            ));
        };
        Ok(Jwt {
            header: json_object(header, "header")?,
            claims: json_object(payload, "payload")?,
            signing_input: format!("{header}.{payload}"),
            signature: unb64url(signature).map_err(|e| format!("the signature is {e}"))?,
        })
    }

    /// A string claim, if present.
    pub(crate) fn text(&self, claim: &str) -> Option<&str> {
        self.claims.get(claim).and_then(|v| v.as_str())
    }

    /// A NumericDate claim (seconds since the epoch), if present.
    pub(crate) fn time(&self, claim: &str) -> Result<Option<i64>, String> {
        match self.claims.get(claim) {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                .or_else(|| value.as_f64().map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| format!("the '{claim}' claim is not a NumericDate")),
        }
    }

    /// `aud`, a string or an array of strings (RFC 7519 4.1.3).
    pub(crate) fn audiences(&self) -> Vec<&str> {
        match self.claims.get("aud") {
            Some(serde_json::Value::String(one)) => vec![one.as_str()],
            Some(serde_json::Value::Array(many)) => {
                many.iter().filter_map(|v| v.as_str()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Checks the RS256 signature against the keys of `jwks` (a JWK Set
    /// as Kubernetes serves at `/openid/v1/jwks`): the key named by the
    /// header's `kid`, or every RSA key when there is no `kid`.
    pub(crate) fn verify(&self, jwks: &serde_json::Value) -> Result<(), String> {
        let alg = self.header.get("alg").and_then(|v| v.as_str());
        if alg != Some("RS256") {
            return Err(format!(
                "the assertion's signing algorithm {} is not supported, only RS256",
                alg.map(|a| format!("'{a}'"))
                    .unwrap_or_else(|| "(none)".into())
            ));
        }
        let kid = self.header.get("kid").and_then(|v| v.as_str());
        let keys: Vec<&serde_json::Value> = jwks
            .get("keys")
            .and_then(|k| k.as_array())
            .map(|keys| keys.iter().collect())
            .unwrap_or_default();
        let candidates: Vec<_> = keys
            .into_iter()
            .filter(|k| k.get("kty").and_then(|v| v.as_str()) == Some("RSA"))
            .filter(|k| k.get("use").and_then(|v| v.as_str()) != Some("enc"))
            .filter(|k| kid.is_none() || k.get("kid").and_then(|v| v.as_str()) == kid)
            .collect();
        if candidates.is_empty() {
            return Err(match kid {
                Some(kid) => format!("the issuer's JWKS has no RSA key with kid '{kid}'"),
                None => "the issuer's JWKS has no RSA signing key".to_owned(),
            });
        }
        let verified = candidates.iter().any(|key| {
            let component = |name: &str| key.get(name).and_then(|v| v.as_str()).map(unb64url);
            let (Some(Ok(n)), Some(Ok(e))) = (component("n"), component("e")) else {
                return false;
            };
            RsaPublicKeyComponents {
                n: &n[..],
                e: &e[..],
            }
            .verify(
                &RSA_PKCS1_2048_8192_SHA256,
                self.signing_input.as_bytes(),
                &self.signature,
            )
            .is_ok()
        });
        if verified {
            Ok(())
        } else {
            Err("the assertion's signature does not verify with the issuer's keys".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(value: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[test]
    fn parts_and_claims_are_read() {
        let header = b64(&serde_json::json!({ "alg": "RS256", "kid": "k1" }));
        let claims = b64(&serde_json::json!({ "iss": "i", "aud": ["a", "b"], "exp": 10.5 }));
        let jwt = Jwt::parse(&format!("{header}.{claims}.c2ln")).unwrap();
        assert_eq!(jwt.text("iss"), Some("i"));
        assert_eq!(jwt.audiences(), ["a", "b"]);
        assert_eq!(jwt.time("exp"), Ok(Some(10)));
        assert_eq!(jwt.time("nbf"), Ok(None));
        let one = b64(&serde_json::json!({ "aud": "a" }));
        assert_eq!(
            Jwt::parse(&format!("{header}.{one}.")).unwrap().audiences(),
            ["a"]
        );
    }

    #[test]
    fn malformed_tokens_are_refused_without_echo() {
        let error = Jwt::parse("secret-stuff").unwrap_err();
        assert!(error.contains("3 dot-separated parts"), "{error}");
        assert!(!error.contains("secret-stuff"));
        let header = b64(&serde_json::json!({ "alg": "RS256" }));
        let error = Jwt::parse(&format!("{header}.bm90IGpzb24.")).unwrap_err();
        assert_eq!(error, "the payload is not JSON");
        let error = Jwt::parse(&format!("{header}.{header}.***")).unwrap_err();
        assert!(
            error.starts_with("the signature is not base64url"),
            "{error}"
        );
    }

    #[test]
    fn only_rs256_with_a_known_key_is_verified() {
        let claims = b64(&serde_json::json!({}));
        let none = b64(&serde_json::json!({ "alg": "none" }));
        let jwt = Jwt::parse(&format!("{none}.{claims}.")).unwrap();
        let error = jwt.verify(&serde_json::json!({ "keys": [] })).unwrap_err();
        assert!(error.contains("'none' is not supported"), "{error}");
        let rs = b64(&serde_json::json!({ "alg": "RS256", "kid": "x" }));
        let jwt = Jwt::parse(&format!("{rs}.{claims}.")).unwrap();
        let jwks =
            serde_json::json!({ "keys": [{ "kty": "RSA", "kid": "y", "n": "AQAB", "e": "AQAB" }] });
        assert_eq!(
            jwt.verify(&jwks).unwrap_err(),
            "the issuer's JWKS has no RSA key with kid 'x'"
        );
    }
}
