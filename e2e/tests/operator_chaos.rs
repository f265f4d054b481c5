//! `kill -9` chaos (issue #5): the operator binary runs as a child process
//! and is SIGKILLed at random moments while rotations (by annotation and by
//! compromise) and eager re-wraps are in flight, then restarted. At the end
//! every ManagedKey converges, no provider key is duplicated, no version is
//! lost, every SealedSecret still unseals to its original bytes, and the
//! audit chain verifies.
//!
//! Reproduce a run with `KEYWARD_CHAOS_SEED=<seed printed by the test>`;
//! `KEYWARD_CHAOS_KILLS` changes the number of kills (default 20), and
//! `KEYWARD_OPERATOR_BIN` uses a prebuilt operator instead of building it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::core::v1::Secret;
use keyward_core::KeyProvider;
use keyward_core::SecretBytes;
use keyward_core::envelope::{Envelope, Scope, SecretTarget, Wrapping, open_secret, seal_secret};
use keyward_core::local::LocalProvider;
use keyward_core::provider::VersionState;
use keyward_crds::conditions::{self, READY, ROTATING};
use keyward_crds::{KeyState, ManagedKey, SealedSecret};
use keyward_e2e::keys::ready;
use keyward_e2e::{crds, with_temp_ns};
use keyward_operator::keyring_secret;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::process::{Child, Command};

const KEYS: usize = 4;
const SECRETS_PER_KEY: usize = 3;
const ITEMS_PER_SECRET: usize = 4;
/// Longest wait between a trigger and the kill: short enough that kills
/// land in start-up, in reconciles and in re-wraps alike.
const MAX_DELAY_MS: u64 = 1_500;

/// splitmix64: a seeded, reproducible sequence without a `rand` dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn seed() -> u64 {
    std::env::var("KEYWARD_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// The operator as a real process, its output appended to one log file.
struct Operator {
    bin: PathBuf,
    ns: String,
    audit: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Operator {
    fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .args(["--namespace", &self.ns, "--watch-namespace", &self.ns])
            .arg("--audit-log")
            .arg(&self.audit)
            .args([
                "--metrics-addr=127.0.0.1:0",
                "--identity=chaos",
                "--lease-duration-secs=3",
                "--renew-interval-ms=300",
                "--materialize-secrets",
            ])
            .env(
                "RUST_LOG",
                std::env::var("KEYWARD_CHAOS_RUST_LOG")
                    .unwrap_or_else(|_| "keyward_operator=info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// SIGKILL, then reap. Fails if the operator had already exited.
    async fn kill9(&mut self) -> Result<()> {
        let mut child = self.child.take().context("not running")?;
        if let Some(status) = child.try_wait()? {
            bail!("the operator exited by itself ({status}) before the kill");
        }
        child.start_kill()?;
        let status = child.wait().await?;
        use std::os::unix::process::ExitStatusExt;
        ensure!(
            status.signal() == Some(9),
            "not killed by SIGKILL: {status}"
        );
        Ok(())
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

struct Sealed {
    key: String,
    target: SecretTarget,
    values: BTreeMap<String, Vec<u8>>,
    templated: bool,
}

/// What the test asked of each key, to check the outcome against.
#[derive(Default, Clone)]
struct Asked {
    compromises: u32,
    /// Rotation annotations set (several may coalesce into one rotation).
    rotations: u32,
    /// spec.state is Compromised and not acknowledged yet.
    compromised_now: bool,
    rotate_value: Option<String>,
}

fn key_name(i: usize) -> String {
    format!("chaos-{i}")
}

fn compromised_versions(key: &ManagedKey) -> u32 {
    key.status.as_ref().map_or(0, |s| {
        s.versions
            .iter()
            .filter(|v| v.state == KeyState::Compromised)
            .count() as u32
    })
}

async fn patch_key(keys: &Api<ManagedKey>, name: &str, patch: serde_json::Value) -> Result<i64> {
    let key = keys
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    key.metadata.generation.context("no generation")
}

async fn wait_until<T, F>(what: &str, timeout: Duration, mut probe: impl FnMut() -> F) -> Result<T>
where
    F: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe().await? {
            return Ok(found);
        }
        ensure!(Instant::now() < deadline, "not {what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn kill_9_during_rotations_and_rewraps_loses_nothing() {
    with_temp_ns(|client, ns| async move {
        let kills: u32 = std::env::var("KEYWARD_CHAOS_KILLS")
            .ok()
            .and_then(|k| k.parse().ok())
            .unwrap_or(20);
        let seed = seed();
        eprintln!("CHAOS seed {seed} ({kills} kills; rerun with KEYWARD_CHAOS_SEED={seed})");
        let mut rng = Rng(seed);
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let mut operator = Operator {
            bin: keyward_e2e::binaries::operator_binary().await?,
            ns: ns.clone(),
            audit: dir.path().join("audit.log"),
            log: dir.path().join("operator.log"),
            child: None,
            starts: 0,
        };
        let started = Instant::now();
        let outcome = chaos(&client, &ns, &mut operator, &mut rng, kills).await;
        if outcome.is_err() {
            eprintln!(
                "----- operator log (last 120 lines) -----\n{}\n-----",
                operator.log_tail(120)
            );
            let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
            for key in keys.list(&ListParams::default()).await? {
                eprintln!(
                    "key {} generation {:?} spec.state {} annotations {:?}\n  status {}",
                    key.name_any(),
                    key.metadata.generation,
                    key.spec.state,
                    key.annotations(),
                    serde_json::to_string(&key.status)?
                );
            }
        }
        outcome?;
        eprintln!(
            "CHAOS passed: {kills} kills, {} operator starts, {:.1}s",
            operator.starts,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    })
    .await;
}

async fn chaos(
    client: &Client,
    ns: &str,
    operator: &mut Operator,
    rng: &mut Rng,
    kills: u32,
) -> Result<()> {
    let keys: Api<ManagedKey> = Api::namespaced(client.clone(), ns);
    let secrets: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
    operator.start()?;
    for i in 0..KEYS {
        // Each compromise exposes only the primary, so every report marks
        // exactly one version (the counts below check none is handled twice).
        let key: ManagedKey = serde_json::from_value(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": { "name": key_name(i),
                          "annotations": { "keyward.io/exposed-versions": "primary" } },
            "spec": { "provider": { "local": {} } },
        }))?;
        keys.create(&PostParams::default(), &key).await?;
    }
    let mut key_ids = BTreeMap::new();
    for i in 0..KEYS {
        let name = key_name(i);
        let key = wait_until("Ready", Duration::from_secs(60), || async {
            Ok(keys.get_opt(&name).await?.filter(ready))
        })
        .await?;
        let id = key
            .status
            .and_then(|s| s.provider_key_id)
            .context("no providerKeyId")?;
        key_ids.insert(name, id);
    }
    let provider = Arc::new(
        keyring_secret::local_provider(
            client.clone(),
            ns,
            "keyward-local-keyring",
            "keyward-local-root-key",
        )
        .await?,
    );
    let mut sealed = Vec::new();
    for i in 0..KEYS {
        for s in 0..SECRETS_PER_KEY {
            sealed.push(create_sealed(client, ns, &provider, &key_ids, i, s, rng).await?);
        }
    }

    // The chaos: a trigger, a random delay, kill -9, restart.
    let mut asked = vec![Asked::default(); KEYS];
    for kill in 0..kills {
        let target = rng.below(KEYS as u64) as usize;
        let action = trigger(&keys, &mut asked[target], target, kill, rng).await?;
        let delay = rng.below(MAX_DELAY_MS + 1);
        eprintln!(
            "CHAOS kill {kill}: {action} on {}, kill -9 after {delay} ms",
            key_name(target)
        );
        tokio::time::sleep(Duration::from_millis(delay)).await;
        operator.kill9().await?;
        operator.start()?;
    }

    // Acknowledge outstanding compromises once they are handled, then converge.
    for (i, want) in asked.iter_mut().enumerate() {
        if want.compromised_now {
            acknowledge(&keys, &key_name(i), want).await?;
        }
    }
    let converged = Instant::now();
    for (i, want) in asked.iter().enumerate() {
        converge_key(&keys, &key_name(i), want).await?;
    }
    for secret in &sealed {
        converge_secret(&keys, &secrets, secret).await?;
    }
    eprintln!(
        "MEASURE after the last restart, everything converged in {:.2}s",
        converged.elapsed().as_secs_f64()
    );
    check_keyring(&keys, &provider, &asked).await?;
    check_values(client, ns, &secrets, &provider, &sealed).await?;
    operator.kill9().await?;
    let summary = keyward_core::audit::verify(&operator.audit)?;
    let log = std::fs::read_to_string(&operator.audit)?;
    for action in ["key.create", "key.rotate", "secret.rewrap"] {
        ensure!(log.contains(action), "no {action} in the audit log");
    }
    eprintln!("CHAOS audit chain verified: {} records", summary.records);

    // Leave nothing behind: the finalizers need a running operator.
    secrets
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    operator.start()?;
    keys.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    wait_until("ManagedKeys deleted", Duration::from_secs(60), || async {
        Ok(keys
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
            .then_some(()))
    })
    .await?;
    operator.kill9().await
}

/// One trigger: a manual rotation, a compromise, or acknowledging one.
async fn trigger(
    keys: &Api<ManagedKey>,
    want: &mut Asked,
    target: usize,
    kill: u32,
    rng: &mut Rng,
) -> Result<&'static str> {
    let name = key_name(target);
    if want.compromised_now {
        // Acknowledge (spec.state Active); half the time rotate as well.
        acknowledge(keys, &name, want).await?;
        if rng.below(2) == 0 {
            return Ok("acknowledge compromise");
        }
    } else if rng.below(3) == 0 {
        patch_key(keys, &name, json!({ "spec": { "state": "Compromised" } })).await?;
        want.compromises += 1;
        want.compromised_now = true;
        return Ok("compromise");
    }
    let value = format!("kill-{kill}");
    patch_key(
        keys,
        &name,
        json!({ "metadata": { "annotations": { "keyward.io/rotate": value } } }),
    )
    .await?;
    want.rotate_value = Some(value);
    want.rotations += 1;
    Ok("rotate annotation")
}

/// Waits for the reported compromise to be handled (a level-based operator
/// may miss a Compromised -> Active -> Compromised flip it never saw), then
/// sets the key Active and waits until the operator has seen that.
async fn acknowledge(keys: &Api<ManagedKey>, name: &str, want: &mut Asked) -> Result<()> {
    wait_until(
        &format!("{name}: compromise #{} handled", want.compromises),
        Duration::from_secs(60),
        || async {
            let key = keys.get(name).await?;
            Ok((compromised_versions(&key) >= want.compromises).then_some(()))
        },
    )
    .await?;
    let generation = patch_key(keys, name, json!({ "spec": { "state": "Active" } })).await?;
    wait_until(
        &format!("{name}: acknowledgement observed"),
        Duration::from_secs(60),
        || async {
            let key = keys.get(name).await?;
            let observed = key.status.as_ref().and_then(|s| s.observed_generation);
            Ok((observed >= Some(generation)).then_some(()))
        },
    )
    .await?;
    want.compromised_now = false;
    Ok(())
}

async fn create_sealed(
    client: &Client,
    ns: &str,
    provider: &LocalProvider,
    key_ids: &BTreeMap<String, String>,
    key: usize,
    index: usize,
    rng: &mut Rng,
) -> Result<Sealed> {
    let key_name = key_name(key);
    let name = format!("{key_name}-secret-{index}");
    let target = SecretTarget {
        scope: Scope::Strict,
        namespace: ns.to_owned(),
        secret_name: name.clone(),
        key_ref: format!("{ns}/{key_name}"),
        access: Vec::new(),
    };
    let values: BTreeMap<String, Vec<u8>> = (0..ITEMS_PER_SECRET)
        .map(|item| {
            let len = 1 + rng.below(64) as usize;
            (format!("item-{item}"), rng.bytes(len))
        })
        .collect();
    let secret_values = values
        .iter()
        .map(|(k, v)| (k.clone(), SecretBytes::new(v.clone())))
        .collect();
    let key_id = &key_ids[&key_name];
    let data = seal_secret(
        &target,
        Wrapping::Provider { provider, key_id },
        &secret_values,
    )
    .await?;
    // The first secret of each key also materialises a Secret.
    let templated = index == 0;
    let mut spec = json!({ "keyRef": { "name": key_name }, "encryptedData": data });
    if templated {
        spec["template"] = json!({ "labels": { "chaos": "true" } });
    }
    let secret: SealedSecret = serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
        "metadata": { "name": name }, "spec": spec,
    }))?;
    Api::<SealedSecret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(Sealed {
        key: key_name,
        target,
        values,
        templated,
    })
}

/// Ready, Active, the last rotation request handled, nothing re-wrapping,
/// and the latest spec observed.
async fn converge_key(keys: &Api<ManagedKey>, name: &str, want: &Asked) -> Result<()> {
    let outcome = wait_until(
        &format!("{name} converged"),
        Duration::from_secs(60),
        || async {
            let key = keys.get(name).await?;
            let Some(status) = key.status.as_ref() else {
                return Ok(None);
            };
            let handled = match &want.rotate_value {
                None => true,
                Some(value) => key
                    .annotations()
                    .get("keyward.io/rotate-handled")
                    .and_then(|h| h.rsplit_once('@'))
                    .is_some_and(|(request, target)| {
                        request == value
                            && target
                                .parse::<u32>()
                                .is_ok_and(|t| status.primary_version >= Some(t))
                    }),
            };
            let rotating =
                conditions::find(&status.conditions, ROTATING).is_some_and(|c| c.status == "True");
            let done = ready(&key)
                && status.state == Some(KeyState::Active)
                && status.observed_generation == key.metadata.generation
                && handled
                && !rotating;
            Ok(done.then_some(()))
        },
    )
    .await;
    if outcome.is_err() {
        let key = keys.get(name).await?;
        bail!(
            "{name} did not converge; annotations {:?}, status {}",
            key.annotations(),
            serde_json::to_string(&key.status)?
        );
    }
    Ok(())
}

/// Every item on the key's primary version, the status saying so, and
/// `rewrappedSinceGit` exactly when the operator moved it off version 1.
async fn converge_secret(
    keys: &Api<ManagedKey>,
    secrets: &Api<SealedSecret>,
    sealed: &Sealed,
) -> Result<()> {
    let name = &sealed.target.secret_name;
    let primary = keys
        .get(&sealed.key)
        .await?
        .status
        .and_then(|s| s.primary_version)
        .context("no primary")?;
    let outcome = wait_until(
        &format!("{name} on version {primary}"),
        Duration::from_secs(60),
        || async {
            let secret = secrets.get(name).await?;
            let on_primary = secret
                .spec
                .encrypted_data
                .values()
                .all(|t| Envelope::decode(t).is_ok_and(|e| e.key_version == primary));
            let recorded = secret.status.as_ref().is_some_and(|s| {
                s.observed_generation == secret.metadata.generation
                    && s.key_versions.values().all(|v| *v == primary)
                    && conditions::is_true(&s.conditions, READY)
            });
            Ok((on_primary && recorded).then_some(secret))
        },
    )
    .await;
    let secret = match outcome {
        Ok(secret) => secret,
        Err(e) => {
            let secret = secrets.get(name).await?;
            bail!("{e}; status {}", serde_json::to_string(&secret.status)?);
        }
    };
    let flagged = secret
        .status
        .as_ref()
        .is_some_and(|s| s.rewrapped_since_git);
    ensure!(
        flagged == (primary > 1),
        "{name}: on version {primary} but rewrappedSinceGit is {flagged}"
    );
    Ok(())
}

/// One provider key per ManagedKey uid; versions 1..=n with no gap, the
/// status listing the same ones; every compromise produced its Compromised
/// version; only Compromised versions (no longer needed) pending deletion.
async fn check_keyring(
    keys: &Api<ManagedKey>,
    provider: &Arc<LocalProvider>,
    asked: &[Asked],
) -> Result<()> {
    let ring = {
        let provider = Arc::clone(provider);
        tokio::task::spawn_blocking(move || {
            provider.store().read(|ring| {
                Ok(ring
                    .keys
                    .iter()
                    .map(|k| (k.id.clone(), k.owner.clone()))
                    .collect::<Vec<_>>())
            })
        })
        .await??
    };
    ensure!(
        ring.len() == KEYS,
        "{} provider keys for {KEYS} ManagedKeys: {ring:?}",
        ring.len()
    );
    let mut total_versions = 0;
    for (i, want) in asked.iter().enumerate() {
        let name = key_name(i);
        let key = keys.get(&name).await?;
        let stable = Some(format!("{}/{name}", key.namespace().unwrap_or_default()));
        let owned: Vec<&String> = ring
            .iter()
            .filter(|(_, owner)| *owner == stable)
            .map(|(id, _)| id)
            .collect();
        ensure!(owned.len() == 1, "{name} owns provider keys {owned:?}");
        let status = key.status.clone().context("status")?;
        ensure!(status.provider_key_id.as_ref() == Some(owned[0]));
        let info = provider.describe_key(owned[0]).await?;
        let provided: Vec<u32> = info.versions.iter().map(|v| v.version).collect();
        let n = info.primary_version;
        ensure!(
            provided == (1..=n).collect::<Vec<_>>(),
            "{name}: provider versions {provided:?}, primary {n}"
        );
        // Every compromise made a version; no request rotated twice.
        ensure!(
            n > want.compromises && n <= 1 + want.compromises + want.rotations,
            "{name}: {n} versions after {} compromises and {} rotation requests",
            want.compromises,
            want.rotations
        );
        let recorded: Vec<u32> = status.versions.iter().map(|v| v.version).collect();
        ensure!(
            recorded == provided,
            "{name}: status lists {recorded:?}, provider {provided:?}"
        );
        ensure!(
            compromised_versions(&key) == want.compromises,
            "{name}: {} Compromised versions for {} compromises reported",
            compromised_versions(&key),
            want.compromises
        );
        for v in &info.versions {
            let state = status.version(v.version).map(|s| s.state);
            ensure!(
                v.state != VersionState::Destroyed,
                "{name} v{} destroyed",
                v.version
            );
            if v.deletion_at.is_some() {
                ensure!(
                    state == Some(KeyState::Compromised),
                    "{name} v{} ({state:?}) pending deletion",
                    v.version
                );
            }
            if v.version == n {
                ensure!(
                    state == Some(KeyState::Active),
                    "{name}: primary v{n} is {state:?}"
                );
            }
        }
        eprintln!(
            "CHAOS {name}: versions 1..={n}, {} compromised, states {:?}",
            want.compromises,
            status.versions.iter().map(|v| v.state).collect::<Vec<_>>()
        );
        total_versions += n;
    }
    eprintln!("CHAOS {total_versions} versions across {KEYS} keys, no gap, no duplicate key");
    Ok(())
}

async fn check_values(
    client: &Client,
    ns: &str,
    secrets: &Api<SealedSecret>,
    provider: &LocalProvider,
    sealed: &[Sealed],
) -> Result<()> {
    let plain: Api<Secret> = Api::namespaced(client.clone(), ns);
    for s in sealed {
        let name = &s.target.secret_name;
        let current = secrets.get(name).await?;
        let opened: BTreeMap<String, Vec<u8>> =
            open_secret(&s.target, provider, &current.spec.encrypted_data)
                .await
                .with_context(|| format!("{name} no longer unseals"))?
                .into_iter()
                .map(|(k, v)| (k, v.expose().to_vec()))
                .collect();
        ensure!(
            opened == s.values,
            "{name}: unsealed values differ from the originals"
        );
        if s.templated {
            let secret = plain.get(name).await?;
            let data: BTreeMap<String, Vec<u8>> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            ensure!(data == s.values, "{name}: the materialised Secret differs");
        }
    }
    eprintln!(
        "CHAOS {} SealedSecrets ({} items) unseal to their original bytes",
        sealed.len(),
        sealed.len() * ITEMS_PER_SECRET
    );
    Ok(())
}
