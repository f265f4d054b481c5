//! Keyward operator: reconciles ManagedKeys (provider keys, lifecycle,
//! rotation) and SealedSecrets (key versions, dependants), auditing every
//! key operation. The only component with key-admin rights.
//!
//! Runs as one replica for now: leader election (a Lease) comes later.
#![forbid(unsafe_code)]

pub mod annotations;
pub mod audit;
pub mod config;
pub mod context;
pub mod dependants;
pub mod error;
pub mod http;
pub mod keyring_secret;
pub mod managed_key;
pub mod materialise;
pub mod metrics;
pub mod rewrap;
pub mod schedule;
pub mod sealed_secret;

pub use config::Config;
pub use error::{Error, Result};

use std::sync::Arc;

/// Opens the in-cluster keyring and runs both controllers until shutdown.
/// `ready` is set once they are running.
pub async fn run(
    client: kube::Client,
    config: &Config,
    metrics: Arc<metrics::Metrics>,
    ready: http::Readiness,
) -> Result<()> {
    let provider = keyring_secret::local_provider(
        client.clone(),
        &config.namespace,
        &config.keyring_secret,
        &config.root_key_secret,
    )
    .await?;
    if let Some(dir) = config.audit_log.parent() {
        std::fs::create_dir_all(dir).map_err(|error| {
            Error::Audit(keyward_core::audit::AuditError::Io {
                path: dir.to_owned(),
                error,
            })
        })?;
    }
    let ctx = Arc::new(context::Context::new(
        client,
        Arc::new(provider),
        metrics,
        audit::Audit::new(config.audit_log.clone()),
        config.watch_namespace.clone(),
    ));
    ready.set_ready();
    tracing::info!(
        namespace = %config.namespace,
        watch = config.watch_namespace.as_deref().unwrap_or("all namespaces"),
        audit = %config.audit_log.display(),
        "operator started (single replica: no leader election yet)"
    );
    tokio::join!(managed_key::run(Arc::clone(&ctx)), sealed_secret::run(ctx));
    Ok(())
}
