//! The local keyring's root key in the API server, in one of two forms:
//!
//! - Secret `<name>`, item `root.key`: the 32 key bytes in the clear. The
//!   default, so a bare cluster works; anyone with this Secret and the
//!   keyring Secret (a copy of etcd, a backup) can open every key.
//! - Secret `<name>-wrapped`, item `root.key.wrapped`: the key wrapped by a
//!   key in a KMS or HSM (`--root-key-wrapping-key`). The Secrets alone then
//!   open nothing: every start asks the KMS or HSM to unwrap it.
//!
//! Both are created immutable and never overwritten. Turning wrapping on
//! wraps the existing key (the keyring stays as it is) and leaves the clear
//! Secret for the administrator to delete once the wrapped one is backed up.

use crate::keyring_secret::{Error, Result, SecretBackend, labels};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use keyward_core::local::RootKey;
use keyward_core::provider::{KeyProvider, WrapAlgorithm, WrapContext, WrappedDek};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// Data key of the clear root-key Secret: the 32 raw key bytes.
pub const ROOT_KEY_ITEM: &str = "root.key";
/// Data key of the wrapped root-key Secret: a [`WrappedRootKey`] as JSON.
pub const WRAPPED_ROOT_KEY_ITEM: &str = "root.key.wrapped";
/// Binds the wrapped root key to its purpose at the KMS or HSM, so no other
/// ciphertext of that key (a data key from an envelope) can stand in for it.
const PURPOSE: (&str, &str) = ("keyward.io/purpose", "local-keyring-root-key");

/// The Secret holding the wrapped form of root-key Secret `name`.
pub fn wrapped_secret_name(name: &str) -> String {
    format!("{name}-wrapped")
}

/// Which KMS or HSM key wraps the root key, and the provider that holds it.
#[derive(Clone, Copy)]
pub struct Wrapping<'a> {
    pub key_id: &'a str,
    pub provider: &'a dyn KeyProvider,
}

/// The stored form of the wrapped root key.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WrappedRootKey {
    key_id: String,
    version: u32,
    algorithm: u8,
    #[serde(with = "base64_bytes")]
    blob: Vec<u8>,
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

fn context() -> WrapContext {
    [(PURPOSE.0.to_owned(), PURPOSE.1.to_owned())].into()
}

/// Where the root key is: the two Secrets of one namespace.
struct Secrets {
    api: Api<Secret>,
    namespace: String,
    name: String,
}

impl Secrets {
    fn new(client: Client, namespace: &str, name: &str) -> Self {
        Secrets {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    fn wrapped_name(&self) -> String {
        wrapped_secret_name(&self.name)
    }

    fn keyring_error(&self, name: &str, message: impl std::fmt::Display) -> Error {
        Error::Keyring(format!("Secret {}/{name}: {message}", self.namespace))
    }

    /// The clear root key, if its Secret exists.
    async fn clear(&self) -> Result<Option<RootKey>> {
        let Some(mut secret) = self.api.get_opt(&self.name).await? else {
            return Ok(None);
        };
        let key = match secret.data.as_ref().and_then(|d| d.get(ROOT_KEY_ITEM)) {
            Some(bytes) => {
                RootKey::from_bytes(&bytes.0).map_err(|e| self.keyring_error(&self.name, e))
            }
            None => Err(self.keyring_error(
                &self.name,
                format!("has no `{ROOT_KEY_ITEM}` item; restore it from backup"),
            )),
        };
        wipe(&mut secret);
        key.map(Some)
    }

    /// The wrapped root key as stored, if its Secret exists.
    async fn wrapped(&self) -> Result<Option<WrappedRootKey>> {
        let name = self.wrapped_name();
        let Some(secret) = self.api.get_opt(&name).await? else {
            return Ok(None);
        };
        let item = secret
            .data
            .as_ref()
            .and_then(|d| d.get(WRAPPED_ROOT_KEY_ITEM))
            .ok_or_else(|| {
                self.keyring_error(
                    &name,
                    format!("has no `{WRAPPED_ROOT_KEY_ITEM}` item; restore it from backup"),
                )
            })?;
        serde_json::from_slice(&item.0)
            .map(Some)
            .map_err(|e| self.keyring_error(&name, format!("`{WRAPPED_ROOT_KEY_ITEM}`: {e}")))
    }

    async fn unwrap(&self, stored: &WrappedRootKey, wrapping: Wrapping<'_>) -> Result<RootKey> {
        let name = self.wrapped_name();
        if stored.key_id != wrapping.key_id {
            return Err(self.keyring_error(
                &name,
                format!(
                    "the root key is wrapped by `{}`, not by the configured `{}`; set \
                     --root-key-wrapping-key (chart: providers.local.rootKeyWrappingKey) to `{}`",
                    stored.key_id, wrapping.key_id, stored.key_id
                ),
            ));
        }
        let algorithm = WrapAlgorithm::from_code(stored.algorithm).ok_or_else(|| {
            self.keyring_error(
                &name,
                format!("unknown wrap algorithm {}", stored.algorithm),
            )
        })?;
        let wrapped = WrappedDek {
            key_id: stored.key_id.clone(),
            version: stored.version,
            algorithm,
            blob: stored.blob.clone(),
        };
        let dek = wrapping
            .provider
            .unwrap_dek(&wrapped, &context())
            .await
            .map_err(|e| {
                self.keyring_error(
                    &name,
                    format!(
                        "`{}` did not unwrap the root key ({e}); the local keyring stays closed \
                         until it does: check that the key exists and is enabled and that this \
                         pod may decrypt with it",
                        stored.key_id
                    ),
                )
            })?;
        Ok(RootKey::from_dek(&dek))
    }

    /// Wraps `root` and stores it in a new, immutable Secret. Another
    /// replica may have done so first: then its key is the one returned.
    async fn store_wrapped(&self, root: RootKey, wrapping: Wrapping<'_>) -> Result<RootKey> {
        let name = self.wrapped_name();
        let wrapped = wrapping
            .provider
            .wrap_dek(wrapping.key_id, &root.to_dek(), &context())
            .await
            .map_err(|e| {
                self.keyring_error(
                    &name,
                    format!("`{}` could not wrap the root key: {e}", wrapping.key_id),
                )
            })?;
        let stored = WrappedRootKey {
            key_id: wrapped.key_id,
            version: wrapped.version,
            algorithm: wrapped.algorithm.code(),
            blob: wrapped.blob,
        };
        // Proven to open before it is stored: a key that wraps but may not
        // unwrap (a one-way key policy) must not leave the keyring closed.
        let reopened = self.unwrap(&stored, wrapping).await?;
        if !reopened.same_as(&root) {
            return Err(self.keyring_error(&name, "the KMS returned a different key on unwrap"));
        }
        let json = serde_json::to_vec(&stored).map_err(|e| Error::Keyring(e.to_string()))?;
        let secret = immutable_secret(&self.namespace, &name, WRAPPED_ROOT_KEY_ITEM, json);
        match self.api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(
                    namespace = %self.namespace,
                    secret = %name,
                    wrapping_key = wrapping.key_id,
                    "stored the local keyring's root key wrapped"
                );
                Ok(root)
            }
            Err(e) if SecretBackend::is_conflict(&e) => match self.wrapped().await? {
                Some(theirs) => self.unwrap(&theirs, wrapping).await,
                None => Err(self.keyring_error(&name, "created and deleted concurrently; retry")),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// A fresh clear root key in a new, immutable Secret (or the one
    /// another replica created first).
    async fn create_clear(&self, root: RootKey) -> Result<RootKey> {
        let mut secret = immutable_secret(
            &self.namespace,
            &self.name,
            ROOT_KEY_ITEM,
            root.to_dek().expose().to_vec(),
        );
        let created = self.api.create(&PostParams::default(), &secret).await;
        wipe(&mut secret);
        match created {
            Ok(mut created) => {
                wipe(&mut created);
                tracing::info!(namespace = %self.namespace, name = %self.name, "created the local provider's root key Secret");
                Ok(root)
            }
            Err(e) if SecretBackend::is_conflict(&e) => self.clear().await?.ok_or_else(|| {
                self.keyring_error(&self.name, "created and deleted concurrently; retry")
            }),
            Err(e) => Err(e.into()),
        }
    }

    fn wrapped_without_wrapping(&self, stored: &WrappedRootKey) -> Error {
        self.keyring_error(
            &self.wrapped_name(),
            format!(
                "the root key is wrapped by `{}`; start with --root-key-wrapping-key={} \
                 (chart: providers.local.rootKeyWrappingKey) and that provider enabled",
                stored.key_id, stored.key_id
            ),
        )
    }

    /// With wrapping: warns while a clear copy is still stored next to the
    /// wrapped one, and refuses two different keys.
    async fn check_clear_copy(&self, root: &RootKey) -> Result<()> {
        match self.clear().await? {
            Some(clear) if !clear.same_as(root) => Err(self.keyring_error(
                &self.name,
                format!(
                    "holds a different root key than {}; keep the one that opens the \
                     keyring and delete the other",
                    self.wrapped_name()
                ),
            )),
            Some(_) => {
                tracing::warn!(
                    namespace = %self.namespace,
                    secret = %self.name,
                    "the root key is wrapped, but its clear copy is still stored: back up the \
                     wrapped Secret, then delete this one (and expire backups that hold it)"
                );
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn immutable_secret(namespace: &str, name: &str, item: &str, bytes: Vec<u8>) -> Secret {
    Secret {
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
        data: Some([(item.to_owned(), ByteString(bytes))].into()),
        immutable: Some(true),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// Wipes the data of a root-key Secret read or written here before it is
/// freed. The API client's own request and response buffers are beyond
/// reach; this leaves no copy in the objects this process owns.
fn wipe(secret: &mut Secret) {
    for value in secret.data.iter_mut().flat_map(|data| data.values_mut()) {
        value.0.zeroize();
    }
}

/// The root key for the operator, which creates what is missing: a fresh
/// key on first start, the wrapped form when wrapping is turned on. An
/// existing key is never replaced: losing it loses every key in the keyring.
///
/// `keyring` names the keyring Secret: while it exists, a missing root key
/// is an error to restore from backup, never a reason to make a new one.
pub async fn load_or_create(
    client: Client,
    namespace: &str,
    name: &str,
    keyring: &str,
    wrapping: Option<Wrapping<'_>>,
) -> Result<RootKey> {
    let secrets = Secrets::new(client, namespace, name);
    let fresh = || async {
        match secrets.api.get_opt(keyring).await? {
            None => Ok(RootKey::generate()),
            Some(_) => Err(secrets.keyring_error(
                name,
                format!(
                    "does not exist, but keyring Secret {keyring} does: restore the root key \
                     Secret from backup (a new root key would not open the keyring)"
                ),
            )),
        }
    };
    match (secrets.wrapped().await?, wrapping) {
        (Some(stored), Some(wrapping)) => {
            let root = secrets.unwrap(&stored, wrapping).await?;
            secrets.check_clear_copy(&root).await?;
            Ok(root)
        }
        (Some(stored), None) => Err(secrets.wrapped_without_wrapping(&stored)),
        (None, Some(wrapping)) => {
            // Wrapping turned on: wrap the key in use, or a fresh one.
            let root = match secrets.clear().await? {
                Some(clear) => clear,
                None => fresh().await?,
            };
            let root = secrets.store_wrapped(root, wrapping).await?;
            secrets.check_clear_copy(&root).await?;
            Ok(root)
        }
        (None, None) => match secrets.clear().await? {
            Some(root) => Ok(root),
            None => secrets.create_clear(fresh().await?).await,
        },
    }
}

/// The root key for the webhook, which only reads: the wrapped form when
/// wrapping is on and the operator has stored it, else the clear one.
pub async fn load(
    client: Client,
    namespace: &str,
    name: &str,
    wrapping: Option<Wrapping<'_>>,
) -> Result<RootKey> {
    let secrets = Secrets::new(client, namespace, name);
    match (secrets.wrapped().await?, wrapping) {
        (Some(stored), Some(wrapping)) => secrets.unwrap(&stored, wrapping).await,
        (Some(stored), None) => Err(secrets.wrapped_without_wrapping(&stored)),
        (None, _) => secrets.clear().await?.ok_or_else(|| {
            secrets.keyring_error(name, "does not exist; the operator creates it on start")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wiping_empties_every_item_in_place() {
        let mut secret = immutable_secret("ns", "root", ROOT_KEY_ITEM, vec![0xAB; 32]);
        wipe(&mut secret);
        let item = &secret.data.unwrap()[ROOT_KEY_ITEM].0;
        assert!(item.is_empty() && item.capacity() == 32);
    }

    #[test]
    fn the_wrapped_form_round_trips_and_names_its_key() {
        let stored = WrappedRootKey {
            key_id: "alias/keyward-root".into(),
            version: 1,
            algorithm: WrapAlgorithm::Symmetric.code(),
            blob: vec![1, 2, 3],
        };
        let json = serde_json::to_string(&stored).unwrap();
        assert_eq!(
            json,
            r#"{"keyId":"alias/keyward-root","version":1,"algorithm":1,"blob":"AQID"}"#
        );
        let back: WrappedRootKey = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (back.key_id.as_str(), back.blob),
            ("alias/keyward-root", vec![1, 2, 3])
        );
        assert_eq!(
            wrapped_secret_name("keyward-local-root-key"),
            "keyward-local-root-key-wrapped"
        );
    }
}
