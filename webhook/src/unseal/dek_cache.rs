//! The webhook's view of a provider: decrypt only (admin calls are refused,
//! mirroring the admin/user split of KMS key policies), with unwrapped DEKs
//! kept briefly so the pods of one Deployment cost one provider call.
//! Bounded in size and age; entries are zeroized on drop (`Dek`).

use async_trait::async_trait;
use keyward_core::Dek;
use keyward_core::provider::{
    DeletionTarget, KeyInfo, KeyProvider, KeySpec, ProviderError, PublicKeyInfo, WrapContext,
    WrappedDek,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

type Key = (String, u32, Vec<u8>, WrapContext);

pub struct DecryptOnly {
    inner: Arc<dyn KeyProvider>,
    ttl: Duration,
    capacity: usize,
    cache: Mutex<HashMap<Key, (Dek, Instant)>>,
    provider_calls: AtomicU64,
}

impl DecryptOnly {
    /// `capacity` 0 or `ttl` zero turns the cache off.
    pub fn new(inner: Arc<dyn KeyProvider>, ttl: Duration, capacity: usize) -> Self {
        DecryptOnly {
            inner,
            ttl,
            capacity,
            cache: Mutex::new(HashMap::new()),
            provider_calls: AtomicU64::new(0),
        }
    }

    /// How many unwraps reached the provider.
    pub fn provider_calls(&self) -> u64 {
        self.provider_calls.load(Ordering::Relaxed)
    }

    fn cached(&self, key: &Key) -> Option<Dek> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(dek, _)| dek.clone())
    }

    fn remember(&self, key: Key, dek: &Dek) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.capacity {
            cache.retain(|_, (_, at)| at.elapsed() < self.ttl);
        }
        if cache.len() >= self.capacity
            && let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            cache.remove(&oldest);
        }
        cache.insert(key, (dek.clone(), Instant::now()));
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
        let key = (
            wrapped.key_id.clone(),
            wrapped.version,
            wrapped.blob.clone(),
            context.clone(),
        );
        if let Some(dek) = self.cached(&key) {
            return Ok(dek);
        }
        self.provider_calls.fetch_add(1, Ordering::Relaxed);
        let dek = self.inner.unwrap_dek(wrapped, context).await?;
        self.remember(key, &dek);
        Ok(dek)
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
