//! `DataKeyRequest`: how `keyward seal` seals to a symmetric, KMS or HSM
//! key without the plaintext leaving the client. Like Kubernetes'
//! `TokenReview`, it is a question, never stored: the CLI creates one with
//! `dryRun=All`; the API server authenticates and authorises the caller,
//! and Keyward's admission webhook answers in `status` with a fresh data
//! key wrapped by the ManagedKey and the same data key sealed to the
//! caller's one-use public key (so the API server, its audit log and other
//! webhooks never see it). The webhook refuses a request that would be
//! stored, and one from a caller not allowed to create SealedSecrets in
//! the namespace.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::sealed_secret::{Access, KeyReference, Scope};
use crate::validation::DNS_SUBDOMAIN_PATTERN;

/// A fresh data key for one SealedSecret, sealed to the caller.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "keyward.io",
    version = "v1alpha1",
    kind = "DataKeyRequest",
    plural = "datakeyrequests",
    category = "keyward",
    namespaced,
    status = "DataKeyAnswer",
    derive = "PartialEq",
    doc = "A data key for sealing one SealedSecret online (`keyward seal`). Create it with dryRun=All: it is answered in status by Keyward's webhook and never stored."
)]
#[serde(rename_all = "camelCase")]
pub struct DataKeyRequestSpec {
    /// Name of the SealedSecret the data key is for (in this namespace).
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub secret_name: String,

    /// The ManagedKey to wrap the data key with.
    pub key_ref: KeyReference,

    /// The scope the values will be sealed with (bound into the wrapping).
    #[serde(default)]
    pub scope: Scope,

    /// The ServiceAccounts the values will be bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,

    /// The caller's one-use X25519 public key (32 bytes, standard base64).
    #[schemars(length(min = 44, max = 44))]
    pub recipient_public_key: String,
}

/// Keyward's answer. Everything in it is safe to log: the data key
/// appears only wrapped by the ManagedKey or sealed to the caller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataKeyAnswer {
    /// The provider key id that wrapped the data key.
    pub provider_key_id: String,
    /// The ManagedKey version (its primary) that wrapped it.
    pub key_version: u32,
    /// How the provider wrapped it (recorded in each envelope).
    pub wrap_algorithm: DataKeyWrapping,
    /// The data key wrapped by that version (standard base64).
    pub wrapped_data_key: String,
    /// Keyward's one-use X25519 public key (standard base64).
    pub sender_public_key: String,
    /// The data key sealed to `spec.recipientPublicKey` (standard base64).
    pub sealed_data_key: String,
}

/// How a data key is wrapped.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DataKeyWrapping {
    /// By a symmetric provider key, in the provider's own format.
    #[default]
    Symmetric,
    /// RSA-OAEP-SHA256 with the key version's public key.
    RsaOaepSha256,
}

impl DataKeyRequestSpec {
    /// What the sealed data key is bound to: this request's target and the
    /// wrapped form it travels with, so neither can be swapped.
    pub fn binding(&self, namespace: &str, answer: &DataKeyAnswer) -> Vec<u8> {
        let key_namespace = self.key_ref.namespace.as_deref().unwrap_or(namespace);
        format!(
            "keyward.io/datakey\n{namespace}/{}\n{key_namespace}/{}\n{}\n{}\n{:?}\n{}\n{}",
            self.secret_name,
            self.key_ref.name,
            answer.provider_key_id,
            answer.key_version,
            answer.wrap_algorithm,
            answer.wrapped_data_key,
            self.recipient_public_key,
        )
        .into_bytes()
    }
}
