//! A provider decorator that gives up on every call after a fixed time, so
//! a KMS that accepts a connection and never answers costs its callers one
//! deadline (an error that names the provider) instead of a hung request.
//! The call underneath is dropped at the deadline; for an HTTP client that
//! closes the connection.

use super::{
    Claim, DeletionTarget, KeyInfo, KeyProvider, KeySpec, NativeRotation, NativeSchedule,
    ProviderError, PublicKeyInfo, Result, Signature, Tags, VerifyingKey, WrapContext, WrappedDek,
};
use crate::crypto::signing::ToSign;
use crate::secret::Dek;
use async_trait::async_trait;
use std::future::Future;
use std::time::{Duration, SystemTime};

pub struct Deadline<P> {
    inner: P,
    limit: Duration,
}

impl<P: KeyProvider> Deadline<P> {
    pub fn new(inner: P, limit: Duration) -> Self {
        Deadline { inner, limit }
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    pub fn inner(&self) -> &P {
        &self.inner
    }

    async fn within<T>(&self, key_id: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(self.limit, call)
            .await
            .unwrap_or_else(|_| {
                Err(ProviderError::TimedOut {
                    provider: self.inner.kind_of_key(key_id),
                    after: self.limit,
                })
            })
    }

    /// The same for a call that names no existing key (create, adopt).
    async fn within_provider<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(self.limit, call)
            .await
            .unwrap_or_else(|_| {
                Err(ProviderError::TimedOut {
                    provider: self.inner.kind(),
                    after: self.limit,
                })
            })
    }
}

#[async_trait]
impl<P: KeyProvider> KeyProvider for Deadline<P> {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn kind_of_key(&self, key_id: &str) -> &'static str {
        self.inner.kind_of_key(key_id)
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo> {
        self.within_provider(self.inner.create_key(spec)).await
    }

    async fn adopt_key(&self, reference: &str, spec: &KeySpec) -> Result<KeyInfo> {
        self.within_provider(self.inner.adopt_key(reference, spec))
            .await
    }

    async fn describe_key(&self, key: &str) -> Result<KeyInfo> {
        self.within(key, self.inner.describe_key(key)).await
    }

    fn keeps_claims(&self, key_id: &str) -> bool {
        self.inner.keeps_claims(key_id)
    }

    fn recorded_owner(&self, key_id: &str, owner: &str) -> String {
        self.inner.recorded_owner(key_id, owner)
    }

    async fn set_owner(&self, key_id: &str, owner: &str, claim: &Claim) -> Result<()> {
        self.within(key_id, self.inner.set_owner(key_id, owner, claim))
            .await
    }

    async fn rotate_key(&self, key_id: &str) -> Result<KeyInfo> {
        self.within(key_id, self.inner.rotate_key(key_id)).await
    }

    async fn set_version_enabled(&self, key_id: &str, version: u32, enabled: bool) -> Result<()> {
        let call = self.inner.set_version_enabled(key_id, version, enabled);
        self.within(key_id, call).await
    }

    async fn schedule_deletion(
        &self,
        key_id: &str,
        target: DeletionTarget,
        window: Duration,
    ) -> Result<SystemTime> {
        let call = self.inner.schedule_deletion(key_id, target, window);
        self.within(key_id, call).await
    }

    async fn cancel_deletion(&self, key_id: &str, target: DeletionTarget) -> Result<()> {
        let call = self.inner.cancel_deletion(key_id, target);
        self.within(key_id, call).await
    }

    async fn wrap_dek(&self, key_id: &str, dek: &Dek, context: &WrapContext) -> Result<WrappedDek> {
        let call = self.inner.wrap_dek(key_id, dek, context);
        self.within(key_id, call).await
    }

    async fn wrap_dek_with_version(
        &self,
        key_id: &str,
        version: u32,
        dek: &Dek,
        context: &WrapContext,
    ) -> Result<WrappedDek> {
        let call = self
            .inner
            .wrap_dek_with_version(key_id, version, dek, context);
        self.within(key_id, call).await
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<Dek> {
        let call = self.inner.unwrap_dek(wrapped, context);
        self.within(&wrapped.key_id, call).await
    }

    async fn public_key(&self, key_id: &str, version: Option<u32>) -> Result<PublicKeyInfo> {
        let call = self.inner.public_key(key_id, version);
        self.within(key_id, call).await
    }

    async fn sign(&self, key_id: &str, version: Option<u32>, input: &ToSign) -> Result<Signature> {
        let call = self.inner.sign(key_id, version, input);
        self.within(key_id, call).await
    }

    async fn verifying_key(&self, key_id: &str, version: Option<u32>) -> Result<VerifyingKey> {
        let call = self.inner.verifying_key(key_id, version);
        self.within(key_id, call).await
    }

    /// One deadline for the whole re-wrap, native or unwrap + wrap.
    async fn rewrap(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<WrappedDek> {
        let call = self.inner.rewrap(wrapped, context);
        self.within(&wrapped.key_id, call).await
    }

    async fn native_rotation(&self, key_id: &str) -> Result<Option<NativeRotation>> {
        self.within(key_id, self.inner.native_rotation(key_id))
            .await
    }

    async fn set_native_rotation(
        &self,
        key_id: &str,
        schedule: Option<NativeSchedule>,
    ) -> Result<()> {
        let call = self.inner.set_native_rotation(key_id, schedule);
        self.within(key_id, call).await
    }

    async fn set_tags(&self, key_id: &str, tags: &Tags) -> Result<()> {
        let call = self.inner.set_tags(key_id, tags);
        self.within(key_id, call).await
    }

    async fn tags(&self, key_id: &str) -> Result<Tags> {
        let call = self.inner.tags(key_id);
        self.within(key_id, call).await
    }
}
