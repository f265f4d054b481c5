//! The Apply arm: make the provider key exist, drive the lifecycle from
//! `spec.state`, rotate when due or asked, and report it all in status.

use super::max_operations::{self, Verdict};
use super::outcome::Outcome;
use super::status::{
    set_condition, set_dependants, set_git_dependants, set_kstatus_conditions, sync_versions,
    timestamp, version_mut, versions_with_dependants,
};
use super::{
    claim, lifecycle, native, provider_key_name, retention, rotating, tags, verifying_keys,
};
use crate::annotations::{self, ManualRotation};
use crate::context::{Context, FIELD_MANAGER};
use crate::error::{Error, Result};
use crate::schedule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use keyward_core::ProviderError;
use keyward_core::crypto::public_key_to_pem;
use keyward_core::provider::{KeyAlgorithm, KeyInfo, KeySpec};
use keyward_crds::conditions::{self, DEGRADED, READY, ROTATING};
use keyward_crds::{
    Algorithm, EffectivePolicy, KeyRotationPolicy, KeyState, KeyUsage, KeyVersionStatus,
    ManagedKey, ManagedKeyStatus, RotationStrategy,
};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a reconcile waits for the SealedSecret list before retrying.
pub const SYNC_PATIENCE: Duration = Duration::from_secs(30);

pub async fn apply(key: Arc<ManagedKey>, ctx: &Context) -> Result<Action> {
    let now = Timestamp::now();
    let namespace = key
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let mut status = key.status.clone().unwrap_or_default();
    status.observed_generation = key.metadata.generation;
    let mut out = Outcome::default();

    let algorithm = match supported(&key, ctx) {
        Ok(algorithm) => algorithm,
        Err((reason, message)) => {
            out.degrade(reason, message);
            return finish(&key, &namespace, status, out, ctx, now).await;
        }
    };
    let Some(info) = ensure_key(&key, algorithm, &mut status, ctx, &mut out).await? else {
        return finish(&key, &namespace, status, out, ctx, now).await;
    };

    // Wraps the operator made since the last status write; put
    // back if this reconcile fails before writing status.
    let operations = ctx.take_operations(&info.key_id);
    let key_id = info.key_id.clone();
    let result = apply_key(
        &key,
        &namespace,
        status,
        info,
        algorithm,
        &operations,
        ctx,
        out,
        now,
    )
    .await;
    if result.is_err() {
        ctx.restore_operations(&key_id, &operations);
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn apply_key(
    key: &ManagedKey,
    namespace: &str,
    mut status: ManagedKeyStatus,
    mut info: KeyInfo,
    algorithm: KeyAlgorithm,
    operations: &BTreeMap<u32, u64>,
    ctx: &Context,
    mut out: Outcome,
    now: Timestamp,
) -> Result<Action> {
    let recorded_primary = status.primary_version.unwrap_or(info.primary_version);
    let fresh_state = if status.state.is_none() {
        KeyState::PreActivation
    } else {
        KeyState::Active
    };
    native::note_provider_rotation(&status, recorded_primary, &info, &mut out);
    sync_versions(&mut status.versions, &info, fresh_state, now);
    status.primary_version = Some(info.primary_version);
    // The last count written first, then the wraps made since.
    ctx.floor_operations(&info.key_id, &mut status.versions);
    add_operations(&mut status.versions, operations);

    let counts = ctx
        .dependants
        .counts_when_synced(
            namespace,
            &key.name_any(),
            &info.key_id,
            |ns| key.is_shared_with(ns),
            SYNC_PATIENCE,
        )
        .await
        .map_err(|e| Error::Blocked(e.to_string()))?;
    set_dependants(&mut status.versions, &counts.all, &counts.git_only);
    set_git_dependants(&mut status.versions, &counts.for_git);
    ctx.metrics
        .set_git_dependants(namespace, &key.name_any(), &counts.for_git);
    let rewrapped = counts.rewrapped;

    info = lifecycle::drive(key, &mut status, info, recorded_primary, ctx, &mut out, now).await?;

    let policy = policy(key, namespace, ctx, &mut out).await?;
    let rotating = key.spec.state == KeyState::Active && status.state == Some(KeyState::Active);
    status.next_rotation_at = None;
    if rotating {
        info = rotate_if_due(
            key,
            namespace,
            &policy,
            &mut status,
            info,
            ctx,
            &mut out,
            now,
        )
        .await?;
    }
    if !(rotating && policy.strategy == RotationStrategy::Native) {
        native::stop(key, &mut status, &info.key_id, ctx, &mut out).await?;
    }
    expiry_notice(key, namespace, &policy, &mut status, ctx, &mut out, now);
    if status.state != Some(KeyState::Destroyed) && key.spec.state != KeyState::Destroyed {
        let forced = key
            .annotations()
            .get(annotations::FORCE_DESTROY)
            .is_some_and(|v| v == "true");
        retention::destroy_retired(
            &mut status.versions,
            &rewrapped,
            &info.key_id,
            info.primary_version,
            policy.decrypt_retention,
            key.spec.deletion_window,
            forced,
            adopted_version(key),
            ctx,
            &mut out,
            now,
        )
        .await?;
    }

    tags::sync(key, &mut status, &info.key_id, ctx, &mut out, now).await?;
    rotating::set(&mut status, policy.rewrap, key.metadata.generation, now);

    if algorithm.is_sealing() {
        if status.public_key.is_none() || recorded_primary != info.primary_version {
            let public = ctx.provider.public_key(&info.key_id, None).await?;
            status.public_key = Some(public_key_to_pem(&public.public_key));
        }
    } else if algorithm.signing().is_some() {
        verifying_keys::publish(&mut status, &info, ctx).await?;
    } else {
        status.public_key = None;
    }
    finish(key, namespace, status, out, ctx, now).await
}

/// Adds operations counted elsewhere to the versions' running totals.
pub fn add_operations(versions: &mut [KeyVersionStatus], operations: &BTreeMap<u32, u64>) {
    for (version, count) in operations {
        if let Some(entry) = version_mut(versions, *version) {
            entry.operations = entry.operations.saturating_add(*count);
        }
    }
}

/// Condition type set while the primary version is within the policy's
/// expiry notice of its rotation.
pub const EXPIRING: &str = "ExpiringSoon";

/// Exports seconds-until-rotation and, on entering the notice period, says
/// so once with a Warning Event (the condition remembers it across restarts).
#[allow(clippy::too_many_arguments)]
fn expiry_notice(
    key: &ManagedKey,
    namespace: &str,
    policy: &EffectivePolicy,
    status: &mut ManagedKeyStatus,
    ctx: &Context,
    out: &mut Outcome,
    now: Timestamp,
) {
    let name = key.name_any();
    let Some(next) = status.next_rotation_at.as_ref().map(|t| t.0) else {
        ctx.metrics.set_expiry(namespace, &name, None);
        status.conditions.retain(|c| c.type_ != EXPIRING);
        return;
    };
    let left = now.duration_until(next).as_secs();
    ctx.metrics.set_expiry(namespace, &name, Some(left));
    let notice_at = schedule::notice_at(next, policy.expiry_notice);
    let within = now >= notice_at;
    let was = keyward_crds::conditions::is_true(&status.conditions, EXPIRING);
    let primary = status.primary_version.unwrap_or(0);
    if within && !was {
        out.event(
            true,
            "ExpiringSoon",
            "ExpiryNotice",
            format!(
                "version {primary} is due for rotation at {next} (in {left}s); the operator rotates it then"
            ),
        );
    }
    if !within {
        out.deadlines.push(notice_at);
    }
    let (reason, message) = if within {
        (
            "WithinNotice",
            format!("version {primary} rotates at {next}"),
        )
    } else {
        ("NotDue", format!("version {primary} rotates at {next}"))
    };
    set_condition(
        &mut status.conditions,
        EXPIRING,
        within,
        reason,
        message,
        key.metadata.generation,
        now,
    );
}

/// The provider key algorithm, or why this operator cannot serve the key
/// (its provider not configured, or configured for another Region/token).
fn supported(key: &ManagedKey, ctx: &Context) -> Result<KeyAlgorithm, (&'static str, String)> {
    if let Err(not_served) = ctx.provider_for(&key.spec.provider) {
        return Err((not_served.reason, not_served.message));
    }
    // Admitted before admission refused it (or with the webhook down).
    if let Some(message) = key.spec.unsupported_by_provider() {
        return Err(("AlgorithmUnsupported", message));
    }
    Ok(provider_algorithm(key.spec.algorithm, key.spec.usage))
}

/// The provider's algorithm for what the spec asks; admission refused the
/// pairs no algorithm takes, which fall back to the algorithm's own use.
fn provider_algorithm(algorithm: Algorithm, usage: KeyUsage) -> KeyAlgorithm {
    let signing = usage == KeyUsage::Sign;
    match algorithm {
        Algorithm::Aes256 => KeyAlgorithm::Aes256,
        Algorithm::Rsa3072 if signing => KeyAlgorithm::RsaPss3072,
        Algorithm::Rsa3072 => KeyAlgorithm::Rsa3072,
        Algorithm::Rsa4096 if signing => KeyAlgorithm::RsaPss4096,
        Algorithm::Rsa4096 => KeyAlgorithm::Rsa4096,
        Algorithm::EcP256 => KeyAlgorithm::EcP256,
        Algorithm::Ed25519 => KeyAlgorithm::Ed25519,
    }
}

/// The provider key, created on first sight and claimed for this cluster
/// (`None`: nothing to do at the provider now; `out` says why).
async fn ensure_key(
    key: &ManagedKey,
    algorithm: KeyAlgorithm,
    status: &mut ManagedKeyStatus,
    ctx: &Context,
    out: &mut Outcome,
) -> Result<Option<KeyInfo>> {
    let Some(mut info) = find_or_create(key, algorithm, status, ctx, out).await? else {
        return Ok(None);
    };
    Ok(claim::settle(key, &mut info, ctx, out)
        .await?
        .then_some(info))
}

/// The provider key. Creation is keyed by the ManagedKey's
/// `namespace/name`, so a restart before status was written, or the same
/// manifest applied to a cluster rebuilt from Git, finds the same key.
async fn find_or_create(
    key: &ManagedKey,
    algorithm: KeyAlgorithm,
    status: &mut ManagedKeyStatus,
    ctx: &Context,
    out: &mut Outcome,
) -> Result<Option<KeyInfo>> {
    if let Some(id) = &status.provider_key_id {
        // Woken by the status write of the reconcile that created the key
        // (or found it by owner): what the provider answered then, unless
        // the key changed since (`counted_provider::Shared::just_created`).
        if let Some(info) = ctx.just_created(id) {
            return Ok(Some(info));
        }
        return match ctx.provider.describe_key(id).await {
            Ok(info) => Ok(Some(info)),
            Err(ProviderError::UnknownKey(_)) => {
                out.degrade(
                    "ProviderKeyMissing",
                    format!(
                        "provider key {id} no longer exists (destroyed after its deletion window?); create a new ManagedKey"
                    ),
                );
                Ok(None)
            }
            Err(e) => Err(e.into()),
        };
    }
    let spec = KeySpec {
        name: provider_key_name(key),
        algorithm,
        owner: Some(claim::stable_owner(key)),
        description: key.spec.description.clone(),
    };
    ctx.metrics.provider_call();
    // The spec names where a new key goes; `supported` checked it is served.
    let provider = match ctx.provider_for(&key.spec.provider) {
        Ok(provider) => provider,
        Err(not_served) => {
            out.degrade(not_served.reason, not_served.message);
            return Ok(None);
        }
    };
    let made = match &key.spec.existing_key {
        Some(reference) => provider.adopt_key(reference, &spec).await,
        None => provider.create_key(&spec).await,
    };
    let info = match made {
        Ok(info) => info,
        Err(ProviderError::InvalidRequest(message)) => {
            out.degrade("ProviderRefused", message);
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    status.provider_key_id = Some(info.key_id.clone());
    if let Some(reference) = &key.spec.existing_key {
        out.event(
            false,
            "Adopted",
            "AdoptKey",
            format!(
                "existing provider key {reference} adopted as {} ({} versions, primary {})",
                info.key_id,
                info.versions.len(),
                info.primary_version
            ),
        );
        out.audit(
            "key.adopt-existing",
            &[
                ("providerKeyId", info.key_id.clone()),
                ("reference", reference.clone()),
            ],
        );
    } else if made_earlier(&info) {
        out.event(
            false,
            "FoundExisting",
            "CreateKey",
            format!(
                "provider key {} already exists for {} (made before this ManagedKey, e.g. before the cluster was rebuilt); using it with its {} versions, primary {}",
                info.key_id,
                claim::stable_owner(key),
                info.versions.len(),
                info.primary_version
            ),
        );
        out.audit(
            "key.found",
            &[
                ("providerKeyId", info.key_id.clone()),
                ("primaryVersion", info.primary_version.to_string()),
            ],
        );
    } else {
        out.event(
            false,
            "Created",
            "CreateKey",
            format!("provider key {} created with version 1", info.key_id),
        );
        out.audit(
            "key.create",
            &[
                ("providerKeyId", info.key_id.clone()),
                ("algorithm", info.algorithm.to_string()),
            ],
        );
    }
    Ok(Some(info))
}

/// The version retention leaves alone: an adopted key's first version,
/// while deleting the ManagedKey would retain the key.
fn adopted_version(key: &ManagedKey) -> Option<u32> {
    (key.spec.existing_key.is_some()
        && key.spec.effective_deletion_policy() == keyward_crds::DeletionPolicy::Retain)
        .then_some(1)
}

/// Whether `create_key` returned a key that existed before this call: one
/// with a claim, more than one version, or a first version over a minute old.
fn made_earlier(info: &KeyInfo) -> bool {
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    info.claim.is_some()
        || info.versions.len() > 1
        || info.versions.iter().any(|v| v.created_at < old)
}

/// The policy in force, or the NIST defaults (Degraded when the named
/// policy does not exist).
async fn policy(
    key: &ManagedKey,
    namespace: &str,
    ctx: &Context,
    out: &mut Outcome,
) -> Result<EffectivePolicy> {
    let defaults = EffectivePolicy::default_for(key.spec.algorithm, key.spec.usage);
    let Some(reference) = &key.spec.rotation_policy_ref else {
        return Ok(defaults);
    };
    // From the policy watch's store (its edits wake the keys naming it);
    // an unsynced store or a miss is read from the API server instead.
    let found: Option<Arc<KeyRotationPolicy>> = ctx.policy(namespace, &reference.name).await?;
    match found {
        Some(policy) => Ok(policy.spec.effective(key.spec.algorithm, key.spec.usage)),
        None => {
            out.degrade(
                "PolicyNotFound",
                format!(
                    "KeyRotationPolicy {namespace}/{} does not exist; rotating on the default schedule until it does",
                    reference.name
                ),
            );
            Ok(defaults)
        }
    }
}

/// Rotates for a manual request or when the primary version's rotation
/// period has passed, and sets `nextRotationAt`.
#[allow(clippy::too_many_arguments)]
async fn rotate_if_due(
    key: &ManagedKey,
    namespace: &str,
    policy: &EffectivePolicy,
    status: &mut ManagedKeyStatus,
    mut info: KeyInfo,
    ctx: &Context,
    out: &mut Outcome,
    now: Timestamp,
) -> Result<KeyInfo> {
    let annotations = key.annotations();
    let manual = annotations::manual_rotation(
        annotations.get(annotations::ROTATE).map(String::as_str),
        annotations
            .get(annotations::ROTATE_HANDLED)
            .map(String::as_str),
        info.primary_version,
    );
    match manual {
        ManualRotation::Nothing => {}
        ManualRotation::Record(handled) => {
            // Record first: a restart then finishes this rotation, never repeats it.
            let api: Api<ManagedKey> = Api::namespaced(ctx.client.clone(), namespace);
            let patch = json!({"metadata": {"annotations": {annotations::ROTATE_HANDLED: handled.render()}}});
            api.patch(
                &key.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
            info = lifecycle::rotate(status, &info, ctx, out, "manual", now).await?;
        }
        ManualRotation::Finish => {
            info = lifecycle::rotate(status, &info, ctx, out, "manual", now).await?;
        }
    }

    let policy_name = key
        .spec
        .rotation_policy_ref
        .as_ref()
        .map(|r| r.name.as_str());
    match max_operations::verdict(policy, status, info.primary_version, policy_name) {
        Verdict::Within => {}
        Verdict::Rotate => {
            info = lifecycle::rotate(status, &info, ctx, out, "max-operations", now).await?;
        }
        Verdict::TooLow(message) => out.degrade(max_operations::TOO_LOW, message),
    }
    if policy.strategy == RotationStrategy::Native {
        let (kept, who) = native::keep(key, policy, status, info, ctx, out, now).await?;
        info = kept;
        if let native::Native::Provider = who {
            return Ok(info);
        }
    }
    let created = |info: &KeyInfo| {
        info.versions
            .iter()
            .find(|v| v.version == info.primary_version)
            .map(|v| timestamp(v.created_at))
    };
    if let Some(created) = created(&info)
        && schedule::is_due(
            schedule::next_rotation(created, policy.rotation_period),
            now,
        )
    {
        info = lifecycle::rotate(status, &info, ctx, out, "scheduled", now).await?;
    }
    if let Some(created) = created(&info) {
        let next = schedule::next_rotation(created, policy.rotation_period);
        status.next_rotation_at = Some(Time(next));
        out.deadlines.push(next);
    }
    Ok(info)
}

/// Conditions, status (server-side apply), Events, audit, and when to come back.
async fn finish(
    key: &ManagedKey,
    namespace: &str,
    mut status: ManagedKeyStatus,
    out: Outcome,
    ctx: &Context,
    now: Timestamp,
) -> Result<Action> {
    let generation = key.metadata.generation;
    let state = status.state;
    let primary = status.primary_version.unwrap_or(0);
    let (ready, reason, message) = match state {
        _ if out.held_elsewhere => (
            false,
            "ClaimedByAnotherCluster",
            "another cluster manages the provider key (see the Degraded condition)".into(),
        ),
        Some(KeyState::Active) if status.provider_key_id.is_some() => (
            true,
            "Active",
            format!("version {primary} is primary and encrypts new data"),
        ),
        Some(KeyState::PreActivation) => (
            false,
            "PreActivation",
            match &key.spec.activate_at {
                Some(at) => format!("the key activates at {}", at.0),
                None => "the key is not activated yet; set spec.state: Active".into(),
            },
        ),
        Some(KeyState::Suspended) => (
            false,
            "Suspended",
            "the key is Suspended and neither encrypts nor decrypts; set spec.state: Active to resume".into(),
        ),
        Some(KeyState::Deactivated) => (
            false,
            "Deactivated",
            "the key only decrypts; re-seal its SealedSecrets under another key".into(),
        ),
        Some(KeyState::Compromised) => (
            false,
            "Compromised",
            "the key is Compromised and only decrypts for re-wrapping".into(),
        ),
        Some(KeyState::Destroyed) => (
            false,
            "Destroyed",
            "the key is scheduled for destruction".into(),
        ),
        _ => (false, "NotCreated", "the provider key does not exist yet".into()),
    };
    set_condition(
        &mut status.conditions,
        READY,
        ready,
        reason,
        message,
        generation,
        now,
    );
    match &out.degraded {
        Some((reason, message)) => set_condition(
            &mut status.conditions,
            DEGRADED,
            true,
            reason,
            message.clone(),
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
    if let Some((reason, message)) = &out.degraded {
        tracing::warn!(key = %key.name_any(), namespace, reason, message, "key degraded");
    }
    ctx.metrics
        .set_key_health(namespace, &key.name_any(), reason, out.degraded.is_some());
    let scheduled: Vec<(u32, i64, u32)> = status
        .versions
        .iter()
        .filter(|v| v.destroyed_at.is_none())
        .filter_map(|v| {
            let at = v.destroy_scheduled_at.as_ref()?;
            Some((v.version, at.0.as_second(), v.dependants))
        })
        .collect();
    ctx.metrics
        .set_scheduled_destructions(namespace, &key.name_any(), &scheduled);
    let in_progress = match conditions::find(&status.conditions, ROTATING) {
        Some(rotating) if rotating.status == "True" => Some(("Rotating", rotating.message.clone())),
        _ if status.provider_key_id.is_none() => Some((
            "CreatingKey",
            "the provider key is being created".to_owned(),
        )),
        _ => None,
    };
    set_kstatus_conditions(&mut status.conditions, in_progress, generation, now);

    // An unchanged status is not written again: a third of the ManagedKey
    // patches at cold start were such no-ops, on the slots that decide how
    // soon keys are Ready. (From a stale cached copy the server's is newer,
    // and a later reconcile wrote it.)
    if key.status.as_ref() != Some(&status) {
        let api: Api<ManagedKey> = Api::namespaced(ctx.client.clone(), namespace);
        let patch = json!({
            "apiVersion": keyward_crds::API_VERSION,
            "kind": "ManagedKey",
            "status": status,
        });
        api.patch_status(
            &key.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        if let Some(key_id) = &status.provider_key_id {
            ctx.wrote_operations(key_id, &status.versions);
        }
    }

    let deadlines = out.deadlines.clone();
    out.publish(key, ctx).await;
    Ok(match schedule::requeue_after(now, deadlines) {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// Versions that block destruction, unless the force annotation is set.
pub fn destruction_blocker(key: &ManagedKey, status: &ManagedKeyStatus) -> Option<String> {
    let forced = key
        .annotations()
        .get(annotations::FORCE_DESTROY)
        .is_some_and(|v| v == "true");
    let blocking = versions_with_dependants(&status.versions);
    if forced || blocking.is_empty() {
        return None;
    }
    let list: Vec<String> = blocking
        .iter()
        .map(|(version, count)| format!("version {version} by {count} SealedSecret(s)"))
        .collect();
    Some(format!(
        "not destroying: still needed by {}; re-seal or delete them first, or set annotation {}: \"true\"",
        list.join(", "),
        annotations::FORCE_DESTROY
    ))
}

/// Marks the recorded primary version with `state`.
pub fn mark(status: &mut ManagedKeyStatus, version: u32, state: KeyState) {
    if let Some(entry) = version_mut(&mut status.versions, version) {
        entry.state = state;
    }
}
