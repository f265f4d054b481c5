//! A compromise with three versions in use, operator and webhook together:
//! every exposed version is marked Compromised, every dependant ends on a
//! fresh data key under a new version, the exposed versions are disabled
//! (pending destruction) at the provider, a Git copy under one of them that
//! an applier gets past a down admission webhook is not brought back and
//! its pod is refused with the documented message, and a new SealedSecret
//! sealed to an exposed version is refused at admission.

use super::in_process::start_operator;
use super::{KEYRING, ROOT_KEY, Webhook, app_pod, injector_image};
use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Event, Pod};
use keyward_core::Dek;
use keyward_core::SecretBytes;
use keyward_core::envelope::{Envelope, Scope, SecretTarget, Wrapping, seal_secret};
use keyward_core::local::LocalProvider;
use keyward_core::provider::{KeyProvider, VersionState};
use keyward_crds::{KeyRotationPolicy, KeyState, ManagedKey, SealedSecret};
use keyward_e2e::keys::{delete_all, ready, wait_key};
use keyward_e2e::{crds, pods, with_temp_ns};
use keyward_kubeutil::keyring_secret;
use keyward_operator::Config;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SECRETS: [&str; 3] = ["s1", "s2", "s3"];

#[tokio::test]
async fn a_compromise_retires_every_exposed_version_and_reseals_under_fresh_data_keys() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let image = injector_image().await?;
        let dir = tempfile::tempdir()?;
        let operator = start_operator(
            &client,
            Config::for_namespace(&ns, dir.path().join("operator-audit.log")),
        );
        let result = async {
            let keys = key_with_a_manual_policy(&client, &ns).await?;
            let webhook = Webhook::start(&client, &ns, dir.path(), image).await?;
            let result = compromise_flow(&client, &ns, &keys, &webhook).await;
            if result.is_err() {
                println!("webhook audit log:\n{}", webhook.audit_log());
            }
            webhook.stop(&client).await;
            // Dependants first: a key with dependants is not deleted.
            Api::<SealedSecret>::namespaced(client.clone(), &ns)
                .delete_collection(&Default::default(), &ListParams::default())
                .await?;
            delete_all(&keys).await?;
            result
        }
        .await;
        operator.abort();
        result
    })
    .await;
}

/// ManagedKey `k` whose policy never re-wraps by itself (`rewrap: Manual`),
/// so each version keeps the SealedSecret sealed under it until the
/// compromise; Ready (so the keyring exists for the webhook).
async fn key_with_a_manual_policy(client: &Client, ns: &str) -> Result<Api<ManagedKey>> {
    let policy: KeyRotationPolicy = serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "KeyRotationPolicy",
        "metadata": {"name": "manual"}, "spec": {"rewrap": "Manual"},
    }))?;
    Api::<KeyRotationPolicy>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &policy)
        .await?;
    let keys: Api<ManagedKey> = Api::namespaced(client.clone(), ns);
    let key: ManagedKey = serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
        "metadata": {"name": "k"},
        "spec": {"provider": {"local": {}}, "rotationPolicyRef": {"name": "manual"},
                 "deletionWindow": "7d"},
    }))?;
    keys.create(&PostParams::default(), &key).await?;
    wait_key(&keys, "k", "Ready", ready).await?;
    Ok(keys)
}

async fn compromise_flow(
    client: &Client,
    ns: &str,
    keys: &Api<ManagedKey>,
    webhook: &Webhook,
) -> Result<()> {
    let secrets: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
    // s1 under v1, s2 under v2, s3 under v3 (Git keeps these copies).
    let mut git = BTreeMap::new();
    for (i, name) in SECRETS.iter().enumerate() {
        let version = i as u32 + 1;
        if version > 1 {
            let patch = json!({"metadata": {"annotations": {"keyward.io/rotate": name}}});
            keys.patch("k", &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            wait_key(keys, "k", "rotated", |k| primary(k) == Some(version)).await?;
        }
        let sealed = seal(client, ns, name).await?;
        secrets.create(&PostParams::default(), &sealed).await?;
        git.insert(*name, sealed);
    }
    wait_key(keys, "k", "one dependant on each of v1-v3", |k| {
        (1..=3).all(|v| dependants(k, v) == Some(1))
    })
    .await?;
    let provider = provider(client, ns).await?;
    let mut old_deks = BTreeMap::new();
    for name in SECRETS {
        old_deks.insert(name, dek(&provider, ns, &git[name]).await?);
    }

    let started = Instant::now();
    let reason = "INC-7: a keyring backup was copied";
    let patch = json!({"metadata": {"annotations": {"keyward.io/reason": reason}},
                       "spec": {"state": "Compromised"}});
    keys.patch("k", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let retired = wait_key(keys, "k", "v1-v3 Compromised and scheduled", |k| {
        primary(k) == Some(4)
            && (1..=3).all(|v| {
                k.status
                    .as_ref()
                    .and_then(|s| s.version(v))
                    .is_some_and(|v| {
                        v.state == KeyState::Compromised && v.destroy_scheduled_at.is_some()
                    })
            })
    })
    .await?;
    println!(
        "MEASURE compromise -> every dependant re-sealed and v1-v3 scheduled: {:?}",
        started.elapsed()
    );
    ensure!(version_state(&retired, 4) == Some(KeyState::Active));
    let provider = self::provider(client, ns).await?;
    for name in SECRETS {
        let now = secrets.get(name).await?;
        let fresh = dek(&provider, ns, &now).await?;
        ensure!(
            now.spec
                .encrypted_data
                .values()
                .all(|t| Envelope::decode(t).is_ok_and(|e| e.key_version == 4)),
            "{name} is not on v4"
        );
        ensure!(
            fresh.expose() != old_deks[name].expose(),
            "{name} kept its data key"
        );
    }
    let key_id = retired
        .status
        .as_ref()
        .and_then(|s| s.provider_key_id.clone())
        .context("providerKeyId")?;
    let info = provider.describe_key(&key_id).await?;
    for v in 1..=3 {
        let state = info
            .versions
            .iter()
            .find(|i| i.version == v)
            .map(|i| i.state);
        ensure!(
            state == Some(VersionState::PendingDeletion),
            "v{v} is {state:?} at the provider, not disabled pending deletion"
        );
    }
    let audit = std::fs::read_to_string(
        webhook
            .audit
            .parent()
            .context("audit dir")?
            .join("operator-audit.log"),
    )?;
    let compromise = audit
        .lines()
        .find(|line| line.contains("\"key.compromise\""))
        .context("no key.compromise record")?;
    ensure!(
        compromise.contains("\"exposed\":\"1,2,3\"") && compromise.contains(reason),
        "the compromise record lacks the exposed versions or the reason: {compromise}"
    );
    // Who asked, from admission's userInfo, with the same reason.
    let webhook_audit = webhook.audit_log();
    let change = webhook_audit
        .lines()
        .find(|line| line.contains("Active -> Compromised"))
        .context("admission recorded no change of spec.state")?;
    let record: serde_json::Value = serde_json::from_str(change)?;
    let actor = record["actor"].as_str().unwrap_or_default();
    ensure!(
        record["action"] == "key.change"
            && record["detail"]["reason"] == reason
            && !actor.is_empty()
            && actor != "(unknown user)",
        "{change}"
    );
    println!(
        "attributed: {actor} set spec.state Compromised; the reason is in the webhook's and the operator's records"
    );
    println!("compromise: v1-v3 Compromised, pending deletion; s1-s3 on v4 under fresh data keys");

    git_copy_past_a_down_webhook(client, ns, &git["s1"], webhook).await?;
    new_secret_under_an_exposed_version_is_refused(client, ns, &git["s2"]).await
}

/// The admission webhook is down (its configuration selects no namespace)
/// while an applier writes s1's Git copy (v1) back: the operator does not
/// bring v1 back and says so, and a pod reading s1 is refused with the
/// documented message.
async fn git_copy_past_a_down_webhook(
    client: &Client,
    ns: &str,
    copy: &SealedSecret,
    webhook: &Webhook,
) -> Result<()> {
    webhook.select_validation(client, "nowhere").await?;
    let secrets: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
    let patch = json!({"spec": {"encryptedData": copy.spec.encrypted_data}});
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dry = PatchParams {
            dry_run: true,
            ..PatchParams::default()
        };
        match secrets.patch("s1", &dry, &Patch::Merge(&patch)).await {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => bail!("validation never went away: {e}"),
        }
    }
    secrets
        .patch("s1", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    wait_for_event(client, ns, "ExposedVersionInUse").await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.create(
        &PostParams::default(),
        &app_pod("reader", "s1", "cat /run/keyward/s1/value")?,
    )
    .await?;
    let done = pods::wait_for_completion(&pods, "reader", Duration::from_secs(120)).await?;
    let said = pods::container_log(client, &done, "keyward-inject")
        .await
        .unwrap_or_default();
    let expected = format!(
        "SealedSecret s1 item value is sealed under version 1 of ManagedKey {ns}/k, which is Compromised: re-seal it (keyward seal) or re-wrap it (keyward rewrap) onto the current primary version"
    );
    ensure!(
        pods::phase(&done) == "Failed" && said.contains(&expected),
        "reader ended {} and its injector said: {said}",
        pods::phase(&done)
    );
    println!("git copy under an exposed version: not brought back; the pod was told: {expected}");
    webhook.select_validation(client, ns).await
}

/// s2 deleted and created again from its Git copy (v2): refused at
/// admission, naming the version and its state.
async fn new_secret_under_an_exposed_version_is_refused(
    client: &Client,
    ns: &str,
    copy: &SealedSecret,
) -> Result<()> {
    let secrets: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
    secrets.delete("s2", &Default::default()).await?;
    let expected = format!("is sealed under version 2 of ManagedKey {ns}/k, which is Compromised");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dry = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        match secrets.create(&dry, copy).await {
            Err(kube::Error::Api(status)) if status.message.contains(&expected) => {
                println!(
                    "new SealedSecret under an exposed version refused: {}",
                    status.message
                );
                return Ok(());
            }
            // Admission is back once the API server's watch sees it.
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => bail!(
                "a SealedSecret sealed under Compromised v2 was not refused for it: {other:?}"
            ),
        }
    }
}

async fn wait_for_event(client: &Client, ns: &str, reason: &str) -> Result<()> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let list = events.list(&ListParams::default()).await?;
        if list
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some(reason))
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("no `{reason}` Event within 60 s")
}

/// SealedSecret `name` with one item `value`, sealed under the provider's
/// primary version of `k` as `keyward seal` would.
async fn seal(client: &Client, ns: &str, name: &str) -> Result<SealedSecret> {
    let provider = provider(client, ns).await?;
    let keys: Api<ManagedKey> = Api::namespaced(client.clone(), ns);
    let key_id = keys
        .get("k")
        .await?
        .status
        .and_then(|s| s.provider_key_id)
        .context("providerKeyId")?;
    let items: BTreeMap<String, SecretBytes> = [(
        "value".to_owned(),
        SecretBytes::new(format!("{name}-value").into_bytes()),
    )]
    .into();
    let wrapping = Wrapping::Provider {
        provider: &provider,
        key_id: &key_id,
    };
    let encrypted = seal_secret(&target(ns, name), wrapping, &items).await?;
    Ok(serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"keyRef": {"name": "k"}, "encryptedData": encrypted},
    }))?)
}

fn target(ns: &str, name: &str) -> SecretTarget {
    SecretTarget {
        scope: Scope::Strict,
        namespace: ns.to_owned(),
        secret_name: name.to_owned(),
        key_ref: format!("{ns}/k"),
        access: Vec::new(),
    }
}

/// The data key of a secret's item, unwrapped by the provider.
async fn dek(provider: &LocalProvider, ns: &str, secret: &SealedSecret) -> Result<Dek> {
    let name = secret.metadata.name.as_deref().context("name")?;
    let text = secret.spec.encrypted_data.get("value").context("item")?;
    let envelope = Envelope::decode(text)?;
    Ok(provider
        .unwrap_dek(&envelope.wrapped(), &target(ns, name).wrap_context())
        .await?)
}

/// A fresh view of the in-cluster keyring (the operator rotates it).
async fn provider(client: &Client, ns: &str) -> Result<LocalProvider> {
    Ok(keyring_secret::open_local_provider(client.clone(), ns, KEYRING, ROOT_KEY).await?)
}

fn primary(key: &ManagedKey) -> Option<u32> {
    key.status.as_ref()?.primary_version
}

fn version_state(key: &ManagedKey, version: u32) -> Option<KeyState> {
    Some(key.status.as_ref()?.version(version)?.state)
}

fn dependants(key: &ManagedKey, version: u32) -> Option<u32> {
    Some(key.status.as_ref()?.version(version)?.dependants)
}
