//! The key-provider interface every backend implements (local, AWS KMS, Cloud
//! KMS, PKCS#11). Providers are values injected where they are needed; there
//! is no global registry.
//!
//! A provider knows keys, their versions and whether each version is enabled.
//! The NIST SP 800-57 lifecycle (active, deactivated, compromised...) lives in
//! the operator, which maps it onto these few operations: only the primary
//! version wraps, older enabled versions only unwrap, disabled versions do
//! neither.

mod context_aad;
mod deadline;
mod dek_cache;
mod error;
pub mod key_record;
mod types;

pub use context_aad::wrap_context_aad;
pub use deadline::Deadline;
pub use dek_cache::DekCache;

pub use error::ProviderError;
pub use types::{
    Claim, DeletionTarget, KeyAlgorithm, KeyInfo, KeySpec, NativeRotation, NativeRotationEffect,
    NativeSchedule, PublicKeyInfo, Signature, VerifyingKey, VersionInfo, VersionState,
    WrapAlgorithm, WrapContext, WrappedDek,
};

use crate::crypto::signing::ToSign;
use crate::secret::Dek;
use async_trait::async_trait;
use std::time::{Duration, SystemTime};

pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

#[async_trait]
pub trait KeyProvider: Send + Sync {
    /// Short name used in logs and status (`local`, `aws`, `gcp`, `pkcs11`).
    fn kind(&self) -> &'static str;

    /// The provider that serves `key_id`: [`kind`](Self::kind), except in
    /// a router over several providers, so a timeout names the one that hung.
    fn kind_of_key(&self, key_id: &str) -> &'static str {
        let _ = key_id;
        self.kind()
    }

    /// Creates a key, or returns the existing one when a key with the same
    /// `spec.owner` already exists, so a retried reconcile never makes two.
    async fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo>;

    /// Whether the provider records a [`Claim`] on `key_id`: true where two
    /// clusters can reach one key (KMS, HSM), false for the local keyring,
    /// of which every cluster holds its own copy.
    fn keeps_claims(&self, key_id: &str) -> bool;

    /// Records `owner`, the stable identity of what manages the key (a
    /// ManagedKey's `namespace/name`, which survives a rebuild from Git
    /// where its uid does not), and `claim` where claims are kept.
    async fn set_owner(&self, key_id: &str, owner: &str, claim: &Claim) -> Result<()>;

    /// How `owner` reads back in [`KeyInfo::owner`]: as given, unless the
    /// provider must encode it (Cloud KMS label values).
    fn recorded_owner(&self, key_id: &str, owner: &str) -> String {
        let _ = key_id;
        owner.to_owned()
    }

    /// Makes a key made outside Keyward (`reference`: an ARN or alias, a
    /// CryptoKey name, a token label) into the Keyward key `spec` names,
    /// as its version 1, recording `spec.owner`. Idempotent like
    /// [`create_key`](Self::create_key). Providers that cannot refuse.
    async fn adopt_key(&self, reference: &str, spec: &KeySpec) -> Result<KeyInfo> {
        let _ = spec;
        Err(ProviderError::InvalidRequest(format!(
            "the {} provider cannot adopt a key made elsewhere (`{reference}`)",
            self.kind()
        )))
    }

    /// Looks a key up by provider key id or by name/alias.
    async fn describe_key(&self, key: &str) -> Result<KeyInfo>;

    /// Makes a new version the primary one; older versions keep unwrapping.
    async fn rotate_key(&self, key_id: &str) -> Result<KeyInfo>;

    /// Enables or disables one version (suspend/resume).
    async fn set_version_enabled(&self, key_id: &str, version: u32, enabled: bool) -> Result<()>;

    /// Schedules destruction after `window`; returns when it will happen.
    async fn schedule_deletion(
        &self,
        key_id: &str,
        target: DeletionTarget,
        window: Duration,
    ) -> Result<SystemTime>;

    /// Cancels a scheduled destruction that has not happened yet.
    async fn cancel_deletion(&self, key_id: &str, target: DeletionTarget) -> Result<()>;

    /// Wraps `dek` under the key's primary version, bound to `context`
    /// where the algorithm allows (symmetric keys; RSA-OAEP has no context).
    async fn wrap_dek(&self, key_id: &str, dek: &Dek, context: &WrapContext) -> Result<WrappedDek>;

    /// Wraps `dek` under `version`, which the caller knows to be the
    /// primary (the cluster's status names it), so that a provider whose
    /// view lags a rotation (the local keyring's read cache) does not wrap
    /// under the previous primary. By default [`wrap_dek`](Self::wrap_dek),
    /// refused as retryable when the provider's primary is older than
    /// `version`; a newer one (a native rotation the cluster has not seen
    /// yet) is used.
    async fn wrap_dek_with_version(
        &self,
        key_id: &str,
        version: u32,
        dek: &Dek,
        context: &WrapContext,
    ) -> Result<WrappedDek> {
        let wrapped = self.wrap_dek(key_id, dek, context).await?;
        if wrapped.version < version {
            return Err(ProviderError::Unavailable(format!(
                "the provider's primary of key `{key_id}` is version {}, the cluster's is version {version}: a rotation is in flight (retry shortly), or the primary was moved back at the provider by hand (make version {version} primary there again)",
                wrapped.version
            )));
        }
        Ok(wrapped)
    }

    /// Unwraps a DEK with the version named in `wrapped`.
    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<Dek>;

    /// The public key of an asymmetric (`Seal`) key version, for offline sealing.
    async fn public_key(&self, key_id: &str, version: Option<u32>) -> Result<PublicKeyInfo>;

    /// Re-wraps a DEK under the primary version. Providers with a native
    /// re-encrypt (AWS `ReEncrypt`) override this so the DEK never leaves them.
    async fn rewrap(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<WrappedDek> {
        let dek = self.unwrap_dek(wrapped, context).await?;
        self.wrap_dek(&wrapped.key_id, &dek, context).await
    }

    /// Signs `input` with `version` of a signing key
    /// ([`KeyAlgorithm::signing`]), the primary when `None`; the version
    /// must be enabled and not pending deletion. The webhook names the
    /// version the cluster reports primary, so a provider's cached view
    /// that is behind a rotation never signs with the old one. Providers
    /// without signing keys refuse.
    async fn sign(&self, key_id: &str, version: Option<u32>, input: &ToSign) -> Result<Signature> {
        let _ = (version, input);
        Err(no_signing(self.kind(), key_id))
    }

    /// The public half of a signing key's `version` (the primary when
    /// `None`), to verify its signatures. Providers without signing keys refuse.
    async fn verifying_key(&self, key_id: &str, version: Option<u32>) -> Result<VerifyingKey> {
        let _ = version;
        Err(no_signing(self.kind(), key_id))
    }

    /// Makes the user's tags on the key exactly `tags` (AWS KMS tags on
    /// every version's KMS key, Cloud KMS labels): missing ones are added,
    /// changed ones updated, others a user set removed; the provider's own
    /// bookkeeping tags are kept. Versions made later carry them too.
    /// Providers that keep no tags refuse.
    async fn set_tags(&self, key_id: &str, tags: &Tags) -> Result<()> {
        let _ = tags;
        Err(no_tags(self.kind(), key_id))
    }

    /// The user's tags on the key's primary version, without the
    /// provider's own. Providers that keep no tags refuse.
    async fn tags(&self, key_id: &str) -> Result<Tags> {
        Err(no_tags(self.kind(), key_id))
    }

    /// The provider's own scheduled rotation of the key (its primary
    /// version), or `None` when it is off. Providers without one refuse.
    async fn native_rotation(&self, key_id: &str) -> Result<Option<NativeRotation>> {
        Err(no_native_rotation(self.kind(), key_id))
    }

    /// Turns the provider's own scheduled rotation on (`Some`) or off.
    async fn set_native_rotation(
        &self,
        key_id: &str,
        schedule: Option<NativeSchedule>,
    ) -> Result<()> {
        let _ = schedule;
        Err(no_native_rotation(self.kind(), key_id))
    }
}

fn no_native_rotation(kind: &str, key_id: &str) -> ProviderError {
    ProviderError::InvalidRequest(format!(
        "the {kind} provider has no native rotation (key `{key_id}`); use strategy Managed"
    ))
}

/// For a provider that makes no signing keys: refuses `algorithm` when it
/// is one, before anything is created.
pub fn refuse_signing(kind: &str, algorithm: KeyAlgorithm) -> Result<()> {
    match algorithm.signing() {
        Some(_) => Err(ProviderError::InvalidRequest(format!(
            "the {kind} provider does not make signing keys ({})",
            algorithm.describe()
        ))),
        None => Ok(()),
    }
}

fn no_signing(kind: &str, key_id: &str) -> ProviderError {
    ProviderError::InvalidRequest(format!(
        "the {kind} provider does not make signing keys (`{key_id}`)"
    ))
}

/// User tags on a provider key: name to value.
pub type Tags = std::collections::BTreeMap<String, String>;

fn no_tags(kind: &str, key_id: &str) -> ProviderError {
    ProviderError::InvalidRequest(format!(
        "the {kind} provider keeps no tags on keys (`{key_id}`); remove spec.tags"
    ))
}
