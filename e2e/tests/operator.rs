//! The operator against a real API server, run in-process: its controllers
//! are spawned on a tokio task scoped to the test's namespace, and "killing"
//! the operator aborts that task mid-flight.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use keyward_core::envelope::{Scope, SecretTarget, Wrapping, seal_secret};
use keyward_core::local::{KeyringBackend, LocalProvider, WriteError};
use keyward_core::provider::{KeyInfo, ProviderError};
use keyward_core::{Dek, KeyProvider, SecretBytes};
use keyward_crds::conditions::{self, DEGRADED, READY};
use keyward_crds::{KeyRotationPolicy, KeyState, ManagedKey, SealedSecret};
use keyward_e2e::keys::{degraded_reason, ready, wait_key};
use keyward_e2e::{crds, with_temp_ns};
use keyward_operator::keyring_secret::{self, SecretBackend};
use keyward_operator::{Config, http::Readiness, metrics::Metrics};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;

const KEYRING: &str = "keyward-local-keyring";
const ROOT_KEY: &str = "keyward-local-root-key";

struct Operator {
    task: JoinHandle<()>,
    metrics: Arc<Metrics>,
}

impl Operator {
    fn start(client: &Client, ns: &str, audit: &Path) -> Self {
        Self::start_with(client, Config::for_namespace(ns, audit.to_path_buf()))
    }

    fn start_with(client: &Client, config: Config) -> Self {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "keyward_operator=info".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
        let metrics = Arc::new(Metrics::default());
        let (client, task_metrics) = (client.clone(), Arc::clone(&metrics));
        let task = tokio::spawn(async move {
            if let Err(error) =
                keyward_operator::run(client, &config, task_metrics, Readiness::default()).await
            {
                panic!("operator stopped: {error}");
            }
        });
        Operator { task, metrics }
    }

    /// Deletes every ManagedKey in `ns` and waits for the finalizers to go,
    /// so the namespace can be deleted on clusters that outlive the test.
    async fn delete_keys_and_stop(self, client: &Client, ns: &str) -> Result<()> {
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), ns);
        keyward_e2e::keys::delete_all(&keys).await?;
        self.kill().await;
        Ok(())
    }

    /// Like `kill -9` for an in-process operator: drop it at its next await.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// The in-process operator's config with `--materialize-secrets` on.
fn materialising(ns: &str, audit: &Path) -> Config {
    let mut config = Config::for_namespace(ns, audit.to_path_buf());
    config.materialize_secrets = true;
    config
}

fn managed_key(name: &str, spec: serde_json::Value) -> Result<ManagedKey> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
        "metadata": { "name": name }, "spec": spec,
    }))?)
}

/// Creates KeyRotationPolicy `name` with `spec`.
async fn create_policy(
    policies: &Api<KeyRotationPolicy>,
    name: &str,
    spec: serde_json::Value,
) -> Result<()> {
    let policy = json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "KeyRotationPolicy",
        "metadata": { "name": name }, "spec": spec,
    });
    policies
        .create(&PostParams::default(), &serde_json::from_value(policy)?)
        .await?;
    Ok(())
}

fn primary(key: &ManagedKey) -> Option<u32> {
    key.status.as_ref()?.primary_version
}

fn version_state(key: &ManagedKey, version: u32) -> Option<KeyState> {
    Some(key.status.as_ref()?.version(version)?.state)
}

async fn set_state(api: &Api<ManagedKey>, name: &str, state: &str) -> Result<()> {
    let patch = json!({ "spec": { "state": state } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn annotate(api: &Api<ManagedKey>, name: &str, key: &str, value: &str) -> Result<()> {
    let patch = json!({ "metadata": { "annotations": { key: value } } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The test's own view of the in-cluster keyring, as the webhook will have.
async fn keyring(client: &Client, ns: &str) -> Result<Arc<LocalProvider>> {
    Ok(Arc::new(
        keyring_secret::local_provider(client.clone(), ns, KEYRING, ROOT_KEY).await?,
    ))
}

/// (key id, owner) of every key in the keyring.
async fn keyring_keys(provider: &Arc<LocalProvider>) -> Result<Vec<(String, Option<String>)>> {
    let provider = Arc::clone(provider);
    Ok(tokio::task::spawn_blocking(move || {
        provider.store().read(|ring| {
            Ok(ring
                .keys
                .iter()
                .map(|k| (k.id.clone(), k.owner.clone()))
                .collect::<Vec<_>>())
        })
    })
    .await??)
}

async fn describe(provider: &LocalProvider, id: &str) -> Result<KeyInfo> {
    Ok(provider.describe_key(id).await?)
}

/// Events are published after the status write that a test waits for, so
/// give the recorder a moment before concluding one is missing.
async fn wait_for_event(client: &Client, ns: &str, reason: &str) -> Result<()> {
    for _ in 0..50 {
        if event_reasons(client, ns).await?.iter().any(|r| r == reason) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("no `{reason}` Event within 10 s")
}

async fn event_reasons(client: &Client, ns: &str) -> Result<Vec<String>> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    Ok(events
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter_map(|e| e.reason)
        .collect())
}

fn audit_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("audit.log")
}

#[tokio::test]
async fn key_lifecycle_restart_rotation_suspend_and_audit() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let audit = audit_path(&dir);
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);

        let operator = Operator::start(&client, &ns, &audit);
        let started = Instant::now();
        keys.create(
            &PostParams::default(),
            &managed_key("db", json!({"provider": {"local": {}}}))?,
        )
        .await?;
        let key = wait_key(&keys, "db", "Ready", ready).await?;
        let ready_after = started.elapsed();
        let status = key.status.clone().context("status")?;
        ensure!(status.primary_version == Some(1), "{status:?}");
        ensure!(status.state == Some(KeyState::Active));
        ensure!(status.observed_generation == key.metadata.generation);
        let key_id = status.provider_key_id.clone().context("providerKeyId")?;
        ensure!(key.finalizers().iter().any(|f| f == "keyward.io/cleanup"));
        eprintln!("MEASURE create->Ready (operator cold start included): {ready_after:?}");

        // Kill the operator right after a second key is created, before it
        // can have written status, then restart: still one provider key.
        keys.create(
            &PostParams::default(),
            &managed_key("db2", json!({"provider": {"local": {}}}))?,
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(150)).await;
        operator.kill().await;
        let operator = Operator::start(&client, &ns, &audit);
        let db2 = wait_key(&keys, "db2", "Ready", ready).await?;
        let provider = keyring(&client, &ns).await?;
        let ring = keyring_keys(&provider).await?;
        for key in [&key, &db2] {
            let stable = Some(format!("{ns}/{}", key.name_any()));
            let owned = ring.iter().filter(|(_, owner)| *owner == stable).count();
            ensure!(
                owned == 1,
                "{} owns {owned} provider keys: {ring:?}",
                key.name_any()
            );
        }
        ensure!(ring.len() == 2, "{ring:?}");
        ensure!(ring.iter().any(|(id, _)| *id == key_id));

        // Manual rotation: exactly once, even across a restart.
        let dek = Dek::generate();
        let context: BTreeMap<String, String> =
            [("keyward.io/namespace".into(), ns.clone())].into();
        let wrapped_v1 = provider.wrap_dek(&key_id, &dek, &context).await?;
        annotate(&keys, "db", "keyward.io/rotate", "2024-06-01").await?;
        let rotated = wait_key(&keys, "db", "rotated to version 2", |k| {
            primary(k) == Some(2)
        })
        .await?;
        ensure!(
            version_state(&rotated, 1) == Some(KeyState::Deactivated),
            "{:?}",
            rotated.status
        );
        ensure!(version_state(&rotated, 2) == Some(KeyState::Active));
        ensure!(
            rotated
                .annotations()
                .get("keyward.io/rotate-handled")
                .map(String::as_str)
                == Some("2024-06-01@2")
        );
        // Killing the operator before its Event is sent would lose the Event.
        wait_for_event(&client, &ns, "Rotated").await?;
        operator.kill().await;
        let operator = Operator::start(&client, &ns, &audit);
        tokio::time::sleep(Duration::from_secs(2)).await;
        ensure!(
            describe(&provider, &key_id).await?.primary_version == 2,
            "rotated twice"
        );

        // Old version still unwraps (Deactivated = decrypt-only); new wraps are v2.
        ensure!(provider.unwrap_dek(&wrapped_v1, &context).await?.expose() == dek.expose());
        let wrapped_v2 = provider.wrap_dek(&key_id, &dek, &context).await?;
        ensure!(wrapped_v2.version == 2);

        // Suspended: the provider refuses; Active again: it works.
        set_state(&keys, "db", "Suspended").await?;
        let suspended = wait_key(&keys, "db", "Suspended", |k| {
            k.status.as_ref().and_then(|s| s.state) == Some(KeyState::Suspended)
        })
        .await?;
        ensure!(!ready(&suspended));
        match provider.unwrap_dek(&wrapped_v2, &context).await {
            Err(ProviderError::VersionDisabled { version: 2, .. }) => {}
            other => bail!("a Suspended key unwrapped: {:?}", other.map(|_| "a DEK")),
        }
        set_state(&keys, "db", "Active").await?;
        wait_key(&keys, "db", "Active again", |k| {
            ready(k) && k.status.as_ref().and_then(|s| s.state) == Some(KeyState::Active)
        })
        .await?;
        ensure!(provider.unwrap_dek(&wrapped_v2, &context).await?.expose() == dek.expose());

        // Illegal request: Degraded with the state machine's message, and no change.
        set_state(&keys, "db", "PreActivation").await?;
        let illegal = wait_key(&keys, "db", "Degraded", |k| degraded_reason(k).is_some()).await?;
        let reason = degraded_reason(&illegal).unwrap_or_default();
        ensure!(
            reason.starts_with(
                "IllegalTransition: a key in state Active cannot move to PreActivation"
            ),
            "{reason}"
        );
        ensure!(illegal.status.as_ref().and_then(|s| s.state) == Some(KeyState::Active));

        // Another provider: Degraded, not a crash loop.
        keys.create(
            &PostParams::default(),
            &managed_key(
                "cloud",
                json!({"provider": {"aws": {"region": "eu-west-1"}}}),
            )?,
        )
        .await?;
        let cloud = wait_key(&keys, "cloud", "Degraded", |k| degraded_reason(k).is_some()).await?;
        let reason = degraded_reason(&cloud).unwrap_or_default();
        ensure!(
            reason.starts_with("ProviderNotConfigured: ") && reason.contains("--aws-region"),
            "{reason}"
        );

        let text = operator.metrics.render();
        ensure!(text.contains("keyward_reconciles_total{controller=\"managedkey\"}"));
        operator.delete_keys_and_stop(&client, &ns).await?;

        let summary = keyward_core::audit::verify(&audit)?;
        // create x2, rotate, suspend, resume at least.
        ensure!(summary.records >= 5, "audit records: {}", summary.records);
        let log = std::fs::read_to_string(&audit)?;
        for action in ["key.create", "key.rotate", "key.suspend", "key.resume"] {
            ensure!(log.contains(action), "no {action} in the audit log");
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn sealed_secret_dependants_block_destruction_and_deletion_schedules_it() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let operator = Operator::start(&client, &ns, &audit_path(&dir));
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        keys.create(
            &PostParams::default(),
            &managed_key(
                "app",
                json!({"provider": {"local": {}}, "deletionWindow": "7d"}),
            )?,
        )
        .await?;
        let key = wait_key(&keys, "app", "Ready", ready).await?;
        let key_id = key
            .status
            .as_ref()
            .and_then(|s| s.provider_key_id.clone())
            .context("id")?;

        // Seal against the in-cluster keyring, the way `keyward seal` does online.
        let provider = keyring(&client, &ns).await?;
        let target = SecretTarget {
            scope: Scope::Strict,
            namespace: ns.clone(),
            secret_name: "creds".into(),
            key_ref: "app".into(),
            access: Vec::new(),
        };
        let items: BTreeMap<String, SecretBytes> =
            [("password".to_owned(), SecretBytes::new(b"hunter2".to_vec()))].into();
        let sealed = seal_secret(
            &target,
            Wrapping::Provider {
                provider: provider.as_ref(),
                key_id: &key_id,
            },
            &items,
        )
        .await?;
        let secrets: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
        let secret: SealedSecret = serde_json::from_value(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
            "metadata": { "name": "creds" },
            "spec": { "keyRef": { "name": "app" }, "encryptedData": sealed },
        }))?;
        secrets.create(&PostParams::default(), &secret).await?;

        let deadline = Instant::now() + Duration::from_secs(60);
        let recorded = loop {
            let s = secrets.get("creds").await?;
            if let Some(status) = s
                .status
                .as_ref()
                .filter(|st| conditions::is_true(&st.conditions, READY))
            {
                break status.clone();
            }
            ensure!(
                Instant::now() < deadline,
                "SealedSecret status never Ready: {:?}",
                s.status
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        ensure!(
            recorded.key_versions == [("password".to_owned(), 1)].into(),
            "{recorded:?}"
        );
        wait_key(&keys, "app", "counting 1 dependant of version 1", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.version(1))
                .is_some_and(|v| v.dependants == 1)
        })
        .await?;

        // Destroy with a dependant: Degraded, nothing scheduled at the provider.
        set_state(&keys, "app", "Deactivated").await?;
        wait_key(&keys, "app", "Deactivated", |k| {
            k.status.as_ref().and_then(|s| s.state) == Some(KeyState::Deactivated)
        })
        .await?;
        set_state(&keys, "app", "Destroyed").await?;
        let blocked = wait_key(&keys, "app", "Degraded", |k| degraded_reason(k).is_some()).await?;
        let reason = degraded_reason(&blocked).unwrap_or_default();
        ensure!(reason.starts_with("DependantsExist"), "{reason}");
        ensure!(reason.contains("version 1 by 1 SealedSecret"), "{reason}");
        ensure!(blocked.status.as_ref().and_then(|s| s.state) == Some(KeyState::Deactivated));
        ensure!(
            describe(&provider, &key_id).await?.deletion_at.is_none(),
            "scheduled anyway"
        );
        // The secret still unseals.
        let opened =
            keyward_core::envelope::open_secret(&target, provider.as_ref(), &sealed).await?;
        ensure!(opened["password"].expose() == b"hunter2");

        // The dependant goes: the pending destruction proceeds (scheduled, 7 days).
        secrets.delete("creds", &DeleteParams::default()).await?;
        let destroyed = wait_key(&keys, "app", "Destroyed", |k| {
            k.status.as_ref().and_then(|s| s.state) == Some(KeyState::Destroyed)
        })
        .await?;
        let at = describe(&provider, &key_id)
            .await?
            .deletion_at
            .context("not scheduled")?;
        let window = at.duration_since(std::time::SystemTime::now())?;
        ensure!(
            window > Duration::from_secs(6 * 86_400) && window <= Duration::from_secs(7 * 86_400),
            "{window:?}"
        );
        ensure!(
            destroyed
                .status
                .as_ref()
                .and_then(|s| s.version(1))
                .and_then(|v| v.destroy_scheduled_at.clone())
                .is_some()
        );

        // Moving back before the window ends cancels it.
        set_state(&keys, "app", "Deactivated").await?;
        wait_key(&keys, "app", "back to Deactivated", |k| {
            k.status.as_ref().and_then(|s| s.state) == Some(KeyState::Deactivated)
        })
        .await?;
        ensure!(
            describe(&provider, &key_id).await?.deletion_at.is_none(),
            "not cancelled"
        );

        // Deleting the resource schedules provider deletion, then the finalizer goes.
        keyward_e2e::keys::delete_and_wait_gone(&keys, "app").await?;
        let info = describe(&provider, &key_id).await?;
        ensure!(
            info.deletion_at.is_some(),
            "provider key deleted without a window, or not at all"
        );
        wait_for_event(&client, &ns, "DestructionScheduled").await?;
        operator.delete_keys_and_stop(&client, &ns).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn policy_rotation_happens_at_the_due_time() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let operator = Operator::start(&client, &ns, &audit_path(&dir));
        let policies: Api<KeyRotationPolicy> = Api::namespaced(client.clone(), &ns);
        create_policy(&policies, "fast", json!({ "rotationPeriod": "1y" })).await?;
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        keys.create(
            &PostParams::default(),
            &managed_key(
                "rot",
                json!({"provider": {"local": {}}, "rotationPolicyRef": {"name": "fast"}}),
            )?,
        )
        .await?;
        wait_key(&keys, "rot", "Ready", ready).await?;

        // Editing the policy reschedules the key: 12s from version 1's creation.
        let patch = json!({ "spec": { "rotationPeriod": "12s" } });
        policies
            .patch("fast", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let scheduled = wait_key(&keys, "rot", "rescheduled", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.next_rotation_at.as_ref())
                .is_some_and(|t| {
                    let created = k
                        .status
                        .as_ref()
                        .and_then(|s| s.version(1))
                        .and_then(|v| v.created_at.clone());
                    created.is_some_and(|c| t.0.duration_since(c.0).as_secs() == 12)
                })
        })
        .await?;
        let due = scheduled
            .status
            .as_ref()
            .and_then(|s| s.next_rotation_at.clone())
            .context("due")?
            .0;
        let rotated = wait_key(&keys, "rot", "rotated by schedule", |k| {
            primary(k) == Some(2)
        })
        .await?;
        let seen = k8s_openapi::jiff::Timestamp::now();
        let lateness = due.duration_until(seen);
        eprintln!(
            "MEASURE scheduled rotation observed {lateness:?} after nextRotationAt (poll 50ms)"
        );
        ensure!(
            lateness.as_secs_f64() >= 0.0 && lateness.as_secs_f64() < 3.0,
            "lateness {lateness:?}"
        );
        ensure!(version_state(&rotated, 1) == Some(KeyState::Deactivated));
        let next = rotated
            .status
            .as_ref()
            .and_then(|s| s.next_rotation_at.clone())
            .context("next")?
            .0;
        ensure!(next > due, "next rotation not moved on");
        ensure!(
            operator
                .metrics
                .render()
                .contains("keyward_rotations_total{reason=\"scheduled\"} 1")
        );
        operator.delete_keys_and_stop(&client, &ns).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn keyring_secret_writes_conflict_and_concurrent_writers_lose_nothing() {
    with_temp_ns(|client, ns| async move {
        let first = keyring(&client, &ns).await?;
        let second = keyring(&client, &ns).await?; // a second "replica"
        let info = first
            .create_key(&keyward_core::provider::KeySpec {
                name: "busy".into(),
                algorithm: keyward_core::provider::KeyAlgorithm::Aes256,
                owner: Some("uid-busy".into()),
                description: None,
            })
            .await?;

        // A write with a stale resourceVersion is a conflict, not an overwrite.
        let backend = SecretBackend::new(client.clone(), &ns, KEYRING);
        let (stale, bytes) = tokio::task::spawn_blocking(move || -> Result<_> {
            let stored = backend.load()?.context("no keyring Secret")?;
            Ok((stored.revision, stored.bytes))
        })
        .await??;
        first.rotate_key(&info.key_id).await?;
        let backend = SecretBackend::new(client.clone(), &ns, KEYRING);
        let outcome =
            tokio::task::spawn_blocking(move || backend.store(&bytes, Some(&stale))).await?;
        ensure!(
            matches!(outcome, Err(WriteError::Conflict)),
            "stale write was not refused"
        );

        // Two providers on one Secret, rotating at once: every version survives.
        let mut tasks = Vec::new();
        for i in 0..12 {
            let provider = Arc::clone(if i % 2 == 0 { &first } else { &second });
            let id = info.key_id.clone();
            tasks.push(tokio::spawn(async move { provider.rotate_key(&id).await }));
        }
        for task in tasks {
            task.await??;
        }
        let after = second.describe_key(&info.key_id).await?;
        let numbers: Vec<u32> = after.versions.iter().map(|v| v.version).collect();
        ensure!(
            numbers == (1..=14).collect::<Vec<_>>(),
            "versions {numbers:?}"
        );

        // Each writer raises the generation record from its own last copy;
        // the other's writes make that copy stale, and the record still
        // reaches the keyring's generation (1 at creation, then 14 writes).
        let recorded = || {
            let backend = SecretBackend::new(client.clone(), &ns, KEYRING);
            tokio::task::spawn_blocking(move || backend.generation_floor())
        };
        let generation = recorded().await??;
        ensure!(generation == Some(15), "recorded generation {generation:?}");
        // A record removed on purpose (to accept an older keyring) is
        // written again by the next keyring write.
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        maps.delete(
            &keyward_kubeutil::keyring_secret::generation_config_map(KEYRING),
            &DeleteParams::default(),
        )
        .await?;
        first.rotate_key(&info.key_id).await?;
        let generation = recorded().await??;
        ensure!(generation == Some(16), "recorded generation {generation:?}");

        // The Secret holds only ciphertext, and the root key is never replaced.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let stored = secrets.get(KEYRING).await?;
        let data = stored.data.context("data")?;
        ensure!(!data["keyring.kwk"].0.windows(4).any(|w| w == b"busy"));
        let root_before = secrets.get(ROOT_KEY).await?.data;
        keyring(&client, &ns).await?;
        ensure!(
            secrets.get(ROOT_KEY).await?.data == root_before,
            "root key replaced"
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn activation_waits_for_activate_at_and_compromise_rotates_at_once() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let audit = audit_path(&dir);
        let operator = Operator::start(&client, &ns, &audit);
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        let provider = keyring(&client, &ns).await?;

        // PreActivation until activateAt: the provider refuses to wrap, then it works.
        let activate_at = k8s_openapi::jiff::Timestamp::now()
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(4))?;
        let activate_at = k8s_openapi::jiff::Timestamp::from_second(activate_at.as_second())?;
        keys.create(
            &PostParams::default(),
            &managed_key(
                "later",
                json!({"provider": {"local": {}}, "activateAt": activate_at.to_string()}),
            )?,
        )
        .await?;
        let waiting = wait_key(&keys, "later", "PreActivation", |k| {
            k.status.as_ref().and_then(|s| s.state) == Some(KeyState::PreActivation)
        })
        .await?;
        let key_id = waiting
            .status
            .as_ref()
            .and_then(|s| s.provider_key_id.clone())
            .context("id")?;
        let context: BTreeMap<String, String> =
            [("keyward.io/namespace".into(), ns.clone())].into();
        ensure!(
            provider
                .wrap_dek(&key_id, &Dek::generate(), &context)
                .await
                .is_err(),
            "a PreActivation key wrapped"
        );
        wait_key(&keys, "later", "Ready", ready).await?;
        let lateness = activate_at.duration_until(k8s_openapi::jiff::Timestamp::now());
        eprintln!("MEASURE activation observed {lateness:?} after activateAt (poll 50ms)");
        ensure!(
            lateness.as_secs_f64() >= 0.0 && lateness.as_secs_f64() < 3.0,
            "{lateness:?}"
        );
        let dek = Dek::generate();
        let wrapped_v1 = provider.wrap_dek(&key_id, &dek, &context).await?;

        // Compromised: a new primary at once; v1 decrypt-only, marked, audited.
        set_state(&keys, "later", "Compromised").await?;
        let replaced = wait_key(&keys, "later", "replaced", |k| primary(k) == Some(2)).await?;
        ensure!(
            version_state(&replaced, 1) == Some(KeyState::Compromised),
            "{:?}",
            replaced.status
        );
        ensure!(version_state(&replaced, 2) == Some(KeyState::Active));
        ensure!(ready(&replaced));
        ensure!(provider.wrap_dek(&key_id, &dek, &context).await?.version == 2);
        // No SealedSecret needs v1, so it is scheduled for destruction at once
        // (after the deletion window) and no longer unwraps.
        wait_key(&keys, "later", "v1 destruction scheduled", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.version(1))
                .is_some_and(|v| v.destroy_scheduled_at.is_some())
        })
        .await?;
        ensure!(provider.unwrap_dek(&wrapped_v1, &context).await.is_err());
        wait_for_event(&client, &ns, "Compromised").await?;

        // Handled once: a restart does not rotate again.
        operator.kill().await;
        let operator = Operator::start(&client, &ns, &audit);
        tokio::time::sleep(Duration::from_secs(2)).await;
        ensure!(
            describe(&provider, &key_id).await?.primary_version == 2,
            "compromise handled twice"
        );
        set_state(&keys, "later", "Active").await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let acknowledged = keys.get("later").await?;
        ensure!(
            degraded_reason(&acknowledged).is_none(),
            "{:?}",
            degraded_reason(&acknowledged)
        );
        ensure!(primary(&acknowledged) == Some(2));
        operator.delete_keys_and_stop(&client, &ns).await?;
        let log = std::fs::read_to_string(&audit)?;
        ensure!(log.contains("key.compromise") && log.contains("key.activate"));
        keyward_core::audit::verify(&audit)?;
        Ok(())
    })
    .await;
}

#[allow(clippy::too_many_arguments)]
/// Seals `items` for SealedSecret `name` against the in-cluster keyring, as
/// `keyward seal` does online, and creates it (with `template` if given).
async fn create_sealed(
    client: &Client,
    ns: &str,
    provider: &LocalProvider,
    key: &str,
    key_id: &str,
    name: &str,
    items: &[(&str, &str)],
    template: Option<serde_json::Value>,
) -> Result<(SecretTarget, BTreeMap<String, String>)> {
    let target = SecretTarget {
        scope: Scope::Strict,
        namespace: ns.to_owned(),
        secret_name: name.to_owned(),
        key_ref: format!("{ns}/{key}"),
        access: Vec::new(),
    };
    let values: BTreeMap<String, SecretBytes> = items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), SecretBytes::new(v.as_bytes().to_vec())))
        .collect();
    let sealed = seal_secret(&target, Wrapping::Provider { provider, key_id }, &values).await?;
    let mut spec = json!({ "keyRef": { "name": key }, "encryptedData": sealed });
    if let Some(template) = template {
        spec["template"] = template;
    }
    let secret: SealedSecret = serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
        "metadata": { "name": name }, "spec": spec,
    }))?;
    let secrets: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
    secrets.create(&PostParams::default(), &secret).await?;
    Ok((target, sealed))
}

async fn wait_sealed(
    api: &Api<SealedSecret>,
    name: &str,
    what: &str,
    done: impl Fn(&SealedSecret) -> bool,
) -> Result<SealedSecret> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let secret = api.get(name).await?;
        if done(&secret) {
            return Ok(secret);
        }
        if Instant::now() > deadline {
            bail!(
                "SealedSecret {name}: not {what} within 60s; status: {}",
                serde_json::to_string(&secret.status)?
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn all_on(secret: &SealedSecret, version: u32) -> bool {
    secret.status.as_ref().is_some_and(|s| {
        !s.key_versions.is_empty() && s.key_versions.values().all(|v| *v == version)
    }) && secret.spec.encrypted_data.values().all(|t| {
        keyward_core::envelope::Envelope::decode(t).is_ok_and(|e| e.key_version == version)
    })
}

fn key_id_of(key: &ManagedKey) -> Result<String> {
    key.status
        .as_ref()
        .and_then(|s| s.provider_key_id.clone())
        .context("no providerKeyId")
}

async fn open_values(
    target: &SecretTarget,
    provider: &LocalProvider,
    data: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Vec<u8>>> {
    Ok(keyward_core::envelope::open_secret(target, provider, data)
        .await?
        .into_iter()
        .map(|(k, v)| (k, v.expose().to_vec()))
        .collect())
}

#[tokio::test]
async fn eager_rewrap_after_rotation_compromise_rewraps_and_template_secret_is_owned() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let audit = audit_path(&dir);
        let operator = Operator::start_with(&client, materialising(&ns, &audit));
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        let secrets: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
        let plain: Api<Secret> = Api::namespaced(client.clone(), &ns);
        keys.create(
            &PostParams::default(),
            &managed_key(
                "k",
                json!({"provider": {"local": {}}, "deletionWindow": "7d"}),
            )?,
        )
        .await?;
        let key_id = key_id_of(&wait_key(&keys, "k", "Ready", ready).await?)?;
        let provider = keyring(&client, &ns).await?;
        let (target, git_copy) = create_sealed(
            &client,
            &ns,
            &provider,
            "k",
            &key_id,
            "creds",
            &[("user", "admin"), ("password", "hunter2")],
            Some(json!({"type": "kubernetes.io/basic-auth", "labels": {"team": "pay"}})),
        )
        .await?;
        let expected: BTreeMap<String, Vec<u8>> = [
            ("password".to_owned(), b"hunter2".to_vec()),
            ("user".to_owned(), b"admin".to_vec()),
        ]
        .into();
        wait_sealed(&secrets, "creds", "recorded on v1", |s| all_on(s, 1)).await?;

        // The template makes an owned Secret with the values.
        let deadline = Instant::now() + Duration::from_secs(60);
        let owned = loop {
            if let Some(s) = plain.get_opt("creds").await? {
                break s;
            }
            ensure!(Instant::now() < deadline, "no Secret from the template");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let data: BTreeMap<String, Vec<u8>> = owned
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        ensure!(data == expected, "Secret data differs");
        ensure!(owned.type_.as_deref() == Some("kubernetes.io/basic-auth"));
        let owner = owned.owner_references().first().context("no owner")?;
        ensure!(owner.kind == "SealedSecret" && owner.name == "creds");

        // Manual rotation: eager (the default) re-wraps the cluster copy to v2.
        let started = Instant::now();
        annotate(&keys, "k", "keyward.io/rotate", "now").await?;
        wait_key(&keys, "k", "rotated", |k| primary(k) == Some(2)).await?;
        let rewrapped = wait_sealed(&secrets, "creds", "re-wrapped to v2", |s| {
            all_on(s, 2) && s.status.as_ref().is_some_and(|st| st.rewrapped_since_git)
        })
        .await?;
        eprintln!(
            "MEASURE rotate annotation -> cluster copy re-wrapped: {:?}",
            started.elapsed()
        );
        ensure!(open_values(&target, &provider, &rewrapped.spec.encrypted_data).await? == expected);
        // The Git copy (v1 only) still opens while v1 is Deactivated.
        let key = keys.get("k").await?;
        ensure!(version_state(&key, 1) == Some(KeyState::Deactivated));
        ensure!(open_values(&target, &provider, &git_copy).await? == expected);
        // The cluster copy moved to v2; v1 stays only for the Git copy
        // (status.gitBehind), until it is re-wrapped and applied.
        wait_key(&keys, "k", "dependants moved to v2", |k| {
            let s = k.status.as_ref();
            s.and_then(|s| s.version(1))
                .is_some_and(|v| v.dependants == 1 && v.git_dependants == 1)
                && s.and_then(|s| s.version(2))
                    .is_some_and(|v| v.dependants == 1)
        })
        .await?;
        // One DEK wrapped under v2; unwraps (the re-wrap's, the template
        // Secret's) are not counted against maxOperations.
        let counted = wait_key(&keys, "k", "the wrap counted on v2", |k| {
            operations(k, 2) >= 1
        })
        .await?;
        ensure!(operations(&counted, 1) == 0, "{:?}", counted.status);

        // Compromise v2, exposing only it: v3 at once, the secret re-wrapped,
        // then v2 scheduled for destruction.
        annotate(&keys, "k", "keyward.io/exposed-versions", "primary").await?;
        set_state(&keys, "k", "Compromised").await?;
        wait_sealed(&secrets, "creds", "re-wrapped to v3", |s| all_on(s, 3)).await?;
        let retired = wait_key(&keys, "k", "v2 destruction scheduled", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.version(2))
                .is_some_and(|v| v.destroy_scheduled_at.is_some())
        })
        .await?;
        ensure!(version_state(&retired, 2) == Some(KeyState::Compromised));
        ensure!(primary(&retired) == Some(3));
        // v1, not exposed, keeps its (long, default) decrypt retention.
        ensure!(version_state(&retired, 1) == Some(KeyState::Deactivated));
        ensure!(
            retired
                .status
                .as_ref()
                .and_then(|s| s.version(1))
                .is_some_and(|v| v.destroy_scheduled_at.is_none())
        );
        let info = describe(&provider, &key_id).await?;
        let v2 = info
            .versions
            .iter()
            .find(|v| v.version == 2)
            .context("v2")?;
        let window = v2
            .deletion_at
            .context("v2 not pending deletion")?
            .duration_since(std::time::SystemTime::now())?;
        ensure!(window > Duration::from_secs(6 * 86_400), "{window:?}");
        let now_secret = secrets.get("creds").await?;
        ensure!(
            open_values(&target, &provider, &now_secret.spec.encrypted_data).await? == expected
        );
        for reason in ["Rewrapped", "Compromised", "VersionDestructionScheduled"] {
            wait_for_event(&client, &ns, reason).await?;
        }
        let log = std::fs::read_to_string(&audit)?;
        ensure!(log.contains("secret.rewrap") && log.contains("key.version.schedule-deletion"));
        ensure!(
            operator
                .metrics
                .render()
                .contains("keyward_rewraps_total{reason=\"compromised\"} 1")
        );

        // Deleting the SealedSecret lets the garbage collector delete its Secret.
        secrets.delete("creds", &DeleteParams::default()).await?;
        let started = Instant::now();
        while plain.get_opt("creds").await?.is_some() {
            ensure!(
                started.elapsed() < Duration::from_secs(90),
                "owned Secret not garbage-collected"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "MEASURE owned Secret garbage-collected {:?} after its SealedSecret",
            started.elapsed()
        );
        operator.delete_keys_and_stop(&client, &ns).await?;
        keyward_core::audit::verify(&audit)?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn retention_destruction_waits_for_dependants() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let operator = Operator::start(&client, &ns, &audit_path(&dir));
        let policies: Api<KeyRotationPolicy> = Api::namespaced(client.clone(), &ns);
        create_policy(&policies, "short", json!({ "decryptRetention": "2s", "rewrap": "Manual" })).await?;
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        let secrets: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
        keys.create(
            &PostParams::default(),
            &managed_key(
                "r",
                json!({"provider": {"local": {}}, "rotationPolicyRef": {"name": "short"}, "deletionWindow": "7d"}),
            )?,
        )
        .await?;
        let key_id = key_id_of(&wait_key(&keys, "r", "Ready", ready).await?)?;
        let provider = keyring(&client, &ns).await?;
        create_sealed(&client, &ns, &provider, "r", &key_id, "old", &[("a", "1")], None).await?;
        wait_sealed(&secrets, "old", "recorded on v1", |s| all_on(s, 1)).await?;
        annotate(&keys, "r", "keyward.io/rotate", "1").await?;
        wait_key(&keys, "r", "rotated with v1 counted", |k| {
            primary(k) == Some(2)
                && k.status.as_ref().and_then(|s| s.version(1)).is_some_and(|v| v.dependants == 1)
        })
        .await?;
        // Retention (2s) passes; Manual re-wrap leaves the secret on v1: v1 stays.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let held = keys.get("r").await?;
        ensure!(
            held.status.as_ref().and_then(|s| s.version(1)).is_some_and(|v| v.destroy_scheduled_at.is_none()),
            "v1 scheduled although a SealedSecret needs it"
        );
        ensure!(all_on(&secrets.get("old").await?, 1), "Manual re-wrap re-wrapped");
        let info = describe(&provider, &key_id).await?;
        ensure!(info.versions.iter().all(|v| v.deletion_at.is_none()));
        // The dependant goes: v1 is scheduled (7 day window).
        secrets.delete("old", &DeleteParams::default()).await?;
        wait_key(&keys, "r", "v1 destruction scheduled", |k| {
            k.status.as_ref().and_then(|s| s.version(1)).is_some_and(|v| v.destroy_scheduled_at.is_some())
        })
        .await?;
        let info = describe(&provider, &key_id).await?;
        let v1 = info.versions.iter().find(|v| v.version == 1).context("v1")?;
        ensure!(v1.deletion_at.is_some(), "provider not asked");
        ensure!(info.versions.iter().find(|v| v.version == 2).is_some_and(|v| v.deletion_at.is_none()));
        operator.delete_keys_and_stop(&client, &ns).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn standby_takes_over_when_the_leader_dies() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let config = |identity: &str| {
            let mut config = Config::for_namespace(&ns, dir.path().join(format!("{identity}.log")));
            config.identity = Some(identity.into());
            config.lease_duration_secs = 3;
            config.renew_interval_ms = 300;
            config
        };
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(client.clone(), &ns);
        let holder = || async {
            Ok::<_, anyhow::Error>(
                leases
                    .get_opt("keyward-operator")
                    .await?
                    .and_then(|l| l.spec)
                    .and_then(|s| s.holder_identity),
            )
        };
        let leader = Operator::start_with(&client, config("a"));
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        keys.create(&PostParams::default(), &managed_key("one", json!({"provider": {"local": {}}}))?)
            .await?;
        wait_key(&keys, "one", "Ready", ready).await?;
        ensure!(holder().await?.as_deref() == Some("a"));
        let standby = Operator::start_with(&client, config("b"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        ensure!(holder().await?.as_deref() == Some("a"), "the standby took a live lease");
        ensure!(
            standby.metrics.render().contains("keyward_reconciles_total{controller=\"managedkey\"} 0"),
            "the standby reconciled"
        );
        leader.kill().await;
        let killed = Instant::now();
        while holder().await?.as_deref() != Some("b") {
            ensure!(killed.elapsed() < Duration::from_secs(30), "no takeover");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let takeover = killed.elapsed();
        keys.create(&PostParams::default(), &managed_key("two", json!({"provider": {"local": {}}}))?)
            .await?;
        wait_key(&keys, "two", "Ready under the new leader", ready).await?;
        eprintln!(
            "MEASURE leader killed -> standby holds the Lease after {takeover:?} (lease 3s, renew/retry 300ms); new key Ready after {:?}",
            killed.elapsed()
        );
        ensure!(
            takeover <= Duration::from_millis(3_000 + 300 + 1_500),
            "takeover took {takeover:?}"
        );
        ensure!(standby.metrics.render().contains("keyward_leader 1"));
        standby.delete_keys_and_stop(&client, &ns).await?;
        Ok(())
    })
    .await;
}

/// Every `Rotating` condition the key's status goes through, in order, as
/// (status, reason): collected from a watch, so a state held for a few
/// milliseconds between two status writes is not missed by polling.
struct RotatingRecorder {
    seen: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    task: JoinHandle<()>,
}

impl RotatingRecorder {
    fn start(client: &Client, ns: &str, name: &str) -> Self {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, watcher};
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), ns);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let seen = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
        let sink = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(watcher(keys, config).applied_objects());
            while let Some(Ok(key)) = stream.next().await {
                let now = key
                    .status
                    .as_ref()
                    .and_then(|s| conditions::find(&s.conditions, conditions::ROTATING))
                    .map(|c| (c.status.clone(), c.reason.clone()));
                let mut seen = sink.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(now) = now
                    && seen.last() != Some(&now)
                {
                    seen.push(now);
                }
            }
        });
        RotatingRecorder { seen, task }
    }

    /// What it saw once `done` holds for the key (the watch gets a moment
    /// to deliver the write the poll just saw).
    async fn stop_when(
        self,
        keys: &Api<ManagedKey>,
        name: &str,
        done: impl Fn(&ManagedKey) -> bool,
    ) -> Result<Vec<(String, String)>> {
        wait_key(keys, name, "done rotating", done).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.task.abort();
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(seen)
    }
}

/// Issue #5's must-show: a key Ready on version 1; its policy edited to a
/// 1-minute period; version 2 within the minute and the SealedSecret
/// re-wrapped (eagerly) onto it, still opening to the same bytes.
#[tokio::test]
async fn policy_edited_to_one_minute_rotates_within_a_minute_and_rewraps() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let audit = audit_path(&dir);
        let operator = Operator::start(&client, &ns, &audit);
        let policies: Api<KeyRotationPolicy> = Api::namespaced(client.clone(), &ns);
        create_policy(&policies, "yearly", json!({ "rotationPeriod": "1y", "rewrap": "Eager", "expiryNotice": "10s" })).await?;
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        let secrets: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
        keys.create(
            &PostParams::default(),
            &managed_key(
                "payments",
                json!({"provider": {"local": {}}, "rotationPolicyRef": {"name": "yearly"}}),
            )?,
        )
        .await?;
        let key = wait_key(&keys, "payments", "Ready", ready).await?;
        ensure!(primary(&key) == Some(1), "{:?}", key.status);
        ensure!(version_state(&key, 1) == Some(KeyState::Active));
        let v1_created = key
            .status
            .as_ref()
            .and_then(|s| s.version(1))
            .and_then(|v| v.created_at.clone())
            .context("v1 createdAt")?
            .0;
        let key_id = key_id_of(&key)?;
        let provider = keyring(&client, &ns).await?;
        // Binary and empty-ish values too: the bytes must survive exactly.
        let binary = String::from_utf8_lossy(&[0xF0, 0x9F, 0x94, 0x91, b'\n', b'\t']).into_owned();
        let (target, _git) = create_sealed(
            &client,
            &ns,
            &provider,
            "payments",
            &key_id,
            "gateway",
            &[("api-key", "sk_live_0123456789"), ("pin", "0000"), ("blob", &binary)],
            None,
        )
        .await?;
        wait_sealed(&secrets, "gateway", "recorded on v1", |s| all_on(s, 1)).await?;
        let expected: BTreeMap<String, Vec<u8>> = [
            ("api-key".to_owned(), b"sk_live_0123456789".to_vec()),
            ("pin".to_owned(), b"0000".to_vec()),
            ("blob".to_owned(), binary.as_bytes().to_vec()),
        ]
        .into();

        // Keys exist a while before their policy is edited; give version 1
        // five seconds so the minute is not decided by test set-up time.
        let age = v1_created.duration_until(k8s_openapi::jiff::Timestamp::now());
        if let Ok(age) = Duration::try_from(age) {
            tokio::time::sleep(Duration::from_secs(5).saturating_sub(age)).await;
        }
        let recorder = RotatingRecorder::start(&client, &ns, "payments");
        let patch = json!({ "spec": { "rotationPeriod": "1m" } });
        let edited = Instant::now();
        policies
            .patch("yearly", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let rotated = wait_key(&keys, "payments", "on version 2", |k| primary(k) == Some(2)).await?;
        let to_v2 = edited.elapsed();
        let rewrapped = wait_sealed(&secrets, "gateway", "re-wrapped to v2", |s| {
            all_on(s, 2) && s.status.as_ref().is_some_and(|st| st.rewrapped_since_git)
        })
        .await?;
        let to_rewrap = edited.elapsed();
        let due = v1_created
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(60))?
            .duration_until(k8s_openapi::jiff::Timestamp::now());
        eprintln!(
            "MEASURE policy edit (1y -> 1m) -> version 2: {:.2}s; -> SealedSecret re-wrapped: {:.2}s; re-wrapped {:.3}s after v1 + 1m",
            to_v2.as_secs_f64(),
            to_rewrap.as_secs_f64(),
            due.as_secs_f64()
        );
        ensure!(to_v2 <= Duration::from_secs(60), "version 2 after {to_v2:?}");
        // On schedule, not early: version 2 is a period after version 1.
        let v2_created = rotated
            .status
            .as_ref()
            .and_then(|s| s.version(2))
            .and_then(|v| v.created_at.clone())
            .context("v2 createdAt")?
            .0;
        let period = v1_created.duration_until(v2_created).as_secs_f64();
        ensure!((60.0..63.0).contains(&period), "v2 created {period}s after v1");
        ensure!(version_state(&rotated, 1) == Some(KeyState::Deactivated));
        ensure!(version_state(&rotated, 2) == Some(KeyState::Active));
        ensure!(ready(&rotated));

        // The re-wrapped cluster copy opens with the keyring to the same bytes.
        ensure!(
            open_values(&target, &provider, &rewrapped.spec.encrypted_data).await? == expected,
            "re-wrapped values differ"
        );

        // Rotating went True while the secret waited, and back to False.
        let seen = recorder.stop_when(&keys, "payments", |k| {
            k.status.as_ref().is_some_and(|s| {
                s.version(1)
                    .is_some_and(|v| v.dependants == v.git_dependants)
                    && conditions::find(&s.conditions, conditions::ROTATING)
                        .is_some_and(|c| c.status == "False")
            })
        })
        .await?;
        eprintln!("Rotating condition went through {seen:?}");
        let during = seen
            .iter()
            .position(|(s, r)| s == "True" && r == "RewrappingDependants")
            .context(format!("Rotating never True while re-wrapping: {seen:?}"))?;
        ensure!(
            seen[during..]
                .iter()
                .any(|(s, r)| s == "False" && (r == "Idle" || r == "WaitingForGit")),
            "Rotating not back to False/Idle: {seen:?}"
        );
        secrets
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        operator.delete_keys_and_stop(&client, &ns).await?;
        keyward_core::audit::verify(&audit)?;
        Ok(())
    })
    .await;
}

async fn wait_secret(api: &Api<Secret>, name: &str, present: bool) -> Result<Option<Secret>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let secret = api.get_opt(name).await?;
        if secret.is_some() == present {
            return Ok(secret);
        }
        ensure!(
            Instant::now() < deadline,
            "Secret {name} still {} after 60s",
            if present { "absent" } else { "present" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn degraded_secret_reason(secret: &SealedSecret) -> Option<String> {
    let status = secret.status.as_ref()?;
    conditions::find(&status.conditions, DEGRADED)
        .filter(|c| c.status == "True")
        .map(|c| format!("{}: {}", c.reason, c.message))
}

/// Without `--materialize-secrets` a template is reported, not acted on;
/// with it the Secret is made, and removing the template deletes the Secret
/// this SealedSecret owns (and never someone else's).
#[tokio::test]
async fn template_secrets_need_the_flag_and_go_with_the_template() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let audit = audit_path(&dir);
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        let secrets: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
        let plain: Api<Secret> = Api::namespaced(client.clone(), &ns);

        let operator = Operator::start(&client, &ns, &audit);
        keys.create(
            &PostParams::default(),
            &managed_key("t", json!({"provider": {"local": {}}}))?,
        )
        .await?;
        let key_id = key_id_of(&wait_key(&keys, "t", "Ready", ready).await?)?;
        let provider = keyring(&client, &ns).await?;
        let template = json!({"labels": {"team": "pay"}});
        create_sealed(
            &client,
            &ns,
            &provider,
            "t",
            &key_id,
            "db",
            &[("password", "s3cret")],
            Some(template.clone()),
        )
        .await?;
        let refused = wait_sealed(&secrets, "db", "Degraded for the missing flag", |s| {
            degraded_secret_reason(s).is_some()
        })
        .await?;
        let reason = degraded_secret_reason(&refused).unwrap_or_default();
        ensure!(
            reason.starts_with("SecretsNotMaterialized:")
                && reason.contains("--materialize-secrets"),
            "{reason}"
        );
        wait_for_event(&client, &ns, "SecretsNotMaterialized").await?;
        ensure!(
            plain.get_opt("db").await?.is_none(),
            "a Secret was written without the flag"
        );
        operator.kill().await;

        // With the flag: the Secret appears and the condition clears.
        let operator = Operator::start_with(&client, materialising(&ns, &audit));
        let made = wait_secret(&plain, "db", true).await?.context("Secret")?;
        ensure!(
            made.data
                .as_ref()
                .and_then(|d| d.get("password"))
                .map(|v| v.0.as_slice())
                == Some(&b"s3cret"[..])
        );
        wait_sealed(&secrets, "db", "no longer Degraded", |s| {
            degraded_secret_reason(s).is_none()
        })
        .await?;

        // Someone else's Secret under a SealedSecret's name is never touched.
        let foreign: Secret = serde_json::from_value(json!({
            "metadata": { "name": "shared" }, "stringData": { "mine": "yes" },
        }))?;
        plain.create(&PostParams::default(), &foreign).await?;
        create_sealed(
            &client,
            &ns,
            &provider,
            "t",
            &key_id,
            "shared",
            &[("x", "1")],
            Some(template),
        )
        .await?;
        let clash = wait_sealed(&secrets, "shared", "Degraded SecretExists", |s| {
            degraded_secret_reason(s).is_some_and(|r| r.starts_with("SecretExists"))
        })
        .await?;
        let foreign_uid = plain.get("shared").await?.uid();

        // Template removed: the owned Secret goes, the foreign one stays.
        let remove = json!({ "spec": { "template": null } });
        let removed_at = Instant::now();
        for name in ["db", "shared"] {
            secrets
                .patch(name, &PatchParams::default(), &Patch::Merge(&remove))
                .await?;
        }
        wait_secret(&plain, "db", false).await?;
        eprintln!(
            "MEASURE template removed -> owned Secret deleted: {:?}",
            removed_at.elapsed()
        );
        wait_for_event(&client, &ns, "SecretDeleted").await?;
        wait_sealed(&secrets, "shared", "re-observed without template", |s| {
            s.status.as_ref().and_then(|st| st.observed_generation)
                > clash.status.as_ref().and_then(|st| st.observed_generation)
        })
        .await?;
        let still = plain
            .get_opt("shared")
            .await?
            .context("the foreign Secret was deleted")?;
        ensure!(
            still.uid() == foreign_uid,
            "the foreign Secret was replaced"
        );
        ensure!(still.owner_references().is_empty());
        // Nothing comes back while the template stays away.
        tokio::time::sleep(Duration::from_secs(1)).await;
        ensure!(plain.get_opt("db").await?.is_none(), "the Secret came back");
        secrets
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        operator.delete_keys_and_stop(&client, &ns).await?;
        Ok(())
    })
    .await;
}

/// `rewrap: Lazy` leaves dependants on the retired version (Rotating says
/// the re-wrap is deferred) until their spec changes for another reason;
/// a key inside its policy's `expiryNotice` says so with a Warning Event,
/// the `ExpiringSoon` condition and `keyward_key_expiry_seconds`.
#[tokio::test]
async fn lazy_rewrap_waits_for_a_spec_change_and_expiry_notice_warns() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let audit = audit_path(&dir);
        let operator = Operator::start(&client, &ns, &audit);
        let policies: Api<KeyRotationPolicy> = Api::namespaced(client.clone(), &ns);
        for (name, spec) in [
            ("lazy", json!({ "rewrap": "Lazy" })),
            // Notice 8 s before a 12 s period ends: given 4 s after creation.
            (
                "soon",
                json!({ "rotationPeriod": "12s", "expiryNotice": "8s" }),
            ),
        ] {
            create_policy(&policies, name, spec).await?;
        }
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        let secrets: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
        for (key, policy) in [("slow", "lazy"), ("soon", "soon")] {
            keys.create(
                &PostParams::default(),
                &managed_key(
                    key,
                    json!({"provider": {"local": {}}, "rotationPolicyRef": {"name": policy}}),
                )?,
            )
            .await?;
        }
        let key = wait_key(&keys, "slow", "Ready", ready).await?;
        let soon = wait_key(&keys, "soon", "ExpiringSoon on v1", |k| {
            primary(k) == Some(1)
                && k.status
                    .as_ref()
                    .is_some_and(|s| conditions::is_true(&s.conditions, "ExpiringSoon"))
        })
        .await?;
        let created = soon
            .status
            .as_ref()
            .and_then(|s| s.version(1))
            .and_then(|v| v.created_at.clone())
            .context("v1 createdAt")?
            .0;
        eprintln!(
            "MEASURE expiry notice (due 4 s after v1) seen {:.2}s after v1",
            created
                .duration_until(k8s_openapi::jiff::Timestamp::now())
                .as_secs_f64()
        );
        wait_for_event(&client, &ns, "ExpiringSoon").await?;
        let expiry = operator
            .metrics
            .render()
            .lines()
            .find(|l| l.starts_with("keyward_key_expiry_seconds") && l.contains("\"soon\""))
            .map(str::to_owned)
            .context("no keyward_key_expiry_seconds for the key")?;
        let seconds: f64 = expiry
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .context("expiry value")?;
        ensure!((0.0..=8.0).contains(&seconds), "{expiry}");

        let key_id = key_id_of(&key)?;
        let provider = keyring(&client, &ns).await?;
        let (target, _git) = create_sealed(
            &client,
            &ns,
            &provider,
            "slow",
            &key_id,
            "lazy-creds",
            &[("token", "t0k3n")],
            None,
        )
        .await?;
        wait_sealed(&secrets, "lazy-creds", "recorded on v1", |s| all_on(s, 1)).await?;
        annotate(&keys, "slow", "keyward.io/rotate", "lazy-1").await?;
        wait_key(&keys, "slow", "rotated, re-wrap deferred", |k| {
            primary(k) == Some(2)
                && k.status.as_ref().is_some_and(|s| {
                    conditions::find(&s.conditions, conditions::ROTATING)
                        .is_some_and(|c| c.status == "False" && c.reason == "RewrapDeferred")
                })
        })
        .await?;
        // Lazy: nothing moves by itself.
        tokio::time::sleep(Duration::from_secs(2)).await;
        ensure!(
            all_on(&secrets.get("lazy-creds").await?, 1),
            "a Lazy policy re-wrapped without a spec change"
        );

        // The spec changes for another reason (a new item, sealed on v2):
        // the old item is re-wrapped along with it.
        let values: BTreeMap<String, SecretBytes> =
            [("extra".to_owned(), SecretBytes::new(b"more".to_vec()))].into();
        let extra = seal_secret(
            &target,
            Wrapping::Provider {
                provider: provider.as_ref(),
                key_id: &key_id,
            },
            &values,
        )
        .await?;
        let patch = json!({ "spec": { "encryptedData": extra } });
        let touched = Instant::now();
        secrets
            .patch("lazy-creds", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let moved = wait_sealed(&secrets, "lazy-creds", "lazily re-wrapped to v2", |s| {
            all_on(s, 2) && s.status.as_ref().is_some_and(|st| st.rewrapped_since_git)
        })
        .await?;
        eprintln!(
            "MEASURE Lazy: spec change -> re-wrapped: {:?}",
            touched.elapsed()
        );
        let expected: BTreeMap<String, Vec<u8>> = [
            ("extra".to_owned(), b"more".to_vec()),
            ("token".to_owned(), b"t0k3n".to_vec()),
        ]
        .into();
        ensure!(open_values(&target, &provider, &moved.spec.encrypted_data).await? == expected);
        ensure!(
            operator
                .metrics
                .render()
                .contains("keyward_rewraps_total{reason=\"lazy\"} 1")
        );
        // Done in the cluster; Git's copy still holds v1.
        wait_key(&keys, "slow", "Idle again", |k| {
            k.status.as_ref().is_some_and(|s| {
                conditions::find(&s.conditions, conditions::ROTATING)
                    .is_some_and(|c| c.reason == "Idle" || c.reason == "WaitingForGit")
            })
        })
        .await?;
        secrets
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        operator.delete_keys_and_stop(&client, &ns).await?;
        Ok(())
    })
    .await;
}

/// `v.operations` of `version`, 0 when absent.
fn operations(key: &ManagedKey, version: u32) -> u64 {
    key.status
        .as_ref()
        .and_then(|s| s.version(version))
        .map_or(0, |v| v.operations)
}

async fn set_max_operations(policies: &Api<KeyRotationPolicy>, name: &str, max: u64) -> Result<()> {
    let patch = json!({ "spec": { "maxOperations": max } });
    policies
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[tokio::test]
async fn max_operations_rotates_once_reached_and_refuses_a_limit_one_rewrap_meets() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let audit = audit_path(&dir);
        let operator = Operator::start(&client, &ns, &audit);
        let policies: Api<KeyRotationPolicy> = Api::namespaced(client.clone(), &ns);
        // 6, not 4: after a rotation the operator has been seen to re-wrap
        // a dependant twice (a stale cached copy; CI 2026-12-06), and two
        // stray wraps on v3 must not count as reaching the limit here.
        create_policy(&policies, "few-ops", json!({ "maxOperations": 6, "rewrap": "Eager" })).await?;
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        let secrets: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
        keys.create(
            &PostParams::default(),
            &managed_key(
                "k",
                json!({"provider": {"local": {}}, "rotationPolicyRef": {"name": "few-ops"}}),
            )?,
        )
        .await?;
        let key_id = key_id_of(&wait_key(&keys, "k", "Ready", ready).await?)?;
        let provider = keyring(&client, &ns).await?;
        // Two dependants, sealed as `keyward seal` does (not counted: another process).
        let mut git = BTreeMap::new();
        for name in ["a", "b"] {
            let (_, sealed) = create_sealed(
                &client,
                &ns,
                &provider,
                "k",
                &key_id,
                name,
                &[("token", name)],
                None,
            )
            .await?;
            git.insert(name, sealed);
            wait_sealed(&secrets, name, "recorded on v1", |s| all_on(s, 1)).await?;
        }

        // A manual rotation re-wraps both onto v2: two wraps on v2, under
        // the limit of 4. Unwraps (decryptions) use no nonce and do not count.
        annotate(&keys, "k", "keyward.io/rotate", "now").await?;
        for name in ["a", "b"] {
            wait_sealed(&secrets, name, "re-wrapped to v2", |s| all_on(s, 2)).await?;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let key = keys.get("k").await?;
        ensure!(primary(&key) == Some(2), "{:?}", key.status);
        ensure!(operations(&key, 1) == 0, "unwraps counted: {:?}", key.status);
        eprintln!("v2 after the rotation's re-wrap: {} wrap(s)", operations(&key, 2));

        // Git's v1 copies put back the way `kubectl replace` does, dropping
        // the operator's `keyward.io/rewrapped-to` (an applier that keeps it
        // is left alone: `a_gitops_applier_...`): each is re-wrapped again,
        // one wrap on v2 each, until v2 reaches maxOperations and v3 becomes
        // primary.
        // (Rounds, not one: a ManagedKey reconcile working from a stale
        // cached copy can write an older count back.)
        let mut rounds = 0;
        let reached = loop {
            rounds += 1;
            ensure!(rounds <= 6, "no max-operations rotation after {rounds} rounds");
            let mut last = Instant::now();
            for name in ["a", "b"] {
                // The rotation may land late (a reconcile counts the wraps
                // after the fact): re-applying a copy once v3 is primary
                // would add wraps on v3 and rotate it too.
                if primary(&keys.get("k").await?) == Some(3) {
                    break;
                }
                let patch = replaced_with(&git[name]);
                last = Instant::now();
                secrets
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            while last.elapsed() < Duration::from_secs(3) {
                if primary(&keys.get("k").await?) == Some(3) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if primary(&keys.get("k").await?) == Some(3) {
                break last.elapsed();
            }
            for name in ["a", "b"] {
                wait_sealed(&secrets, name, "re-wrapped", |s| all_on(s, 2)).await?;
            }
        };
        eprintln!(
            "MEASURE last Git copy re-applied -> v3 primary (max-operations, {rounds} round(s)): {reached:?}"
        );
        let rotated = Instant::now();
        for name in ["a", "b"] {
            wait_sealed(&secrets, name, "re-wrapped to v3", |s| all_on(s, 3)).await?;
        }
        eprintln!(
            "MEASURE v3 primary seen -> both dependants on v3: {:?}",
            rotated.elapsed()
        );
        ensure!(
            operator
                .metrics
                .render()
                .contains("keyward_rotations_total{reason=\"max-operations\"} 1"),
            "no max-operations rotation in the metrics"
        );
        // The re-wrap of the two dependants is two wraps on v3, below the
        // limit: v3 stays primary.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let key = keys.get("k").await?;
        ensure!(primary(&key) == Some(3), "rotated again: {:?}", key.status);
        ensure!(degraded_reason(&key).is_none(), "{:?}", degraded_reason(&key));
        eprintln!("v3 after the rotation's re-wrap: {} wrap(s)", operations(&key, 3));

        // A limit of 2 can never be met: each new version gets the two
        // re-wraps of the dependants at once. Without the guard every
        // rotation triggered the next (v3 to v44 in 10 s). Re-applying a's
        // Git copy adds wraps on v3 until it is over the limit.
        set_max_operations(&policies, "few-ops", 2).await?;
        let lowered = Instant::now();
        let mut highest = 3;
        let mut reapplied = 0;
        while lowered.elapsed() < Duration::from_secs(12) {
            let key = keys.get("k").await?;
            highest = highest.max(primary(&key).unwrap_or(0));
            // The policy edit alone refuses it when v3 already has 2 wraps.
            let settled = lowered.elapsed() > Duration::from_secs(2);
            if settled && degraded_reason(&key).is_none() && reapplied < 4 {
                let patch = replaced_with(&git["a"]);
                secrets
                    .patch("a", &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                reapplied += 1;
                wait_sealed(&secrets, "a", "re-wrapped", |s| all_on(s, 3)).await?;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!(
            "MEASURE maxOperations 2 with 2 dependants: primary v{highest} 12 s later ({reapplied} re-apply)"
        );
        ensure!(highest == 3, "rotation loop: primary went from v3 to v{highest}");
        let key = keys.get("k").await?;
        let reason = degraded_reason(&key).unwrap_or_default();
        eprintln!("Degraded {reason}");
        ensure!(reason.starts_with("MaxOperationsTooLow"), "{reason}");
        ensure!(reason.contains("at least 3"), "{reason}");

        // A limit above what v3 has done clears it, without a rotation.
        set_max_operations(&policies, "few-ops", 1000).await?;
        let key = wait_key(&keys, "k", "no longer Degraded", |k| {
            degraded_reason(k).is_none()
        })
        .await?;
        ensure!(primary(&key) == Some(3), "{:?}", key.status);

        secrets
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        operator.delete_keys_and_stop(&client, &ns).await?;
        Ok(())
    })
    .await;
}

/// A merge patch that puts `encrypted_data` back as a replace of the whole
/// object would: without the operator's record of its last re-wrap.
fn replaced_with(encrypted_data: &impl serde::Serialize) -> serde_json::Value {
    json!({
        "metadata": { "annotations": { "keyward.io/rewrapped-to": null } },
        "spec": { "encryptedData": encrypted_data },
    })
}

/// `deletionPolicy: Retain`: deleting the ManagedKey (an Argo CD prune, a
/// mistaken `kubectl delete`) leaves the provider key enabled and not
/// scheduled for deletion, and says so in an Event and the audit log.
#[tokio::test]
async fn a_retained_key_outlives_its_managed_key() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let audit = audit_path(&dir);
        let operator = Operator::start(&client, &ns, &audit);
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        keys.create(
            &PostParams::default(),
            &managed_key(
                "kept",
                json!({"provider": {"local": {}}, "deletionPolicy": "Retain"}),
            )?,
        )
        .await?;
        let key_id = key_id_of(&wait_key(&keys, "kept", "Ready", ready).await?)?;
        keyward_e2e::keys::delete_and_wait_gone(&keys, "kept").await?;
        let provider = keyring(&client, &ns).await?;
        let info = describe(&provider, &key_id).await?;
        ensure!(
            info.deletion_at.is_none()
                && info.versions.iter().all(|v| v.deletion_at.is_none()
                    && v.state == keyward_core::provider::VersionState::Enabled),
            "a retained key was touched: {info:?}"
        );
        wait_for_event(&client, &ns, "ProviderKeyRetained").await?;
        let log = std::fs::read_to_string(&audit)?;
        ensure!(
            log.lines()
                .any(|l| l.contains("\"key.retain\"") && l.contains(&key_id)),
            "no key.retain audit record"
        );
        println!(
            "deletionPolicy Retain: provider key {key_id} untouched after the ManagedKey went"
        );
        operator.delete_keys_and_stop(&client, &ns).await?;
        Ok(())
    })
    .await;
}

/// A local key stored with `spec.tags` (admission refuses that now; one
/// stored before, or past a down webhook): the operator says the tags did
/// not reach the provider, and the key works and rotates all the same.
#[tokio::test]
async fn tags_a_provider_cannot_keep_degrade_the_key_and_block_nothing() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let operator = Operator::start(&client, &ns, &audit_path(&dir));
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        keys.create(
            &PostParams::default(),
            &managed_key(
                "tagged",
                json!({"provider": {"local": {}}, "tags": {"team": "payments"}}),
            )?,
        )
        .await?;
        let key = wait_key(&keys, "tagged", "Ready and Degraded", |k| {
            ready(k) && degraded_reason(k).is_some()
        })
        .await?;
        let reason = degraded_reason(&key).unwrap_or_default();
        ensure!(
            reason.starts_with("TagsNotSynced: ") && reason.contains("keeps no tags"),
            "{reason}"
        );
        ensure!(
            key.status.as_ref().is_some_and(|s| s.tags.is_empty()),
            "status.tags claims tags the provider does not keep"
        );
        let rotate = json!({"metadata": {"annotations": {"keyward.io/rotate": "now"}}});
        keys.patch("tagged", &PatchParams::default(), &Patch::Merge(&rotate))
            .await?;
        wait_key(&keys, "tagged", "rotated", |k| {
            k.status.as_ref().and_then(|s| s.primary_version) == Some(2)
        })
        .await?;
        // Removing the tags clears it.
        let untag = json!({"spec": {"tags": null}});
        keys.patch("tagged", &PatchParams::default(), &Patch::Merge(&untag))
            .await?;
        wait_key(&keys, "tagged", "no longer Degraded", |k| {
            ready(k) && degraded_reason(k).is_none()
        })
        .await?;
        println!("tags on a local key: Degraded ({reason}), rotated to v2 all the same, cleared by removing them");
        operator.delete_keys_and_stop(&client, &ns).await
    })
    .await;
}
