//! `/mutate` under concurrent load over real TLS, in-process: every answer
//! must still be the right patch (the router shares no per-request state,
//! and this shows it). A smoke-sized load for CI; the sustained-rate
//! figures come from `scripts/bench-webhook.sh load` (oha, release build).

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use keyward_webhook::mutate::InjectorConfig;
use keyward_webhook::server::ServerLimits;
use keyward_webhook::{AppState, admission_router, server, tls};
use std::sync::Arc;
use std::time::Instant;

const CONNECTIONS: usize = 16;
const PER_CONNECTION: usize = 25;

/// Sends the review `PER_CONNECTION` times on one keep-alive connection and
/// returns every decoded JSONPatch.
async fn mutate_many(port: u16, ca_pem: String, review: Bytes) -> Vec<serde_json::Value> {
    let mut sender = common::connect(port, &ca_pem).await;
    let mut patches = Vec::with_capacity(PER_CONNECTION);
    for _ in 0..PER_CONNECTION {
        let request = hyper::Request::post("/mutate")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(review.clone()))
            .unwrap();
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let patch = answer["response"]["patch"]
            .as_str()
            .expect("an annotated pod gets a base64 patch");
        patches.push(serde_json::from_slice(&STANDARD.decode(patch).unwrap()).unwrap());
    }
    patches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_mutations_all_get_the_same_full_patch() {
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
    let review = Bytes::from(
        std::fs::read(format!(
            "{}/tests/fixtures/pod-create-annotated.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    );

    let started = Instant::now();
    let clients = (0..CONNECTIONS)
        .map(|_| tokio::spawn(mutate_many(port, made.ca_pem.clone(), review.clone())));
    let mut patches = Vec::new();
    for client in clients {
        patches.extend(client.await.unwrap());
    }
    let elapsed = started.elapsed();
    task.abort();

    assert_eq!(patches.len(), CONNECTIONS * PER_CONNECTION);
    let first = &patches[0];
    assert!(
        first.is_array() && first.to_string().contains("keyward-inject"),
        "the patch adds no injector: {first}"
    );
    assert!(
        patches.iter().all(|p| p == first),
        "concurrent requests got different patches"
    );
    println!(
        "{} /mutate over TLS on {CONNECTIONS} connections in {elapsed:?} ({:.0}/s, debug build)",
        patches.len(),
        patches.len() as f64 / elapsed.as_secs_f64()
    );
}
