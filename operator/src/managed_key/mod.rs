//! The ManagedKey controller: `reconcile` wrapped in kube's `finalizer()`,
//! with the Apply arm in `apply.rs` and the Cleanup arm in `cleanup.rs`.

mod apply;
pub mod claim;
mod cleanup;
mod lifecycle;
mod max_operations;
mod native;
mod outcome;
mod retention;
mod rotating;
pub mod status;
mod tags;
mod verifying_keys;

use crate::annotations::FINALIZER;
use crate::context::Context;
use crate::dependants;
use crate::error::{Error, Result};
use crate::metrics::Controller as Metric;
use futures::StreamExt;
use keyward_crds::{KeyRotationPolicy, ManagedKey};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::{ObjectRef, reflector, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// The provider's name for the key: `spec.alias`, or `keyward/<ns>/<name>`.
pub fn provider_key_name(key: &ManagedKey) -> String {
    key.spec.alias.clone().unwrap_or_else(|| {
        format!(
            "keyward/{}/{}",
            key.namespace().unwrap_or_default(),
            key.name_any()
        )
    })
}

async fn reconcile(key: Arc<ManagedKey>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics.reconciled(Metric::ManagedKey);
    let started = std::time::Instant::now();
    let result = reconcile_key(key, &ctx).await;
    ctx.metrics
        .reconcile_took(Metric::ManagedKey, started.elapsed());
    result
}

async fn reconcile_key(key: Arc<ManagedKey>, ctx: &Context) -> Result<Action> {
    let namespace = key
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let api: Api<ManagedKey> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, key, |event| async {
        match event {
            Event::Apply(key) => apply::apply(key, ctx).await,
            Event::Cleanup(key) => {
                ctx.metrics.forget_key(&namespace, &key.name_any());
                cleanup::cleanup(key, ctx).await
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn error_policy(key: Arc<ManagedKey>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(Metric::ManagedKey, error.metric_label());
    tracing::warn!(key = %key.name_any(), namespace = ?key.namespace(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// Runs until the watch streams end (shutdown signal or task abort), at
/// most `concurrency` reconciles at once (0: unbounded). Its policy watch
/// fills `policies` (the store behind `ctx.policies`).
pub async fn run(ctx: Arc<Context>, policies: Writer<KeyRotationPolicy>, concurrency: u16) {
    // As `Controller::new`, with the stored keys slimmed (`crate::slim`).
    let (store, writer) = kube::runtime::reflector::store();
    let keys = reflector(
        writer,
        watcher(ctx.api::<ManagedKey>(), watcher::Config::default())
            .default_backoff()
            .modify(crate::slim::slim),
    )
    .applied_objects();
    let controller = Controller::for_stream(keys, store.clone())
        .with_config(controller::Config::default().concurrency(concurrency));
    controller
        .watches_stream(
            reflector(
                policies,
                watcher(ctx.api::<KeyRotationPolicy>(), watcher::Config::default())
                    .default_backoff(),
            )
            .touched_objects(),
            move |policy: KeyRotationPolicy| {
                let namespace = policy.namespace();
                let name = policy.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|key| {
                        key.namespace() == namespace
                            && key
                                .spec
                                .rotation_policy_ref
                                .as_ref()
                                .is_some_and(|r| r.name == name)
                    })
                    .map(|key| ObjectRef::from_obj(&*key))
                    .collect::<Vec<_>>()
            },
        )
        // Only when a SealedSecret's key versions change (not its status).
        .watches_stream(dependants::key_triggers(&ctx), dependants::key_ref)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "ManagedKey controller event");
            }
        })
        .await;
}
