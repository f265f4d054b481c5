//! `ManagedKey`: a key held by a KMS or HSM, declared in YAML.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::algorithm::{Algorithm, KeyUsage};
use crate::managed_key_status::ManagedKeyStatus;
use crate::provider::{ProviderKind, ProviderSpec};
use crate::validation::{
    Collector, DNS_SUBDOMAIN_PATTERN, Invalid, is_dns_label, is_dns_subdomain,
};
use crate::{HumanDuration, KeyState};

/// Annotation saying why a ManagedKey's state (or what drives it) was
/// changed: recorded with the change in the audit logs.
pub const REASON: &str = "keyward.io/reason";

/// Shortest deletion window (AWS KMS's minimum pending window).
pub const MIN_DELETION_WINDOW_DAYS: u64 = 7;
/// Longest deletion window (AWS KMS's maximum pending window).
pub const MAX_DELETION_WINDOW_DAYS: u64 = 30;
/// Whole days from 7d to 30d.
const DELETION_WINDOW_PATTERN: &str = "^([7-9]|[12][0-9]|30)d$";

/// A key held by a KMS or HSM. Keyward creates it, rotates it per its
/// KeyRotationPolicy, moves its versions through the NIST SP 800-57
/// lifecycle, and destroys them when no SealedSecret needs them.
// kube's `printcolumn(...)` repeats `type_ =` etc. per column by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "keyward.io",
    version = "v1alpha1",
    kind = "ManagedKey",
    plural = "managedkeys",
    shortname = "mk",
    category = "keyward",
    namespaced,
    status = "ManagedKeyStatus",
    derive = "PartialEq",
    doc = "A key held by a KMS or HSM (local, AWS KMS, Google Cloud KMS or PKCS#11), rotated on schedule and moved through the NIST SP 800-57 lifecycle by the Keyward operator.",
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.state",
        description = "Lifecycle state of the primary version"
    ),
    printcolumn(
        name = "Primary",
        type_ = "integer",
        json_path = ".status.primaryVersion",
        description = "Version that encrypts new data"
    ),
    printcolumn(
        name = "Next-Rotation",
        type_ = "string",
        json_path = ".status.nextRotationAt",
        description = "When the next version becomes primary"
    ),
    printcolumn(
        name = "Algorithm",
        type_ = "string",
        json_path = ".spec.algorithm",
        priority = 1
    ),
    printcolumn(
        name = "Usage",
        type_ = "string",
        json_path = ".spec.usage",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ManagedKeySpec {
    /// Where the key lives. Set exactly one of `local`, `aws`, `gcp`,
    /// `azure` or `pkcs11`.
    pub provider: ProviderSpec,

    /// Key algorithm: `AES256` (default; usage Wrap), `RSA3072` or `RSA4096`
    /// (usage Seal or Sign), `ECP256` or `ED25519` (usage Sign).
    #[serde(default)]
    pub algorithm: Algorithm,

    /// What the key does: `Wrap` (default; symmetric key-encryption key that
    /// wraps SealedSecret data keys), `Seal` (RSA-OAEP, so anyone can seal
    /// offline from the published public key; only the provider unwraps),
    /// `Sign` (RSA-PSS-SHA256, ECDSA P-256 SHA-256 or Ed25519 signatures
    /// with `keyward sign`; each version's public key is in status; AWS
    /// makes ECP256 only, Azure no ED25519).
    #[serde(default)]
    pub usage: KeyUsage,

    /// Desired state of the primary version: PreActivation, Active (default),
    /// Suspended, Deactivated, Compromised or Destroyed. Legal moves:
    /// PreActivation->Active, Active<->Suspended, Active->Deactivated,
    /// Active|Suspended|Deactivated->Compromised (rotates at once, marks
    /// every exposed version Compromised — annotation
    /// `keyward.io/exposed-versions`, default all — re-seals their
    /// SealedSecrets under fresh data keys, then schedules them for
    /// destruction), Deactivated|Compromised->Destroyed.
    #[serde(default = "default_state")]
    pub state: KeyState,

    /// When set and in the future, the first version stays PreActivation
    /// until this time (RFC 3339, e.g. `2026-01-01T00:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activate_at: Option<Time>,

    /// KeyRotationPolicy in this namespace that decides when to rotate.
    /// Without one, the key rotates yearly (NIST SP 800-57 defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_policy_ref: Option<PolicyReference>,

    /// How long a version scheduled for destruction can still be recovered
    /// before the provider deletes it: whole days from `7d` to `30d`
    /// (default `30d`, the AWS KMS range).
    #[serde(default = "default_deletion_window")]
    #[schemars(schema_with = "deletion_window_schema")]
    pub deletion_window: HumanDuration,

    /// What deleting this ManagedKey does to the provider key: `Delete`
    /// schedules its destruction after `deletionWindow`; `Retain` leaves it
    /// as it is at the provider (and in the local keyring), for a key that
    /// must outlive the resource: an Argo CD prune or a mistaken delete then
    /// costs nothing. Omitted: `Delete` for a key Keyward made, `Retain` for
    /// one adopted through `existingKey`. Either way, SealedSecrets that
    /// still need the key block its deletion, and a key another cluster
    /// claims is never destroyed from this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// Adopt this existing provider key as version 1 instead of creating
    /// one (a key made by Terraform or by hand): an AWS KMS key ARN, key id
    /// or `alias/...`; a Cloud KMS CryptoKey name
    /// (`projects/P/locations/L/keyRings/R/cryptoKeys/K`, in the operator's
    /// key ring); a Key Vault key URL (`https://VAULT/keys/NAME`, in
    /// `spec.provider.azure.vaultUrl`; its current version is adopted); or
    /// the label of a PKCS#11 secret key (AES256 only). Its
    /// algorithm must match `algorithm`. Keyward records itself as owner
    /// (tags, labels or token metadata) and manages the key from then on;
    /// the adopted version is never destroyed by retention while the
    /// effective `deletionPolicy` is `Retain`. Fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub existing_key: Option<String>,

    /// Alias (name) for the key at the provider, e.g. `payments/db`;
    /// defaults to `keyward/<namespace>/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 250), regex(pattern = r"^[a-zA-Z0-9/_-]+$"))]
    pub alias: Option<String>,

    /// Tags (AWS KMS, on every version's KMS key) or labels (Cloud KMS)
    /// put on the provider key and kept in line with this field: an edit
    /// adds, changes and removes them there; at most 40. Keys `keyward.io/`
    /// (AWS) and `keyward-` (Cloud KMS) are Keyward's own. The local and
    /// PKCS#11 providers keep no tags, so they are refused there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 40))]
    pub tags: BTreeMap<String, String>,

    /// Free-text description stored with the provider key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub description: Option<String>,

    /// Other namespaces whose SealedSecrets may use this key (their
    /// `spec.keyRef.namespace` names this one). Omitted: this namespace
    /// only. Checked at admission, unseal, re-wrap and materialisation;
    /// SealedSecrets of namespaces not granted do not count as dependants,
    /// so they cannot keep a version from being destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_with: Option<ShareWith>,

    /// Two-person destruction: `Destroyed`, `keyward.io/force-destroy`,
    /// deleting the key (deletion policy `Delete`) and turning this off
    /// are admitted only after one user requested them
    /// (`keyward.io/destruction-request`) and a different user approved
    /// (`keyward.io/destruction-approval`). The namespace label
    /// `keyward.io/two-person-destruction: "true"` does the same for
    /// every key in a namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub two_person_destruction: bool,
}

/// The namespaces a ManagedKey is shared with.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ShareWith {
    /// Namespace names, or `*` for every namespace.
    #[serde(default)]
    #[schemars(schema_with = "share_with_namespaces_schema")]
    pub namespaces: Vec<String>,
}

/// [`ShareWith::namespaces`] entry that grants every namespace.
pub const EVERY_NAMESPACE: &str = "*";

/// Reference to a KeyRotationPolicy in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct PolicyReference {
    /// Name of the KeyRotationPolicy.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// The signing algorithms each provider makes (usage `Sign`). AWS: ECP256
/// only, as moto, its test peer, has no Ed25519 keys and signs RSA-PSS
/// with another salt length than KMS. Azure Key Vault has no Ed25519.
pub fn signing_algorithms(provider: &ProviderKind<'_>) -> &'static [Algorithm] {
    const ALL: &[Algorithm] = &[
        Algorithm::Rsa3072,
        Algorithm::Rsa4096,
        Algorithm::EcP256,
        Algorithm::Ed25519,
    ];
    match provider {
        ProviderKind::Local(_) | ProviderKind::Pkcs11(_) | ProviderKind::Gcp(_) => ALL,
        ProviderKind::Aws(_) => &[Algorithm::EcP256],
        ProviderKind::Azure(_) => &[Algorithm::Rsa3072, Algorithm::Rsa4096, Algorithm::EcP256],
    }
}

/// What deleting a ManagedKey does to its provider key.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Destroy it after the deletion window.
    #[default]
    Delete,
    /// Leave it untouched.
    Retain,
}

fn default_state() -> KeyState {
    KeyState::Active
}

fn default_deletion_window() -> HumanDuration {
    HumanDuration::from_days(MAX_DELETION_WINDOW_DAYS)
}

fn share_with_namespaces_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 256,
        "items": {
            "type": "string",
            "maxLength": 63,
            "pattern": r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$",
        },
    })
}

fn deletion_window_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": DELETION_WINDOW_PATTERN,
    })
}

impl ManagedKeySpec {
    /// `deletionPolicy`, or its default: `Retain` for an adopted key
    /// (`existingKey`), else `Delete`.
    pub fn effective_deletion_policy(&self) -> DeletionPolicy {
        self.deletion_policy
            .unwrap_or(if self.existing_key.is_some() {
                DeletionPolicy::Retain
            } else {
                DeletionPolicy::Delete
            })
    }

    /// The configured provider, when exactly one is set.
    pub fn provider_kind(&self) -> Option<ProviderKind<'_>> {
        self.provider.kind()
    }

    /// Why this key cannot be made by its provider: a signing key (usage
    /// `Sign`) with an algorithm the provider does not make (see
    /// [`signing_algorithms`]), or a symmetric key where the provider has
    /// none (Azure Key Vault). Admission and the operator both refuse with
    /// this.
    pub fn unsupported_by_provider(&self) -> Option<String> {
        let provider = self.provider.kind()?;
        if matches!(provider, ProviderKind::Azure(_)) && self.usage == KeyUsage::Wrap {
            return Some(format!(
                "Azure Key Vault has no symmetric keys, so it cannot hold {} usage Wrap keys; \
                 use algorithm RSA3072 with usage Seal (SealedSecret data keys are wrapped \
                 with RSA-OAEP-256 there)",
                self.algorithm
            ));
        }
        if self.usage != KeyUsage::Sign {
            return None;
        }
        let made = signing_algorithms(&provider);
        if made.contains(&self.algorithm) {
            return None;
        }
        let name = provider.name();
        Some(if made.is_empty() {
            format!(
                "the {name} provider does not make signing keys in this release; use the \
                 local provider for {} signing keys",
                self.algorithm
            )
        } else {
            let names: Vec<&str> = made.iter().map(|a| a.as_str()).collect();
            format!(
                "the {name} provider does not make {} signing keys in this release; use {} \
                 there, or the local provider",
                self.algorithm,
                names.join(" or ")
            )
        })
    }

    /// Checks what the OpenAPI schema cannot express, with messages the
    /// admission webhook returns to the user as is.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut errors = Collector::default();
        self.provider.check("spec.provider", &mut errors);
        if !self.algorithm.usages().contains(&self.usage) {
            let fits: Vec<&str> = self.usage.algorithms().iter().map(|a| a.as_str()).collect();
            let can: Vec<&str> = (self.algorithm.usages().iter())
                .map(|u| u.as_str())
                .collect();
            errors.push(
                "spec.usage",
                format!(
                    "{} keys cannot be used for {}; use algorithm {} for {}, or usage {} for {}",
                    self.algorithm,
                    self.usage,
                    fits.join(" or "),
                    self.usage,
                    can.join(" or "),
                    self.algorithm
                ),
            );
        } else if let Some(message) = self.unsupported_by_provider() {
            errors.push("spec.usage", message);
        }
        self.check_deletion_window(&mut errors);
        crate::tags::check(self.provider.kind(), &self.tags, &mut errors);
        if let Some(policy) = &self.rotation_policy_ref
            && !is_dns_subdomain(&policy.name)
        {
            errors.push(
                "spec.rotationPolicyRef.name",
                format!("`{}` is not a valid KeyRotationPolicy name", policy.name),
            );
        }
        if let Some(alias) = &self.alias {
            if alias.starts_with("aws/") || alias.starts_with("alias/") {
                errors.push(
                    "spec.alias",
                    "omit the `alias/` prefix, and `aws/` is reserved for AWS-managed keys",
                );
            } else if alias.is_empty()
                || alias.len() > 250
                || !alias
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
            {
                errors.push(
                    "spec.alias",
                    format!(
                        "`{alias}` may only contain letters, digits, '/', '_' and '-' (1 to 250)"
                    ),
                );
            }
        }
        self.check_share_with(&mut errors);
        self.check_existing_key(&mut errors);
        if self.tags.len() > 50 {
            errors.push(
                "spec.tags",
                format!("has {} tags; providers accept at most 50", self.tags.len()),
            );
        }
        errors.finish()
    }

    /// Whether SealedSecrets in `namespace` may use this key, which lives
    /// in `own_namespace`.
    pub fn is_shared_with(&self, own_namespace: &str, namespace: &str) -> bool {
        namespace == own_namespace
            || self.share_with.as_ref().is_some_and(|share| {
                share
                    .namespaces
                    .iter()
                    .any(|n| n == namespace || n == EVERY_NAMESPACE)
            })
    }

    fn check_share_with(&self, errors: &mut Collector) {
        let Some(share) = &self.share_with else {
            return;
        };
        if share.namespaces.len() > 256 {
            errors.push(
                "spec.shareWith.namespaces",
                format!(
                    "lists {} namespaces; at most 256 (use `*` to share with every namespace)",
                    share.namespaces.len()
                ),
            );
        }
        for (i, namespace) in share.namespaces.iter().enumerate() {
            if namespace != EVERY_NAMESPACE && !is_dns_label(namespace) {
                errors.push(
                    format!("spec.shareWith.namespaces[{i}]"),
                    format!(
                        "`{namespace}` is not a namespace name; list namespace names, or `*` for every namespace"
                    ),
                );
            }
        }
    }

    fn check_existing_key(&self, errors: &mut Collector) {
        let Some(reference) = &self.existing_key else {
            return;
        };
        const FIELD: &str = "spec.existingKey";
        let problem = match self.provider.kind() {
            Some(ProviderKind::Local(_)) => Some(
                "the local keyring holds only keys Keyward made; remove existingKey, or adopt a KMS or HSM key"
                    .to_owned(),
            ),
            Some(ProviderKind::Aws(_)) => {
                let fits = reference.starts_with("arn:aws")
                    || reference.starts_with("alias/")
                    || is_kms_key_id(reference);
                (!fits).then(|| format!(
                    "`{reference}` is not an AWS KMS key reference; give a key ARN, a key id (`1234abcd-12ab-34cd-56ef-1234567890ab`) or `alias/...`"
                ))
            }
            Some(ProviderKind::Gcp(gcp)) => {
                let ring = format!(
                    "projects/{}/locations/{}/keyRings/{}/cryptoKeys/",
                    gcp.project, gcp.location, gcp.key_ring
                );
                let fits = reference
                    .strip_prefix(&ring)
                    .is_some_and(|id| !id.is_empty() && !id.contains('/'));
                (!fits).then(|| format!(
                    "`{reference}` is not a CryptoKey of the key ring in spec.provider.gcp; give `{ring}<name>`"
                ))
            }
            Some(ProviderKind::Azure(azure)) => {
                let keys = format!("{}/keys/", azure.vault());
                let fits = reference.strip_prefix(&keys).is_some_and(|name| {
                    (1..=127).contains(&name.len())
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
                (!fits).then(|| format!(
                    "`{reference}` is not a key of the vault in spec.provider.azure; give `{keys}<name>` without a version (Keyward adopts the key's current version)"
                ))
            }
            Some(ProviderKind::Pkcs11(_)) => {
                let fits = !reference.is_empty() && reference.len() <= 32;
                (!fits).then(|| format!(
                    "`{reference}` is not a PKCS#11 label; labels are 1 to 32 bytes"
                ))
            }
            None => None,
        };
        if let Some(problem) = problem {
            errors.push(FIELD, problem);
        }
        if self.algorithm != Algorithm::Aes256
            && matches!(self.provider.kind(), Some(ProviderKind::Pkcs11(_)))
        {
            errors.push(FIELD, "PKCS#11 keys can be adopted as AES256 only");
        }
    }

    fn check_deletion_window(&self, errors: &mut Collector) {
        let secs = self.deletion_window.as_secs();
        let days = secs / 86_400;
        let in_range = (MIN_DELETION_WINDOW_DAYS..=MAX_DELETION_WINDOW_DAYS).contains(&days);
        if !secs.is_multiple_of(86_400) || !in_range {
            errors.push(
                "spec.deletionWindow",
                format!(
                    "is {}; it must be whole days from {MIN_DELETION_WINDOW_DAYS}d to {MAX_DELETION_WINDOW_DAYS}d (e.g. `30d`), so a mistaken destruction can be cancelled in time",
                    self.deletion_window
                ),
            );
        }
    }
}

impl ManagedKey {
    /// Whether SealedSecrets in `namespace` may use this key: its own
    /// namespace, or one `spec.shareWith` grants.
    pub fn is_shared_with(&self, namespace: &str) -> bool {
        let own = self.metadata.namespace.as_deref().unwrap_or_default();
        self.spec.is_shared_with(own, namespace)
    }
}

/// An AWS KMS key id: a UUID, or an `mrk-` multi-Region key id.
fn is_kms_key_id(text: &str) -> bool {
    let uuid = |t: &str| {
        t.len() == 36
            && t.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            })
    };
    uuid(text)
        || text
            .strip_prefix("mrk-")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}
