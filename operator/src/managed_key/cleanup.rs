//! The Cleanup arm: deleting a ManagedKey schedules the provider key's
//! deletion after its deletion window (never immediate), or with
//! `deletionPolicy: Retain` leaves it untouched, then lets the finalizer
//! go. SealedSecrets that still need the key block it either way.

use super::apply::{SYNC_PATIENCE, destruction_blocker};
use super::status::set_dependants;
use crate::context::Context;
use crate::error::{Error, Result};
use k8s_openapi::jiff::Timestamp;
use keyward_core::ProviderError;
use keyward_core::provider::DeletionTarget;
use keyward_crds::{DeletionPolicy, ManagedKey};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub async fn cleanup(key: Arc<ManagedKey>, ctx: &Context) -> Result<Action> {
    let namespace = key
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let mut status = key.status.clone().unwrap_or_default();
    let Some(key_id) = status.provider_key_id.clone() else {
        return Ok(Action::await_change());
    };
    let counts = ctx
        .dependants
        .counts_when_synced(
            &namespace,
            &key.name_any(),
            &key_id,
            |ns| key.is_shared_with(ns),
            SYNC_PATIENCE,
        )
        .await
        .map_err(|e| Error::Blocked(e.to_string()))?;
    set_dependants(&mut status.versions, &counts.all, &BTreeMap::new());
    if let Some(message) = destruction_blocker(&key, &status) {
        let event = Event {
            type_: EventType::Warning,
            reason: "DeletionBlocked".into(),
            note: Some(message.clone()),
            action: "ScheduleDeletion".into(),
            secondary: None,
        };
        let _ = ctx.recorder.publish(&event, &key.object_ref(&())).await;
        return Err(Error::Blocked(message));
    }
    let subject = format!("{namespace}/{}", key.name_any());
    if let Some(other) = claimed_elsewhere(&key_id, ctx).await? {
        let note = format!(
            "ManagedKey deleted: provider key {key_id} is claimed by cluster {other}, which may still use it, so it is left as it is"
        );
        return retain(
            &key,
            &subject,
            &key_id,
            "claimed by another cluster",
            note,
            ctx,
        )
        .await;
    }
    if key.spec.effective_deletion_policy() == DeletionPolicy::Retain {
        let note = format!(
            "ManagedKey deleted with deletionPolicy Retain: provider key {key_id} is kept as it is; \
             delete it at the provider when nothing needs it"
        );
        return retain(&key, &subject, &key_id, "ManagedKey deleted", note, ctx).await;
    }
    if status.native_rotation.is_some() {
        // Cloud KMS keeps rotating a key whose versions are all scheduled
        // for destruction, making a fresh enabled version each period.
        match ctx.provider.set_native_rotation(&key_id, None).await {
            Ok(()) | Err(ProviderError::UnknownKey(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let window = Duration::from_secs(key.spec.deletion_window.as_secs());
    ctx.metrics.provider_call();
    let at = match ctx
        .provider
        .schedule_deletion(&key_id, DeletionTarget::WholeKey, window)
        .await
    {
        Ok(at) => Timestamp::try_from(at)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        Err(ProviderError::UnknownKey(_)) => "already destroyed".into(),
        Err(e) => return Err(e.into()),
    };
    let mut detail: BTreeMap<String, String> = [
        ("providerKeyId".to_owned(), key_id.clone()),
        ("at".to_owned(), at.clone()),
        ("cause".to_owned(), "ManagedKey deleted".to_owned()),
    ]
    .into();
    if let Some((requested, approved)) = keyward_crds::destruction::on_record(&key) {
        detail.insert("requestedBy".into(), requested);
        detail.insert("approvedBy".into(), approved);
    }
    if let Err(error) = ctx
        .audit
        .record("key.schedule-deletion", &subject, "ok", detail)
        .await
    {
        tracing::error!(%error, key = %subject, "audit record not written");
    }
    let event = Event {
        type_: EventType::Normal,
        reason: "DestructionScheduled".into(),
        note: Some(format!(
            "ManagedKey deleted: provider key {key_id} will be destroyed at {at}"
        )),
        action: "ScheduleDeletion".into(),
        secondary: None,
    };
    let _ = ctx.recorder.publish(&event, &key.object_ref(&())).await;
    tracing::info!(key = %subject, provider_key = %key_id, at, "provider deletion scheduled");
    Ok(Action::await_change())
}

/// The cluster, other than this one, that claims `key_id`: this cluster
/// must not destroy a key another one uses.
async fn claimed_elsewhere(key_id: &str, ctx: &Context) -> Result<Option<String>> {
    if !ctx.provider.keeps_claims(key_id) {
        return Ok(None);
    }
    match ctx.provider.describe_key(key_id).await {
        Ok(info) => Ok(info
            .claim
            .map(|claim| claim.cluster)
            .filter(|cluster| *cluster != ctx.claims.cluster)),
        Err(ProviderError::UnknownKey(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `deletionPolicy: Retain`, or a key another cluster claims: the provider
/// key stays as it is; the audit log and an Event say which one, so it can
/// be found and adopted again.
async fn retain(
    key: &ManagedKey,
    subject: &str,
    key_id: &str,
    cause: &str,
    note: String,
    ctx: &Context,
) -> Result<Action> {
    let detail = [
        ("providerKeyId".to_owned(), key_id.to_owned()),
        ("cause".to_owned(), cause.to_owned()),
    ]
    .into();
    if let Err(error) = ctx.audit.record("key.retain", subject, "ok", detail).await {
        tracing::error!(%error, key = %subject, "audit record not written");
    }
    let event = Event {
        type_: EventType::Normal,
        reason: "ProviderKeyRetained".into(),
        note: Some(note),
        action: "Retain".into(),
        secondary: None,
    };
    let _ = ctx.recorder.publish(&event, &key.object_ref(&())).await;
    tracing::info!(key = %subject, provider_key = %key_id, "provider key retained");
    Ok(Action::await_change())
}
