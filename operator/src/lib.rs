//! Keyward operator: reconciles ManagedKeys (provider keys, lifecycle,
//! rotation) and SealedSecrets (key versions, dependants), auditing every
//! key operation. The only component with key-admin rights.
//!
//! Any number of replicas: a Lease elects the one that runs the controllers.
#![forbid(unsafe_code)]

pub mod annotations;
pub mod api_client;
pub mod audit;
pub mod config;
pub mod context;
pub mod counted_provider;
pub mod dependants;
pub mod error;
pub mod events;
pub mod git_copy;
pub mod http;
pub mod keyring_secret;
pub mod leader;
pub mod managed_key;
pub mod materialise;
pub mod metrics;
pub mod rewrap;
pub mod schedule;
pub mod sealed_secret;
pub mod sealed_view;
pub mod slim;

pub use config::Config;
pub use error::{Error, Result};

use std::sync::Arc;

/// Waits to be elected leader, then opens the in-cluster keyring and runs
/// both controllers until shutdown (the Lease is released) or until
/// leadership is lost (an error: the process should exit and restart as a
/// standby). `ready` is set once the controllers run.
pub async fn run(
    client: kube::Client,
    config: &Config,
    metrics: Arc<metrics::Metrics>,
    ready: http::Readiness,
) -> Result<()> {
    let election = config.election();
    election.acquire(&client).await;
    metrics.set_leader(true);
    tracing::info!(identity = %election.identity, lease = %election.lease_name, "elected leader");
    let external = keyward_provider_select::Providers::connect(&config.providers)
        .await
        .map_err(|e| Error::Blocked(format!("key providers: {e}")))?;
    let local = Arc::new(
        keyring_secret::configured_local_provider(client.clone(), config, &external).await?,
    );
    local
        .store()
        .set_cache_ttl(std::time::Duration::from_secs(config.keyring_cache_seconds));
    // Destroyed material leaves the stored keyring when due (leader only).
    let erasure = AbortOnDrop(tokio::spawn(keyward_core::local::erase_when_due(
        Arc::clone(&local),
    )));
    let providers = external.with_local(local);
    tracing::info!(providers = ?providers.names(), "key providers");
    if let Some(dir) = config.audit_log.parent() {
        std::fs::create_dir_all(dir).map_err(|error| {
            Error::Audit(keyward_core::audit::AuditError::Io {
                path: dir.to_owned(),
                error,
            })
        })?;
    }
    // Filled by the ManagedKey controller's policy watch, read by both.
    let (policies, policy_writer) = kube::runtime::reflector::store();
    let ctx = Arc::new(context::Context::new(
        client.clone(),
        Arc::new(providers),
        metrics,
        audit::Audit::with_options(config.audit_log.clone(), config.audit_options()),
        config.watch_namespace.clone(),
        policies,
        config.claim_settings(&client).await?,
    ));
    ready.set_ready();
    tracing::info!(
        namespace = %config.namespace,
        watch = config.watch_namespace.as_deref().unwrap_or("all namespaces"),
        audit = %config.audit_log.display(),
        "operator started"
    );
    let metrics = Arc::clone(&ctx.metrics);
    let controllers = async {
        tokio::join!(
            managed_key::run(
                Arc::clone(&ctx),
                policy_writer,
                config.max_concurrent_reconciles
            ),
            sealed_secret::run(
                ctx,
                config.materialize_secrets,
                config.max_concurrent_reconciles
            )
        );
    };
    let result = tokio::select! {
        () = controllers => {
            election.release(&client).await;
            Ok(())
        }
        lost = election.hold(&client) => Err(lost),
    };
    metrics.set_leader(false);
    drop(erasure);
    result
}

/// Stops a background task when its owner returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
