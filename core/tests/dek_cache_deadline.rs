//! A provider that hangs, behind `Deadline` and the DEK cache: callers
//! fail at the deadline with an error naming the provider, the waiters of
//! one hung DEK share its single call, other DEKs are not held up, and a
//! caller that gives up (waiter or leader) leaves the cache working. A wrap
//! under a named version goes through both layers and is refused, as
//! retryable, when the provider's primary is another version.

use async_trait::async_trait;
use keyward_core::Dek;
use keyward_core::provider::{
    Claim, Deadline, DekCache, DeletionTarget, KeyInfo, KeyProvider, KeySpec, ProviderError,
    PublicKeyInfo, WrapAlgorithm, WrapContext, WrappedDek,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Unwraps by key id: `hang-*` never answers, `slow-*` answers after
/// 300 ms, `flaky-*` fails its first call, anything else at once.
#[derive(Default)]
struct Scripted {
    unwraps: AtomicUsize,
}

impl Scripted {
    fn unwraps(&self) -> usize {
        self.unwraps.load(Ordering::SeqCst)
    }
}

fn refused() -> ProviderError {
    ProviderError::InvalidRequest("not scripted".into())
}

#[async_trait]
impl KeyProvider for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }
    fn kind_of_key(&self, key_id: &str) -> &'static str {
        if key_id.starts_with("hang-") {
            "hung-kms"
        } else {
            "scripted"
        }
    }
    async fn create_key(&self, _: &KeySpec) -> Result<KeyInfo, ProviderError> {
        Err(refused())
    }
    async fn describe_key(&self, key: &str) -> Result<KeyInfo, ProviderError> {
        if key.starts_with("hang-") {
            std::future::pending::<()>().await;
        }
        Err(refused())
    }
    fn keeps_claims(&self, _: &str) -> bool {
        false
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
    /// Wraps under version 1, as a provider whose primary is version 1.
    async fn wrap_dek(
        &self,
        key_id: &str,
        _: &Dek,
        _: &WrapContext,
    ) -> Result<WrappedDek, ProviderError> {
        Ok(wrapped(key_id))
    }
    async fn unwrap_dek(
        &self,
        wrapped: &WrappedDek,
        _: &WrapContext,
    ) -> Result<Dek, ProviderError> {
        let call = self.unwraps.fetch_add(1, Ordering::SeqCst);
        let key = wrapped.key_id.as_str();
        if key.starts_with("hang-") {
            std::future::pending::<()>().await;
        } else if key.starts_with("slow-") {
            tokio::time::sleep(Duration::from_millis(300)).await;
        } else if key.starts_with("flaky-") && call == 0 {
            return Err(ProviderError::Unavailable("first call fails".into()));
        }
        Ok(Dek::from_slice(&[7; 32]).expect("32 bytes"))
    }
    async fn public_key(&self, _: &str, _: Option<u32>) -> Result<PublicKeyInfo, ProviderError> {
        Err(refused())
    }
}

fn wrapped(key_id: &str) -> WrappedDek {
    WrappedDek {
        key_id: key_id.to_owned(),
        version: 1,
        algorithm: WrapAlgorithm::Symmetric,
        blob: key_id.as_bytes().to_vec(),
    }
}

fn context() -> WrapContext {
    [("keyward.io/namespace".to_owned(), "shop".to_owned())].into()
}

const LIMIT: Duration = Duration::from_millis(400);
/// Scheduling slack on a busy 2-core machine.
const SLACK: Duration = Duration::from_millis(250);

/// The webhook's stack: cache (bounded wait) over a deadline per call.
fn stack() -> Arc<DekCache<Deadline<Scripted>>> {
    Arc::new(
        DekCache::new(
            Deadline::new(Scripted::default(), LIMIT),
            Duration::from_secs(30),
            16,
        )
        .with_wait_limit(LIMIT),
    )
}

async fn unwrap_timed(
    cache: Arc<DekCache<Deadline<Scripted>>>,
    key_id: &'static str,
) -> (Result<Dek, ProviderError>, Duration) {
    let started = Instant::now();
    let outcome = cache.unwrap_dek(&wrapped(key_id), &context()).await;
    (outcome, started.elapsed())
}

#[tokio::test]
async fn the_deadline_names_the_provider_that_hung() {
    let deadline = Deadline::new(Scripted::default(), Duration::from_millis(250));
    let started = Instant::now();
    let error = deadline.describe_key("hang-db").await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(
        error,
        ProviderError::TimedOut {
            provider: "hung-kms",
            after: Duration::from_millis(250)
        }
    );
    assert_eq!(
        error.to_string(),
        "key provider `hung-kms` did not answer within 0.25 s"
    );
    assert!(error.is_retryable());
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_millis(250) + SLACK,
        "{elapsed:?}"
    );
    // Calls that answer in time pass through untouched.
    let answered = deadline.unwrap_dek(&wrapped("fast-db"), &context()).await;
    assert!(answered.is_ok());
}

#[tokio::test]
async fn waiters_on_a_hung_dek_share_one_call_and_fail_at_its_deadline() {
    let cache = stack();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..5u64 {
        let cache = Arc::clone(&cache);
        tasks.push(tokio::spawn(async move {
            // Waiters arrive while the first call is in flight.
            tokio::time::sleep(Duration::from_millis(40 * i)).await;
            unwrap_timed(cache, "hang-db").await
        }));
    }
    for task in tasks {
        let (outcome, _) = task.await.unwrap();
        let error = outcome.unwrap_err();
        assert!(
            matches!(error, ProviderError::TimedOut { provider: "hung-kms", after } if after == LIMIT),
            "{error:?}"
        );
        // Everyone is answered at the first caller's deadline.
        let at = started.elapsed();
        assert!(at >= LIMIT && at < LIMIT + SLACK, "answered at {at:?}");
    }
    assert_eq!(
        cache.inner().inner().unwraps(),
        1,
        "one call for all waiters"
    );

    // Arriving after the failure: a new attempt, not a remembered error.
    let (outcome, elapsed) = unwrap_timed(Arc::clone(&cache), "hang-db").await;
    assert!(outcome.is_err() && elapsed >= LIMIT);
    assert_eq!(cache.inner().inner().unwraps(), 2);
}

#[tokio::test]
async fn a_hung_dek_does_not_hold_up_other_deks() {
    let cache = stack();
    let hung = tokio::spawn(unwrap_timed(Arc::clone(&cache), "hang-db"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    for key in ["fast-api", "fast-web", "fast-cache"] {
        let (outcome, elapsed) = unwrap_timed(Arc::clone(&cache), key).await;
        assert!(outcome.is_ok(), "{key}: {outcome:?}");
        assert!(
            elapsed < Duration::from_millis(50),
            "{key} took {elapsed:?}"
        );
    }
    assert!(!hung.is_finished(), "the hung call is still in flight");
    let (outcome, elapsed) = hung.await.unwrap();
    assert!(matches!(outcome, Err(ProviderError::TimedOut { .. })));
    assert!(elapsed < LIMIT + SLACK, "{elapsed:?}");
}

#[tokio::test]
async fn a_waiter_dropped_mid_wait_leaves_the_leader_and_the_cache_intact() {
    let cache = stack();
    let leader = tokio::spawn(unwrap_timed(Arc::clone(&cache), "slow-db"));
    tokio::time::sleep(Duration::from_millis(30)).await;
    // A caller whose own request was cancelled while it queued.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        cache.unwrap_dek(&wrapped("slow-db"), &context()),
    )
    .await;
    assert!(gave_up.is_err(), "the waiter was dropped mid-wait");
    let (outcome, _) = leader.await.unwrap();
    assert!(outcome.is_ok());
    let (outcome, elapsed) = unwrap_timed(Arc::clone(&cache), "slow-db").await;
    assert!(
        outcome.is_ok() && elapsed < Duration::from_millis(50),
        "a cache hit"
    );
    assert_eq!(cache.inner().inner().unwraps(), 1);
}

#[tokio::test]
async fn a_leader_dropped_mid_call_hands_over_to_the_next_waiter() {
    let cache = stack();
    let leader = tokio::spawn(unwrap_timed(Arc::clone(&cache), "slow-db"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let waiter = tokio::spawn(unwrap_timed(Arc::clone(&cache), "slow-db"));
    tokio::time::sleep(Duration::from_millis(30)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let (outcome, elapsed) = waiter.await.unwrap();
    assert!(
        outcome.is_ok(),
        "the waiter made the call itself: {outcome:?}"
    );
    assert!(elapsed < LIMIT, "{elapsed:?}");
    assert_eq!(cache.inner().inner().unwraps(), 2);
}

#[tokio::test]
async fn the_wait_limit_counts_the_time_spent_queueing() {
    // No per-call deadline underneath: only the cache's wait limit.
    let cache = Arc::new(
        DekCache::new(Scripted::default(), Duration::from_secs(30), 16).with_wait_limit(LIMIT),
    );
    let leader = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move { cache.unwrap_dek(&wrapped("hang-db"), &context()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiter = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = cache.unwrap_dek(&wrapped("hang-db"), &context()).await;
            (outcome, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    leader.abort();
    // The waiter now calls the hung provider itself, but only for what is
    // left of its own limit.
    let (outcome, elapsed) = waiter.await.unwrap();
    assert!(
        matches!(
            outcome,
            Err(ProviderError::TimedOut {
                provider: "hung-kms",
                ..
            })
        ),
        "{outcome:?}"
    );
    assert!(
        elapsed >= LIMIT && elapsed < LIMIT + SLACK,
        "the waiter was answered {elapsed:?} after it arrived"
    );
    assert_eq!(cache.inner().unwraps(), 2);
}

#[tokio::test]
async fn a_failure_is_not_cached_for_later_callers() {
    let cache = stack();
    let (first, _) = unwrap_timed(Arc::clone(&cache), "flaky-db").await;
    assert!(matches!(first, Err(ProviderError::Unavailable(_))));
    let (second, _) = unwrap_timed(Arc::clone(&cache), "flaky-db").await;
    assert!(second.is_ok());
    assert_eq!(cache.inner().inner().unwraps(), 2);
}

#[tokio::test]
async fn a_wrap_under_a_newer_version_than_the_providers_primary_is_refused_as_retryable() {
    let stack = stack();
    let dek = Dek::from_slice(&[7; 32]).expect("32 bytes");
    let wrapped = stack
        .wrap_dek_with_version("k", 1, &dek, &context())
        .await
        .unwrap();
    assert_eq!(wrapped.version, 1);
    let lagging = stack
        .wrap_dek_with_version("k", 2, &dek, &context())
        .await
        .unwrap_err();
    assert!(lagging.is_retryable(), "{lagging}");
    assert!(
        lagging.to_string().contains("the cluster's is version 2"),
        "{lagging}"
    );
}
