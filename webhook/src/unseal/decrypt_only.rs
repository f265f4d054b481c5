//! The webhook's view of a provider: decrypt only. Administrative calls
//! are refused, mirroring the admin/user split of KMS key policies; the
//! operator is the only component that creates, rotates or destroys keys.
//! DEK caching is `keyward_core::provider::DekCache`, underneath this;
//! [`CountUnwraps`] under the cache counts the unwraps that miss it, and
//! `keyward_core::provider::Deadline` under that bounds every provider
//! call (`--provider-timeout-seconds`); the cache's waiters are bounded by
//! the same time, so a hung KMS fails its callers at the deadline.

use crate::metrics::metrics;
use async_trait::async_trait;
use keyward_core::Dek;
use keyward_core::crypto::signing::ToSign;
use keyward_core::provider::{
    Claim, Deadline, DekCache, DeletionTarget, KeyInfo, KeyProvider, KeySpec, ProviderError,
    PublicKeyInfo, Signature, VerifyingKey, WrapContext, WrappedDek,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long one provider call may take by default: well inside the
/// injector's 10 s per attempt, above a healthy KMS's tail latency.
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(5);

pub struct DecryptOnly {
    inner: Arc<dyn KeyProvider>,
}

impl DecryptOnly {
    /// Decrypt-only over `inner` as given (no cache, misses uncounted).
    pub fn new(inner: Arc<dyn KeyProvider>) -> Self {
        DecryptOnly { inner }
    }

    /// The provider underneath, which may also wrap: for rewrap and online
    /// sealing only, after their own authorisation (so a KMS role needs
    /// Encrypt for them).
    pub fn wrapping_provider(&self) -> &dyn KeyProvider {
        self.inner.as_ref()
    }

    /// The webhook's stack: decrypt-only over a DEK cache (`ttl`, at most
    /// `entries`) over `provider`, with cache misses counted in metrics and
    /// [`DEFAULT_PROVIDER_TIMEOUT`] on every call.
    pub fn cached<P: KeyProvider + 'static>(provider: P, ttl: Duration, entries: usize) -> Self {
        DecryptOnly::cached_within(provider, ttl, entries, DEFAULT_PROVIDER_TIMEOUT)
    }

    /// [`cached`](Self::cached) with `timeout` on every provider call, and
    /// as the longest any unwrap waits, queueing behind another included.
    pub fn cached_within<P: KeyProvider + 'static>(
        provider: P,
        ttl: Duration,
        entries: usize,
        timeout: Duration,
    ) -> Self {
        let bounded = CountUnwraps(Deadline::new(provider, timeout));
        DecryptOnly::new(Arc::new(
            DekCache::new(bounded, ttl, entries).with_wait_limit(timeout),
        ))
    }
}

/// Counts the unwraps that reach the provider; everything else passes through.
pub struct CountUnwraps<P>(pub P);

#[async_trait]
impl<P: KeyProvider> KeyProvider for CountUnwraps<P> {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn kind_of_key(&self, key_id: &str) -> &'static str {
        self.0.kind_of_key(key_id)
    }
    async fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo, ProviderError> {
        self.0.create_key(spec).await
    }
    async fn adopt_key(&self, reference: &str, spec: &KeySpec) -> Result<KeyInfo, ProviderError> {
        self.0.adopt_key(reference, spec).await
    }
    async fn describe_key(&self, key: &str) -> Result<KeyInfo, ProviderError> {
        self.0.describe_key(key).await
    }
    fn keeps_claims(&self, key: &str) -> bool {
        self.0.keeps_claims(key)
    }
    fn recorded_owner(&self, key: &str, owner: &str) -> String {
        self.0.recorded_owner(key, owner)
    }
    async fn set_owner(&self, key: &str, owner: &str, claim: &Claim) -> Result<(), ProviderError> {
        self.0.set_owner(key, owner, claim).await
    }
    async fn rotate_key(&self, key: &str) -> Result<KeyInfo, ProviderError> {
        self.0.rotate_key(key).await
    }
    async fn set_version_enabled(&self, key: &str, v: u32, on: bool) -> Result<(), ProviderError> {
        self.0.set_version_enabled(key, v, on).await
    }
    async fn schedule_deletion(
        &self,
        key: &str,
        target: DeletionTarget,
        after: Duration,
    ) -> Result<SystemTime, ProviderError> {
        self.0.schedule_deletion(key, target, after).await
    }
    async fn cancel_deletion(
        &self,
        key: &str,
        target: DeletionTarget,
    ) -> Result<(), ProviderError> {
        self.0.cancel_deletion(key, target).await
    }
    async fn wrap_dek(
        &self,
        key: &str,
        dek: &Dek,
        context: &WrapContext,
    ) -> Result<WrappedDek, ProviderError> {
        self.0.wrap_dek(key, dek, context).await
    }
    async fn wrap_dek_with_version(
        &self,
        key: &str,
        version: u32,
        dek: &Dek,
        context: &WrapContext,
    ) -> Result<WrappedDek, ProviderError> {
        self.0
            .wrap_dek_with_version(key, version, dek, context)
            .await
    }
    async fn unwrap_dek(
        &self,
        wrapped: &WrappedDek,
        context: &WrapContext,
    ) -> Result<Dek, ProviderError> {
        metrics().provider_unwrap();
        self.0.unwrap_dek(wrapped, context).await
    }
    async fn public_key(
        &self,
        key_id: &str,
        version: Option<u32>,
    ) -> Result<PublicKeyInfo, ProviderError> {
        self.0.public_key(key_id, version).await
    }
    async fn sign(
        &self,
        key_id: &str,
        version: Option<u32>,
        input: &ToSign,
    ) -> Result<Signature, ProviderError> {
        self.0.sign(key_id, version, input).await
    }
    async fn verifying_key(
        &self,
        key_id: &str,
        version: Option<u32>,
    ) -> Result<VerifyingKey, ProviderError> {
        self.0.verifying_key(key_id, version).await
    }
    // `rewrap` keeps the trait's default (unwrap + wrap), so it is counted.
}
fn refused() -> ProviderError {
    ProviderError::InvalidRequest(
        "the webhook may only unwrap; key administration is the operator's".into(),
    )
}

#[async_trait]
impl KeyProvider for DecryptOnly {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn kind_of_key(&self, key_id: &str) -> &'static str {
        self.inner.kind_of_key(key_id)
    }
    async fn create_key(&self, _: &KeySpec) -> Result<KeyInfo, ProviderError> {
        Err(refused())
    }
    async fn adopt_key(&self, _: &str, _: &KeySpec) -> Result<KeyInfo, ProviderError> {
        Err(refused())
    }
    async fn describe_key(&self, key: &str) -> Result<KeyInfo, ProviderError> {
        self.inner.describe_key(key).await
    }
    fn keeps_claims(&self, key_id: &str) -> bool {
        self.inner.keeps_claims(key_id)
    }
    async fn set_owner(&self, _: &str, _: &str, _: &Claim) -> Result<(), ProviderError> {
        Err(refused())
    }
    async fn rotate_key(&self, _: &str) -> Result<KeyInfo, ProviderError> {
        Err(refused())
    }
    async fn set_version_enabled(&self, _: &str, _: u32, _: bool) -> Result<(), ProviderError> {
        Err(refused())
    }
    async fn schedule_deletion(
        &self,
        _: &str,
        _: DeletionTarget,
        _: Duration,
    ) -> Result<SystemTime, ProviderError> {
        Err(refused())
    }
    async fn cancel_deletion(&self, _: &str, _: DeletionTarget) -> Result<(), ProviderError> {
        Err(refused())
    }
    async fn wrap_dek(
        &self,
        _: &str,
        _: &Dek,
        _: &WrapContext,
    ) -> Result<WrappedDek, ProviderError> {
        Err(refused())
    }
    async fn unwrap_dek(
        &self,
        wrapped: &WrappedDek,
        context: &WrapContext,
    ) -> Result<Dek, ProviderError> {
        metrics().dek_requested();
        self.inner.unwrap_dek(wrapped, context).await
    }
    async fn public_key(
        &self,
        key_id: &str,
        version: Option<u32>,
    ) -> Result<PublicKeyInfo, ProviderError> {
        self.inner.public_key(key_id, version).await
    }
    /// Signing is asked of [`DecryptOnly::wrapping_provider`], after the
    /// signature request's own authorisation.
    async fn sign(&self, _: &str, _: Option<u32>, _: &ToSign) -> Result<Signature, ProviderError> {
        Err(refused())
    }
    async fn verifying_key(
        &self,
        key_id: &str,
        version: Option<u32>,
    ) -> Result<VerifyingKey, ProviderError> {
        self.inner.verifying_key(key_id, version).await
    }
    async fn rewrap(&self, _: &WrappedDek, _: &WrapContext) -> Result<WrappedDek, ProviderError> {
        Err(refused())
    }
}
