//! The legitimate traffic whose latency the attack must not spoil: the API
//! server's `/mutate` calls (one keep-alive connection, as the API server
//! keeps one) and an injector's unseal (a new TLS connection per call, as
//! the injector makes), each at a fixed pace and checked to be right.

use super::http::Conn;
use crate::webhook_perf_support::{ITEMS, SECRET, pct};
use anyhow::{Context as _, ensure};
use hyper::body::Bytes;
use keyward_webhook::unseal::{UnsealRequest, UnsealResponse};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_rustls::TlsConnector;

/// Latencies of the calls that succeeded, and the reasons of those that
/// did not (each given [`CALL_LIMIT`]).
#[derive(Default)]
pub struct Samples {
    pub ok: Vec<Duration>,
    pub failed: Vec<String>,
}

pub const CALL_LIMIT: Duration = Duration::from_secs(10);

impl Samples {
    /// The `p`th percentile, a failure counting as [`CALL_LIMIT`]: a call
    /// that never came back is the slowest kind.
    pub fn pct(&self, p: usize) -> Duration {
        let mut all = self.ok.clone();
        all.extend(self.failed.iter().map(|_| CALL_LIMIT));
        all.sort();
        if all.is_empty() {
            Duration::ZERO
        } else {
            pct(&all, p)
        }
    }

    pub fn summary(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut text = format!(
            "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms (n={}, failed {})",
            ms(self.pct(50)),
            ms(self.pct(95)),
            ms(self.pct(99)),
            self.ok.len() + self.failed.len(),
            self.failed.len()
        );
        if let Some(first) = self.failed.first() {
            text.push_str(&format!("; first failure: {first}"));
        }
        text
    }
}

/// When a paced loop stops: after `count` calls, at `deadline`, or once
/// `stop` is set and at least `min` calls are done, whichever comes first.
#[derive(Clone)]
pub struct Until {
    pub count: usize,
    pub min: usize,
    pub deadline: Instant,
    pub stop: Arc<AtomicBool>,
}

impl Until {
    fn done(&self, calls: usize) -> bool {
        calls >= self.count
            || Instant::now() > self.deadline
            || (calls >= self.min && self.stop.load(Ordering::Relaxed))
    }
}

/// `/mutate` with `review` every `every`: each answer must allow the pod
/// with a JSONPatch. A closed connection is reopened, inside the timing.
pub async fn mutate(
    connector: TlsConnector,
    from: IpAddr,
    to: SocketAddr,
    review: Bytes,
    every: Duration,
    until: Until,
) -> Samples {
    let mut samples = Samples::default();
    let mut conn: Option<Conn> = None;
    let mut tick = paced(every);
    while !until.done(samples.ok.len() + samples.failed.len()) {
        tick.tick().await;
        let started = Instant::now();
        let call = async {
            if conn.as_ref().is_none_or(Conn::is_closed) {
                conn = Some(Conn::open(&connector, from, to).await?);
            }
            let open = conn.as_mut().context("no connection")?;
            let (status, body) = open.post("/mutate", review.clone()).await?;
            ensure!(status == 200, "/mutate answered {status}");
            let answer: Value = serde_json::from_slice(&body)?;
            let response = &answer["response"];
            ensure!(
                response["allowed"] == true && response["patch"].is_string(),
                "/mutate did not patch the pod: {}",
                response["status"]
            );
            Ok(())
        };
        match tokio::time::timeout(CALL_LIMIT, call).await {
            Ok(Ok(())) => samples.ok.push(started.elapsed()),
            Ok(Err(error)) => {
                samples.failed.push(format!("{error:#}"));
                conn = None;
            }
            Err(_) => {
                samples
                    .failed
                    .push(format!("no answer within {CALL_LIMIT:?}"));
                conn = None;
            }
        }
    }
    samples
}

/// An injector's unseal of the SealedSecret every `every`, each over a new
/// TLS connection (as an injector makes one) from the next of `sources`
/// (pods have addresses of their own); each must return every item.
pub async fn unseal(
    connector: TlsConnector,
    sources: Vec<IpAddr>,
    to: SocketAddr,
    request: UnsealRequest,
    every: Duration,
    until: Until,
) -> Samples {
    let mut samples = Samples::default();
    let body = match serde_json::to_vec(&request) {
        Ok(body) => Bytes::from(body),
        Err(error) => {
            samples.failed.push(error.to_string());
            return samples;
        }
    };
    let mut tick = paced(every);
    let mut calls = 0;
    while !until.done(calls) {
        calls += 1;
        tick.tick().await;
        let from = sources[calls % sources.len()];
        let started = Instant::now();
        let call = async {
            let mut conn = Conn::open(&connector, from, to).await?;
            let (status, answer) = conn.post("/v1/unseal", body.clone()).await?;
            ensure!(
                status == 200,
                "unseal answered {status}: {}",
                String::from_utf8_lossy(&answer[..answer.len().min(200)])
            );
            let opened: UnsealResponse = serde_json::from_slice(&answer)?;
            let items = opened.secrets.get(SECRET).map_or(0, |items| items.len());
            ensure!(items == ITEMS, "{items} of {ITEMS} items");
            Ok(())
        };
        match tokio::time::timeout(CALL_LIMIT, call).await {
            Ok(Ok(())) => samples.ok.push(started.elapsed()),
            Ok(Err(error)) => samples.failed.push(format!("{error:#}")),
            Err(_) => samples
                .failed
                .push(format!("no answer within {CALL_LIMIT:?}")),
        }
    }
    samples
}

/// A fixed pace that does not try to catch up after a slow call.
fn paced(every: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}
