//! Per-operation latency of a provider and the effect of [`DekCache`] on
//! concurrent unwraps, measured the same way for every peer.

use async_trait::async_trait;
use futures::future::join_all;
use keyward_core::Dek;
use keyward_core::crypto::signing::ToSign;
use keyward_core::provider::{
    Claim, DekCache, DeletionTarget, KeyAlgorithm, KeyInfo, KeyProvider, KeySpec, PublicKeyInfo,
    Result, Signature, VerifyingKey, WrapContext, WrappedDek,
};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Passes every call through and counts unwraps (what the cache saves).
pub struct CountingProvider<'a> {
    inner: &'a dyn KeyProvider,
    unwraps: AtomicU64,
}

impl<'a> CountingProvider<'a> {
    pub fn new(inner: &'a dyn KeyProvider) -> Self {
        CountingProvider {
            inner,
            unwraps: AtomicU64::new(0),
        }
    }

    pub fn unwraps(&self) -> u64 {
        self.unwraps.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl KeyProvider for CountingProvider<'_> {
    fn kind(&self) -> &'static str {
        self.inner.kind()
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
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.inner.unwrap_dek(wrapped, context).await
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

/// Medians of `ROUNDS` sequential calls, and the concurrent-unwrap figures.
pub struct Measurement {
    pub provider: &'static str,
    pub wrap: Duration,
    pub unwrap: Duration,
    pub rewrap: Duration,
    pub describe: Duration,
    pub concurrent: usize,
    /// Provider unwrap calls for `concurrent` simultaneous unwraps, no cache.
    pub calls_without_cache: u64,
    pub elapsed_without_cache: Duration,
    /// The same through [`DekCache`].
    pub calls_with_cache: u64,
    pub elapsed_with_cache: Duration,
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "MEASURE provider={} median_ms wrap={:.2} unwrap={:.2} rewrap={:.2} describe={:.2} | {} concurrent unwraps of one DEK: no cache {} calls in {:.1} ms, DekCache {} calls in {:.1} ms",
            self.provider,
            ms(self.wrap),
            ms(self.unwrap),
            ms(self.rewrap),
            ms(self.describe),
            self.concurrent,
            self.calls_without_cache,
            ms(self.elapsed_without_cache),
            self.calls_with_cache,
            ms(self.elapsed_with_cache),
        )
    }
}

const ROUNDS: usize = 20;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn timed<T>(future: impl std::future::Future<Output = Result<T>>) -> (T, Duration) {
    let start = Instant::now();
    let value = future.await.unwrap_or_else(|e| panic!("[measure] {e}"));
    (value, start.elapsed())
}

/// Measures `provider` on a fresh symmetric key; `concurrent` callers unwrap
/// one wrapped DEK at the same moment, first directly, then through a cache.
pub async fn measure(
    provider: &dyn KeyProvider,
    name_prefix: &str,
    concurrent: usize,
) -> Measurement {
    let spec = KeySpec {
        name: format!("{name_prefix}-measure-{}", crate::unique_suffix()),
        algorithm: KeyAlgorithm::Aes256,
        owner: None,
        description: None,
    };
    let key = provider
        .create_key(&spec)
        .await
        .unwrap_or_else(|e| panic!("[measure] {e}"));
    let context: WrapContext = [("keyward.io/namespace".to_owned(), "bench".to_owned())].into();
    let dek = Dek::generate();
    let (mut wraps, mut unwraps, mut rewraps, mut describes) = (vec![], vec![], vec![], vec![]);
    let mut wrapped = None;
    for _ in 0..ROUNDS {
        let (w, took) = timed(provider.wrap_dek(&key.key_id, &dek, &context)).await;
        wraps.push(took);
        unwraps.push(timed(provider.unwrap_dek(&w, &context)).await.1);
        rewraps.push(timed(provider.rewrap(&w, &context)).await.1);
        describes.push(timed(provider.describe_key(&key.key_id)).await.1);
        wrapped = Some(w);
    }
    let wrapped = wrapped.expect("at least one round");

    let counting = CountingProvider::new(provider);
    let start = Instant::now();
    let results = join_all((0..concurrent).map(|_| counting.unwrap_dek(&wrapped, &context))).await;
    let elapsed_without_cache = start.elapsed();
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_ok_and(|d| d.expose() == dek.expose())),
        "[measure] uncached unwraps"
    );
    let calls_without_cache = counting.unwraps();

    let cached = DekCache::new(CountingProvider::new(provider), Duration::from_secs(30), 64);
    let start = Instant::now();
    let results = join_all((0..concurrent).map(|_| cached.unwrap_dek(&wrapped, &context))).await;
    let elapsed_with_cache = start.elapsed();
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_ok_and(|d| d.expose() == dek.expose())),
        "[measure] cached unwraps"
    );

    Measurement {
        provider: provider.kind(),
        wrap: median(wraps),
        unwrap: median(unwraps),
        rewrap: median(rewraps),
        describe: median(describes),
        concurrent,
        calls_without_cache,
        elapsed_without_cache,
        calls_with_cache: cached.inner().unwraps(),
        elapsed_with_cache,
    }
}
