//! The embedded `local` provider: a keyring of versioned key-encryption keys
//! in one file, encrypted under a root key. The default, so Keyward works on
//! a bare cluster or a laptop with no KMS.

mod backend;
mod erasure;
mod file_backend;
mod keyring;
mod material;
mod root_key;
mod store;
mod wrap;

pub use backend::{KeyringBackend, LockGuard, Revision, Stored, WriteError};
pub use erasure::erase_when_due;
pub use file_backend::{FileBackend, GENERATION_FILE};
pub use root_key::RootKey;
use store::is_miss;
pub use store::{DEFAULT_CACHE_TTL, KEYRING_FILE, KeyringStore, ROOT_KEY_FILE};

use crate::crypto::signing::ToSign;
use crate::provider::key_record::unix_seconds;
use crate::provider::{
    Claim, DeletionTarget, KeyInfo, KeyProvider, KeySpec, ProviderError, PublicKeyInfo, Result,
    Signature, VerifyingKey, WrapContext, WrappedDek,
};
use crate::secret::Dek;
use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub struct LocalProvider {
    store: Arc<KeyringStore>,
}

impl LocalProvider {
    pub fn new(store: KeyringStore) -> Self {
        LocalProvider {
            store: Arc::new(store),
        }
    }

    /// A fresh keyring in `backend` if it has none yet; an existing one is
    /// kept as it is (several replicas may race to initialise).
    pub fn open_or_initialise(store: KeyringStore) -> Result<Self> {
        match store.initialise() {
            Ok(()) => {}
            Err(ProviderError::InvalidRequest(_)) if store.exists() => {}
            Err(e) => return Err(e),
        }
        Ok(Self::new(store))
    }

    /// Opens `dir/keyring.kwk` with the root key in `dir/root.key`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let root = RootKey::load(&dir.join(ROOT_KEY_FILE))?;
        Ok(Self::new(KeyringStore::new(dir, root)))
    }

    pub fn store(&self) -> &KeyringStore {
        &self.store
    }

    /// [`KeyringStore::erase_due`], off the async threads.
    pub async fn erase_due(&self) -> Result<Option<u64>> {
        self.blocking(KeyringStore::erase_due).await
    }

    /// Runs blocking keyring I/O off the async threads.
    async fn blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&KeyringStore) -> Result<T> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| ProviderError::Storage(format!("keyring task failed: {e}")))?
    }
}

fn now() -> u64 {
    unix_seconds(SystemTime::now())
}

#[async_trait]
impl KeyProvider for LocalProvider {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo> {
        let spec = spec.clone();
        self.blocking(move |store| store.update(|ring| ring.create(&spec, now())))
            .await
    }

    async fn describe_key(&self, key: &str) -> Result<KeyInfo> {
        let key = key.to_owned();
        self.blocking(move |store| store.read(|ring| Ok(ring.find(&key)?.info())))
            .await
    }

    fn keeps_claims(&self, _key_id: &str) -> bool {
        false
    }

    async fn set_owner(&self, key_id: &str, owner: &str, _claim: &Claim) -> Result<()> {
        let (key_id, owner) = (key_id.to_owned(), owner.to_owned());
        self.blocking(move |store| store.update(|ring| ring.set_owner(&key_id, &owner)))
            .await
    }

    async fn rotate_key(&self, key_id: &str) -> Result<KeyInfo> {
        let key_id = key_id.to_owned();
        self.blocking(move |store| store.update(|ring| ring.rotate(&key_id, now())))
            .await
    }

    async fn set_version_enabled(&self, key_id: &str, version: u32, enabled: bool) -> Result<()> {
        let key_id = key_id.to_owned();
        self.blocking(move |store| store.update(|ring| ring.set_enabled(&key_id, version, enabled)))
            .await
    }

    async fn schedule_deletion(
        &self,
        key_id: &str,
        target: DeletionTarget,
        window: Duration,
    ) -> Result<SystemTime> {
        let key_id = key_id.to_owned();
        self.blocking(move |store| {
            store.update(|ring| ring.schedule_deletion(&key_id, target, window, now()))
        })
        .await
    }

    async fn cancel_deletion(&self, key_id: &str, target: DeletionTarget) -> Result<()> {
        let key_id = key_id.to_owned();
        self.blocking(move |store| store.update(|ring| ring.cancel_deletion(&key_id, target)))
            .await
    }

    async fn wrap_dek(&self, key_id: &str, dek: &Dek, context: &WrapContext) -> Result<WrappedDek> {
        let (key_id, dek, context) = (key_id.to_owned(), dek.clone(), context.clone());
        self.blocking(move |store| {
            store.read(|ring| {
                let key = ring.find(&key_id)?;
                let version = key.primary_for_wrap()?;
                wrap::wrap(key, version, &dek, &context)
            })
        })
        .await
    }

    async fn wrap_dek_with_version(
        &self,
        key_id: &str,
        version: u32,
        dek: &Dek,
        context: &WrapContext,
    ) -> Result<WrappedDek> {
        let (key_id, dek, context) = (key_id.to_owned(), dek.clone(), context.clone());
        self.blocking(move |store| {
            // The cluster names `version` primary. A cached keyring that
            // lacks it (a rotation elsewhere) or holds it disabled (the key
            // was resumed since) is stale: the store reloads once.
            let stale = |e: &ProviderError| {
                is_miss(e) || matches!(e, ProviderError::VersionDisabled { .. })
            };
            store.read_reloading_on(
                |ring| {
                    let key = ring.find(&key_id)?;
                    let wrapping = key.version_for_unwrap(version)?;
                    wrap::wrap(key, wrapping, &dek, &context)
                },
                stale,
            )
        })
        .await
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<Dek> {
        let (wrapped, context) = (wrapped.clone(), context.clone());
        self.blocking(move |store| {
            store.read(|ring| {
                let key = ring.find(&wrapped.key_id)?;
                let version = key.version_for_unwrap(wrapped.version)?;
                wrap::unwrap(key, version, &wrapped, &context)
            })
        })
        .await
    }

    async fn public_key(&self, key_id: &str, version: Option<u32>) -> Result<PublicKeyInfo> {
        let key_id = key_id.to_owned();
        self.blocking(move |store| {
            store.read(|ring| {
                let key = ring.find(&key_id)?;
                let version = key.version(version.unwrap_or(key.primary))?;
                Ok(PublicKeyInfo {
                    key_id: key.id.clone(),
                    version: version.version,
                    public_key: wrap::public_key(key, version)?,
                })
            })
        })
        .await
    }

    async fn sign(&self, key_id: &str, version: Option<u32>, input: &ToSign) -> Result<Signature> {
        let (key_id, input) = (key_id.to_owned(), input.clone());
        self.blocking(move |store| {
            // A version the cached keyring lacks (a rotation elsewhere)
            // misses, and the store reloads.
            store.read(|ring| {
                let key = ring.find(&key_id)?;
                let signing = match version {
                    Some(number) => key.version_for_unwrap(number)?,
                    None => key.primary_for_wrap()?,
                };
                wrap::sign(key, signing, &input)
            })
        })
        .await
    }

    async fn verifying_key(&self, key_id: &str, version: Option<u32>) -> Result<VerifyingKey> {
        let key_id = key_id.to_owned();
        self.blocking(move |store| {
            store.read(|ring| {
                let key = ring.find(&key_id)?;
                wrap::verifying_key(key, key.version(version.unwrap_or(key.primary))?)
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod custody_tests;
