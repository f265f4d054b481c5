//! `SealedSecretReview`: `keyward rewrap` and `keyward validate` through
//! the API server. Like `DataKeyRequest`, a question never stored: created
//! with `dryRun=All`, answered in `status` by Keyward's admission webhook
//! for the user the API server authenticated (Keyward receives no token).
//!
//! - `Rewrap`: every item re-sealed under its key's primary version; needs
//!   `update` on that SealedSecret. Only envelopes travel.
//! - `Validate`: whether each item would open in this cluster, and why
//!   not, without any value leaving the webhook; needs `create
//!   sealedsecrets` in the namespace (the right to apply it and see).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::sealed_secret::SealedSecretSpec;
use crate::validation::DNS_SUBDOMAIN_PATTERN;

/// A SealedSecret to re-wrap or to check, as it would be applied here.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "keyward.io",
    version = "v1alpha1",
    kind = "SealedSecretReview",
    plural = "sealedsecretreviews",
    category = "keyward",
    namespaced,
    status = "SealedSecretReviewStatus",
    derive = "PartialEq",
    doc = "Re-wrap or validate a SealedSecret file (`keyward rewrap`, `keyward validate`). Create it with dryRun=All: it is answered in status by Keyward's webhook and never stored."
)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretReviewSpec {
    pub action: ReviewAction,
    /// The SealedSecret's name (its namespace is this review's).
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// The SealedSecret's spec, as in the file.
    pub sealed_secret: SealedSecretSpec,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ReviewAction {
    /// Re-seal every item under its key's primary version.
    Rewrap,
    /// Check that every item opens here; reveal nothing.
    Validate,
}

/// Keyward's answer: envelopes and verdicts, never a value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretReviewStatus {
    /// Rewrap: the items, each under the primary version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub encrypted_data: BTreeMap<String, String>,
    /// Rewrap: the items re-sealed, with the version each left.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<MovedItem>,
    /// Rewrap: the key's primary version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_version: Option<u32>,
    /// Validate: one verdict per item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemVerdict>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct MovedItem {
    pub item: String,
    pub from: u32,
    pub to: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemVerdict {
    pub item: String,
    /// The key version the item is sealed under, when its header reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    pub opens: bool,
    /// Why it does not open, and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
