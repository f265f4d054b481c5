//! Erases destroyed key material from the stored keyring when it falls due.
//! Reads treat a version as destroyed from its deletion date on, but the
//! stored keyring would keep its bytes until the next change; the operator
//! runs this so they leave storage within a second of the date instead.

use super::LocalProvider;
use crate::provider::key_record::unix_seconds;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Longest wait between looks at the keyring: deletions scheduled by
/// another process (or restored from a backup) are found within this.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// Wait after a failed attempt (the API server or the file is unavailable).
const RETRY: Duration = Duration::from_secs(2);

/// Runs until dropped: erases what is due, then sleeps until the next
/// deletion date (at most [`MAX_WAIT`]).
pub async fn erase_when_due(provider: Arc<LocalProvider>) {
    loop {
        let wait = match provider.erase_due().await {
            Ok(next) => wait_until(next, SystemTime::now()),
            Err(error) => {
                tracing::warn!(%error, "could not erase destroyed key material from the keyring; retrying");
                RETRY
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// How long to sleep for a deletion due at `next` (unix seconds): until
/// just past that second, never longer than [`MAX_WAIT`].
fn wait_until(next: Option<u64>, now: SystemTime) -> Duration {
    let Some(next) = next else {
        return MAX_WAIT;
    };
    let now_secs = unix_seconds(now);
    let into_second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(Duration::ZERO, |d| {
            Duration::from_nanos(u64::from(d.subsec_nanos()))
        });
    let until = Duration::from_secs(next.saturating_sub(now_secs)).saturating_sub(into_second);
    (until + Duration::from_millis(50)).min(MAX_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_until_just_past_the_due_second_and_never_long() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(100_250);
        assert_eq!(wait_until(Some(103), now), Duration::from_millis(2_800));
        assert_eq!(wait_until(Some(100), now), Duration::from_millis(50));
        assert_eq!(wait_until(Some(50), now), Duration::from_millis(50));
        assert_eq!(wait_until(Some(10_000), now), MAX_WAIT);
        assert_eq!(wait_until(None, now), MAX_WAIT);
    }
}
