//! What the operator reports about a ManagedKey and each of its versions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::{HumanDuration, KeyState};

/// Observed state of a ManagedKey.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedKeyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The provider's identifier for the key: AWS key ARN, Cloud KMS
    /// CryptoKey resource name, PKCS#11 object id, or local key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_key_id: Option<String>,

    /// State of the key, which is the state of its primary version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<KeyState>,

    /// Version that encrypts new data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_version: Option<u32>,

    /// Every version not yet destroyed, plus destroyed ones kept for audit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "versions_schema")]
    pub versions: Vec<KeyVersionStatus>,

    /// PEM public key of the primary version (asymmetric keys only); what
    /// `keyward seal` uses to seal offline, or what verifies the signatures
    /// of a signing key's primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,

    /// When the next version is due to become primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_at: Option<Time>,

    /// The provider's own scheduled rotation, while the key's policy says
    /// `strategy: Native` and the key is Active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_rotation: Option<NativeRotationStatus>,

    /// The tags (AWS) or labels (Cloud KMS) last put on the provider key
    /// from `spec.tags`; when they differ from the spec, the operator puts
    /// the spec's there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,

    /// Standard conditions: `Ready` (the primary version can be used),
    /// `Rotating` (a new version is being created or dependants re-wrapped)
    /// and `Degraded` (works, but needs attention).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::conditions::schema")]
    pub conditions: Vec<Condition>,
}

/// What the operator asked of the provider's own rotation, and what the
/// provider reports.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NativeRotationStatus {
    /// The version whose provider key rotates (AWS KMS rotates one KMS key,
    /// and each managed version is its own KMS key).
    pub version: u32,

    /// The period the provider was given.
    pub period: HumanDuration,

    /// When the provider says it rotates next (moto does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_at: Option<Time>,

    /// `NewVersion` (Cloud KMS: each rotation is a new Keyward version) or
    /// `SameVersion` (AWS KMS: new material under the same version, so
    /// envelopes and version numbers do not change).
    pub effect: NativeRotationEffect,
}

/// What a provider-side rotation looks like to Keyward.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum NativeRotationEffect {
    NewVersion,
    SameVersion,
}

/// One version of a ManagedKey.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyVersionStatus {
    /// Keyward's version number, starting at 1; recorded in every envelope.
    pub version: u32,

    /// The provider's id for this version (Cloud KMS version, AWS key ARN
    /// for managed rotation, PKCS#11 object id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_version_id: Option<String>,

    /// Lifecycle state of this version.
    pub state: KeyState,

    /// When the version was generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,

    /// When the version became Active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<Time>,

    /// When the version stopped encrypting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated_at: Option<Time>,

    /// When the provider will delete the version (end of the deletion window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroy_scheduled_at: Option<Time>,

    /// When the provider deleted the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroyed_at: Option<Time>,

    /// Wraps (encryptions) the operator made under this version, counted
    /// against `maxOperations`; a lower bound (see docs/operations.md).
    #[serde(default)]
    pub operations: u64,

    /// SealedSecrets that still need this version; it is never destroyed
    /// while this is above zero.
    #[serde(default)]
    pub dependants: u32,

    /// Of `dependants`, SealedSecrets that keep this version only for their
    /// copy in Git: the cluster copy is already on a newer version, or an
    /// applier put Git's copy back after the operator re-wrapped it. Run
    /// `keyward rewrap` over the repository and commit to release it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub git_dependants: u32,

    /// PEM public key of this version of a signing key: it verifies the
    /// signatures the version made, also after a rotation or its
    /// destruction (`keyward verify` refuses a Compromised version's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

impl KeyVersionStatus {
    /// Version `version` in `state`, with nothing else recorded yet.
    pub fn new(version: u32, state: KeyState) -> Self {
        KeyVersionStatus {
            version,
            provider_version_id: None,
            state,
            created_at: None,
            activated_at: None,
            deactivated_at: None,
            destroy_scheduled_at: None,
            destroyed_at: None,
            operations: 0,
            dependants: 0,
            git_dependants: 0,
            public_key: None,
        }
    }
}

impl ManagedKeyStatus {
    /// The primary version's entry, if reported.
    pub fn primary(&self) -> Option<&KeyVersionStatus> {
        self.primary_version.and_then(|v| self.version(v))
    }

    /// The entry for version `number`, if reported.
    pub fn version(&self, number: u32) -> Option<&KeyVersionStatus> {
        self.versions.iter().find(|v| v.version == number)
    }
}

/// Versions merge by number under server-side apply.
fn versions_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<KeyVersionStatus>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["version"]),
    );
    schema
}
