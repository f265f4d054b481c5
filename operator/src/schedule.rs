//! When a key next needs attention: its rotation due time and the exact
//! requeue delay until the earliest deadline. No periodic polling: a key is
//! looked at again when something about it changes or when it is due.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use keyward_crds::HumanDuration;
use std::time::Duration;

/// Longest single requeue; tokio timers cap near two years, and a month is
/// a cheap safety net against a missed watch event.
pub const MAX_REQUEUE: Duration = Duration::from_secs(30 * 86_400);
/// Requeue a little after the deadline, so the reconcile that runs finds
/// it passed rather than a hair early.
pub const DEADLINE_SLACK: Duration = Duration::from_millis(50);

/// `created + period`: when the primary version stops being the one to use.
pub fn next_rotation(primary_created: Timestamp, period: HumanDuration) -> Timestamp {
    let secs = i64::try_from(period.as_secs()).unwrap_or(i64::MAX);
    primary_created
        .checked_add(SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::MAX)
}

/// When to start warning: `expiry_notice` before `next`.
pub fn notice_at(next: Timestamp, notice: HumanDuration) -> Timestamp {
    let secs = i64::try_from(notice.as_secs()).unwrap_or(i64::MAX);
    next.checked_sub(SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::MIN)
}

pub fn is_due(deadline: Timestamp, now: Timestamp) -> bool {
    deadline <= now
}

/// Delay until the earliest deadline that is still ahead of `now` (plus
/// slack), capped at [`MAX_REQUEUE`]; `None` when there is none.
pub fn requeue_after(
    now: Timestamp,
    deadlines: impl IntoIterator<Item = Timestamp>,
) -> Option<Duration> {
    deadlines
        .into_iter()
        .filter(|d| *d > now)
        .min()
        .map(|deadline| {
            let ahead = now.duration_until(deadline);
            Duration::try_from(ahead)
                .unwrap_or(MAX_REQUEUE)
                .saturating_add(DEADLINE_SLACK)
                .min(MAX_REQUEUE)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn next_rotation_is_primary_creation_plus_period() {
        let created = at(1_700_000_000);
        assert_eq!(
            next_rotation(created, HumanDuration::from_days(90)),
            at(1_700_000_000 + 90 * 86_400)
        );
        assert_eq!(
            next_rotation(created, HumanDuration::from_secs(u64::MAX)),
            Timestamp::MAX
        );
        let due = next_rotation(created, HumanDuration::from_secs(60));
        assert!(!is_due(due, at(1_700_000_059)));
        assert!(is_due(due, at(1_700_000_060)));
    }

    #[test]
    fn requeue_is_exactly_the_earliest_future_deadline() {
        let now = at(1_000);
        let after = requeue_after(now, [at(1_030), at(1_010), at(990)]).unwrap();
        assert_eq!(after, Duration::from_secs(10) + DEADLINE_SLACK);
        assert_eq!(
            requeue_after(now, [at(999)]),
            None,
            "past deadlines are handled, not requeued"
        );
        assert_eq!(requeue_after(now, []), None);
        assert_eq!(
            requeue_after(now, [at(1_000 + 3 * 365 * 86_400)]),
            Some(MAX_REQUEUE)
        );
    }
}
