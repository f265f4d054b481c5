//! Disaster recovery as a GitOps user runs it: the cluster is torn down
//! entirely (`e2e/cluster/down`) and a fresh one started (`up`: new etcd,
//! new CA, new kube-system uid), then the same manifests are applied.
//!
//! Before: ManagedKeys on AWS KMS (moto), PKCS#11 (SoftHSM2) and the local
//! keyring, a SealedSecret under each; the local keyring backed up with
//! `keyward local backup`. After: `keyward local restore`, the same
//! ManagedKeys and SealedSecrets applied, and the operator started: every
//! key Ready on the very provider key it had (the KMS and HSM keys adopted
//! once the old cluster's claims run out), and a pod on the new node opens
//! every value through the webhook's unseal API. The backup also opens a
//! SealedSecret offline (`keyward unseal --keyring`).

use crate::{
    check_opened, in_process, key_id, managed_key, reader_pod, seal, serve_unseal, token_for,
    wait_sealed_ready, webhook_providers,
};
use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::Namespace;
use keyward_crds::{ManagedKey, SealedSecret};
use keyward_e2e::keys::{ready, wait_key};
use keyward_e2e::{cluster, crds, manifest_dir};
use keyward_operator::Config;
use keyward_provider_select::ProviderArgs;
use keyward_webhook::inject;
use keyward_webhook::unseal::UnsealRequest;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Instant;

/// Short, so the old cluster's claims run out while the new one starts.
const LEASE_SECONDS: u64 = 20;
const VALUES: [(&str, &str); 3] = [
    ("kms", "kept-by-moto-across-a-rebuild"),
    ("hsm", "kept-by-softhsm-across-a-rebuild"),
    ("local", "kept-by-the-backup-across-a-rebuild"),
];

fn provider_of(name: &str) -> Value {
    match name {
        "kms" => json!({"aws": {"region": crate::REGION}}),
        "hsm" => json!({"pkcs11": {"tokenLabel": crate::TOKEN}}),
        _ => json!({"local": {}}),
    }
}

fn operator(ns: &str, dir: &Path, args: &ProviderArgs, name: &str) -> Config {
    let mut config = Config::for_namespace(ns, dir.join(format!("{name}.log")));
    config.providers = args.clone();
    config.key_claim_lease_seconds = LEASE_SECONDS;
    config
}

pub async fn run(client: Client, ns: String, args: ProviderArgs) -> Result<()> {
    ensure!(
        cluster::is_local(),
        "this test tears the cluster down and starts a new one: it needs the cluster of e2e/cluster/up"
    );
    let dir = tempfile::tempdir()?;
    let backup = dir.path().join("keyring-backup");
    let cli = keyward_e2e::binaries::build_binary("keyward", "keyward", false).await?;

    // The first cluster: keys, values sealed under them.
    crds::install_keyward_crds(&client).await?;
    let first = in_process::start_operator(&client, operator(&ns, dir.path(), &args, "first"));
    let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
    let mut git = Vec::new();
    for (name, _) in VALUES {
        let key = managed_key(name, provider_of(name))?;
        git.push(serde_json::to_value(&key)?);
        keys.create(&PostParams::default(), &key).await?;
    }
    let mut ids = Vec::new();
    for (name, _) in VALUES {
        ids.push(key_id(&wait_key(&keys, name, "Ready", ready).await?)?);
    }
    let all = webhook_providers(&client, &ns, &args).await?;
    for ((name, value), id) in VALUES.iter().zip(&ids) {
        seal(&client, &ns, all.as_ref(), name, id, value).await?;
    }
    let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
    for (name, _) in VALUES {
        wait_sealed_ready(&sealed, name).await?;
        let copy = sealed.get(name).await?;
        git.push(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
            "metadata": {"name": name}, "spec": copy.spec,
        }));
    }
    run_cli(&cli, &["local", "backup", "--keyring"], &backup, &ns).await?;
    first.abort();
    let _ = first.await;

    // The offline recovery path: no cluster, only the backup.
    let local_copy = dir.path().join("local-sealed.json");
    std::fs::write(&local_copy, serde_json::to_vec(&git[5])?)?;
    let out = tokio::process::Command::new(&cli)
        .args(["unseal", "--keyring"])
        .arg(&backup)
        .args(["--namespace", &ns, "--item", "password", "-f"])
        .arg(&local_copy)
        .output()
        .await?;
    ensure!(
        out.status.success() && out.stdout == VALUES[2].1.as_bytes(),
        "offline unseal from the backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Gone: a new cluster from nothing.
    let rebuilt = Instant::now();
    let cluster_dir = manifest_dir().join("cluster");
    for step in ["down", "up"] {
        let out = tokio::process::Command::new(cluster_dir.join(step))
            .output()
            .await?;
        ensure!(
            out.status.success(),
            "e2e/cluster/{step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!("cluster rebuilt in {:?}", rebuilt.elapsed());
    let client = cluster::client().await?;
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    run_cli(&cli, &["local", "restore", "--keyring"], &backup, &ns).await?;

    // The same directory applied, the operator started.
    crds::install_keyward_crds(&client).await?;
    let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
    let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
    for manifest in &git {
        if manifest["kind"] == "ManagedKey" {
            keys.create(
                &PostParams::default(),
                &serde_json::from_value(manifest.clone())?,
            )
            .await?;
        } else {
            sealed
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(manifest.clone())?,
                )
                .await?;
        }
    }
    let started = Instant::now();
    let second = in_process::start_operator(&client, operator(&ns, dir.path(), &args, "second"));
    for ((name, _), id) in VALUES.iter().zip(&ids) {
        let key = wait_key(&keys, name, "Ready after the rebuild", ready).await?;
        ensure!(
            key_id(&key)? == *id,
            "{name}: a new provider key {} instead of {id}",
            key_id(&key)?
        );
        println!(
            "{name} Ready on {id} {:?} after the operator started",
            started.elapsed()
        );
    }
    for (name, _) in VALUES {
        wait_sealed_ready(&sealed, name).await?;
    }

    // A pod on the new node opens every value.
    let providers = webhook_providers(&client, &ns, &args).await?;
    let (url, ca_pem, webhook) = serve_unseal(&client, &providers, dir.path()).await?;
    let pod = reader_pod(&client, &ns, "kms,hsm,local").await?;
    let request = UnsealRequest {
        token: token_for(&client, &ns, &pod).await?,
        namespace: ns.clone(),
        pod: pod.name_any(),
        secrets: VALUES.iter().map(|(n, _)| (*n).to_owned()).collect(),
    };
    let opened = inject::unseal_once(&format!("{url}/v1/unseal"), &ca_pem, &request).await?;
    check_opened(&opened, &VALUES)?;
    webhook.abort();
    second.abort();
    let _ = second.await;
    Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::background())
        .await?;
    Ok(())
}

async fn run_cli(cli: &Path, args: &[&str], keyring: &Path, ns: &str) -> Result<()> {
    let out = tokio::process::Command::new(cli)
        .args(args)
        .arg(keyring)
        .args(["--namespace", ns])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "keyward {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "keyward {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout).trim()
    );
    Ok(())
}
