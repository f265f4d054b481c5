//! Keyward's custom resources (group `keyward.io`, version `v1alpha1`) and
//! the key lifecycle state machine shared by the operator and the webhook.
//!
//! - [`ManagedKey`]: a key held by a KMS or HSM.
//! - [`KeyRotationPolicy`]: when and how keys rotate.
//! - [`SealedSecret`]: values encrypted under a ManagedKey, safe for Git.
//! - [`DataKeyRequest`]: a question for online sealing, answered at
//!   admission and never stored.
//! - [`SealedSecretReview`]: the same for re-wrapping and validating a
//!   SealedSecret file.
//! - [`SignatureRequest`]: the same for signing with a signing key.
//!
//! Every spec has a `validate()` for the checks the OpenAPI schema cannot
//! express; its messages are meant to be shown to users unchanged.
#![forbid(unsafe_code)]

pub mod algorithm;
pub mod conditions;
pub mod cryptoperiod;
pub mod data_key_request;
pub mod destruction;
pub mod duration;
pub mod exposure;
pub mod generate;
mod key_changes;
pub mod lifecycle;
pub mod managed_key;
pub mod managed_key_status;
pub mod manifest;
pub mod provider;
pub mod pruning;
pub mod rotation_policy;
pub mod sealed_secret;
pub mod sealed_secret_review;
pub mod sharing;
pub mod signature_request;
mod tags;
pub mod validation;

pub use algorithm::{Algorithm, KeyUsage};
pub use data_key_request::{DataKeyAnswer, DataKeyRequest, DataKeyRequestSpec, DataKeyWrapping};
pub use duration::{HumanDuration, ParseDurationError};
pub use lifecycle::{IllegalTransition, KeyState, Transition, transition};
pub use managed_key::{DeletionPolicy, ManagedKey, ManagedKeySpec, PolicyReference, ShareWith};
pub use managed_key_status::{
    KeyVersionStatus, ManagedKeyStatus, NativeRotationEffect, NativeRotationStatus,
};
pub use provider::{
    AwsProvider, AzureProvider, GcpProtectionLevel, GcpProvider, LocalProvider, Pkcs11Provider,
    ProviderKind, ProviderSpec, is_vault_url,
};
pub use rotation_policy::{
    EffectivePolicy, KeyRotationPolicy, KeyRotationPolicySpec, RewrapMode, RotationStrategy,
};
pub use sealed_secret::{
    Access, GitBehind, KeyReference, Scope, SealedSecret, SealedSecretSpec, SealedSecretStatus,
    SecretTemplate,
};
pub use sealed_secret_review::{
    ItemVerdict, MovedItem, ReviewAction, SealedSecretReview, SealedSecretReviewSpec,
    SealedSecretReviewStatus,
};
pub use signature_request::{SignatureAnswer, SignatureRequest, SignatureRequestSpec};
pub use validation::{FieldError, Invalid};

/// API group of every Keyward resource.
pub const GROUP: &str = "keyward.io";
/// API version of every Keyward resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every Keyward object.
pub const API_VERSION: &str = "keyward.io/v1alpha1";
