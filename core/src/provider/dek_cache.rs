//! A provider decorator that remembers unwrapped DEKs for a short, bounded
//! time, so that a Deployment's pods starting together cost one provider
//! call per sealed secret instead of one each. Concurrent unwraps of the same
//! wrapped DEK wait for the first (single flight) and share its answer,
//! a failure included: a provider that hangs until its deadline costs the
//! waiters that one deadline, not one each in turn. With a wait limit, no
//! caller waits longer than that in all (queueing and its own call), even
//! when the call it waited for was abandoned by its caller.
//!
//! Cached DEKs are wiped when evicted. A version disabled at the provider
//! can still be served from the cache for up to the TTL, unless the change
//! goes through this decorator, which drops that key's entries at once.

use super::{
    Claim, DeletionTarget, KeyInfo, KeyProvider, KeySpec, ProviderError, PublicKeyInfo, Result,
    Signature, VerifyingKey, WrapContext, WrappedDek, wrap_context_aad,
};
use crate::crypto::sha256;
use crate::crypto::signing::ToSign;
use crate::secret::Dek;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// One wrapped DEK: its cached value, or the last failure to unwrap it
/// (kept for the callers that were waiting while it happened).
#[derive(Default)]
struct SlotState {
    cached: Option<(Dek, Instant)>,
    failed: Option<(ProviderError, Instant)>,
}

type Slot = Arc<tokio::sync::Mutex<SlotState>>;

struct Entry {
    key_id: String,
    slot: Slot,
    last_used: Instant,
}

pub struct DekCache<P> {
    inner: P,
    ttl: Duration,
    capacity: usize,
    wait_limit: Option<Duration>,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl<P: KeyProvider> DekCache<P> {
    /// `ttl`: how long an unwrapped DEK is reused; `capacity`: at most this
    /// many DEKs are held (least recently used go first).
    pub fn new(inner: P, ttl: Duration, capacity: usize) -> Self {
        DekCache {
            inner,
            ttl,
            capacity: capacity.max(1),
            wait_limit: None,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// No unwrap through the cache takes longer than `limit` in all: the
    /// time queued behind another caller's call for the same DEK counts.
    pub fn with_wait_limit(mut self, limit: Duration) -> Self {
        self.wait_limit = Some(limit);
        self
    }

    /// Runs `call` within what is left of the wait limit counted from `arrived`.
    async fn bounded<T>(
        &self,
        key_id: &str,
        arrived: Instant,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(limit) = self.wait_limit else {
            return call.await;
        };
        let deadline = tokio::time::Instant::from_std(arrived + limit);
        tokio::time::timeout_at(deadline, call)
            .await
            .unwrap_or_else(|_| {
                Err(ProviderError::TimedOut {
                    provider: self.inner.kind_of_key(key_id),
                    after: limit,
                })
            })
    }

    pub fn inner(&self) -> &P {
        &self.inner
    }

    fn cache_key(wrapped: &WrappedDek, context: &WrapContext) -> [u8; 32] {
        let version = wrapped.version.to_be_bytes();
        let algorithm = [wrapped.algorithm.code()];
        let bound: [&[u8]; 4] = [
            wrapped.key_id.as_bytes(),
            &version,
            &algorithm,
            &wrapped.blob,
        ];
        sha256(&wrap_context_aad(b"keyward/dek-cache/v1", &bound, context))
    }

    fn slot(&self, cache_key: [u8; 32], key_id: &str) -> Slot {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let now = Instant::now();
        // Entries idle for longer than the TTL hold only expired DEKs: wipe them now.
        entries.retain(|_, entry| now.duration_since(entry.last_used) < self.ttl);
        if let Some(entry) = entries.get_mut(&cache_key) {
            entry.last_used = now;
            return Arc::clone(&entry.slot);
        }
        if entries.len() >= self.capacity {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        let slot: Slot = Arc::default();
        entries.insert(
            cache_key,
            Entry {
                key_id: key_id.to_owned(),
                slot: Arc::clone(&slot),
                last_used: now,
            },
        );
        slot
    }

    /// Drops every cached DEK of `key_id`.
    pub fn forget_key(&self, key_id: &str) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        entries.retain(|_, entry| entry.key_id != key_id);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl<P: KeyProvider> KeyProvider for DekCache<P> {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn kind_of_key(&self, key_id: &str) -> &'static str {
        self.inner.kind_of_key(key_id)
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo> {
        self.inner.create_key(spec).await
    }

    async fn adopt_key(&self, reference: &str, spec: &KeySpec) -> Result<KeyInfo> {
        self.inner.adopt_key(reference, spec).await
    }

    async fn describe_key(&self, key: &str) -> Result<KeyInfo> {
        self.inner.describe_key(key).await
    }

    fn keeps_claims(&self, key_id: &str) -> bool {
        self.inner.keeps_claims(key_id)
    }

    fn recorded_owner(&self, key_id: &str, owner: &str) -> String {
        self.inner.recorded_owner(key_id, owner)
    }

    async fn set_owner(&self, key_id: &str, owner: &str, claim: &Claim) -> Result<()> {
        self.inner.set_owner(key_id, owner, claim).await
    }

    async fn rotate_key(&self, key_id: &str) -> Result<KeyInfo> {
        self.inner.rotate_key(key_id).await
    }

    async fn set_version_enabled(&self, key_id: &str, version: u32, enabled: bool) -> Result<()> {
        self.forget_key(key_id);
        self.inner
            .set_version_enabled(key_id, version, enabled)
            .await
    }

    async fn schedule_deletion(
        &self,
        key_id: &str,
        target: DeletionTarget,
        window: Duration,
    ) -> Result<SystemTime> {
        self.forget_key(key_id);
        self.inner.schedule_deletion(key_id, target, window).await
    }

    async fn cancel_deletion(&self, key_id: &str, target: DeletionTarget) -> Result<()> {
        self.inner.cancel_deletion(key_id, target).await
    }

    async fn wrap_dek(&self, key_id: &str, dek: &Dek, context: &WrapContext) -> Result<WrappedDek> {
        self.inner.wrap_dek(key_id, dek, context).await
    }

    async fn wrap_dek_with_version(
        &self,
        key_id: &str,
        version: u32,
        dek: &Dek,
        context: &WrapContext,
    ) -> Result<WrappedDek> {
        (self.inner)
            .wrap_dek_with_version(key_id, version, dek, context)
            .await
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<Dek> {
        let arrived = Instant::now();
        let slot = self.slot(Self::cache_key(wrapped, context), &wrapped.key_id);
        let key_id = wrapped.key_id.as_str();
        let mut state = self
            .bounded(key_id, arrived, async { Ok(slot.lock().await) })
            .await?;
        if let Some((dek, at)) = state.cached.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(dek.clone());
        }
        // The call this caller queued behind failed: that is its answer too.
        // Callers arriving after the failure try the provider again.
        if let Some((error, at)) = state.failed.as_ref()
            && *at >= arrived
        {
            return Err(error.clone());
        }
        let outcome = self
            .bounded(key_id, arrived, self.inner.unwrap_dek(wrapped, context))
            .await;
        match &outcome {
            Ok(dek) => {
                state.cached = Some((dek.clone(), Instant::now()));
                state.failed = None;
            }
            Err(error) => state.failed = Some((error.clone(), Instant::now())),
        }
        outcome
    }

    async fn public_key(&self, key_id: &str, version: Option<u32>) -> Result<PublicKeyInfo> {
        self.inner.public_key(key_id, version).await
    }

    async fn sign(&self, key_id: &str, version: Option<u32>, input: &ToSign) -> Result<Signature> {
        self.inner.sign(key_id, version, input).await
    }

    async fn verifying_key(&self, key_id: &str, version: Option<u32>) -> Result<VerifyingKey> {
        self.inner.verifying_key(key_id, version).await
    }

    async fn rewrap(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<WrappedDek> {
        self.inner.rewrap(wrapped, context).await
    }
}
