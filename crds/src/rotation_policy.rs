//! `KeyRotationPolicy`: when keys get a new version and how long old
//! versions keep decrypting.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::HumanDuration;
use crate::algorithm::{Algorithm, KeyUsage};
use crate::cryptoperiod::{Cryptoperiod, recommended};
use crate::managed_key::ManagedKeySpec;
use crate::provider::ProviderKind;
use crate::validation::{Collector, Invalid};

/// Shortest rotation period accepted; anything shorter churns provider keys.
pub const MIN_ROTATION_PERIOD: HumanDuration = HumanDuration::from_secs(3_600);
/// Longest rotation period accepted: the top of NIST's range for any key type.
pub const MAX_ROTATION_PERIOD: HumanDuration = HumanDuration::from_years(3);
/// AWS KMS automatic rotation accepts 90 to 2560 days.
const AWS_NATIVE_RANGE_DAYS: (u64, u64) = (90, 2560);

/// When ManagedKeys that reference this policy rotate, and how long
/// retired versions keep decrypting. Unset durations take the NIST SP
/// 800-57 Part 1 Rev. 5 defaults for the key's algorithm and usage.
// kube's `printcolumn(...)` repeats `type_ =` etc. per column by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "keyward.io",
    version = "v1alpha1",
    kind = "KeyRotationPolicy",
    plural = "keyrotationpolicies",
    shortname = "krp",
    category = "keyward",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    doc = "When ManagedKeys rotate and how long retired versions keep decrypting. Unset durations follow the cryptoperiods of NIST SP 800-57 Part 1 Rev. 5 for each key's algorithm and usage.",
    printcolumn(
        name = "Rotation",
        type_ = "string",
        json_path = ".spec.rotationPeriod",
        description = "Originator usage period (empty: NIST default)"
    ),
    printcolumn(
        name = "Retention",
        type_ = "string",
        json_path = ".spec.decryptRetention",
        description = "Recipient usage period after deactivation"
    ),
    printcolumn(name = "Strategy", type_ = "string", json_path = ".spec.strategy"),
    printcolumn(name = "Rewrap", type_ = "string", json_path = ".spec.rewrap"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KeyRotationPolicySpec {
    /// Originator usage period: how long a version encrypts before a new
    /// version becomes primary, e.g. `90d`, `1y`. From 1h to 3y. Default
    /// `1y` for every usage, within NIST SP 800-57 Part 1 Rev. 5 Table 1:
    /// Wrap (symmetric key-wrapping key) <= 2y; Seal (private
    /// key-transport key) <= 2y; Sign (private signature key) 1-3y.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_period: Option<HumanDuration>,

    /// Recipient usage period: how long a version keeps decrypting after it
    /// is deactivated, e.g. `3y`; `0s` stops at once. Defaults: Wrap `3y`
    /// (NIST: up to originator period + 3y), Seal `1y` (NIST: a private
    /// key-transport key lives <= 2y in total), Sign `3y` (verification
    /// keys: several years).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decrypt_retention: Option<HumanDuration>,

    /// Rotate early once the primary version has done this many wraps
    /// (encryptions of a data key; unwraps draw no nonce and do not count).
    /// Counted: the operator's own re-wraps; not `keyward seal` or the
    /// webhook's `/v1/rewrap` (docs/operations.md). Default for AES256
    /// keys: 4294967296 (2^32, the AES-GCM random-nonce limit of NIST SP
    /// 800-38D); unlimited for RSA and EC keys. A limit the re-wrap of the
    /// key's SealedSecrets alone would reach is refused (Degraded
    /// `MaxOperationsTooLow`) rather than rotated in a loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_operations: Option<u64>,

    /// `Managed` (default): Keyward creates each new version itself, on
    /// every provider. `Native`: the provider's own automatic rotation
    /// (AWS KMS 90d-2560d, Cloud KMS), symmetric keys only, time-based only.
    #[serde(default)]
    pub strategy: RotationStrategy,

    /// What happens to SealedSecrets wrapped by the old version: `Eager`
    /// (default) re-wraps them all right after rotation, `Lazy` re-wraps
    /// each on its next unseal, `Manual` waits for `keyward rewrap`.
    #[serde(default)]
    pub rewrap: RewrapMode,

    /// Warn (Degraded condition, Event, metric) this long before a
    /// version's decrypt retention ends while SealedSecrets still depend on
    /// it. Default `30d`.
    #[serde(default = "default_expiry_notice")]
    pub expiry_notice: HumanDuration,
}

/// Who creates new key versions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum RotationStrategy {
    /// Keyward creates each version.
    #[default]
    Managed,
    /// The provider's automatic rotation.
    Native,
}

/// When dependants of a retired version are re-wrapped.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum RewrapMode {
    /// Right after rotation.
    #[default]
    Eager,
    /// On each SealedSecret's next unseal.
    Lazy,
    /// Only through `keyward rewrap`.
    Manual,
}

fn default_expiry_notice() -> HumanDuration {
    HumanDuration::from_days(30)
}

impl Default for KeyRotationPolicySpec {
    /// Every field at its default: NIST cryptoperiods, Managed, Eager, 30d.
    fn default() -> Self {
        Self {
            rotation_period: None,
            decrypt_retention: None,
            max_operations: None,
            strategy: RotationStrategy::default(),
            rewrap: RewrapMode::default(),
            expiry_notice: default_expiry_notice(),
        }
    }
}

/// A policy with every default filled in for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectivePolicy {
    /// Originator usage period.
    pub rotation_period: HumanDuration,
    /// Recipient usage period after deactivation.
    pub decrypt_retention: HumanDuration,
    /// Operations per version before early rotation.
    pub max_operations: Option<u64>,
    /// Who rotates.
    pub strategy: RotationStrategy,
    /// When dependants are re-wrapped.
    pub rewrap: RewrapMode,
    /// Warning lead time.
    pub expiry_notice: HumanDuration,
}

impl EffectivePolicy {
    /// The policy for a key without `rotationPolicyRef`.
    pub fn default_for(algorithm: Algorithm, usage: KeyUsage) -> Self {
        KeyRotationPolicySpec::default().effective(algorithm, usage)
    }
}

impl KeyRotationPolicySpec {
    /// This policy with NIST defaults filled in for a key of this kind.
    pub fn effective(&self, algorithm: Algorithm, usage: KeyUsage) -> EffectivePolicy {
        let Cryptoperiod {
            rotation_period,
            decrypt_retention,
            max_operations,
            ..
        } = recommended(algorithm, usage);
        EffectivePolicy {
            rotation_period: self.rotation_period.unwrap_or(rotation_period),
            decrypt_retention: self.decrypt_retention.unwrap_or(decrypt_retention),
            max_operations: self.max_operations.or(max_operations),
            strategy: self.strategy,
            rewrap: self.rewrap,
            expiry_notice: self.expiry_notice,
        }
    }

    /// Checks what the OpenAPI schema cannot express, with messages the
    /// admission webhook returns to the user as is.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut errors = Collector::default();
        if let Some(period) = self.rotation_period {
            if period < MIN_ROTATION_PERIOD {
                errors.push(
                    "spec.rotationPeriod",
                    format!(
                        "is {period}; rotate at most hourly (at least `1h`), usually `90d` to `1y`"
                    ),
                );
            } else if period > MAX_ROTATION_PERIOD {
                errors.push(
                    "spec.rotationPeriod",
                    format!("is {period}; NIST SP 800-57 recommends at most 3y for any key, use `1y` or `2y`"),
                );
            }
            if self.expiry_notice >= period {
                errors.push(
                    "spec.expiryNotice",
                    format!(
                        "is {}, not shorter than rotationPeriod {period}; pick a notice shorter than the period, e.g. `30d`",
                        self.expiry_notice
                    ),
                );
            }
        }
        if self.max_operations == Some(0) {
            errors.push(
                "spec.maxOperations",
                "must be at least 1; omit it for the default",
            );
        }
        if self.strategy == RotationStrategy::Native && self.max_operations.is_some() {
            errors.push(
                "spec.maxOperations",
                "providers rotate natively on a schedule only; remove maxOperations or use strategy Managed",
            );
        }
        errors.finish()
    }

    /// Checks that this policy can drive `key`: native rotation exists only
    /// for symmetric keys in AWS KMS and Cloud KMS, within their limits.
    pub fn validate_for(&self, key: &ManagedKeySpec) -> Result<(), Invalid> {
        let mut errors = Collector::default();
        if self.strategy == RotationStrategy::Native {
            let period = self.effective(key.algorithm, key.usage).rotation_period;
            match key.provider_kind() {
                Some(ProviderKind::Aws(_)) | Some(ProviderKind::Gcp(_))
                    if key.algorithm.is_asymmetric() =>
                {
                    errors.push(
                        "spec.strategy",
                        format!("providers rotate only symmetric keys natively, and this key is {}; use strategy Managed", key.algorithm),
                    );
                }
                Some(ProviderKind::Aws(_)) => {
                    let days = period.as_secs() / 86_400;
                    let (min, max) = AWS_NATIVE_RANGE_DAYS;
                    if !period.as_secs().is_multiple_of(86_400) || !(min..=max).contains(&days) {
                        errors.push(
                            "spec.rotationPeriod",
                            format!("is {period}; AWS KMS rotates natively every {min}d to {max}d, so pick a period in that range or use strategy Managed"),
                        );
                    }
                }
                Some(ProviderKind::Gcp(_)) if period.as_secs() < 86_400 => {
                    errors.push(
                        "spec.rotationPeriod",
                        format!("is {period}; Cloud KMS rotates natively at most daily, so pick `1d` or more or use strategy Managed"),
                    );
                }
                Some(ProviderKind::Gcp(_)) => {}
                Some(other) => errors.push(
                    "spec.strategy",
                    format!(
                        "the {} provider has no native rotation; use strategy Managed",
                        other.name()
                    ),
                ),
                None => {}
            }
        }
        errors.finish()
    }
}
