//! Two clusters reaching one AWS KMS (moto) and one PKCS#11 token
//! (SoftHSM2): the cluster `e2e/cluster/up` started ("A") and a second,
//! empty control plane (`e2e/cluster/second-apiserver`, "B"), each with its
//! own operator in-process and its own kube-system uid as cluster id.
//!
//! - A creates the keys and claims them (owner `namespace/name`).
//! - The same manifests applied to B find the same provider keys, and B is
//!   refused them while A renews its claims: Degraded
//!   `ClaimedByAnotherCluster`, naming A and what to do; deleting the
//!   ManagedKey in B leaves the provider key alone.
//! - A stops (its cluster is gone): B takes one key over at once with
//!   `keyward.io/take-over-from`, the other when A's claim runs out; then
//!   B's SealedSecrets are Ready and open to the values sealed in A.
//! - A's operator back: it now leaves the keys alone, and deleting its
//!   ManagedKeys does not schedule the keys B uses for destruction.

use crate::{in_process, key_id, managed_key, seal, wait_sealed_ready};
use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::Namespace;
use keyward_core::envelope::{Scope, SecretTarget, open_secret};
use keyward_core::provider::KeyProvider;
use keyward_crds::{ManagedKey, SealedSecret};
use keyward_e2e::keys::{degraded_reason, ready, wait_key};
use keyward_e2e::{crds, manifest_dir};
use keyward_operator::Config;
use keyward_provider_select::{ProviderArgs, Providers};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Short, so the test sees a claim run out; renewed every 10 s.
const LEASE_SECONDS: u64 = 40;
const KEYS: [(&str, &str); 2] = [
    ("kms", "sealed-in-a-for-aws"),
    ("hsm", "sealed-in-a-for-hsm"),
];

/// The second control plane, stopped when dropped.
struct SecondCluster {
    script: PathBuf,
    client: Client,
}

impl SecondCluster {
    async fn start() -> Result<Self> {
        let script = manifest_dir().join("cluster/second-apiserver");
        let out = Command::new(&script).arg("start").output()?;
        ensure!(
            out.status.success(),
            "second-apiserver start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8(out.stdout)?.trim().to_owned();
        let kubeconfig = Kubeconfig::read_from(&path)?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(SecondCluster {
            script,
            client: Client::try_from(config)?,
        })
    }
}

impl Drop for SecondCluster {
    fn drop(&mut self) {
        let _ = Command::new(&self.script).arg("stop").status();
    }
}

pub async fn run(client: Client, ns: String, args: ProviderArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let operator_config = |name: &str| {
        let mut config = Config::for_namespace(&ns, dir.path().join(format!("{name}.log")));
        config.providers = args.clone();
        config.key_claim_lease_seconds = LEASE_SECONDS;
        config
    };
    crds::install_keyward_crds(&client).await?;
    let cluster_a = kube_system_uid(&client).await?;
    let providers = Providers::connect(&args).await?;

    // Cluster A makes the keys and seals one value under each.
    let operator_a = in_process::start_operator(&client, operator_config("a"));
    let keys_a: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
    create_keys(&keys_a).await?;
    let mut ids = Vec::new();
    for (name, value) in KEYS {
        let key = wait_key(&keys_a, name, "Ready in A", ready).await?;
        let id = key_id(&key)?;
        seal(&client, &ns, &providers, name, &id, value).await?;
        let at_peer = providers.describe_key(&id).await?;
        ensure!(
            at_peer.owner == Some(format!("{ns}/{name}"))
                && at_peer.claim.as_ref().map(|c| c.cluster.as_str()) == Some(cluster_a.as_str()),
            "{name}: owner {:?}, claim {:?}",
            at_peer.owner,
            at_peer.claim
        );
        ids.push(id);
    }
    let sealed_a: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
    for (name, _) in KEYS {
        wait_sealed_ready(&sealed_a, name).await?;
    }

    // Cluster B gets the same manifests (what Git holds) while A lives.
    let second = SecondCluster::start().await?;
    let client_b = second.client.clone();
    let cluster_b = kube_system_uid(&client_b).await?;
    ensure!(cluster_a != cluster_b, "the two clusters share an id");
    crds::install_keyward_crds(&client_b).await?;
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    Api::<Namespace>::all(client_b.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    let keys_b: Api<ManagedKey> = Api::namespaced(client_b.clone(), &ns);
    let sealed_b: Api<SealedSecret> = Api::namespaced(client_b.clone(), &ns);
    create_keys(&keys_b).await?;
    copy_sealed(&sealed_a, &sealed_b).await?;
    let operator_b = in_process::start_operator(&client_b, operator_config("b"));
    for ((name, _), id) in KEYS.iter().zip(&ids) {
        let refused = wait_key(&keys_b, name, "refused in B", |k| {
            degraded_reason(k).is_some_and(|r| r.starts_with("ClaimedByAnotherCluster"))
        })
        .await?;
        let reason = degraded_reason(&refused).unwrap_or_default();
        ensure!(
            reason.contains(&cluster_a) && reason.contains("keyward.io/take-over-from"),
            "{reason}"
        );
        ensure!(key_id(&refused)? == *id, "B found another key for {name}");
    }
    println!("B refused the keys A claims");

    // Deleting the ManagedKey in B leaves the key A uses alone.
    sealed_b.delete("hsm", &DeleteParams::default()).await?;
    keyward_e2e::keys::delete_and_wait_gone(&keys_b, "hsm").await?;
    let hsm = providers.describe_key(&ids[1]).await?;
    ensure!(
        hsm.deletion_at.is_none() && hsm.claim.as_ref().map(|c| &c.cluster) == Some(&cluster_a),
        "B's delete touched A's HSM key: {hsm:?}"
    );
    keys_b
        .create(&PostParams::default(), &managed_key("hsm", hsm_provider())?)
        .await?;
    copy_sealed(&sealed_a, &sealed_b).await?;

    // A is gone. B takes the HSM key over at once, by naming A ...
    operator_a.abort();
    let _ = operator_a.await;
    let stopped = Instant::now();
    let take_over = json!({"metadata": {"annotations": {"keyward.io/take-over-from": cluster_a}}});
    keys_b
        .patch("hsm", &PatchParams::default(), &Patch::Merge(&take_over))
        .await?;
    wait_key(&keys_b, "hsm", "Ready in B after take-over", ready).await?;
    let kms_then = keys_b.get("kms").await?;
    ensure!(
        degraded_reason(&kms_then).is_some() || stopped.elapsed() > Duration::from_secs(20),
        "B took the AWS key before A's claim ran out: {:?}",
        kms_then.status
    );
    println!(
        "B took the HSM key over {:?} after A stopped",
        stopped.elapsed()
    );
    // ... and the AWS key when A's claim runs out.
    wait_key(&keys_b, "kms", "Ready in B after the lease", ready).await?;
    println!(
        "B adopted the AWS key {:?} after A stopped",
        stopped.elapsed()
    );
    for ((name, value), id) in KEYS.iter().zip(&ids) {
        let at_peer = providers.describe_key(id).await?;
        ensure!(
            at_peer.claim.as_ref().map(|c| &c.cluster) == Some(&cluster_b),
            "{name}: {:?}",
            at_peer.claim
        );
        wait_sealed_ready(&sealed_b, name).await?;
        let copy = sealed_b.get(name).await?;
        let target = SecretTarget {
            scope: Scope::Strict,
            namespace: ns.clone(),
            secret_name: (*name).to_owned(),
            key_ref: format!("{ns}/{name}"),
            access: Vec::new(),
        };
        let opened = open_secret(&target, &providers, &copy.spec.encrypted_data).await?;
        ensure!(
            opened.get("password").map(|v| v.expose()) == Some(value.as_bytes()),
            "{name} opened to other bytes in B"
        );
    }
    let audit_b = std::fs::read_to_string(dir.path().join("b.log"))?;
    ensure!(
        audit_b.matches("key.adopt").count() == 2,
        "B's audit log: {audit_b}"
    );

    // A's operator back: it leaves the keys to B, and deleting its
    // ManagedKeys schedules nothing.
    let operator_a = in_process::start_operator(&client, operator_config("a-again"));
    for (name, _) in KEYS {
        let key = wait_key(&keys_a, name, "refused in A", |k| {
            degraded_reason(k).is_some_and(|r| r.contains(&cluster_b))
        })
        .await?;
        ensure!(!ready(&key), "{name} is Ready in A");
    }
    sealed_a
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await?;
    keyward_e2e::keys::delete_all(&keys_a).await?;
    for id in &ids {
        let at_peer = providers.describe_key(id).await?;
        ensure!(at_peer.deletion_at.is_none(), "A's delete scheduled {id}");
    }
    operator_a.abort();
    operator_b.abort();
    let _ = (operator_a.await, operator_b.await);
    drop(second);
    Ok(())
}

fn hsm_provider() -> serde_json::Value {
    json!({"pkcs11": {"tokenLabel": crate::TOKEN}})
}

async fn create_keys(keys: &Api<ManagedKey>) -> Result<()> {
    keys.create(
        &PostParams::default(),
        &managed_key("kms", json!({"aws": {"region": crate::REGION}}))?,
    )
    .await?;
    keys.create(&PostParams::default(), &managed_key("hsm", hsm_provider())?)
        .await?;
    Ok(())
}

/// Copies each SealedSecret's spec as Git holds it (no status, new uid).
async fn copy_sealed(from: &Api<SealedSecret>, to: &Api<SealedSecret>) -> Result<()> {
    for (name, _) in KEYS {
        if to.get_opt(name).await?.is_some() {
            continue;
        }
        let source = from.get(name).await?;
        let copy: SealedSecret = serde_json::from_value(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
            "metadata": {"name": name},
            "spec": source.spec,
        }))?;
        to.create(&PostParams::default(), &copy).await?;
    }
    Ok(())
}

async fn kube_system_uid(client: &Client) -> Result<String> {
    Api::<Namespace>::all(client.clone())
        .get("kube-system")
        .await?
        .uid()
        .context("kube-system has no uid")
}
