//! A token bucket per pod, so one crash-looping pod cannot drain the
//! provider or the API server. Each SealedSecret a request names costs one
//! token, so one request cannot buy unbounded work. Bounded: idle, full
//! buckets are forgotten.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

const MAX_TRACKED: usize = 10_000;

pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(burst: u32, per_second: f64) -> Self {
        RateLimiter {
            burst: f64::from(burst.max(1)),
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; false when its bucket is empty.
    pub fn allow(&self, key: &str) -> bool {
        self.allow_n(key, 1)
    }

    /// Takes `n` tokens for `key` at once, or none (false) when fewer are
    /// left. More than [`burst`](Self::burst) is never allowed.
    pub fn allow_n(&self, key: &str, n: usize) -> bool {
        self.allow_at(key, n, Instant::now())
    }

    /// The most tokens a bucket holds: the largest request ever allowed.
    pub fn burst(&self) -> usize {
        self.burst as usize
    }

    fn allow_at(&self, key: &str, n: usize, now: Instant) -> bool {
        let cost = n as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(key) {
            let (burst, rate) = (self.burst, self.per_second);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= cost {
            *tokens -= cost;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills_per_key() {
        let limiter = RateLimiter::new(2, 1.0);
        let t0 = Instant::now();
        assert!(limiter.allow_at("a", 1, t0));
        assert!(limiter.allow_at("a", 1, t0));
        assert!(!limiter.allow_at("a", 1, t0));
        assert!(limiter.allow_at("b", 1, t0), "buckets are per pod");
        assert!(limiter.allow_at("a", 1, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn each_item_is_charged() {
        let limiter = RateLimiter::new(5, 1.0);
        let t0 = Instant::now();
        assert_eq!(limiter.burst(), 5);
        assert!(limiter.allow_at("a", 3, t0), "3 of 5");
        assert!(!limiter.allow_at("a", 3, t0), "2 left: all or nothing");
        assert!(
            limiter.allow_at("a", 2, t0),
            "the refused request took none"
        );
        assert!(!limiter.allow_at("a", 1, t0));
        assert!(
            !limiter.allow_at("a", 2, t0 + Duration::from_secs(1)),
            "1 back"
        );
        assert!(limiter.allow_at("a", 2, t0 + Duration::from_secs(2)));
        assert!(
            !limiter.allow_at("b", 6, t0),
            "more than the burst never passes"
        );
        assert!(limiter.allow_at("b", 5, t0));
    }
}
