//! A standalone TLS server on 127.0.0.1 for load tests (`scripts/bench-webhook.sh`).
//!
//!   bench_server mutate CA_OUT   the real webhook router, admission only
//!   bench_server floor  CA_OUT   a trivial axum route, same TLS and accept loop
//!
//! Both bootstrap a fresh CA and serving certificate for 127.0.0.1, write
//! the CA to CA_OUT (for the load generator's `--cacert`), print
//! `listening on 127.0.0.1:PORT` and serve until killed. The floor answers
//! every POST with a small fixed JSON after reading the body, so the
//! difference between the two is the webhook's own work per request.

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use keyward_webhook::mutate::InjectorConfig;
use keyward_webhook::server::ServerLimits;
use keyward_webhook::{AppState, admission_router, server, tls};
use std::io::Write;
use std::sync::Arc;

/// The webhook binary's allocator, so the figures are the binary's.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, ca_out] = args.as_slice() else {
        bail!("usage: bench_server <mutate|floor> <file to write the CA PEM to>");
    };
    let made = tls::bootstrap(&["127.0.0.1".to_owned()])?;
    std::fs::write(ca_out, &made.ca_pem).with_context(|| format!("writing {ca_out}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = match mode.as_str() {
        "mutate" => admission_router(AppState {
            injector: Arc::new(InjectorConfig {
                image: "keyward/webhook:bench".into(),
                image_pull_policy: None,
                unseal_url: format!("https://127.0.0.1:{port}/v1/unseal"),
                ca_pem: Some(made.ca_pem.clone()),
                default_delivery: Default::default(),
            }),
            unsealer: None,
        }),
        "floor" => Router::new().route("/mutate", post(floor)),
        other => bail!("unknown mode `{other}`; use `mutate` or `floor`"),
    };
    let config = tls::server_config(&made.cert_pem, &made.key_pem)?;
    println!("listening on 127.0.0.1:{port}");
    std::io::stdout().flush()?;
    server::serve_tls(listener, config, app, ServerLimits::admission()).await;
    Ok(())
}

/// Reads the request body (as `/mutate` does) and returns a small JSON.
async fn floor(body: Bytes) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"ok": true, "bytes": body.len()}))
}
