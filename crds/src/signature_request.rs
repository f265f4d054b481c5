//! `SignatureRequest`: how `keyward sign` signs with a signing key
//! (ManagedKey with usage `Sign`) whose private half never leaves its
//! provider. Like `DataKeyRequest`, a question never stored: the CLI
//! creates one with `dryRun=All`, the API server authenticates the caller,
//! and Keyward's admission webhook answers in `status` once a
//! SubjectAccessReview allows the caller the verb `sign` on that
//! ManagedKey (`managedkeys.keyward.io/<name>` in the key's namespace), a
//! right no built-in role grants. The key may live in another namespace
//! (release keys kept apart from the teams that use them): the right is
//! checked there.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::sealed_secret::KeyReference;

/// A signature over one digest or short message.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "keyward.io",
    version = "v1alpha1",
    kind = "SignatureRequest",
    plural = "signaturerequests",
    category = "keyward",
    namespaced,
    status = "SignatureAnswer",
    derive = "PartialEq",
    doc = "A signature by a signing ManagedKey (`keyward sign`). Create it with dryRun=All: it is answered in status by Keyward's webhook and never stored."
)]
#[serde(rename_all = "camelCase")]
pub struct SignatureRequestSpec {
    /// The signing ManagedKey; its namespace defaults to this request's.
    pub key_ref: KeyReference,

    /// SHA-256 of what is signed (32 bytes, standard base64), for RSA and
    /// ECP256 keys. Set this or `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 44, max = 44))]
    pub sha256: Option<String>,

    /// What is signed itself (standard base64, at most 4096 bytes), as
    /// ED25519 keys need. Set this or `sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5464))]
    pub message: Option<String>,

    /// Why, for the audit log (a release, a ticket); at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub reason: Option<String>,
}

/// Keyward's answer: nothing in it is secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignatureAnswer {
    /// The provider key id that signed.
    pub provider_key_id: String,
    /// The ManagedKey version (its primary) that signed.
    pub key_version: u32,
    /// `PS256` (RSA-PSS SHA-256), `ES256` (ECDSA P-256 SHA-256, DER) or
    /// `EdDSA` (Ed25519), as JOSE names them.
    pub algorithm: String,
    /// The signature (standard base64).
    pub signature: String,
    /// PEM public key of the version that signed.
    pub public_key: String,
}
