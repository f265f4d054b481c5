//! A `KeyProvider` that counts and times every call by operation before
//! passing it on, so `/metrics` shows all provider traffic (reads included),
//! not only the calls that change keys. It also bounds how many calls run
//! at once: the local keyring is one Secret rewritten whole on every change,
//! so 1,000 keys reconciled together would mostly lose the optimistic-
//! concurrency race (and hold a decoded keyring each); a KMS has request
//! quotas too. The bounds are shared by every `CountedProvider` of one
//! operator ([`Shared`]): the one routing calls on existing keys and the
//! one made per create for the provider a ManagedKey's spec names.

use crate::metrics::Metrics;
use async_trait::async_trait;
use keyward_core::crypto::signing::ToSign;
use keyward_core::provider::{
    Claim, DeletionTarget, KeyInfo, KeySpec, NativeRotation, NativeSchedule, PublicKeyInfo, Result,
    Signature, Tags, VerifyingKey, WrapContext, WrappedDek,
};
use keyward_core::{Dek, KeyProvider};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;

/// Provider calls in flight at once (more wait their turn).
pub const CONCURRENT_CALLS: usize = 4;

/// How long what `create_key` returned stands in for a `describe_key`
/// ([`Shared::just_created`]).
pub const JUST_CREATED_FOR: Duration = Duration::from_secs(30);

/// What every `CountedProvider` of one operator shares.
pub struct Shared {
    in_flight: Semaphore,
    /// Calls that change keys go one at a time: with the local keyring
    /// concurrent writers only lose compare-and-swap races (a scale run saw
    /// 3.5 writes per create and 16 s per create with four at once).
    changes: Semaphore,
    /// Provider key id -> what `create_key` returned, and when.
    created: Mutex<HashMap<String, (KeyInfo, Instant)>>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            in_flight: Semaphore::new(CONCURRENT_CALLS),
            changes: Semaphore::new(1),
            created: Mutex::default(),
        }
    }
}

impl Shared {
    /// What `create_key` returned for `key_id` less than
    /// [`JUST_CREATED_FOR`] ago, if no key-changing call went through since;
    /// once. The reconcile that creates a ManagedKey's provider key (or finds
    /// it, by owner, after a restart) writes its status, and that write
    /// wakes the next reconcile at once: it would describe the key the
    /// provider has just described. Any later reconcile describes it again.
    pub fn just_created(&self, key_id: &str) -> Option<KeyInfo> {
        let (info, at) = self.created_mut().remove(key_id)?;
        (at.elapsed() < JUST_CREATED_FOR).then_some(info)
    }

    fn remember_created(&self, info: &KeyInfo) {
        let mut created = self.created_mut();
        created.retain(|_, (_, at)| at.elapsed() < JUST_CREATED_FOR);
        created.insert(info.key_id.clone(), (info.clone(), Instant::now()));
    }

    fn update_created(&self, key_id: &str, update: impl FnOnce(&mut KeyInfo)) {
        if let Some((info, _)) = self.created_mut().get_mut(key_id) {
            update(info);
        }
    }

    fn forget(&self, key_id: &str) {
        self.created_mut().remove(key_id);
    }

    fn created_mut(&self) -> std::sync::MutexGuard<'_, HashMap<String, (KeyInfo, Instant)>> {
        self.created.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct CountedProvider {
    inner: Arc<dyn KeyProvider>,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
}

impl CountedProvider {
    pub fn new(inner: Arc<dyn KeyProvider>, metrics: Arc<Metrics>, shared: Arc<Shared>) -> Self {
        CountedProvider {
            inner,
            metrics,
            shared,
        }
    }

    /// A call that changes `key_id` (`None`: a create): one at a time, and
    /// what a create returned no longer describes the key.
    async fn change<T>(
        &self,
        op: &'static str,
        key_id: Option<&str>,
        call: impl Future<Output = T>,
    ) -> T {
        let queued = Instant::now();
        if let Some(key_id) = key_id {
            self.shared.forget(key_id);
        }
        // Never closed, so acquiring only waits.
        let _turn = self.shared.changes.acquire().await.ok();
        let result = self.run(op, queued, call).await;
        if let Some(key_id) = key_id {
            self.shared.forget(key_id);
        }
        result
    }

    async fn timed<T>(&self, op: &'static str, call: impl Future<Output = T>) -> T {
        self.run(op, Instant::now(), call).await
    }

    /// Latency is measured from when the call may start; the time before
    /// that (since `queued`) is counted as waiting.
    async fn run<T>(&self, op: &'static str, queued: Instant, call: impl Future<Output = T>) -> T {
        // Never closed, so acquiring only waits.
        let _permit = self.shared.in_flight.acquire().await.ok();
        let started = Instant::now();
        self.metrics.provider_waited(op, started - queued);
        let result = call.await;
        self.metrics.provider_call_by_op(op, started.elapsed());
        result
    }
}

#[async_trait]
impl KeyProvider for CountedProvider {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo> {
        let created = self
            .change("create_key", None, self.inner.create_key(spec))
            .await;
        if let Ok(info) = &created {
            self.shared.remember_created(info);
        }
        created
    }

    async fn adopt_key(&self, reference: &str, spec: &KeySpec) -> Result<KeyInfo> {
        let adopted = self
            .change("adopt_key", None, self.inner.adopt_key(reference, spec))
            .await;
        if let Ok(info) = &adopted {
            self.shared.remember_created(info);
        }
        adopted
    }

    async fn describe_key(&self, key: &str) -> Result<KeyInfo> {
        self.timed("describe_key", self.inner.describe_key(key))
            .await
    }

    fn keeps_claims(&self, key_id: &str) -> bool {
        self.inner.keeps_claims(key_id)
    }

    fn recorded_owner(&self, key_id: &str, owner: &str) -> String {
        self.inner.recorded_owner(key_id, owner)
    }

    /// Unlike other changes, keeps what a create just returned, updated:
    /// a new key is claimed at once, and the next reconcile need not
    /// describe it again for that.
    async fn set_owner(&self, key_id: &str, owner: &str, claim: &Claim) -> Result<()> {
        let queued = Instant::now();
        let _turn = self.shared.changes.acquire().await.ok();
        let call = self.inner.set_owner(key_id, owner, claim);
        let result = self.run("set_owner", queued, call).await;
        match &result {
            Ok(()) => {
                let recorded = self.inner.recorded_owner(key_id, owner);
                let keeps = self.inner.keeps_claims(key_id);
                self.shared.update_created(key_id, |info| {
                    info.owner = Some(recorded);
                    if keeps {
                        info.claim = Some(claim.clone());
                    }
                });
            }
            Err(_) => self.shared.forget(key_id),
        }
        result
    }

    async fn rotate_key(&self, key_id: &str) -> Result<KeyInfo> {
        self.change("rotate_key", Some(key_id), self.inner.rotate_key(key_id))
            .await
    }

    async fn set_version_enabled(&self, key_id: &str, version: u32, enabled: bool) -> Result<()> {
        let call = self.inner.set_version_enabled(key_id, version, enabled);
        self.change("set_version_enabled", Some(key_id), call).await
    }

    async fn schedule_deletion(
        &self,
        key_id: &str,
        target: DeletionTarget,
        window: Duration,
    ) -> Result<SystemTime> {
        let call = self.inner.schedule_deletion(key_id, target, window);
        self.change("schedule_deletion", Some(key_id), call).await
    }

    async fn cancel_deletion(&self, key_id: &str, target: DeletionTarget) -> Result<()> {
        let call = self.inner.cancel_deletion(key_id, target);
        self.change("cancel_deletion", Some(key_id), call).await
    }

    async fn wrap_dek(&self, key_id: &str, dek: &Dek, context: &WrapContext) -> Result<WrappedDek> {
        let call = self.inner.wrap_dek(key_id, dek, context);
        self.timed("wrap_dek", call).await
    }

    async fn wrap_dek_with_version(
        &self,
        key_id: &str,
        version: u32,
        dek: &Dek,
        context: &WrapContext,
    ) -> Result<WrappedDek> {
        let call = (self.inner).wrap_dek_with_version(key_id, version, dek, context);
        self.timed("wrap_dek", call).await
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<Dek> {
        let call = self.inner.unwrap_dek(wrapped, context);
        self.timed("unwrap_dek", call).await
    }

    async fn public_key(&self, key_id: &str, version: Option<u32>) -> Result<PublicKeyInfo> {
        let call = self.inner.public_key(key_id, version);
        self.timed("public_key", call).await
    }

    async fn sign(&self, key_id: &str, version: Option<u32>, input: &ToSign) -> Result<Signature> {
        self.timed("sign", self.inner.sign(key_id, version, input))
            .await
    }

    async fn verifying_key(&self, key_id: &str, version: Option<u32>) -> Result<VerifyingKey> {
        let call = self.inner.verifying_key(key_id, version);
        self.timed("verifying_key", call).await
    }

    async fn rewrap(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<WrappedDek> {
        self.timed("rewrap", self.inner.rewrap(wrapped, context))
            .await
    }

    async fn native_rotation(&self, key_id: &str) -> Result<Option<NativeRotation>> {
        self.timed("native_rotation", self.inner.native_rotation(key_id))
            .await
    }

    async fn set_native_rotation(
        &self,
        key_id: &str,
        schedule: Option<NativeSchedule>,
    ) -> Result<()> {
        let call = self.inner.set_native_rotation(key_id, schedule);
        self.change("set_native_rotation", Some(key_id), call).await
    }

    async fn set_tags(&self, key_id: &str, tags: &Tags) -> Result<()> {
        let call = self.inner.set_tags(key_id, tags);
        self.change("set_tags", Some(key_id), call).await
    }

    async fn tags(&self, key_id: &str) -> Result<Tags> {
        self.inner.tags(key_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::provider::KeyAlgorithm;

    #[tokio::test]
    async fn every_call_is_counted_by_operation() {
        use keyward_core::local::{KeyringStore, LocalProvider, RootKey};
        let dir = tempfile::tempdir().unwrap();
        let store = KeyringStore::new(dir.path(), RootKey::generate());
        let local = LocalProvider::open_or_initialise(store).unwrap();
        let metrics = Arc::new(Metrics::default());
        let provider = CountedProvider::new(Arc::new(local), Arc::clone(&metrics), Arc::default());
        let spec = KeySpec {
            name: "k".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: None,
            description: None,
        };
        let info = provider.create_key(&spec).await.unwrap();
        provider.describe_key(&info.key_id).await.unwrap();
        provider.describe_key(&info.key_id).await.unwrap();
        assert!(provider.describe_key("nope").await.is_err());
        let text = metrics.render();
        assert!(text.contains("keyward_provider_calls_total{op=\"create_key\"} 1\n"));
        // Failed calls count too: they still cost a provider round trip.
        assert!(text.contains("keyward_provider_calls_total{op=\"describe_key\"} 3\n"));
        assert!(
            text.contains("keyward_provider_call_duration_seconds_count{op=\"describe_key\"} 3\n")
        );
    }

    #[tokio::test]
    async fn a_create_stands_in_for_one_describe_until_the_key_changes() {
        use keyward_core::local::{KeyringStore, LocalProvider, RootKey};
        let dir = tempfile::tempdir().unwrap();
        let store = KeyringStore::new(dir.path(), RootKey::generate());
        let local: Arc<dyn KeyProvider> =
            Arc::new(LocalProvider::open_or_initialise(store).unwrap());
        let shared = Arc::<Shared>::default();
        let metrics = Arc::new(Metrics::default());
        // One for creates, one for calls on existing keys, as in `Context`.
        let creates = CountedProvider::new(
            Arc::clone(&local),
            Arc::clone(&metrics),
            Arc::clone(&shared),
        );
        let calls = CountedProvider::new(local, metrics, Arc::clone(&shared));
        let spec = |name: &str| KeySpec {
            name: name.into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: Some(format!("uid-{name}")),
            description: None,
        };
        let created = creates.create_key(&spec("a")).await.unwrap();
        assert_eq!(shared.just_created(&created.key_id), Some(created.clone()));
        assert_eq!(shared.just_created(&created.key_id), None, "once");

        // Found by owner after a restart: the same answer.
        let found = creates.create_key(&spec("a")).await.unwrap();
        assert_eq!(found.key_id, created.key_id);
        assert_eq!(shared.just_created(&found.key_id), Some(found));

        // A change through either provider forgets it.
        let other = creates.create_key(&spec("b")).await.unwrap();
        calls.rotate_key(&other.key_id).await.unwrap();
        assert_eq!(shared.just_created(&other.key_id), None);
        creates.create_key(&spec("b")).await.unwrap();
        calls
            .set_version_enabled(&other.key_id, 1, false)
            .await
            .unwrap();
        assert_eq!(shared.just_created(&other.key_id), None);
        // Reads do not.
        let again = creates.create_key(&spec("b")).await.unwrap();
        calls.describe_key(&other.key_id).await.unwrap();
        assert_eq!(shared.just_created(&other.key_id), Some(again));
    }
}
