// `deny`, not `forbid`: the allocator's options below are read by name.
#![deny(unsafe_code)]

use anyhow::Context as _;
use clap::{CommandFactory, Parser};
use keyward_operator::{Config, http, metrics::Metrics};
use std::sync::Arc;

/// jemalloc with one arena and prompt purging (`.cargo/config.toml`): at
/// 1,000 keys x 10,000 secrets the operator peaked at 80 MiB, against
/// 133 MiB on glibc's per-thread arenas (docs/scale.md, "Memory"). The
/// default image is musl, whose allocator is slow under this many small
/// allocations; this makes both builds the same.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The operator's own addition to those options: freed pages go back at
/// once instead of after 1 s. At 1,000 x 10,000 its peak fell from 64.3 to
/// 61.8 MiB for 13 % more CPU to converge (docs/scale.md, "Memory"); the
/// webhook keeps the 1 s. jemalloc reads this C string (`const char *`,
/// hence a thin pointer) at start-up; `_RJEM_MALLOC_CONF` still overrides.
#[cfg(feature = "jemalloc")]
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 17] = b"dirty_decay_ms:0\0";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    keyward_kubeutil::logging::init(config.log_format, "info");
    // Before the root key and keyring exist (keyward_memory_locked).
    let memory = keyward_core::hardening::harden_process(|warning| tracing::warn!("{warning}"))?;
    tracing::info!("core dumps disabled; {memory}");
    // A standby only connects the providers once elected: check the flags
    // now, so a typo stops every replica at start instead of the next leader.
    if let Err(error) = config.providers.plan() {
        Config::command()
            .error(clap::error::ErrorKind::ValueValidation, error)
            .exit();
    }
    let metrics = Arc::new(Metrics::default());
    // Counts every API request in keyward_api_requests_total{verb}.
    let client = keyward_operator::api_client::counted(Arc::clone(&metrics))
        .await
        .context("no Kubernetes client: run in a pod or set KUBECONFIG")?;
    let ready = http::Readiness::default();
    let listener = http::bind(&config.metrics_addr).await?;
    tracing::info!(address = %config.metrics_addr, "serving /healthz, /readyz and /metrics");
    tokio::spawn(http::serve(listener, Arc::clone(&metrics), ready.clone()));
    keyward_operator::run(client, &config, metrics, ready).await?;
    Ok(())
}
