//! The operator run in-process, with the same `Config` the binary parses:
//! for suites that set provider flags and need no process boundary.

use keyward_operator::{Config, http::Readiness, metrics::Metrics};
use kube::Client;
use std::sync::Arc;

/// Starts the operator's controllers on `client`; they run until the
/// returned task is aborted. Logs go to the test writer (`RUST_LOG`,
/// default `keyward_operator=info`).
pub fn start_operator(client: &Client, config: Config) -> tokio::task::JoinHandle<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "keyward_operator=info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
    let client = client.clone();
    tokio::spawn(async move {
        let metrics = Arc::new(Metrics::default());
        if let Err(error) =
            keyward_operator::run(client, &config, metrics, Readiness::default()).await
        {
            panic!("operator stopped: {error}");
        }
    })
}
