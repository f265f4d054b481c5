//! A GitOps applier against the operator through a rotation: a loop that
//! server-side-applies a directory of SealedSecret manifests every 2 s with
//! its own field manager and `force`, as Flux's kustomize-controller does,
//! while the operator (in-process) and the webhook (admission and tenant
//! API, in-process) run.
//!
//! The operator re-wraps each SealedSecret once; the applier puts Git's
//! copy back; the operator leaves it (`GitBehind: AppliedCopyBehind`) and
//! keeps version 1 for it; pods keep starting. `keyward rewrap` over the
//! directory plus one more apply brings everything onto version 2, Git is
//! current again, and nothing is written after that. Then a compromise with
//! the applier still running: one re-seal each, every re-apply of the
//! exposed copy refused at admission.

use super::in_process::start_operator;
use super::{Webhook, app_pod, injector_image, keyward_cli};
use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use keyward_core::SecretBytes;
use keyward_core::envelope::{Envelope, Scope, SecretTarget, Wrapping, seal_secret};
use keyward_crds::conditions::{GIT_BEHIND, find};
use keyward_crds::{ManagedKey, SealedSecret};
use keyward_e2e::keys::{degraded_reason, delete_all, ready, wait_key};
use keyward_e2e::kstatus::{Kstatus, kstatus, kubectl_ready};
use keyward_e2e::{crds, pods, with_temp_ns};
use keyward_kubeutil::keyring_secret;
use keyward_operator::Config;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SECRETS: [&str; 3] = ["a1", "a2", "a3"];
const APPLIER: &str = "kustomize-controller";
const ROUND: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_gitops_applier_and_the_operator_do_not_fight_over_a_rotation() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let image = injector_image().await?;
        let dir = tempfile::tempdir()?;
        let audit = dir.path().join("operator-audit.log");
        let operator = start_operator(&client, Config::for_namespace(&ns, audit.clone()));
        let result = async {
            let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
            let key: ManagedKey = serde_json::from_value(json!({
                "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
                "metadata": {"name": "k"},
                "spec": {"provider": {"local": {}}, "deletionWindow": "7d"},
            }))?;
            keys.create(&PostParams::default(), &key).await?;
            wait_key(&keys, "k", "Ready", ready).await?;
            let webhook = Webhook::start(&client, &ns, dir.path(), image).await?;
            let result = flow(&client, &ns, &keys, dir.path(), &audit).await;
            webhook.stop(&client).await;
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

async fn flow(
    client: &Client,
    ns: &str,
    keys: &Api<ManagedKey>,
    dir: &Path,
    audit: &Path,
) -> Result<()> {
    let git = dir.join("git");
    std::fs::create_dir(&git)?;
    for name in SECRETS {
        let manifest = seal(client, ns, name).await?;
        std::fs::write(
            git.join(format!("{name}.yaml")),
            serde_yaml_ng::to_string(&manifest)?,
        )?;
    }
    let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
    let applier = tokio::spawn(apply_every_round(sealed.clone(), git.clone()));
    let result = async {
        wait_for(&sealed, "each SealedSecret recorded on version 1", |s| {
            on_versions(s) == [1]
        })
        .await?;

        keys.patch(
            "k",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"keyward.io/rotate": "1"}}})),
        )
        .await?;
        wait_key(keys, "k", "primary version 2", |k| {
            k.status.as_ref().and_then(|s| s.primary_version) == Some(2)
        })
        .await?;
        let rotated = Instant::now();
        // The operator re-wraps, the applier reverts; then both leave it.
        wait_for(&sealed, "Git's copy applied again and left alone", |s| {
            on_versions(s) == [1] && git_behind(s) == Some(("AppliedCopyBehind", vec![1]))
        })
        .await?;
        tokio::time::sleep(ROUND * 10).await;
        let writes = rewraps(audit)?;
        for name in SECRETS {
            let subject = format!("{ns}/{name}");
            ensure!(
                writes.get(&subject) == Some(&1),
                "the operator re-wrapped {subject} {:?} times during {:?} of re-applies",
                writes.get(&subject),
                rotated.elapsed()
            );
        }
        let key = keys.get("k").await?;
        let v1 = key
            .status
            .as_ref()
            .and_then(|s| s.version(1))
            .context("version 1")?;
        ensure!(
            v1.dependants >= 3 && v1.git_dependants == 3 && v1.destroy_scheduled_at.is_none(),
            "version 1 must stay for Git's copies: {v1:?}"
        );
        // Nothing left for the operator to do: not Rotating, kstatus Current.
        let status = key.status.as_ref().context("status")?;
        let rotating = find(&status.conditions, "Rotating").context("Rotating")?;
        ensure!(
            rotating.status == "False" && rotating.reason == "WaitingForGit",
            "Rotating: {rotating:?}"
        );
        let view = kstatus(&key.metadata, status.observed_generation, &status.conditions);
        ensure!(
            view == Kstatus::Current && kubectl_ready(&status.conditions),
            "kstatus {view:?} for a Ready key waiting for Git"
        );
        println!(
            "{:?} after the rotation, {} re-applies of Git's copies: one re-wrap write per SealedSecret \
             ({} provider calls: one unwrap and one wrap each), then none",
            rotated.elapsed(),
            rotated.elapsed().as_secs() / ROUND.as_secs(),
            2 * SECRETS.len()
        );

        pod_reads(client, ns, "a1").await?;

        // CI: `keyward rewrap` over the directory (through the API server to
        // the webhook); the next round applies it.
        let cli = keyward_cli().await?;
        let out = tokio::process::Command::new(&cli)
            .arg("rewrap")
            .arg("-f")
            .arg(&git)
            .output()
            .await?;
        let said = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success() && said.contains("3 rewritten, 0 already current, 0 failed"),
            "keyward rewrap -f {}: {said}{}",
            git.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        wait_for(&sealed, "Git's re-wrapped copy applied, Git current", |s| {
            on_versions(s) == [2] && git_behind(s).is_none()
        })
        .await?;
        // The status write that records Git as current can land just after
        // the condition above is seen; start the quiet window once the
        // objects stand still for a round (at most five rounds), so only
        // writes after that count.
        let mut versions_before: Vec<_> = resource_versions(&sealed).await?;
        for _ in 0..5 {
            tokio::time::sleep(ROUND).await;
            let now = resource_versions(&sealed).await?;
            if now == versions_before {
                break;
            }
            versions_before = now;
        }
        let settled = rewraps(audit)?;
        tokio::time::sleep(ROUND * 5).await;
        ensure!(rewraps(audit)? == settled, "the operator wrote again after Git caught up");
        ensure!(
            resource_versions(&sealed).await? == versions_before,
            "SealedSecrets kept changing after Git caught up"
        );
        println!("after keyward rewrap and one apply: every copy on version 2, no further writes");
        let key = wait_key(keys, "k", "version 1 released by Git", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.version(1))
                .is_some_and(|v| v.git_dependants == 0 && v.dependants == 0)
        })
        .await?;
        let status = key.status.as_ref().context("status")?;
        ensure!(kstatus(&key.metadata, status.observed_generation, &status.conditions) == Kstatus::Current);
        through_a_compromise(ns, keys, &sealed, &git, audit).await?;
        kstatus_agrees_on_a_degraded_key(keys).await
    }
    .await;
    applier.abort();
    result
}

/// The key is compromised while the applier keeps applying Git's copies
/// (on version 2, now exposed): the operator re-seals each SealedSecret
/// once onto version 3; admission refuses every re-apply of the exposed
/// copy, so nothing is reverted or written again. Git is then updated from
/// the cluster's re-sealed copies (the documented path, as `keyward rewrap`
/// cannot open a retired version) and the next round applies cleanly.
async fn through_a_compromise(
    ns: &str,
    keys: &Api<ManagedKey>,
    sealed: &Api<SealedSecret>,
    git: &Path,
    audit: &Path,
) -> Result<()> {
    let before = rewraps(audit)?;
    let patch = json!({"metadata": {"annotations": {"keyward.io/reason": "e2e: applier through a compromise"}},
                       "spec": {"state": "Compromised"}});
    keys.patch("k", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    wait_key(keys, "k", "version 3 primary after the compromise", |k| {
        k.status.as_ref().and_then(|s| s.primary_version) == Some(3)
    })
    .await?;
    let compromised = Instant::now();
    wait_for(sealed, "every copy re-sealed onto version 3", |s| {
        on_versions(s) == [3]
    })
    .await?;
    tokio::time::sleep(ROUND * 10).await;
    let now = sealed.list(&ListParams::default()).await?.items;
    ensure!(
        now.iter().all(|s| on_versions(s) == [3]),
        "an applier reverted a re-seal past admission: {:?}",
        now.iter().map(on_versions).collect::<Vec<_>>()
    );
    let after = rewraps(audit)?;
    for name in SECRETS {
        let subject = format!("{ns}/{name}");
        let made =
            after.get(&subject).copied().unwrap_or(0) - before.get(&subject).copied().unwrap_or(0);
        ensure!(
            made == 1,
            "{subject} re-sealed {made} times through the compromise"
        );
    }
    println!(
        "{:?} after the compromise, {} refused re-applies each: one re-seal per SealedSecret",
        compromised.elapsed(),
        compromised.elapsed().as_secs() / ROUND.as_secs()
    );
    // Git takes the cluster's re-sealed envelopes; the next rounds apply them.
    for name in SECRETS {
        let current = sealed.get(name).await?;
        let file = git.join(format!("{name}.yaml"));
        let mut manifest: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&file)?)?;
        manifest["spec"]["encryptedData"] = serde_json::to_value(&current.spec.encrypted_data)?;
        std::fs::write(&file, serde_yaml_ng::to_string(&manifest)?)?;
    }
    let settled = rewraps(audit)?;
    tokio::time::sleep(ROUND * 3).await;
    ensure!(
        rewraps(audit)? == settled,
        "the operator wrote again after Git took the re-seal"
    );
    // (An apply of the very bytes the cluster holds changes nothing the
    // operator can see, so `gitBehind` stays until the next change; for a
    // Compromised version it holds nothing.)
    let now = sealed.list(&ListParams::default()).await?.items;
    ensure!(
        now.iter().all(|s| on_versions(s) == [3]),
        "not all on version 3"
    );
    println!("Git took the cluster's re-sealed copies: applied cleanly, no further writes");
    Ok(())
}

/// A key the operator cannot serve (AWS is off): Degraded, so kstatus says
/// Failed and `kubectl wait --for=condition=Ready` keeps waiting.
async fn kstatus_agrees_on_a_degraded_key(keys: &Api<ManagedKey>) -> Result<()> {
    let key: ManagedKey = serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
        "metadata": {"name": "elsewhere"},
        "spec": {"provider": {"aws": {"region": "eu-west-1"}}, "deletionWindow": "7d"},
    }))?;
    keys.create(&PostParams::default(), &key).await?;
    let key = wait_key(keys, "elsewhere", "Degraded", |k| {
        degraded_reason(k).is_some()
    })
    .await?;
    let status = key.status.as_ref().context("status")?;
    let view = kstatus(
        &key.metadata,
        status.observed_generation,
        &status.conditions,
    );
    ensure!(
        view == Kstatus::Failed && !kubectl_ready(&status.conditions),
        "kstatus {view:?} for {:?}",
        degraded_reason(&key)
    );
    let stalled = find(&status.conditions, "Stalled").context("Stalled")?;
    println!(
        "a Degraded key: kstatus Failed, Stalled {}: {}",
        stalled.reason, stalled.message
    );
    Ok(())
}

/// Every [`ROUND`], each manifest in `git` applied as kustomize-controller
/// does: server-side apply, its own field manager, `force`.
async fn apply_every_round(sealed: Api<SealedSecret>, git: PathBuf) {
    loop {
        for entry in std::fs::read_dir(&git).into_iter().flatten().flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let Ok(manifest) = serde_yaml_ng::from_str::<Value>(&text) else {
                continue;
            };
            let Some(name) = manifest.pointer("/metadata/name").and_then(Value::as_str) else {
                continue;
            };
            if let Err(error) = sealed
                .patch(
                    name,
                    &PatchParams::apply(APPLIER).force(),
                    &Patch::Apply(&manifest),
                )
                .await
            {
                println!("applier: {name}: {error}");
            }
        }
        tokio::time::sleep(ROUND).await;
    }
}

/// A SealedSecret manifest as `keyward seal` writes it, under key `k`.
async fn seal(client: &Client, ns: &str, name: &str) -> Result<Value> {
    let provider =
        keyring_secret::open_local_provider(client.clone(), ns, super::KEYRING, super::ROOT_KEY)
            .await?;
    let key_id = Api::<ManagedKey>::namespaced(client.clone(), ns)
        .get("k")
        .await?
        .status
        .and_then(|s| s.provider_key_id)
        .context("providerKeyId")?;
    let target = SecretTarget {
        scope: Scope::Strict,
        namespace: ns.to_owned(),
        secret_name: name.to_owned(),
        key_ref: format!("{ns}/k"),
        access: Vec::new(),
    };
    let items: BTreeMap<String, SecretBytes> = [(
        "value".to_owned(),
        SecretBytes::new(format!("{name}-value").into_bytes()),
    )]
    .into();
    let wrapping = Wrapping::Provider {
        provider: &provider,
        key_id: &key_id,
    };
    let encrypted = seal_secret(&target, wrapping, &items).await?;
    Ok(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"keyRef": {"name": "k"}, "encryptedData": encrypted},
    }))
}

/// The key versions the cluster copy's items are sealed under.
fn on_versions(secret: &SealedSecret) -> Vec<u32> {
    let mut versions: Vec<u32> = secret
        .spec
        .encrypted_data
        .values()
        .filter_map(|text| Envelope::decode(text).ok())
        .map(|e| e.key_version)
        .collect();
    versions.sort_unstable();
    versions.dedup();
    versions
}

/// The `GitBehind` condition's reason and the versions held, when True.
fn git_behind(secret: &SealedSecret) -> Option<(&str, Vec<u32>)> {
    let status = secret.status.as_ref()?;
    let condition = find(&status.conditions, GIT_BEHIND)?;
    let behind = status.git_behind.as_ref()?;
    (condition.status == "True").then(|| (condition.reason.as_str(), behind.versions.clone()))
}

async fn wait_for(
    sealed: &Api<SealedSecret>,
    what: &str,
    done: impl Fn(&SealedSecret) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = sealed.list(&ListParams::default()).await?.items;
        if all.len() == SECRETS.len() && all.iter().all(&done) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "not reached within 60 s: {what}; now: {:?}",
            all.iter()
                .map(|s| (
                    on_versions(s),
                    s.status.as_ref().map(|st| st.conditions.clone())
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `secret.rewrap` records in the operator's audit log, by subject.
fn rewraps(audit: &Path) -> Result<BTreeMap<String, u32>> {
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let record: Value = serde_json::from_str(line)?;
        if record["action"] == "secret.rewrap" {
            let subject = record["subject"].as_str().unwrap_or_default().to_owned();
            *counts.entry(subject).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

async fn resource_versions(sealed: &Api<SealedSecret>) -> Result<Vec<Option<String>>> {
    let mut all = sealed.list(&ListParams::default()).await?.items;
    all.sort_by_key(|s| s.metadata.name.clone());
    Ok(all
        .into_iter()
        .map(|s| s.metadata.resource_version)
        .collect())
}

/// A pod annotated for `secret` starts and reads its value.
async fn pod_reads(client: &Client, ns: &str, secret: &str) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let name = format!("reader-{secret}");
    pods.create(
        &PostParams::default(),
        &app_pod(&name, secret, &format!("cat /run/keyward/{secret}/value"))?,
    )
    .await?;
    let done = pods::wait_for_completion(&pods, &name, Duration::from_secs(120)).await?;
    let said = pods::container_log(client, &done, "app")
        .await
        .unwrap_or_default();
    ensure!(
        pods::phase(&done) == "Succeeded" && said.trim() == format!("{secret}-value"),
        "pod {name} ended {} and printed {said:?}",
        pods::phase(&done)
    );
    println!("a pod reading {secret} started and read it while Git was behind");
    Ok(())
}
