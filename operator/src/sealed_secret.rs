//! The SealedSecret controller (part 1): reads each item's envelope header
//! (nothing is decrypted), records which key version wrapped it, and says
//! whether the referenced key can still serve it. Dependant counts on the
//! ManagedKey are kept by the ManagedKey controller, which watches these.

use crate::context::{Context, FIELD_MANAGER};
use crate::dependants::item_versions;
use crate::error::{Error, Result};
use crate::managed_key::status::set_condition;
use crate::metrics::Controller as Metric;
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use keyward_crds::conditions::{DEGRADED, READY};
use keyward_crds::{KeyState, ManagedKey, SealedSecret, SealedSecretStatus};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What the status should say about a secret whose items use these
/// (version, provider key id) pairs, given the referenced key.
pub fn assess(
    items: &BTreeMap<String, (u32, String)>,
    key: Option<&ManagedKey>,
) -> Option<(&'static str, String)> {
    let Some(key) = key else {
        return Some((
            "KeyNotFound",
            "the referenced ManagedKey does not exist".into(),
        ));
    };
    let status = key.status.clone().unwrap_or_default();
    for (item, (version, key_id)) in items {
        if status
            .provider_key_id
            .as_deref()
            .is_some_and(|id| id != key_id)
        {
            return Some((
                "WrongKey",
                format!(
                    "item `{item}` was sealed with provider key {key_id}, not this ManagedKey's; re-seal it"
                ),
            ));
        }
        let state = status.version(*version).map(|v| v.state);
        if let Some(state @ (KeyState::Compromised | KeyState::Destroyed | KeyState::Suspended)) =
            state
        {
            return Some((
                "KeyVersionUnusable",
                format!("item `{item}` uses key version {version}, which is {state}; re-seal it"),
            ));
        }
    }
    None
}

async fn reconcile(secret: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics.reconciled(Metric::SealedSecret);
    let now = Timestamp::now();
    let namespace = secret
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let generation = secret.metadata.generation;
    let mut status: SealedSecretStatus = secret.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    match item_versions(&secret) {
        Ok(items) => {
            status.key_versions = items
                .iter()
                .map(|(item, (v, _))| (item.clone(), *v))
                .collect();
            let key_namespace = secret.key_namespace().unwrap_or(&namespace).to_owned();
            let keys: Api<ManagedKey> = Api::namespaced(ctx.client.clone(), &key_namespace);
            let key = keys.get_opt(&secret.spec.key_ref.name).await?;
            let versions: Vec<String> = status
                .key_versions
                .values()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(u32::to_string)
                .collect();
            set_condition(
                &mut status.conditions,
                READY,
                true,
                "Recorded",
                format!(
                    "{} item(s) sealed under version(s) {} of {key_namespace}/{}",
                    items.len(),
                    versions.join(", "),
                    secret.spec.key_ref.name
                ),
                generation,
                now,
            );
            match assess(&items, key.as_ref()) {
                Some((reason, message)) => set_condition(
                    &mut status.conditions,
                    DEGRADED,
                    true,
                    reason,
                    message,
                    generation,
                    now,
                ),
                None => set_condition(
                    &mut status.conditions,
                    DEGRADED,
                    false,
                    "AsExpected",
                    "nothing needs attention".into(),
                    generation,
                    now,
                ),
            }
        }
        Err(message) => {
            status.key_versions.clear();
            set_condition(
                &mut status.conditions,
                READY,
                false,
                "InvalidEnvelope",
                message,
                generation,
                now,
            );
        }
    }
    let api: Api<SealedSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": keyward_crds::API_VERSION,
        "kind": "SealedSecret",
        "status": status,
    });
    api.patch_status(
        &secret.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(Action::await_change())
}

fn error_policy(secret: Arc<SealedSecret>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .failed(Metric::SealedSecret, error.metric_label());
    tracing::warn!(secret = %secret.name_any(), namespace = ?secret.namespace(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

pub async fn run(ctx: Arc<Context>) {
    Controller::new(ctx.api::<SealedSecret>(), watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "SealedSecret controller event");
            }
        })
        .await;
}
