//! The SealedSecret controller (part 1): reads each item's envelope header
//! (nothing is decrypted), records which key version wrapped it, and says
//! whether the referenced key can still serve it. Dependant counts on the
//! ManagedKey are kept by the ManagedKey controller, which watches these.

use crate::annotations::{self, SpecChange};
use crate::context::{Context, FIELD_MANAGER, read_cached};
use crate::dependants::{self, item_versions};
use crate::error::{Error, Result};
use crate::git_copy;
use crate::managed_key::status::{set_condition, set_kstatus_conditions};
use crate::materialise;
use crate::metrics::Controller as Metric;
use crate::rewrap;
use crate::sealed_view::{self, SealedView};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use keyward_crds::conditions::{DEGRADED, GIT_BEHIND, READY};
use keyward_crds::sharing::sharing;
use keyward_crds::{
    KeyState, ManagedKey, ManagedKeyStatus, RewrapMode, SealedSecret, SealedSecretStatus,
};
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
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

/// Why a SealedSecret may not use another namespace's key
/// ([`keyward_crds::sharing`]). Such a secret is neither re-wrapped nor
/// materialised.
fn not_shared(
    key: Option<&ManagedKey>,
    namespace: &str,
    key_namespace: &str,
    key_name: &str,
) -> Option<(&'static str, String)> {
    let reference = format!("{key_namespace}/{key_name}");
    sharing(key, key_namespace, &reference, namespace)
        .refusal()
        .map(|why| ("KeyNotShared", why))
}

/// The shared context, the ManagedKeys as this controller's watch last saw
/// them, and whether this operator writes template Secrets.
pub struct SecretsContext {
    pub ctx: Arc<Context>,
    pub keys: Store<ManagedKey>,
    pub materialize_secrets: bool,
}

async fn reconcile(secret: Arc<SealedView>, shared: Arc<SecretsContext>) -> Result<Action> {
    shared.ctx.metrics.reconciled(Metric::SealedSecret);
    let started = std::time::Instant::now();
    let result = reconcile_secret(secret, &shared).await;
    shared
        .ctx
        .metrics
        .reconcile_took(Metric::SealedSecret, started.elapsed());
    result
}

async fn reconcile_secret(secret: Arc<SealedView>, shared: &SecretsContext) -> Result<Action> {
    let ctx = &shared.ctx;
    let now = Timestamp::now();
    let namespace = secret
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let mut secret = secret;
    let current = secret.status();
    let mut status: SealedSecretStatus = current.clone().unwrap_or_default();
    // The spec changed since the operator last wrote status: either its own
    // re-wrap (whose status write a crash may have lost), or someone applied
    // it (usually from Git), so Git is no longer behind.
    let change = annotations::spec_change(
        status.observed_generation,
        secret.metadata.generation,
        secret
            .annotations()
            .get(annotations::REWRAPPED_GENERATION)
            .map(String::as_str),
    );
    let touched = change == SpecChange::Applied;
    match change {
        SpecChange::Applied if status.observed_generation.is_some() => {
            status.rewrapped_since_git = false;
        }
        SpecChange::Rewrapped => status.rewrapped_since_git = true,
        _ => {}
    }
    let key_namespace = secret.key_namespace().unwrap_or(&namespace).to_owned();
    let key_name = secret.spec.key_ref.name.clone();
    // The key from the watch's store (not synced yet, or missing: a GET).
    // A stored key may be a moment behind the API server. For the status
    // that is harmless: a change that matters to this secret (`Reads`)
    // reaches the store before the watch wakes the secret again. A re-wrap
    // or a materialised Secret is not undone that way: a stale copy could
    // name a primary that was just rotated away, compromised or suspended,
    // or call a just-compromised version usable. So both re-read the key
    // first (rare: only secrets due a re-wrap, or with a template).
    let mut key = read_cached(&shared.keys, &ctx.client, &key_namespace, &key_name).await?;
    let not_shared = not_shared(key.as_deref(), &namespace, &key_namespace, &key_name);
    let mut fresh = false;
    let mut step = git_copy::Step::Nothing;
    if let (Ok(items), Some(stored), None) = (item_versions(&secret), key.as_deref(), &not_shared) {
        let rewrapped_to = secret.annotations().get(annotations::REWRAPPED_TO).cloned();
        let withheld = |key: &keyward_crds::ManagedKeyStatus, reason| {
            git_copy::reverted(rewrapped_to.as_deref(), key, reason)
        };
        let mode = rewrap_mode(stored, &key_namespace, ctx).await?;
        let stored_status = stored.status.clone().unwrap_or_default();
        let due = rewrap::decide(&items, &stored_status, mode, touched);
        if due.is_some_and(|reason| !withheld(&stored_status, reason)) {
            key = get_key(ctx, &key_namespace, &key_name).await?;
            fresh = true;
        }
        if let Some(current) = key.as_deref().filter(|_| due.is_some()) {
            let mode = rewrap_mode(current, &key_namespace, ctx).await?;
            let key_status = current.status.clone().unwrap_or_default();
            let primary = key_status.primary_version.unwrap_or_default();
            match rewrap::decide(&items, &key_status, mode, touched) {
                Some(reason) if withheld(&key_status, reason) => {
                    ctx.metrics.rewrap_withheld();
                    step = git_copy::Step::Withheld(git_copy::behind_primary(&items, primary));
                }
                Some(reason) => {
                    let Some(rewrapped) = rewrap_secret(&secret, &key_status, reason, ctx).await?
                    else {
                        // Deleted, or its spec changed since the store saw
                        // it: the watch brings that change and wakes this.
                        return Ok(Action::await_change());
                    };
                    secret = rewrapped;
                    status.rewrapped_since_git = true;
                    step = git_copy::Step::Rewrapped(git_copy::behind_primary(&items, primary));
                }
                None => {}
            }
        }
    }
    status.git_behind = git_copy::git_behind(status.git_behind.as_ref(), change, step, now);
    if !fresh && shared.materialize_secrets && secret.spec.template.is_some() {
        key = get_key(ctx, &key_namespace, &key_name).await?;
    }
    let generation = secret.metadata.generation;
    status.observed_generation = generation;
    match item_versions(&secret) {
        Ok(items) => {
            status.key_versions = items
                .iter()
                .map(|(item, (v, _))| (item.clone(), *v))
                .collect();
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
            let (behind, reason, message) = git_copy::condition(
                status.git_behind.as_ref(),
                status.rewrapped_since_git,
                &format!("{key_namespace}/{key_name}"),
            );
            set_condition(
                &mut status.conditions,
                GIT_BEHIND,
                behind,
                reason,
                message,
                generation,
                now,
            );
            let assessment = materialise::reconcile_template(
                &secret,
                shared.materialize_secrets,
                touched,
                not_shared.or_else(|| assess(&items, key.as_deref())),
                ctx,
            )
            .await?;
            match assessment {
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
                message.clone(),
                generation,
                now,
            );
            set_condition(
                &mut status.conditions,
                DEGRADED,
                true,
                "InvalidEnvelope",
                message,
                generation,
                now,
            );
        }
    }
    set_kstatus_conditions(&mut status.conditions, None, generation, now);
    if !status_changed(current.as_ref(), &status) {
        return Ok(Action::await_change());
    }
    let api: Api<SealedSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    let had_git_behind = current.as_ref().is_some_and(|s| s.git_behind.is_some());
    if status.git_behind.is_none() && had_git_behind {
        // A server-side apply that stops sending an object field makes the
        // 1.20 API server store it as `null`, which the schema refuses; a
        // merge patch removes it outright.
        let clear = json!({"status": {"gitBehind": null}});
        match api
            .patch_status(
                &secret.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&clear),
            )
            .await
        {
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Ok(Action::await_change());
            }
            other => {
                other?;
            }
        }
    }
    let patch = json!({
        "apiVersion": keyward_crds::API_VERSION,
        "kind": "SealedSecret",
        "status": status,
    });
    match api
        .patch_status(
            &secret.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        // Deleted meanwhile (e.g. an owned Secret's deletion woke us): nothing to say.
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        other => {
            other?;
        }
    }
    Ok(Action::await_change())
}

/// Whether `next` says anything `current` does not. `set_condition` keeps a
/// condition's `lastTransitionTime` while its status stays, so a reconcile
/// that found nothing new computes exactly the current status and writes
/// nothing (at 10,000 secrets, most reconciles after a ManagedKey event).
fn status_changed(current: Option<&SealedSecretStatus>, next: &SealedSecretStatus) -> bool {
    current != Some(next)
}

/// ManagedKey `namespace/name` as the API server has it now.
async fn get_key(ctx: &Context, namespace: &str, name: &str) -> Result<Option<Arc<ManagedKey>>> {
    let api: Api<ManagedKey> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(api.get_opt(name).await?.map(Arc::new))
}

/// The key's policy's re-wrap mode (Eager without a policy, as the default),
/// from the policy store: a mode edited a moment ago flips the key's
/// `Rotating` condition, which wakes this secret again.
async fn rewrap_mode(key: &ManagedKey, namespace: &str, ctx: &Context) -> Result<RewrapMode> {
    let Some(reference) = &key.spec.rotation_policy_ref else {
        return Ok(RewrapMode::default());
    };
    Ok(ctx
        .policy(namespace, &reference.name)
        .await?
        .map(|p| p.spec.rewrap)
        .unwrap_or_default())
}

/// Re-wraps the items onto the key's primary version and writes them to the
/// cluster copy (only if nobody changed it meanwhile); returns the new
/// object, or `None` when the secret is gone or its spec is no longer the
/// one `secret` shows.
async fn rewrap_secret(
    secret: &SealedView,
    key: &ManagedKeyStatus,
    reason: rewrap::Reason,
    ctx: &Context,
) -> Result<Option<Arc<SealedView>>> {
    let (Some(key_id), Some(primary), Some(target)) = (
        key.provider_key_id.as_deref(),
        key.primary_version,
        rewrap::target_of(secret),
    ) else {
        return Err(Error::MissingObjectKey("metadata.name"));
    };
    // The store keeps no ciphertext (`sealed_view`).
    let Some(full) = sealed_view::full(secret, &ctx.client).await? else {
        return Ok(None);
    };
    let done = rewrap::rewrap(
        &target,
        &full.spec.encrypted_data,
        key_id,
        primary,
        ctx.provider.as_ref(),
    )
    .await?;
    for (version, count) in &done.operations {
        ctx.count_operations(key_id, *version, *count);
    }
    let api: Api<SealedSecret> = Api::namespaced(ctx.client.clone(), &target.namespace);
    // resourceVersion makes it a compare-and-swap: a concurrent edit wins
    // and this reconcile runs again on it.
    // The annotation names the generation this write makes (a spec change
    // adds exactly one), so a restart knows the change was the operator's.
    let next = full.metadata.generation.map(|g| (g + 1).to_string());
    let patch = json!({
        "metadata": {
            "resourceVersion": full.resource_version(),
            "annotations": {
                annotations::REWRAPPED_GENERATION: next,
                annotations::REWRAPPED_TO: annotations::rewrapped_to(primary, key_id),
            },
        },
        "spec": { "encryptedData": done.data },
    });
    let updated = api
        .patch(
            &target.secret_name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    ctx.metrics.rewrapped(reason.label());
    let from: Vec<String> = done.from.iter().map(u32::to_string).collect();
    let subject = format!("{}/{}", target.namespace, target.secret_name);
    let detail = [
        ("key".to_owned(), target.key_ref.clone()),
        ("providerKeyId".to_owned(), key_id.to_owned()),
        ("from".to_owned(), from.join(",")),
        ("to".to_owned(), done.to.to_string()),
        ("items".to_owned(), done.items.len().to_string()),
        ("reason".to_owned(), reason.label().to_owned()),
    ]
    .into();
    if let Err(error) = ctx
        .audit
        .record("secret.rewrap", &subject, "ok", detail)
        .await
    {
        tracing::error!(%error, secret = %subject, "audit record not written");
        ctx.metrics.failed(Metric::SealedSecret, "audit");
    }
    let event = Event {
        type_: if reason == rewrap::Reason::Compromised {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: "Rewrapped".into(),
        note: Some(format!(
            "{} item(s) re-wrapped from key version(s) {} to {} ({} re-wrap); the cluster copy is now ahead of Git: run `keyward rewrap` and commit",
            done.items.len(),
            from.join(", "),
            done.to,
            reason.label()
        )),
        action: "Rewrap".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &secret.object_ref(&())).await {
        tracing::warn!(%error, secret = %subject, "event not published");
    }
    tracing::info!(secret = %subject, from = %from.join(","), to = done.to, reason = reason.label(), "re-wrapped");
    Ok(Some(Arc::new(SealedView::of(&updated))))
}

fn error_policy(secret: Arc<SealedView>, error: &Error, shared: Arc<SecretsContext>) -> Action {
    shared
        .ctx
        .metrics
        .failed(Metric::SealedSecret, error.metric_label());
    tracing::warn!(secret = %secret.name_any(), namespace = ?secret.namespace(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// Runs until the watch streams end (shutdown signal or task abort). A
/// secret's own spec changes wake it, its status writes do not
/// (`dependants::secret_changes` says what does and why). Key
/// changes a secret reads (a rotation, a compromise; `dependants::Reads`,
/// not the ManagedKey controller's count and condition updates)
/// re-reconcile the secrets that use the key, which is what makes eager
/// re-wrapping happen; owned Secrets are watched (only with
/// `materialize_secrets`) so a deleted or edited one is put back. At most
/// `concurrency` reconciles run at once (0: unbounded).
pub async fn run(ctx: Arc<Context>, materialize_secrets: bool, concurrency: u16) {
    // As `Controller::new` would, but a secret's own change wakes it only
    // when it is one a reconcile reads (`dependants::secret_changes`): not
    // its status writes. The store still takes every event.
    let (secrets, writer) = reflector::store();
    let own_changes = reflector::reflector(
        writer,
        watcher(ctx.api::<SealedView>(), watcher::Config::default()).modify(sealed_view::slim),
    )
    .applied_objects()
    .predicate_filter(dependants::secret_changes, Default::default());
    let controller = Controller::for_stream(own_changes, secrets.clone())
        .with_config(controller::Config::default().concurrency(concurrency));
    let (keys, key_writer) = reflector::store();
    let controller = controller.watches_stream(
        dependants::key_changes(ctx.api::<ManagedKey>(), key_writer),
        move |key: PartialObjectMeta<ManagedKey>| {
            let namespace = key.namespace();
            let name = key.name_any();
            secrets
                .state_filter(|secret| {
                    secret.spec.key_ref.name == name
                        && secret.key_namespace().map(str::to_owned) == namespace
                })
                .iter()
                .map(|secret| ObjectRef::from_obj(&**secret))
                .collect::<Vec<_>>()
        },
    );
    // Without the flag the operator has no business with Secrets (and the
    // chart grants it no RBAC on them).
    let controller = if materialize_secrets {
        controller.owns(
            ctx.api::<Secret>(),
            watcher::Config::default().labels(materialise::MANAGED_BY_SELECTOR),
        )
    } else {
        controller
    };
    let shared = Arc::new(SecretsContext {
        ctx,
        keys,
        materialize_secrets,
    });
    controller
        .shutdown_on_signal()
        .run(reconcile, error_policy, shared)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "SealedSecret controller event");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(
        current: &SealedSecretStatus,
        generation: i64,
        ready: bool,
        message: &str,
        now: Timestamp,
    ) -> SealedSecretStatus {
        let mut next = current.clone();
        next.observed_generation = Some(generation);
        next.key_versions = [("password".to_owned(), 1)].into();
        let reason = if ready { "Recorded" } else { "InvalidEnvelope" };
        set_condition(
            &mut next.conditions,
            READY,
            ready,
            reason,
            message.into(),
            Some(generation),
            now,
        );
        next
    }

    #[test]
    fn an_unchanged_status_is_not_written_and_keeps_its_transition_time() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let current = recorded(&SealedSecretStatus::default(), 1, true, "ok", t0);
        assert!(status_changed(None, &current), "a first status is written");

        let same = recorded(&current, 1, true, "ok", t1);
        assert!(!status_changed(Some(&current), &same));
        assert_eq!(same.conditions[0].last_transition_time.0, t0);

        // A new message or generation is written; the transition time stays.
        let reworded = recorded(&current, 1, true, "other", t1);
        assert!(status_changed(Some(&current), &reworded));
        assert_eq!(reworded.conditions[0].last_transition_time.0, t0);
        let newer = recorded(&current, 2, true, "ok", t1);
        assert!(status_changed(Some(&current), &newer));

        // A flip is written with a new transition time.
        let flipped = recorded(&current, 1, false, "bad", t1);
        assert!(status_changed(Some(&current), &flipped));
        assert_eq!(flipped.conditions[0].last_transition_time.0, t1);

        let mut versions = same.clone();
        versions.key_versions.insert("password".into(), 2);
        assert!(status_changed(Some(&current), &versions));
    }
}
