//! The provider's own retry loop around every Cloud KMS call (the client
//! library's is switched off), bounded by attempts and by a deadline.

use crate::config::{RetrySettings, Timeouts};
use crate::errors::{At, from_gax, is_retryable};
use google_cloud_gax::error::Error as GaxError;
use keyward_core::provider::{ProviderError, Result};
use std::future::Future;
use std::time::Duration;

/// Whether repeating a call that may have reached the server is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotent {
    Yes,
    No,
}

/// Runs `call` until it succeeds, fails for good, runs out of attempts or
/// passes the operation deadline.
pub async fn retrying<T, F, Fut>(
    retry: &RetrySettings,
    timeouts: &Timeouts,
    operation: &'static str,
    idempotent: Idempotent,
    at: At<'_>,
    mut call: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, GaxError>>,
{
    let attempts = async {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match call().await {
                Ok(value) => return Ok(value),
                Err(error) => {
                    let again = attempt < retry.max_attempts
                        && is_retryable(&error, idempotent == Idempotent::Yes);
                    if !again {
                        return Err(from_gax(&error, at));
                    }
                    let wait = backoff(retry, attempt);
                    tracing::warn!(
                        operation,
                        key = at.key,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %from_gax(&error, at),
                        "Cloud KMS call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    };
    match tokio::time::timeout(timeouts.operation, attempts).await {
        Ok(result) => result,
        Err(_) => Err(ProviderError::Unavailable(format!(
            "Cloud KMS {operation} did not complete within {:?}",
            timeouts.operation
        ))),
    }
}

/// Full jitter: `random(0, min(max, initial * 2^(attempt-1)))`.
fn backoff(retry: &RetrySettings, attempt: u32) -> Duration {
    let cap = retry
        .initial_backoff
        .saturating_mul(1u32 << (attempt - 1).min(20))
        .min(retry.max_backoff);
    let mut bytes = [0u8; 8];
    keyward_core::crypto::fill_random(&mut bytes);
    let fraction = u64::from_le_bytes(bytes) as f64 / u64::MAX as f64;
    cap.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_under_an_exponential_cap() {
        let retry = RetrySettings {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        for attempt in 1..8 {
            let cap = Duration::from_millis((100u64 << (attempt - 1)).min(1000));
            for _ in 0..50 {
                assert!(backoff(&retry, attempt) <= cap);
            }
        }
    }
}
