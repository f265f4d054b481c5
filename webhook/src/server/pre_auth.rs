//! A rate limit in front of the tenant API that runs before anything is
//! authenticated: every `/v1/*` request costs a TokenReview, so without it
//! anyone who can reach the port decides how often the webhook calls the
//! API server. One bucket per source address (IPv6 by /64, which one host
//! usually holds whole) and one shared by all, checked in that order so a
//! single noisy source is stopped by its own bucket before it drains the
//! global one. Reuses the per-pod limiter's token bucket.
//!
//! A tenant with many pods (addresses) can still drain the global bucket
//! with each source under its own limit, and would then starve every other
//! pod's injector. So each source also holds a small reserve that is spent
//! only when the global bucket is empty: a pod starting (one or two
//! requests) always gets through, and the most a flood adds on top of the
//! global rate is the reserve's trickle per address it controls.

use crate::metrics::metrics;
use crate::unseal::RateLimiter;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Token buckets applied before authentication on the tenant API.
#[derive(Clone, Copy, Debug)]
pub struct PreAuthLimits {
    /// Requests all sources together may burst, then `per_second`.
    pub burst: u32,
    pub per_second: f64,
    /// Requests one source address may burst, then `source_per_second`.
    pub source_burst: u32,
    pub source_per_second: f64,
    /// Requests one source may make past an empty global bucket: a burst,
    /// then this many per second. 0 burst: none.
    pub source_reserve_burst: u32,
    pub source_reserve_per_second: f64,
}

impl Default for PreAuthLimits {
    /// Enough for a node starting its pods at once (each injector asks
    /// once, retrying on 429), low enough that junk cannot make the
    /// webhook a TokenReview amplifier: at most 100 per second overall.
    fn default() -> Self {
        PreAuthLimits {
            burst: 200,
            per_second: 100.0,
            source_burst: 20,
            source_per_second: 10.0,
            // An injector asks once and retries a few times.
            source_reserve_burst: 3,
            source_reserve_per_second: 0.1,
        }
    }
}

pub(super) struct PreAuth {
    global: RateLimiter,
    sources: RateLimiter,
    /// `None` when the reserve is off.
    reserves: Option<RateLimiter>,
    global_retry: HeaderValue,
    source_retry: HeaderValue,
}

impl PreAuth {
    pub(super) fn new(limits: &PreAuthLimits) -> Arc<Self> {
        Arc::new(PreAuth {
            global: RateLimiter::new(limits.burst, limits.per_second),
            sources: RateLimiter::new(limits.source_burst, limits.source_per_second),
            reserves: (limits.source_reserve_burst > 0).then(|| {
                RateLimiter::new(
                    limits.source_reserve_burst,
                    limits.source_reserve_per_second,
                )
            }),
            global_retry: retry_after(limits.per_second),
            source_retry: retry_after(limits.source_per_second),
        })
    }
}

/// Whole seconds until one token is back (at least 1).
fn retry_after(per_second: f64) -> HeaderValue {
    let seconds = if per_second > 0.0 {
        (1.0 / per_second).ceil().clamp(1.0, 3600.0) as u64
    } else {
        60
    };
    HeaderValue::from(seconds)
}

/// The bucket a peer is charged to.
pub(super) fn source_key(peer: SocketAddr) -> String {
    match peer.ip().to_canonical() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => {
            let [a, b, c, d, ..] = ip.segments();
            format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
    }
}

pub(super) async fn limit(
    State(pre_auth): State<Arc<PreAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    // No peer: called in-process (tests), charged to the global bucket only.
    let source = peer.map(source_key);
    let refused = if source
        .as_ref()
        .is_some_and(|key| !pre_auth.sources.allow(key))
    {
        Some(("source", &pre_auth.source_retry))
    } else if pre_auth.global.allow("") {
        None
    } else if let (Some(key), Some(reserves)) = (&source, &pre_auth.reserves)
        && reserves.allow(key)
    {
        metrics().pre_auth_reserve_used();
        None
    } else {
        Some(("global", &pre_auth.global_retry))
    };
    match refused {
        None => next.run(request).await,
        Some((scope, retry)) => {
            metrics().pre_auth_limited(scope);
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry.clone())],
                "too many requests; retry after the time in Retry-After",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_keyed_by_ipv4_address_and_ipv6_prefix() {
        let key = |s: &str| source_key(s.parse().unwrap());
        assert_eq!(key("10.1.2.3:5000"), "10.1.2.3");
        assert_eq!(key("[::ffff:10.1.2.3]:5000"), "10.1.2.3");
        assert_eq!(
            key("[2001:db8:1:2:aaaa::1]:1"),
            key("[2001:db8:1:2:bbbb::9]:2")
        );
        assert_ne!(key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:3::1]:1"));
    }

    #[test]
    fn retry_after_is_the_time_for_one_token() {
        assert_eq!(retry_after(10.0), "1");
        assert_eq!(retry_after(0.2), "5");
        assert_eq!(retry_after(0.0), "60");
    }
}
