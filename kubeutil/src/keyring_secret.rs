//! The local provider's keyring kept in the API server, so the operator and
//! the webhook (separate pods) share it: Secret `keyward-local-keyring`, data
//! `keyring.kwk` = the already-encrypted keyring bytes, updated with
//! optimistic concurrency on `resourceVersion`. The root key lives in
//! another Secret, created once and never overwritten.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use keyward_core::ProviderError;
use keyward_core::local::{
    KEYRING_FILE, KeyringBackend, KeyringStore, LocalProvider, Revision, RootKey, Stored,
    WriteError,
};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::collections::BTreeMap;
use tokio::runtime::Handle;
use zeroize::{Zeroize, Zeroizing};

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

/// Data key of the root-key Secret: the 32 raw key bytes.
pub const ROOT_KEY_ITEM: &str = "root.key";
/// Label on both Secrets, so they are easy to find (and to back up).
const COMPONENT_LABEL: (&str, &str) = ("app.kubernetes.io/component", "local-keyring");

/// A keyring in a Kubernetes Secret. Its calls block: the local provider
/// runs them on tokio's blocking threads, which may wait on the runtime.
pub struct SecretBackend {
    api: Api<Secret>,
    namespace: String,
    name: String,
    runtime: Handle,
}

impl SecretBackend {
    /// Must be called from within the tokio runtime that will serve it.
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        SecretBackend {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            runtime: Handle::current(),
        }
    }

    fn storage(&self, error: impl std::fmt::Display) -> ProviderError {
        ProviderError::Storage(format!("{}: {error}", self.location()))
    }

    fn is_conflict(error: &kube::Error) -> bool {
        matches!(error, kube::Error::Api(status) if status.code == 409)
    }
}

fn labels() -> BTreeMap<String, String> {
    [(COMPONENT_LABEL.0.to_owned(), COMPONENT_LABEL.1.to_owned())].into()
}

impl KeyringBackend for SecretBackend {
    fn location(&self) -> String {
        format!("Secret {}/{}", self.namespace, self.name)
    }

    fn missing_hint(&self) -> String {
        "the operator creates it on start".into()
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

/// Reads the root key from its Secret, creating the Secret with a fresh key
/// if it does not exist. An existing key is never replaced: losing it loses
/// every key in the keyring.
pub async fn load_or_create_root_key(
    client: Client,
    namespace: &str,
    name: &str,
) -> Result<RootKey> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    if let Some(secret) = api.get_opt(name).await? {
        return root_key_from(secret, namespace, name);
    }
    let mut key = Zeroizing::new(vec![0u8; 32]);
    keyward_core::crypto::fill_random(&mut key);
    let mut secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels()),
            annotations: Some(
                [(
                    "keyward.io/warning".to_owned(),
                    "back this up; without it the local keyring cannot be opened".to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        data: Some([(ROOT_KEY_ITEM.to_owned(), ByteString(key.to_vec()))].into()),
        immutable: Some(true),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    let created = api.create(&PostParams::default(), &secret).await;
    wipe(&mut secret);
    match created {
        Ok(mut created) => {
            wipe(&mut created);
            tracing::info!(
                namespace,
                name,
                "created the local provider's root key Secret"
            );
            RootKey::from_bytes(&key).map_err(Error::from)
        }
        // Another replica created it first: use theirs.
        Err(e) if SecretBackend::is_conflict(&e) => {
            let secret = api.get(name).await?;
            root_key_from(secret, namespace, name)
        }
        Err(e) => Err(e.into()),
    }
}

fn root_key_from(mut secret: Secret, namespace: &str, name: &str) -> Result<RootKey> {
    let key = match secret
        .data
        .as_ref()
        .and_then(|data| data.get(ROOT_KEY_ITEM))
    {
        Some(bytes) => RootKey::from_bytes(&bytes.0)
            .map_err(|e| Error::Keyring(format!("Secret {namespace}/{name}: {e}"))),
        None => Err(Error::Keyring(format!(
            "Secret {namespace}/{name} has no `{ROOT_KEY_ITEM}` item; restore it from backup"
        ))),
    };
    wipe(&mut secret);
    key
}

/// Wipes the data of a root-key Secret read or written here before it is
/// freed. The API client's own request and response buffers are beyond
/// reach; this leaves no copy in the objects this process owns.
fn wipe(secret: &mut Secret) {
    for value in secret.data.iter_mut().flat_map(|data| data.values_mut()) {
        value.0.zeroize();
    }
}

/// The local provider over the in-cluster keyring, initialising an empty
/// keyring on first start.
pub async fn local_provider(
    client: Client,
    namespace: &str,
    keyring_secret: &str,
    root_key_secret: &str,
) -> Result<LocalProvider> {
    let root = load_or_create_root_key(client.clone(), namespace, root_key_secret).await?;
    let backend = SecretBackend::new(client, namespace, keyring_secret);
    let store = KeyringStore::with_backend(Box::new(backend), root);
    tokio::task::spawn_blocking(move || LocalProvider::open_or_initialise(store))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .map_err(Error::from)
}

/// Reads the root key from its Secret without ever creating it: for the
/// webhook, which only decrypts and must not start a keyring of its own.
pub async fn load_root_key(client: Client, namespace: &str, name: &str) -> Result<RootKey> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    match api.get_opt(name).await? {
        Some(secret) => root_key_from(secret, namespace, name),
        None => Err(Error::Keyring(format!(
            "Secret {namespace}/{name} does not exist; the operator creates it on start"
        ))),
    }
}

/// The local provider over an existing in-cluster keyring, read-only in
/// intent: nothing is created or initialised.
pub async fn open_local_provider(
    client: Client,
    namespace: &str,
    keyring_secret: &str,
    root_key_secret: &str,
) -> Result<LocalProvider> {
    let root = load_root_key(client.clone(), namespace, root_key_secret).await?;
    let backend = SecretBackend::new(client, namespace, keyring_secret);
    Ok(LocalProvider::new(KeyringStore::with_backend(
        Box::new(backend),
        root,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_key_secret(bytes: &[u8]) -> Secret {
        Secret {
            data: Some([(ROOT_KEY_ITEM.to_owned(), ByteString(bytes.to_vec()))].into()),
            ..Secret::default()
        }
    }

    /// `Vec::zeroize` zeroes the whole allocation and then empties it.
    #[test]
    fn wiping_empties_every_item_in_place() {
        let mut secret = root_key_secret(&[0xAB; 32]);
        wipe(&mut secret);
        let item = &secret.data.unwrap()[ROOT_KEY_ITEM].0;
        assert!(item.is_empty() && item.capacity() == 32);
    }

    #[test]
    fn a_root_key_is_read_from_its_item_and_a_missing_one_named() {
        let key = root_key_from(root_key_secret(&[7; 32]), "ns", "root").unwrap();
        assert_eq!(format!("{key:?}"), "RootKey(<redacted>)");
        let error = root_key_from(Secret::default(), "ns", "root").unwrap_err();
        assert!(
            error.to_string().contains("restore it from backup"),
            "{error}"
        );
        let error = root_key_from(root_key_secret(&[7; 31]), "ns", "root").unwrap_err();
        assert!(error.to_string().contains("32 bytes"), "{error}");
    }
}
