//! `/mutate` over real TLS on loopback, in-process: answers with a patch,
//! and its latency next to a trivial route on the same server as the floor.
//! Run with `--nocapture` to see the figures; the assertion is only a
//! sanity bound (shared, noisy machines).

mod common;

use common::{Sender, connect};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use keyward_webhook::mutate::InjectorConfig;
use keyward_webhook::server::ServerLimits;
use keyward_webhook::{AppState, admission_router, server, tls};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn timed(
    sender: &mut Sender,
    method: &str,
    path: &str,
    body: &[u8],
    n: usize,
) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        sender.ready().await.unwrap();
        let started = Instant::now();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        times.push(started.elapsed());
        assert!(!bytes.is_empty());
    }
    times.sort();
    times
}

fn pct(times: &[Duration], p: usize) -> Duration {
    times[(times.len() * p / 100).min(times.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutate_over_tls_next_to_a_trivial_route() {
    let made = tls::bootstrap(&["127.0.0.1".to_owned()]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = AppState {
        injector: Arc::new(InjectorConfig {
            image: "keyward/webhook:test".into(),
            image_pull_policy: None,
            unseal_url: format!("https://127.0.0.1:{port}/v1/unseal"),
            ca_pem: Some(made.ca_pem.clone()),
            default_delivery: Default::default(),
        }),
        unsealer: None,
    };
    let config = tls::server_config(&made.cert_pem, &made.key_pem).unwrap();
    let task = tokio::spawn(server::serve_tls(
        listener,
        config,
        admission_router(state),
        ServerLimits::admission(),
    ));

    let review = std::fs::read(format!(
        "{}/tests/fixtures/pod-create-annotated.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut sender = connect(port, &made.ca_pem).await;
    let n = 500;
    let _warm = timed(&mut sender, "POST", "/mutate", &review, 20).await;
    let mutate = timed(&mut sender, "POST", "/mutate", &review, n).await;
    let floor = timed(&mut sender, "GET", "/healthz", b"", n).await;
    println!(
        "/mutate over TLS (keep-alive, sequential, n={n}): p50 {:?} p99 {:?}; /healthz floor: p50 {:?} p99 {:?}",
        pct(&mutate, 50),
        pct(&mutate, 99),
        pct(&floor, 50),
        pct(&floor, 99)
    );
    assert!(pct(&mutate, 50) < Duration::from_millis(250));
    task.abort();
}
