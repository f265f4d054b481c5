//! A standalone TLS server on 127.0.0.1 for load tests (`scripts/bench-webhook.sh`).
//!
//!   bench_server mutate CA_OUT          the real webhook router, admission only
//!   bench_server floor  CA_OUT          a trivial axum route, same TLS and accept loop
//!   bench_server sized  CA_OUT REVIEW   the floor, answering with the bytes
//!                                       `mutate` answers REVIEW with
//!
//! Each bootstraps a fresh CA and serving certificate for 127.0.0.1, writes
//! the CA to CA_OUT (for the load generator's `--cacert`), prints
//! `listening on 127.0.0.1:PORT` and serves until killed. The floor answers
//! every POST with a small fixed JSON after reading the body, so the
//! difference between it and `mutate` is the webhook's work per request;
//! `sized` moves as many bytes as `mutate` (a 1.5 KB review in, a 3 KB
//! patch out) without doing any of it, so what `mutate` costs beyond it is
//! Keyward's own parsing and patch building.

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, header};
use axum::routing::post;
use http_body_util::BodyExt;
use keyward_webhook::mutate::InjectorConfig;
use keyward_webhook::server::ServerLimits;
use keyward_webhook::{AppState, admission_router, server, tls};
use std::io::Write;
use std::sync::Arc;
use tower::ServiceExt;

/// The webhook binary's allocator, so the figures are the binary's.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, ca_out, review) = match args.as_slice() {
        [mode, ca_out] => (mode, ca_out, None),
        [mode, ca_out, review] if mode == "sized" => (mode, ca_out, Some(review)),
        _ => bail!(
            "usage: bench_server <mutate|floor> CA_OUT, or bench_server sized CA_OUT REVIEW \
             (CA_OUT: file to write the CA PEM to; REVIEW: an AdmissionReview JSON file)"
        ),
    };
    let made = tls::bootstrap(&["127.0.0.1".to_owned()])?;
    std::fs::write(ca_out, &made.ca_pem).with_context(|| format!("writing {ca_out}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let mutate = admission_router(AppState {
        injector: Arc::new(InjectorConfig {
            image: "keyward/webhook:bench".into(),
            image_pull_policy: None,
            unseal_url: format!("https://127.0.0.1:{port}/v1/unseal"),
            ca_pem: Some(made.ca_pem.clone()),
            default_delivery: Default::default(),
        }),
        unsealer: None,
    });
    let app = match (mode.as_str(), review) {
        ("mutate", None) => mutate,
        ("floor", None) => Router::new().route("/mutate", post(floor)),
        ("sized", Some(review)) => {
            let answer = answer_of(mutate, review).await?;
            Router::new().route(
                "/mutate",
                post(move |_body: Bytes| async move {
                    ([(header::CONTENT_TYPE, "application/json")], answer)
                }),
            )
        }
        (other, _) => bail!("unknown mode `{other}`; use `mutate`, `floor` or `sized`"),
    };
    let config = tls::server_config(&made.cert_pem, &made.key_pem)?;
    println!("listening on 127.0.0.1:{port}");
    std::io::stdout().flush()?;
    server::serve_tls(listener, config, app, ServerLimits::admission()).await;
    Ok(())
}

/// What `mutate` answers to the review in file `review`.
async fn answer_of(mutate: Router, review: &str) -> Result<Bytes> {
    let body = std::fs::read(review).with_context(|| format!("reading {review}"))?;
    let request = Request::post("/mutate")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))?;
    let response = mutate.oneshot(request).await?;
    anyhow::ensure!(
        response.status().is_success(),
        "/mutate answered {}",
        response.status()
    );
    Ok(response.into_body().collect().await?.to_bytes())
}

/// Reads the request body (as `/mutate` does) and returns a small JSON.
async fn floor(body: Bytes) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"ok": true, "bytes": body.len()}))
}
