//! Admission of a `SignatureRequest` (`keyward_crds::signature_request`):
//! the API server has authenticated the caller; this checks, by
//! SubjectAccessReview in the key's namespace, that they may `sign` with
//! that ManagedKey (a verb no built-in role grants, so signing is given on
//! purpose), that the key is a signing key whose primary version is
//! Active, then has the provider sign and answers in `status`.
//!
//! Refused: a request that would be stored, a caller over their rate
//! limit or without the right, a key that is not a signing key or not
//! Active. Every answer and every refusal after
//! authentication is audited (`key.sign`, with the SHA-256 of what was
//! signed), and no signature is given that could not be recorded.

use crate::admission::Request;
use crate::question;
use crate::rewrap::authorise::{self, Refusal};
use crate::unseal::Unsealer;
use crate::unseal::authorise::Denial;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_core::audit::Event;
use keyward_core::crypto::pem::{spki_from_pem, spki_to_pem};
use keyward_core::crypto::signing::{self, MAX_MESSAGE, ToSign};
use keyward_crds::{KeyState, KeyUsage, ManagedKey, SignatureAnswer, SignatureRequest};
use kube::Api;
use std::sync::Arc;

/// Prefix of a caller's bucket in the shared limiter.
const RATE_KEY_PREFIX: &str = "sign-user:";

/// The answer to put in `status`, or the sentence to deny with.
pub async fn answer(
    unsealer: &Arc<Unsealer>,
    request: &Request,
) -> Result<SignatureAnswer, String> {
    let (asked, namespace) = question::asked::<SignatureRequest>(request, "SignatureRequest")?;
    let input = to_sign(&asked)?;
    let key_namespace = asked
        .spec
        .key_ref
        .namespace
        .as_deref()
        .unwrap_or(&namespace);
    let asking = Asking {
        unsealer,
        namespace: key_namespace,
        asked: &asked,
        request,
        digest: hex(&input.sha256()),
    };
    let actor = request.user_info.username.clone().unwrap_or_default();
    match asking.authorised().await {
        Ok(()) => {}
        Err(Refusal::Limited) => {
            asking.audit("denied", Some("rate limited".into())).await;
            return Err(format!(
                "too many signature requests from `{actor}`; retry in a few seconds"
            ));
        }
        Err(Refusal::Denied(Denial { reason, .. })) => {
            asking.audit("denied", Some(reason.clone())).await;
            return Err(format!(
                "{reason}; an admin of `{key_namespace}` grants it with a Role allowing verb \
                 `sign` on managedkeys (resourceNames: [{}])",
                asked.spec.key_ref.name
            ));
        }
        Err(Refusal::Internal(error)) => {
            tracing::error!(%error, "signature authorisation failed");
            asking.audit("failed", Some(error)).await;
            return Err("cannot check your access right now; retry".into());
        }
    }
    match asking.signed(&input).await {
        Ok(answer) => {
            if !asking.audit_signed(&answer).await {
                return Err("cannot write the audit log, so no signature is given; retry".into());
            }
            Ok(answer)
        }
        Err(reason) => {
            asking.audit("refused", Some(reason.clone())).await;
            Err(reason)
        }
    }
}

/// What is signed: exactly one of `spec.sha256` and `spec.message`.
fn to_sign(asked: &SignatureRequest) -> Result<ToSign, String> {
    let decode = |field: &str, text: &str| {
        STANDARD
            .decode(text)
            .map_err(|_| format!("spec.{field} is not standard base64"))
    };
    match (&asked.spec.sha256, &asked.spec.message) {
        (Some(digest), None) => {
            let digest: [u8; 32] = decode("sha256", digest)?
                .try_into()
                .map_err(|_| "spec.sha256 must be a SHA-256 digest (32 bytes)".to_owned())?;
            Ok(ToSign::Sha256(digest))
        }
        (None, Some(message)) => {
            let message = decode("message", message)?;
            if message.len() > MAX_MESSAGE {
                return Err(format!(
                    "spec.message is {} bytes; at most {MAX_MESSAGE} are signed whole, so send \
                     its SHA-256 in spec.sha256 (RSA and ECP256 keys)",
                    message.len()
                ));
            }
            Ok(ToSign::Message(message))
        }
        _ => Err("set exactly one of spec.sha256 and spec.message".into()),
    }
}

struct Asking<'a> {
    unsealer: &'a Arc<Unsealer>,
    /// The key's namespace, where the right to sign is checked.
    namespace: &'a str,
    asked: &'a SignatureRequest,
    request: &'a Request,
    /// SHA-256 of what is signed, hex, for the audit log.
    digest: String,
}

impl Asking<'_> {
    /// Rate limit, then `sign managedkeys/<name>` in the key's namespace.
    async fn authorised(&self) -> Result<(), Refusal> {
        let user = &self.request.user_info;
        let actor = user.username.as_deref().unwrap_or_default();
        if !self
            .unsealer
            .limiter
            .allow(&format!("{RATE_KEY_PREFIX}{actor}"))
        {
            return Err(Refusal::Limited);
        }
        let name = Some(self.asked.spec.key_ref.name.as_str());
        authorise::may_on(
            &self.unsealer.client,
            user,
            "sign",
            "managedkeys",
            self.namespace,
            name,
        )
        .await
    }

    fn reference(&self) -> String {
        format!("{}/{}", self.namespace, self.asked.spec.key_ref.name)
    }

    async fn signed(&self, input: &ToSign) -> Result<SignatureAnswer, String> {
        let api: Api<ManagedKey> = Api::namespaced(self.unsealer.client.clone(), self.namespace);
        let key = api
            .get_opt(&self.asked.spec.key_ref.name)
            .await
            .map_err(|error| {
                tracing::error!(%error, "reading the ManagedKey for a signature");
                "cannot read the ManagedKey; retry".to_owned()
            })?;
        let key_id = signing_key(key.as_ref(), &self.reference())?;
        // The version the cluster reports primary, not the provider's own
        // view, which may be behind a rotation (the local keyring cache).
        let primary = key
            .as_ref()
            .and_then(|k| k.status.as_ref())
            .and_then(|s| s.primary_version);
        let provider = self.unsealer.provider.wrapping_provider();
        let signature = provider.sign(&key_id, primary, input).await.map_err(|e| {
            if e.is_retryable() {
                format!("the key provider is unavailable ({e}); retry")
            } else {
                format!("cannot sign with ManagedKey {}: {e}", self.reference())
            }
        })?;
        // Checked on the version the provider used, which a rotation in
        // flight may have moved past the one the status reports.
        let key = key.as_ref().expect("signing_key checked it exists");
        version_may_sign(key, &self.reference(), signature.version)?;
        let public_key = key
            .status
            .as_ref()
            .and_then(|s| s.version(signature.version))
            .and_then(|v| v.public_key.clone());
        let public_key = match public_key {
            Some(pem) => pem,
            None => {
                let verifying = provider
                    .verifying_key(&key_id, Some(signature.version))
                    .await
                    .map_err(|e| {
                        format!("cannot read the public key of the signing version: {e}")
                    })?;
                spki_to_pem(&verifying.spki_der)
            }
        };
        // A faulty signature (an RSA-CRT fault can leak the private key)
        // is never handed out: checked against the version's public key.
        let spki = spki_from_pem(&public_key)
            .map_err(|_| "the signing version's public key is not PEM; retry".to_owned())?;
        if let Err(error) = signing::verify(signature.algorithm, &spki, input, &signature.bytes) {
            tracing::error!(%error, key = %self.reference(), version = signature.version,
                "the provider's signature does not verify; not handed out");
            return Err(format!(
                "the key provider returned a signature that does not verify with version {} of \
                 ManagedKey {}; nothing was signed, report it to the key's administrators",
                signature.version,
                self.reference()
            ));
        }
        Ok(SignatureAnswer {
            provider_key_id: signature.key_id,
            key_version: signature.version,
            algorithm: signature.algorithm.jose_name().to_owned(),
            signature: STANDARD.encode(&signature.bytes),
            public_key,
        })
    }

    async fn audit(&self, outcome: &str, reason: Option<String>) -> bool {
        let mut detail = vec![("sha256", self.digest.clone())];
        if let Some(reason) = reason {
            detail.push(("reason", reason));
        }
        self.record(outcome, detail).await
    }

    async fn audit_signed(&self, answer: &SignatureAnswer) -> bool {
        let detail = vec![
            ("sha256", self.digest.clone()),
            ("version", answer.key_version.to_string()),
            ("algorithm", answer.algorithm.clone()),
        ];
        self.record("ok", detail).await
    }

    /// Appends to the audit log; false (and logged) when it cannot.
    async fn record(&self, outcome: &str, mut detail: Vec<(&str, String)>) -> bool {
        if let Some(why) = &self.asked.spec.reason {
            detail.push(("why", why.clone()));
        }
        let event = Event {
            actor: self.request.user_info.username.clone().unwrap_or_default(),
            action: "key.sign".into(),
            subject: self.reference(),
            outcome: outcome.to_owned(),
            detail: detail.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        };
        question::audited(&self.unsealer.audit, event).await
    }
}

/// The provider key id of a signing key whose primary may sign, or why not.
fn signing_key(key: Option<&ManagedKey>, reference: &str) -> Result<String, String> {
    let Some(key) = key else {
        return Err(format!("ManagedKey {reference} does not exist"));
    };
    if key.spec.usage != KeyUsage::Sign {
        return Err(format!(
            "ManagedKey {reference} has usage {}, not Sign; signing needs a key made with \
             `usage: Sign`",
            key.spec.usage
        ));
    }
    if key.metadata.deletion_timestamp.is_some() {
        return Err(format!("ManagedKey {reference} is pending deletion"));
    }
    let status = key.status.as_ref();
    let (Some(key_id), Some(state)) = (
        status.and_then(|s| s.provider_key_id.clone()),
        status.and_then(|s| s.state),
    ) else {
        return Err(format!(
            "ManagedKey {reference} is not Ready yet (is the keyward operator running?); retry \
             once `kubectl get managedkey` shows it Active"
        ));
    };
    if state != KeyState::Active {
        return Err(format!(
            "ManagedKey {reference} is {state}, and only an Active key signs; its older \
             signatures still verify with `keyward verify`"
        ));
    }
    Ok(key_id)
}

/// The version that signed must be Active and not scheduled for destruction.
fn version_may_sign(key: &ManagedKey, reference: &str, number: u32) -> Result<(), String> {
    let version = key.status.as_ref().and_then(|s| s.version(number));
    match version {
        Some(v) if v.state == KeyState::Active && v.destroy_scheduled_at.is_none() => Ok(()),
        Some(v) => Err(format!(
            "version {number} of ManagedKey {reference} is {}; only an Active version signs",
            v.state
        )),
        // A rotation the operator has not reported yet: retry once it has.
        None => Err(format!(
            "version {number} of ManagedKey {reference} is not reported yet (a rotation in \
             flight); retry"
        )),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(spec: serde_json::Value) -> SignatureRequest {
        serde_json::from_value(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "SignatureRequest",
            "metadata": {"name": "x"}, "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn exactly_one_input_of_the_right_size_is_taken() {
        let digest = STANDARD.encode([7u8; 32]);
        let message = STANDARD.encode(b"hello");
        assert!(matches!(
            to_sign(&request(json!({"keyRef": {"name": "k"}, "sha256": digest}))),
            Ok(ToSign::Sha256(_))
        ));
        assert!(matches!(
            to_sign(&request(json!({"keyRef": {"name": "k"}, "message": message}))),
            Ok(ToSign::Message(m)) if m == b"hello"
        ));
        for (spec, expected) in [
            (json!({"keyRef": {"name": "k"}}), "exactly one"),
            (
                json!({"keyRef": {"name": "k"}, "sha256": digest, "message": message}),
                "exactly one",
            ),
            (
                json!({"keyRef": {"name": "k"}, "sha256": STANDARD.encode([1u8; 31])}),
                "32 bytes",
            ),
            (
                json!({"keyRef": {"name": "k"}, "sha256": "not base64!"}),
                "not standard base64",
            ),
            (
                json!({"keyRef": {"name": "k"}, "message": STANDARD.encode(vec![0u8; 4097])}),
                "at most 4096",
            ),
        ] {
            let error = to_sign(&request(spec)).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }

    fn key(usage: &str, state: Option<&str>, versions: serde_json::Value) -> ManagedKey {
        let mut key = json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": {"name": "release", "namespace": "ci"},
            "spec": {"provider": {"local": {}}, "algorithm": "ECP256", "usage": usage},
        });
        if let Some(state) = state {
            key["status"] =
                json!({"providerKeyId": "local-1", "state": state, "versions": versions});
        }
        serde_json::from_value(key).unwrap()
    }

    #[test]
    fn only_an_active_signing_key_signs() {
        let active = json!([{"version": 1, "state": "Active"}]);
        assert_eq!(
            signing_key(
                Some(&key("Sign", Some("Active"), active.clone())),
                "ci/release"
            ),
            Ok("local-1".to_owned())
        );
        for (key, expected) in [
            (None, "does not exist"),
            (
                Some(key("Seal", Some("Active"), active.clone())),
                "not Sign",
            ),
            (Some(key("Sign", None, active.clone())), "not Ready yet"),
            (
                Some(key("Sign", Some("Suspended"), active.clone())),
                "only an Active key signs",
            ),
            (
                Some(key("Sign", Some("Compromised"), active)),
                "Compromised",
            ),
        ] {
            let error = signing_key(key.as_ref(), "ci/release").unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
        let rotated = key(
            "Sign",
            Some("Active"),
            json!([{"version": 1, "state": "Deactivated"}, {"version": 2, "state": "Active"}]),
        );
        assert!(version_may_sign(&rotated, "ci/release", 2).is_ok());
        assert!(
            version_may_sign(&rotated, "ci/release", 1)
                .unwrap_err()
                .contains("Deactivated")
        );
        assert!(
            version_may_sign(&rotated, "ci/release", 3)
                .unwrap_err()
                .contains("retry")
        );
    }
}
