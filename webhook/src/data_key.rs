//! Admission of a `DataKeyRequest` (`keyward_crds::data_key_request`): the
//! API server has authenticated the caller and authorised `create
//! datakeyrequests`; this answers in `status` with a fresh data key wrapped
//! by the named ManagedKey's primary version and the same key sealed to the
//! caller's one-use public key (`keyward_core::crypto::dek_transport`).
//!
//! Refused: a request that would be stored (only `dryRun=All` is
//! answered), a caller not allowed `create sealedsecrets` in the namespace
//! (SubjectAccessReview on the identity the API server passed), a caller
//! over their rate limit, and a key that is not shared with the namespace
//! or not Active. The caller may be told why: they are authenticated, and
//! nothing here is secret. Every answer and every refusal after
//! authentication is audited (`secret.datakey`).
//!
//! The answer grants sealing only, what an RSA `Seal` key's public half
//! grants anyone; the SealedSecret still needs someone allowed to apply it.

use crate::admission::Request;
use crate::key_state::sharing;
use crate::key_state::{Keys, wrapping};
use crate::question;
use crate::rewrap::authorise::{self, Refusal};
use crate::unseal::Unsealer;
use crate::unseal::authorise::Denial;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::authentication::v1::UserInfo;
use keyward_core::Dek;
use keyward_core::audit::Event;
use keyward_core::crypto::dek_transport;
use keyward_core::envelope::SecretTarget;
use keyward_core::provider::WrapAlgorithm;
use keyward_crds::{
    DataKeyAnswer, DataKeyRequest, DataKeyWrapping, SealedSecret, SealedSecretSpec,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Prefix of a caller's bucket in the shared limiter.
const RATE_KEY_PREFIX: &str = "datakey-user:";

/// The answer to put in `status`, or the sentence to deny with.
pub async fn answer(unsealer: &Arc<Unsealer>, request: &Request) -> Result<DataKeyAnswer, String> {
    let Asked {
        asked,
        namespace,
        recipient,
    } = asked(request)?;
    let user = request.user_info.clone();
    let asking = Asking {
        unsealer,
        namespace: &namespace,
        asked: &asked,
        user: &user,
    };
    let actor = user.username.clone().unwrap_or_default();
    match asking.authorised().await {
        Ok(()) => {}
        Err(Refusal::Limited) => {
            asking
                .audit("denied", [("reason", "rate limited".into())])
                .await;
            return Err(format!(
                "too many data key requests from `{actor}`; retry in a few seconds"
            ));
        }
        Err(Refusal::Denied(Denial { reason, .. })) => {
            asking.audit("denied", [("reason", reason.clone())]).await;
            return Err(reason);
        }
        Err(Refusal::Internal(error)) => {
            tracing::error!(%error, "data key authorisation failed");
            asking.audit("failed", [("reason", error)]).await;
            return Err("cannot check your access right now; retry".into());
        }
    }
    match asking.wrapped(&recipient).await {
        Ok(answer) => {
            let detail = [
                ("key", asking.key_reference()),
                ("version", answer.key_version.to_string()),
            ];
            if !asking.audit("ok", detail).await {
                return Err("cannot write the audit log, so no data key is given; retry".into());
            }
            Ok(answer)
        }
        Err(reason) => {
            asking.audit("refused", [("reason", reason.clone())]).await;
            Err(reason)
        }
    }
}

/// A well-formed request, before any API call.
struct Asked {
    asked: DataKeyRequest,
    namespace: String,
    recipient: Vec<u8>,
}

/// Checks what needs no API call: a dry-run create of a namespaced
/// request carrying a 32-byte X25519 public key.
fn asked(request: &Request) -> Result<Asked, String> {
    let (asked, namespace) = question::asked::<DataKeyRequest>(request, "DataKeyRequest")?;
    let recipient = STANDARD
        .decode(&asked.spec.recipient_public_key)
        .ok()
        .filter(|key| key.len() == dek_transport::PUBLIC_KEY_LEN)
        .ok_or_else(|| {
            "spec.recipientPublicKey is not a base64 X25519 public key (32 bytes)".to_owned()
        })?;
    Ok(Asked {
        asked,
        namespace,
        recipient,
    })
}

struct Asking<'a> {
    unsealer: &'a Arc<Unsealer>,
    namespace: &'a str,
    asked: &'a DataKeyRequest,
    user: &'a UserInfo,
}

impl Asking<'_> {
    /// Rate limit, then `create sealedsecrets` in the namespace.
    async fn authorised(&self) -> Result<(), Refusal> {
        let actor = self.user.username.as_deref().unwrap_or_default();
        if !self
            .unsealer
            .limiter
            .allow(&format!("{RATE_KEY_PREFIX}{actor}"))
        {
            return Err(Refusal::Limited);
        }
        authorise::may(
            &self.unsealer.client,
            self.user,
            "create",
            self.namespace,
            None,
        )
        .await
    }

    /// The SealedSecret the data key is for, as far as the key checks go.
    fn sealed_secret(&self) -> SealedSecret {
        let spec = &self.asked.spec;
        let mut sealed = SealedSecret::new(
            &spec.secret_name,
            SealedSecretSpec {
                key_ref: spec.key_ref.clone(),
                scope: spec.scope,
                access: spec.access.clone(),
                encrypted_data: BTreeMap::new(),
                template: None,
            },
        );
        sealed.metadata.namespace = Some(self.namespace.to_owned());
        sealed
    }

    fn key_reference(&self) -> String {
        let key_ref = &self.asked.spec.key_ref;
        let namespace = key_ref.namespace.as_deref().unwrap_or(self.namespace);
        format!("{namespace}/{}", key_ref.name)
    }

    /// A fresh DEK wrapped by the key's primary version, sealed to `recipient`.
    async fn wrapped(&self, recipient: &[u8]) -> Result<DataKeyAnswer, String> {
        let sealed = self.sealed_secret();
        let key = Keys::new(self.unsealer.client.clone())
            .of(&sealed, self.namespace)
            .await
            .map_err(|error| {
                tracing::error!(%error, "reading the ManagedKey for a data key");
                "cannot read the ManagedKey; retry".to_owned()
            })?;
        if let Some(why) = sharing::sharing(&key).refusal() {
            return Err(why);
        }
        let Some(key_id) = key
            .key
            .as_deref()
            .and_then(|k| k.status.as_ref())
            .and_then(|s| s.provider_key_id.clone())
        else {
            return Err(format!(
                "ManagedKey {} does not exist or is not Ready yet; check `keyward status {}`",
                key.reference, key.reference
            ));
        };
        let target: SecretTarget =
            crate::validate::target_of(&sealed, self.namespace, &self.asked.spec.secret_name);
        let dek = Dek::generate();
        let provider = self.unsealer.provider.wrapping_provider();
        let context = target.wrap_context();
        let wrapping = match key.primary_version() {
            Some(version) => {
                (provider.wrap_dek_with_version(&key_id, version, &dek, &context)).await
            }
            None => provider.wrap_dek(&key_id, &dek, &context).await,
        };
        let wrapped = wrapping.map_err(|e| {
            if e.is_retryable() {
                format!("the key provider is unavailable ({e}); retry")
            } else {
                format!(
                    "cannot wrap a data key with ManagedKey {}: {e}",
                    key.reference
                )
            }
        })?;
        // Checked on the version the provider used, which a rotation in
        // flight may have moved past the one the status reports.
        wrapping::usable_for_wrapping(
            key.key.as_deref(),
            &key.reference,
            &key_id,
            wrapped.version,
        )?;
        let mut answer = DataKeyAnswer {
            provider_key_id: wrapped.key_id.clone(),
            key_version: wrapped.version,
            wrap_algorithm: match wrapped.algorithm {
                WrapAlgorithm::Symmetric => DataKeyWrapping::Symmetric,
                WrapAlgorithm::RsaOaepSha256 => DataKeyWrapping::RsaOaepSha256,
            },
            wrapped_data_key: STANDARD.encode(&wrapped.blob),
            sender_public_key: String::new(),
            sealed_data_key: String::new(),
        };
        let binding = self.asked.spec.binding(self.namespace, &answer);
        let sent = dek_transport::seal_to(recipient, &dek, &binding).map_err(|e| e.to_string())?;
        answer.sender_public_key = STANDARD.encode(&sent.sender_public);
        answer.sealed_data_key = STANDARD.encode(&sent.ciphertext);
        Ok(answer)
    }

    /// Appends to the audit log; false (and logged) when it cannot.
    async fn audit<const N: usize>(&self, outcome: &str, detail: [(&str, String); N]) -> bool {
        let event = Event {
            actor: self.user.username.clone().unwrap_or_default(),
            action: "secret.datakey".into(),
            subject: format!("{}/{}", self.namespace, self.asked.spec.secret_name),
            outcome: outcome.to_owned(),
            detail: detail.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        };
        question::audited(&self.unsealer.audit, event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Review;
    use serde_json::json;

    fn request(dry_run: bool, operation: &str, recipient: &str) -> Request {
        let review: Review = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "keyward.io", "version": "v1alpha1", "kind": "DataKeyRequest"},
                "resource": {"group": "keyward.io", "version": "v1alpha1", "resource": "datakeyrequests"},
                "namespace": "shop", "operation": operation, "dryRun": dry_run,
                "userInfo": {"username": "dev"},
                "object": {
                    "apiVersion": "keyward.io/v1alpha1", "kind": "DataKeyRequest",
                    "metadata": {"name": "keyward-seal", "namespace": "shop"},
                    "spec": {"secretName": "db", "keyRef": {"name": "app"},
                             "recipientPublicKey": recipient},
                },
            },
        }))
        .unwrap();
        crate::admission::request(review).map_err(|_| ()).unwrap()
    }

    #[test]
    fn only_a_dry_run_create_with_a_32_byte_key_is_asked() {
        let key = STANDARD.encode([9u8; 32]);
        let ok = asked(&request(true, "CREATE", &key)).unwrap();
        assert_eq!(ok.namespace, "shop");
        assert_eq!(ok.recipient, [9u8; 32]);
        assert_eq!(ok.asked.spec.secret_name, "db");

        let stored = asked(&request(false, "CREATE", &key)).err().unwrap();
        assert!(stored.contains("dryRun=All"), "{stored}");
        let updated = asked(&request(true, "UPDATE", &key)).err().unwrap();
        assert!(updated.contains("is only created"), "{updated}");
        for bad in [STANDARD.encode([9u8; 31]), "not base64!".into()] {
            let error = asked(&request(true, "CREATE", &bad)).err().unwrap();
            assert!(error.contains("recipientPublicKey"), "{error}");
        }
    }
}
