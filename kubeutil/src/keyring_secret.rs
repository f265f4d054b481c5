//! The local provider's keyring kept in the API server, so the operator and
//! the webhook (separate pods) share it: Secret `keyward-local-keyring`, data
//! `keyring.kwk` = the already-encrypted keyring bytes, updated with
//! optimistic concurrency on `resourceVersion`. The highest keyring
//! generation written is recorded apart from it, in ConfigMap
//! `<keyring Secret>-generation`, so a keyring copy written back is refused.
//! The root key lives in another Secret ([`crate::root_key_secret`]).

use crate::root_key_secret::{self, Wrapping};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use keyward_core::ProviderError;
use keyward_core::local::{
    KEYRING_FILE, KeyringBackend, KeyringStore, LocalProvider, Revision, RootKey, Stored,
    WriteError,
};
use keyward_core::provider::KeyProvider;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::collections::BTreeMap;
use tokio::runtime::Handle;

/// Why the in-cluster keyring could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),

    #[error("key provider: {0}")]
    Provider(#[from] ProviderError),

    #[error("{0}")]
    Keyring(String),

    #[error("background task failed: {0}")]
    Task(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Label on the keyring's Secrets and ConfigMap, so they are easy to find
/// (and to back up).
pub const COMPONENT_LABEL: (&str, &str) = ("app.kubernetes.io/component", "local-keyring");
/// Item of the generation ConfigMap: the highest generation written.
pub const GENERATION_ITEM: &str = "generation";
/// Tries to raise the recorded generation against concurrent writers.
const RAISE_ATTEMPTS: u32 = 5;

/// The ConfigMap recording the highest generation of keyring Secret `keyring`.
pub fn generation_config_map(keyring: &str) -> String {
    format!("{keyring}-generation")
}

/// A keyring in a Kubernetes Secret. Its calls block: the local provider
/// runs them on tokio's blocking threads, which may wait on the runtime.
pub struct SecretBackend {
    api: Api<Secret>,
    generations: Api<ConfigMap>,
    /// The generation record as last read or written (value and
    /// resourceVersion): a raise tries it first, so each keyring write
    /// costs one request on the record, not a read and a write. A stale
    /// copy only costs a conflict and a read.
    last_record: std::sync::Mutex<Option<(u64, String)>>,
    namespace: String,
    name: String,
    runtime: Handle,
}

impl SecretBackend {
    /// Must be called from within the tokio runtime that will serve it.
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        SecretBackend {
            api: Api::namespaced(client.clone(), namespace),
            generations: Api::namespaced(client, namespace),
            last_record: std::sync::Mutex::new(None),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            runtime: Handle::current(),
        }
    }

    fn storage(&self, error: impl std::fmt::Display) -> ProviderError {
        ProviderError::Storage(format!("{}: {error}", self.location()))
    }

    pub(crate) fn is_conflict(error: &kube::Error) -> bool {
        matches!(error, kube::Error::Api(status) if status.code == 409)
    }

    fn generation_name(&self) -> String {
        generation_config_map(&self.name)
    }

    /// The recorded generation and the ConfigMap's resourceVersion.
    fn recorded_generation(&self) -> Result<Option<(u64, String)>, ProviderError> {
        let name = self.generation_name();
        let found = match self.runtime.block_on(self.generations.get_opt(&name)) {
            Ok(found) => found,
            // RBAC written before this record existed: keep serving, with
            // only this process's memory guarding against a rollback.
            Err(kube::Error::Api(status)) if status.code == 403 => {
                tracing::warn!(
                    configmap = %name,
                    "may not read the keyring's generation record; a keyring written back is only \
                     caught while this process runs: grant get on this ConfigMap (the chart does)"
                );
                return Ok(None);
            }
            Err(e) => return Err(self.storage(format!("ConfigMap {name}: {e}"))),
        };
        let Some(map) = found else {
            return Ok(None);
        };
        let value = map
            .data
            .as_ref()
            .and_then(|data| data.get(GENERATION_ITEM))
            .and_then(|text| text.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                self.storage(format!(
                    "ConfigMap {}/{name} has no numeric `{GENERATION_ITEM}`; restore it, or \
                     delete it to accept the keyring as it is",
                    self.namespace
                ))
            })?;
        let record = (value, map.metadata.resource_version.unwrap_or_default());
        self.remember(Some(record.clone()));
        Ok(Some(record))
    }

    fn remember(&self, record: Option<(u64, String)>) {
        *self.last_record.lock().unwrap_or_else(|e| e.into_inner()) = record;
    }

    fn remembered(&self) -> Option<(u64, String)> {
        self.last_record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Writes the record (creates it when `expected` is `None`) and
    /// remembers the written resourceVersion.
    fn write_generation(&self, generation: u64, expected: Option<String>) -> kube::Result<()> {
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.generation_name()),
                namespace: Some(self.namespace.clone()),
                resource_version: expected.clone(),
                labels: Some(labels()),
                ..ObjectMeta::default()
            },
            data: Some([(GENERATION_ITEM.to_owned(), generation.to_string())].into()),
            ..ConfigMap::default()
        };
        let params = PostParams::default();
        let written = match expected {
            None => self
                .runtime
                .block_on(self.generations.create(&params, &map)),
            Some(_) => self.runtime.block_on(self.generations.replace(
                &self.generation_name(),
                &params,
                &map,
            )),
        };
        let written = written?;
        self.remember(
            written
                .metadata
                .resource_version
                .map(|revision| (generation, revision)),
        );
        Ok(())
    }
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

pub(crate) fn labels() -> BTreeMap<String, String> {
    [(COMPONENT_LABEL.0.to_owned(), COMPONENT_LABEL.1.to_owned())].into()
}

impl KeyringBackend for SecretBackend {
    fn location(&self) -> String {
        format!("Secret {}/{}", self.namespace, self.name)
    }

    fn missing_hint(&self) -> String {
        "the operator creates it on start".into()
    }

    fn accept_older_hint(&self) -> String {
        format!(
            "`kubectl -n {} delete configmap {}`, then restart the operator and the webhook",
            self.namespace,
            self.generation_name()
        )
    }

    fn generation_floor(&self) -> Result<Option<u64>, ProviderError> {
        Ok(self
            .recorded_generation()?
            .map(|(generation, _)| generation))
    }

    /// Compare-and-swap on the ConfigMap's resourceVersion: a concurrent
    /// raise to a higher value wins, a lower one is never written.
    fn raise_generation_floor(&self, generation: u64) -> Result<(), ProviderError> {
        match self.remembered() {
            // The record only grows (deleting it to accept an older keyring
            // is followed by a restart).
            Some((recorded, _)) if recorded >= generation => return Ok(()),
            Some((_, revision)) => match self.write_generation(generation, Some(revision)) {
                Ok(()) => return Ok(()),
                // Another writer (or `keyward restore`) changed or removed
                // it: read it below.
                Err(e) if Self::is_conflict(&e) || is_not_found(&e) => self.remember(None),
                Err(e) => {
                    return Err(self.storage(format!("ConfigMap {}: {e}", self.generation_name())));
                }
            },
            None => {}
        }
        for _ in 0..RAISE_ATTEMPTS {
            let expected = match self.recorded_generation()? {
                Some((recorded, _)) if recorded >= generation => return Ok(()),
                Some((_, revision)) => Some(revision),
                None => None,
            };
            match self.write_generation(generation, expected) {
                Ok(()) => return Ok(()),
                Err(e) if Self::is_conflict(&e) => continue,
                Err(e) => {
                    return Err(self.storage(format!("ConfigMap {}: {e}", self.generation_name())));
                }
            }
        }
        Err(self.storage(format!(
            "ConfigMap {} kept changing; the generation is recorded at the next write",
            self.generation_name()
        )))
    }

    fn load(&self) -> Result<Option<Stored>, ProviderError> {
        let secret = self
            .runtime
            .block_on(self.api.get_opt(&self.name))
            .map_err(|e| self.storage(e))?;
        let Some(secret) = secret else {
            return Ok(None);
        };
        let revision = secret
            .metadata
            .resource_version
            .clone()
            .ok_or_else(|| self.storage("the Secret has no resourceVersion"))?;
        let bytes = secret
            .data
            .and_then(|mut data| data.remove(KEYRING_FILE))
            .ok_or_else(|| {
                self.storage(format!(
                    "the Secret has no `{KEYRING_FILE}` item; delete it so the operator recreates it"
                ))
            })?;
        Ok(Some(Stored {
            bytes: bytes.0,
            revision: Revision(revision),
        }))
    }

    fn store(&self, bytes: &[u8], expected: Option<&Revision>) -> Result<(), WriteError> {
        self.store_revision(bytes, expected).map(drop)
    }

    /// The revision is the written Secret's `resourceVersion`, so the store
    /// keeps its copy without reading the Secret back.
    fn store_revision(
        &self,
        bytes: &[u8],
        expected: Option<&Revision>,
    ) -> Result<Option<Revision>, WriteError> {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                resource_version: expected.map(|r| r.0.clone()),
                labels: Some(labels()),
                ..ObjectMeta::default()
            },
            data: Some([(KEYRING_FILE.to_owned(), ByteString(bytes.to_vec()))].into()),
            type_: Some("Opaque".into()),
            ..Secret::default()
        };
        let params = PostParams::default();
        let written = match expected {
            None => self.runtime.block_on(self.api.create(&params, &secret)),
            Some(_) => self
                .runtime
                .block_on(self.api.replace(&self.name, &params, &secret)),
        };
        match written {
            Ok(secret) => Ok(secret.metadata.resource_version.map(Revision)),
            Err(e) if Self::is_conflict(&e) => Err(WriteError::Conflict),
            // Replacing a Secret someone deleted: the revision we hold is gone.
            Err(kube::Error::Api(status)) if status.code == 404 => Err(WriteError::Conflict),
            Err(e) => Err(WriteError::Storage(self.storage(e))),
        }
    }
}

/// The in-cluster keyring's Secrets, and what wraps its root key.
#[derive(Clone, Copy)]
pub struct Location<'a> {
    pub namespace: &'a str,
    pub keyring_secret: &'a str,
    pub root_key_secret: &'a str,
    pub wrapping: Option<Wrapping<'a>>,
}

/// The local provider over the in-cluster keyring, for the operator:
/// creates the root key and an empty keyring on first start.
pub async fn local_provider_at(client: Client, at: Location<'_>) -> Result<LocalProvider> {
    let root = root_key_secret::load_or_create(
        client.clone(),
        at.namespace,
        at.root_key_secret,
        at.keyring_secret,
        at.wrapping,
    )
    .await?;
    let backend = SecretBackend::new(client, at.namespace, at.keyring_secret);
    let store = KeyringStore::with_backend(Box::new(backend), root);
    tokio::task::spawn_blocking(move || LocalProvider::open_or_initialise(store))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .map_err(Error::from)
}

/// The local provider over an existing in-cluster keyring, for the
/// webhook: nothing is created or initialised.
pub async fn open_local_provider_at(client: Client, at: Location<'_>) -> Result<LocalProvider> {
    let root = root_key_secret::load(
        client.clone(),
        at.namespace,
        at.root_key_secret,
        at.wrapping,
    )
    .await?;
    let backend = SecretBackend::new(client, at.namespace, at.keyring_secret);
    Ok(LocalProvider::new(KeyringStore::with_backend(
        Box::new(backend),
        root,
    )))
}

/// [`local_provider_at`] with a root key in the clear.
pub async fn local_provider(
    client: Client,
    namespace: &str,
    keyring_secret: &str,
    root_key_secret: &str,
) -> Result<LocalProvider> {
    local_provider_at(
        client,
        Location::clear(namespace, keyring_secret, root_key_secret),
    )
    .await
}

/// [`open_local_provider_at`] with a root key in the clear.
pub async fn open_local_provider(
    client: Client,
    namespace: &str,
    keyring_secret: &str,
    root_key_secret: &str,
) -> Result<LocalProvider> {
    open_local_provider_at(
        client,
        Location::clear(namespace, keyring_secret, root_key_secret),
    )
    .await
}

/// The clear root key for `keyring_secret`, created if neither it nor
/// the keyring exists.
pub async fn load_or_create_root_key(
    client: Client,
    namespace: &str,
    name: &str,
    keyring_secret: &str,
) -> Result<RootKey> {
    root_key_secret::load_or_create(client, namespace, name, keyring_secret, None).await
}

impl<'a> Location<'a> {
    pub fn clear(namespace: &'a str, keyring_secret: &'a str, root_key_secret: &'a str) -> Self {
        Location {
            namespace,
            keyring_secret,
            root_key_secret,
            wrapping: None,
        }
    }

    /// The root key wrapped by `key_id` at `provider` (`--root-key-wrapping-key`),
    /// or in the clear when that is unset.
    pub fn wrapped_by(self, key_id: Option<&'a str>, provider: &'a dyn KeyProvider) -> Self {
        Location {
            wrapping: key_id.map(|key_id| Wrapping { key_id, provider }),
            ..self
        }
    }
}
