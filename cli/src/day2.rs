//! Day-2 verbs on ManagedKeys, through the API server as the user:
//! `keyward status` (keys, versions, dependants, Git copies behind),
//! `keyward rotate` and `keyward compromise` (what `kubectl annotate` and
//! `kubectl patch` would do, with the names and checks spelled out).

use crate::args::{CompromiseArgs, RotateArgs, StatusArgs, StatusFormat};
use crate::kube_client::{self, Cluster};
use anyhow::{Result, anyhow, bail};
use keyward_crds::conditions::{self, DEGRADED, READY};
use keyward_crds::{KeyState, ManagedKey, SealedSecret};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The field manager of the CLI's writes.
const FIELD_MANAGER: &str = "keyward-cli";

/// The ManagedKey `key` names, read now.
pub(crate) async fn target(
    cluster: &Cluster,
    namespace: Option<&str>,
    key: &str,
) -> Result<(String, String, ManagedKey)> {
    let (namespace, name) = kube_client::key_reference(cluster, namespace, key)?;
    let found = kube_client::managed_key(cluster, &namespace, &name).await?;
    Ok((namespace, name, found))
}

pub async fn status(args: StatusArgs) -> Result<()> {
    let cluster = kube_client::connect(&args.kube).await?;
    let namespace = (!args.all_namespaces).then(|| {
        args.namespace
            .clone()
            .unwrap_or_else(|| cluster.namespace.clone())
    });
    let keys: Vec<ManagedKey> = match (&args.key, &namespace) {
        (Some(key), _) => vec![target(&cluster, namespace.as_deref(), key).await?.2],
        (None, Some(ns)) => {
            list(
                &Api::namespaced(cluster.client.clone(), ns),
                "managedkeys.keyward.io",
                ns,
            )
            .await?
        }
        (None, None) => {
            list(
                &Api::all(cluster.client.clone()),
                "managedkeys.keyward.io",
                "every namespace",
            )
            .await?
        }
    };
    let secrets: Vec<SealedSecret> = match &namespace {
        Some(ns) => {
            list(
                &Api::namespaced(cluster.client.clone(), ns),
                "sealedsecrets.keyward.io",
                ns,
            )
            .await?
        }
        None => {
            list(
                &Api::all(cluster.client.clone()),
                "sealedsecrets.keyward.io",
                "every namespace",
            )
            .await?
        }
    };
    let behind: Vec<&SealedSecret> = secrets
        .iter()
        .filter(|s| s.status.as_ref().is_some_and(|st| st.git_behind.is_some()))
        .filter(|s| {
            args.key.as_ref().is_none_or(|key| {
                keys.first()
                    .is_some_and(|k| uses(s, k) || key.ends_with(&s.spec.key_ref.name))
            })
        })
        .collect();
    match args.output {
        StatusFormat::Json => {
            let document = json!({
                "keys": keys.iter().map(key_json).collect::<Vec<_>>(),
                "gitBehind": behind.iter().map(|s| behind_json(s)).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&document)?);
        }
        StatusFormat::Table => print_table(&keys, &behind, args.key.is_some()),
    }
    Ok(())
}

async fn list<K>(api: &Api<K>, resource: &str, scope: &str) -> Result<Vec<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .map(|list| list.items)
        .map_err(|e| {
            kube_client::explain(
                e,
                &format!("{resource} in {scope}"),
                "list",
                resource,
                scope,
            )
        })
}

/// Whether `secret` is sealed under `key`.
fn uses(secret: &SealedSecret, key: &ManagedKey) -> bool {
    let own = secret.metadata.namespace.clone().unwrap_or_default();
    secret.spec.key_ref.name == key.metadata.name.clone().unwrap_or_default()
        && secret.spec.key_ref.namespace.clone().unwrap_or(own)
            == key.metadata.namespace.clone().unwrap_or_default()
}

fn condition(key: &ManagedKey, kind: &str) -> Option<(String, String, String)> {
    let status = key.status.as_ref()?;
    conditions::find(&status.conditions, kind)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn provider_name(key: &ManagedKey) -> &'static str {
    key.spec.provider_kind().map_or("-", |kind| kind.name())
}

fn key_json(key: &ManagedKey) -> Value {
    let status = key.status.clone().unwrap_or_default();
    json!({
        "namespace": key.metadata.namespace,
        "name": key.metadata.name,
        "provider": provider_name(key),
        "providerKeyId": status.provider_key_id,
        "state": status.state,
        "primaryVersion": status.primary_version,
        "ready": condition(key, READY).map(|c| c.0 == "True"),
        "degraded": condition(key, DEGRADED).filter(|c| c.0 == "True").map(|c| format!("{}: {}", c.1, c.2)),
        "nextRotationAt": status.next_rotation_at,
        "versions": status.versions,
    })
}

fn behind_json(secret: &SealedSecret) -> Value {
    let behind = secret.status.as_ref().and_then(|s| s.git_behind.clone());
    json!({
        "namespace": secret.metadata.namespace,
        "name": secret.metadata.name,
        "key": secret.spec.key_ref.name,
        "versions": behind.as_ref().map(|b| b.versions.clone()),
        "since": behind.map(|b| b.since),
    })
}

fn print_table(keys: &[ManagedKey], behind: &[&SealedSecret], detail: bool) {
    println!(
        "{:<20} {:<24} {:<8} {:<14} {:>7} {:<6} {:>8} {:>10} {:>10}",
        "NAMESPACE",
        "NAME",
        "PROVIDER",
        "STATE",
        "PRIMARY",
        "READY",
        "VERSIONS",
        "DEPENDANTS",
        "GIT-ONLY"
    );
    for key in keys {
        let status = key.status.clone().unwrap_or_default();
        let dependants: u32 = status.versions.iter().map(|v| v.dependants).sum();
        let git: u32 = status.versions.iter().map(|v| v.git_dependants).sum();
        println!(
            "{:<20} {:<24} {:<8} {:<14} {:>7} {:<6} {:>8} {:>10} {:>10}",
            key.metadata.namespace.as_deref().unwrap_or(""),
            key.metadata.name.as_deref().unwrap_or(""),
            provider_name(key),
            status
                .state
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            status
                .primary_version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            condition(key, READY)
                .map(|c| c.0)
                .unwrap_or_else(|| "-".into()),
            status.versions.len(),
            dependants,
            git,
        );
        if let Some((_, reason, message)) = condition(key, DEGRADED).filter(|c| c.0 == "True") {
            println!("  degraded: {reason}: {message}");
        }
        if detail {
            println!(
                "  {:>7} {:<14} {:>10} {:>10} {:>10}  DESTROY-AT",
                "VERSION", "STATE", "DEPENDANTS", "GIT-ONLY", "WRAPS"
            );
            for v in &status.versions {
                println!(
                    "  {:>7} {:<14} {:>10} {:>10} {:>10}  {}",
                    v.version,
                    v.state.to_string(),
                    v.dependants,
                    v.git_dependants,
                    v.operations,
                    v.destroy_scheduled_at
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .unwrap_or_default()
                );
            }
        }
    }
    if !behind.is_empty() {
        println!(
            "\nSealedSecrets whose Git copy is behind (run `keyward rewrap -f <repo>` and commit):"
        );
        for secret in behind {
            let since = secret
                .status
                .as_ref()
                .and_then(|s| s.git_behind.as_ref())
                .map(|b| (b.versions.clone(), b.since.0.to_string()));
            if let Some((versions, since)) = since {
                println!(
                    "  {}/{} (key {}): Git's copy on versions {versions:?} since {since}",
                    secret.metadata.namespace.as_deref().unwrap_or(""),
                    secret.metadata.name.as_deref().unwrap_or(""),
                    secret.spec.key_ref.name
                );
            }
        }
    }
}

pub async fn rotate(args: RotateArgs) -> Result<()> {
    let cluster = kube_client::connect(&args.kube).await?;
    let (namespace, name, key) = target(&cluster, args.namespace.as_deref(), &args.key).await?;
    let before = key
        .status
        .as_ref()
        .and_then(|s| s.primary_version)
        .ok_or_else(|| {
            anyhow!(
                "ManagedKey {namespace}/{name} has no primary version yet; wait until it is Ready"
            )
        })?;
    if key.status.as_ref().and_then(|s| s.state) != Some(KeyState::Active) {
        bail!("ManagedKey {namespace}/{name} is not Active; only an Active key rotates");
    }
    let request = format!("keyward-cli-{}", unix_now());
    let mut annotations = serde_json::Map::new();
    annotations.insert("keyward.io/rotate".into(), json!(request));
    if let Some(reason) = &args.reason {
        annotations.insert(keyward_crds::managed_key::REASON.into(), json!(reason));
    }
    patch(
        &cluster,
        &namespace,
        &name,
        json!({"metadata": {"annotations": annotations}}),
    )
    .await?;
    println!("rotation of {namespace}/{name} requested (primary is version {before})");
    if args.wait {
        let now = wait_for_primary_after(&cluster, &namespace, &name, before).await?;
        println!("version {now} is primary; older versions still unseal until retention ends");
    }
    Ok(())
}

pub async fn compromise(args: CompromiseArgs) -> Result<()> {
    if args.reason.trim().is_empty() {
        bail!("--reason is empty; say what happened (it goes to the audit log)");
    }
    let cluster = kube_client::connect(&args.kube).await?;
    let (namespace, name, key) = target(&cluster, args.namespace.as_deref(), &args.key).await?;
    let before = key
        .status
        .as_ref()
        .and_then(|s| s.primary_version)
        .unwrap_or(0);
    let mut annotations = serde_json::Map::new();
    annotations.insert(keyward_crds::managed_key::REASON.into(), json!(args.reason));
    annotations.insert(
        "keyward.io/exposed-versions".into(),
        json!(args.exposed_versions),
    );
    patch(
        &cluster,
        &namespace,
        &name,
        json!({"metadata": {"annotations": annotations}, "spec": {"state": "Compromised"}}),
    )
    .await?;
    println!(
        "{namespace}/{name} reported Compromised (exposed versions: {}); the operator rotates, re-seals \
         every SealedSecret under those versions and schedules them for destruction",
        args.exposed_versions
    );
    if args.wait {
        let now = wait_for_primary_after(&cluster, &namespace, &name, before).await?;
        println!(
            "version {now} is primary; run `keyward status {namespace}/{name}` to follow the re-seal"
        );
    }
    Ok(())
}

pub(crate) async fn patch(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    body: Value,
) -> Result<()> {
    let api: Api<ManagedKey> = Api::namespaced(cluster.client.clone(), namespace);
    api.patch(
        name,
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        },
        &Patch::Merge(&body),
    )
    .await
    .map(drop)
    .map_err(|e| match &e {
        kube::Error::Api(status) if status.code == 400 || status.code == 422 => anyhow!(
            "ManagedKey {namespace}/{name} refused the change: {}",
            status.message.trim()
        ),
        kube::Error::Api(status) if status.message.contains("denied the request") => anyhow!(
            "Keyward refused the change to ManagedKey {namespace}/{name}: {}",
            status
                .message
                .split_once("denied the request: ")
                .map_or(status.message.as_str(), |(_, why)| why)
                .trim()
        ),
        _ => kube_client::explain(
            e,
            &format!("ManagedKey {namespace}/{name}"),
            "patch",
            "managedkeys.keyward.io",
            namespace,
        ),
    })
}

/// Polls the key (up to two minutes) until a version after `before` is
/// primary; returns it.
async fn wait_for_primary_after(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    before: u32,
) -> Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let key = kube_client::managed_key(cluster, namespace, name).await?;
        let primary = key.status.as_ref().and_then(|s| s.primary_version);
        if let Some(now) = primary.filter(|v| *v > before) {
            return Ok(now);
        }
        if Instant::now() > deadline {
            bail!(
                "ManagedKey {namespace}/{name} did not get there within 2 minutes; see `keyward status {namespace}/{name}` and its Events"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
