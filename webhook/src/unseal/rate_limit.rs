//! A token bucket per pod, so one crash-looping pod cannot drain the
//! provider or the API server. Bounded: idle, full buckets are forgotten.

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
        self.allow_at(key, Instant::now())
    }

    fn allow_at(&self, key: &str, now: Instant) -> bool {
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
        if *tokens >= 1.0 {
            *tokens -= 1.0;
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
        assert!(limiter.allow_at("a", t0));
        assert!(limiter.allow_at("a", t0));
        assert!(!limiter.allow_at("a", t0));
        assert!(limiter.allow_at("b", t0), "buckets are per pod");
        assert!(limiter.allow_at("a", t0 + Duration::from_secs(1)));
    }
}
