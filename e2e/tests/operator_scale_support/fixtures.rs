//! The objects of a scale run: ManagedKeys, their provider keys already in
//! the in-cluster keyring (owned by the ManagedKeys' uids, as if a previous
//! operator had created them and its status writes were lost), and
//! SealedSecrets with real envelopes sealed in-process.

use anyhow::{Context as _, Result, ensure};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use keyward_core::crypto::random_nonce;
use keyward_core::envelope::{Envelope, Scope, SecretTarget};
use keyward_core::local::{
    KEYRING_FILE, KeyringBackend, KeyringStore, LocalProvider, Revision, Stored, WriteError,
};
use keyward_core::provider::{KeyAlgorithm, KeySpec, ProviderError};
use keyward_core::{Dek, KeyProvider};
use keyward_crds::{ManagedKey, SealedSecret};
use keyward_operator::keyring_secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const KEYRING: &str = "keyward-local-keyring";
pub const ROOT_KEY: &str = "keyward-local-root-key";
/// Concurrent create requests.
pub const CONCURRENCY: usize = 32;

pub fn key_name(i: usize) -> String {
    format!("key-{i:04}")
}

pub fn secret_name(i: usize, j: usize) -> String {
    format!("app-{i:04}-{j:02}")
}

/// Keyring bytes and their revision number.
type Held = Option<(Vec<u8>, u64)>;

/// The keyring kept in memory while the test fills it, then written once.
#[derive(Clone, Default)]
struct MemoryBackend(Arc<Mutex<Held>>);

impl KeyringBackend for MemoryBackend {
    fn location(&self) -> String {
        "memory".into()
    }

    fn load(&self) -> Result<Option<Stored>, ProviderError> {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Ok(held.as_ref().map(|(bytes, revision)| Stored {
            bytes: bytes.clone(),
            revision: Revision(revision.to_string()),
        }))
    }

    fn store(&self, bytes: &[u8], expected: Option<&Revision>) -> Result<(), WriteError> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let current = held.as_ref().map(|(_, r)| Revision(r.to_string()));
        if current.as_ref() != expected {
            return Err(WriteError::Conflict);
        }
        let next = held.as_ref().map_or(1, |(_, r)| r + 1);
        *held = Some((bytes.to_vec(), next));
        Ok(())
    }
}

/// Creates `count` retry-safe: a 429 or 5xx (the API server shedding load)
/// is retried after a pause, and counted.
pub async fn create_all<K>(
    api: &Api<K>,
    objects: Vec<K>,
    throttled: &std::sync::atomic::AtomicU64,
) -> Result<Vec<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    stream::iter(objects)
        .map(|object| async move {
            let mut attempt = 0;
            loop {
                match api.create(&PostParams::default(), &object).await {
                    Err(kube::Error::Api(s))
                        if (s.code == 429 || s.code >= 500) && attempt < 20 =>
                    {
                        throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                    }
                    other => {
                        return other.with_context(|| format!("creating {}", object.name_any()));
                    }
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
}

pub fn managed_keys(count: usize) -> Result<Vec<ManagedKey>> {
    (0..count)
        .map(|i| {
            Ok(serde_json::from_value(json!({
                "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
                "metadata": { "name": key_name(i) },
                "spec": { "provider": { "local": {} }, "state": "Active" },
            }))?)
        })
        .collect()
}

/// The in-memory provider holding the run's keys (the same root key as the
/// cluster's), and key name -> provider key id.
pub struct Keyring {
    pub provider: LocalProvider,
    pub key_ids: BTreeMap<String, String>,
}

/// Creates one provider key per ManagedKey (owner = its uid) in one keyring
/// update, and writes the keyring Secret the operator will open.
pub async fn keyring(client: &Client, ns: &str, keys: &[ManagedKey]) -> Result<Keyring> {
    let root =
        keyring_secret::load_or_create_root_key(client.clone(), ns, ROOT_KEY, KEYRING).await?;
    let memory = MemoryBackend::default();
    let provider = LocalProvider::open_or_initialise(KeyringStore::with_backend(
        Box::new(memory.clone()),
        root,
    ))?;
    let specs: Vec<(String, KeySpec)> = keys
        .iter()
        .map(|key| {
            let spec = KeySpec {
                name: format!("keyward/{ns}/{}", key.name_any()),
                algorithm: KeyAlgorithm::Aes256,
                owner: Some(format!("{ns}/{}", key.name_any())),
                description: None,
            };
            (key.name_any(), spec)
        })
        .collect();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let key_ids = provider.store().update(|ring| {
        specs
            .iter()
            .map(|(name, spec)| Ok((name.clone(), ring.create(spec, now)?.key_id)))
            .collect::<Result<BTreeMap<_, _>, ProviderError>>()
    })?;
    let bytes = memory
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|(bytes, _)| bytes.clone())
        .context("the keyring was not written")?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(KEYRING.into()),
            labels: Some([("app.kubernetes.io/component".into(), "local-keyring".into())].into()),
            ..ObjectMeta::default()
        },
        data: Some([(KEYRING_FILE.to_owned(), ByteString(bytes))].into()),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(Keyring { provider, key_ids })
}

pub fn target(ns: &str, i: usize, j: usize) -> SecretTarget {
    SecretTarget {
        scope: Scope::Namespace,
        namespace: ns.to_owned(),
        secret_name: secret_name(i, j),
        key_ref: key_name(i),
        access: Vec::new(),
    }
}

/// `per_key` SealedSecrets for each key, two items each. Namespace scope
/// binds the DEK wrap to (namespace, key) only, so one DEK wrapped once per
/// key seals all its secrets (each item with a fresh nonce): `keys` provider
/// wraps instead of `keys * per_key`, and every envelope is real.
pub async fn sealed_secrets(
    ns: &str,
    keyring: &Keyring,
    keys: usize,
    per_key: usize,
) -> Result<Vec<SealedSecret>> {
    let mut out = Vec::with_capacity(keys * per_key);
    for i in 0..keys {
        let key_id = &keyring.key_ids[&key_name(i)];
        let dek = Dek::generate();
        let wrapped = keyring
            .provider
            .wrap_dek(key_id, &dek, &target(ns, i, 0).wrap_context())
            .await?;
        for j in 0..per_key {
            let target = target(ns, i, j);
            let mut data = BTreeMap::new();
            for (item, value) in [
                ("username", format!("user-{i}-{j}")),
                ("password", value(i, j)),
            ] {
                let sealed = Envelope::seal_with(
                    target.item(item),
                    &wrapped,
                    &dek,
                    random_nonce(),
                    value.as_bytes(),
                )?;
                data.insert(item.to_owned(), sealed.encode()?);
            }
            out.push(serde_json::from_value(json!({
                "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
                "metadata": { "name": target.secret_name },
                "spec": { "keyRef": { "name": key_name(i) }, "scope": "namespace", "encryptedData": data },
            }))?);
        }
    }
    Ok(out)
}

/// The plaintext of item `password` of secret (i, j).
pub fn value(i: usize, j: usize) -> String {
    format!("s3cret-{i}-{j}-{}", "x".repeat(24))
}

/// Opens secret (i, j) with the run's keyring: the envelopes are real.
pub async fn check_opens(
    ns: &str,
    keyring: &Keyring,
    secret: &SealedSecret,
    i: usize,
    j: usize,
) -> Result<()> {
    let opened = keyward_core::envelope::open_secret(
        &target(ns, i, j),
        &keyring.provider,
        &secret.spec.encrypted_data,
    )
    .await?;
    ensure!(
        opened["password"].expose() == value(i, j).as_bytes(),
        "secret ({i}, {j}) opened to another value"
    );
    Ok(())
}

/// Seconds since `t`, for MEASURE lines.
pub fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}
