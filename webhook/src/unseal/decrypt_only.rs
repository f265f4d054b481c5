//! The webhook's view of a provider: decrypt only. Administrative calls
//! are refused, mirroring the admin/user split of KMS key policies; the
//! operator is the only component that creates, rotates or destroys keys.
//! DEK caching is `keyward_core::provider::DekCache`, underneath this.

use async_trait::async_trait;
use keyward_core::Dek;
use keyward_core::provider::{
    DeletionTarget, KeyInfo, KeyProvider, KeySpec, ProviderError, PublicKeyInfo, WrapContext,
    WrappedDek,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub struct DecryptOnly {
    inner: Arc<dyn KeyProvider>,
}

impl DecryptOnly {
    pub fn new(inner: Arc<dyn KeyProvider>) -> Self {
        DecryptOnly { inner }
    }
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
    async fn create_key(&self, _: &KeySpec) -> Result<KeyInfo, ProviderError> {
        Err(refused())
    }
    async fn describe_key(&self, key: &str) -> Result<KeyInfo, ProviderError> {
        self.inner.describe_key(key).await
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
        self.inner.unwrap_dek(wrapped, context).await
    }
    async fn public_key(
        &self,
        key_id: &str,
        version: Option<u32>,
    ) -> Result<PublicKeyInfo, ProviderError> {
        self.inner.public_key(key_id, version).await
    }
    async fn rewrap(&self, _: &WrappedDek, _: &WrapContext) -> Result<WrappedDek, ProviderError> {
        Err(refused())
    }
}
