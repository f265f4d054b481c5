//! The keyring codec and its read-modify-write loop:
//! `"KWKR" | 0x01 | nonce[12] | AES-256-GCM(root, json) || tag`, kept by a
//! [`KeyringBackend`] (a file by default). A write that loses a race with
//! another writer is retried on the freshly loaded keyring.

use super::backend::{KeyringBackend, Revision, WriteError};
use super::file_backend::FileBackend;
use super::keyring::{FORMAT, Keyring};
use super::root_key::RootKey;
use crate::crypto;
use crate::provider::{ProviderError, Result};
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

pub use super::file_backend::KEYRING_FILE;
pub const ROOT_KEY_FILE: &str = "root.key";
const MAGIC: &[u8; 4] = b"KWKR";
const FILE_VERSION: u8 = 1;
/// Attempts of one update before giving up on a busy keyring.
const MAX_ATTEMPTS: u32 = 16;

pub struct KeyringStore {
    backend: Box<dyn KeyringBackend>,
    root: RootKey,
}

impl KeyringStore {
    /// The keyring file `dir/keyring.kwk`.
    pub fn new(dir: &Path, root: RootKey) -> Self {
        Self::with_backend(Box::new(FileBackend::new(dir)), root)
    }

    /// A keyring kept anywhere (for example a Kubernetes Secret).
    pub fn with_backend(backend: Box<dyn KeyringBackend>, root: RootKey) -> Self {
        KeyringStore { backend, root }
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    pub fn exists(&self) -> bool {
        matches!(self.backend.load(), Ok(Some(_)))
    }

    fn storage(&self, error: impl std::fmt::Display) -> ProviderError {
        ProviderError::Storage(format!("{}: {error}", self.backend.location()))
    }

    /// Writes an empty keyring; refuses if one exists.
    pub fn initialise(&self) -> Result<()> {
        let _lock = self.backend.lock(true)?;
        let refuse = || {
            ProviderError::InvalidRequest(format!(
                "a keyring already exists at {}; refusing to replace it",
                self.backend.location()
            ))
        };
        if self.backend.load()?.is_some() {
            return Err(refuse());
        }
        match self.backend.store(&self.encode(&Keyring::new())?, None) {
            Ok(()) => Ok(()),
            Err(WriteError::Conflict) => Err(refuse()),
            Err(WriteError::Storage(e)) => Err(e),
        }
    }

    /// Applies `change` to the current keyring and persists the result. If
    /// another writer got there first, `change` runs again on its keyring.
    pub fn update<T>(&self, mut change: impl FnMut(&mut Keyring) -> Result<T>) -> Result<T> {
        for attempt in 1..=MAX_ATTEMPTS {
            let _lock = self.backend.lock(true)?;
            let (mut ring, revision) = self.load()?;
            ring.purge_due(super::now());
            let result = change(&mut ring)?;
            match self.backend.store(&self.encode(&ring)?, Some(&revision)) {
                Ok(()) => return Ok(result),
                Err(WriteError::Storage(e)) => return Err(e),
                Err(WriteError::Conflict) => {
                    drop(_lock);
                    std::thread::sleep(backoff(attempt));
                }
            }
        }
        Err(self.storage(format!(
            "the keyring kept changing underneath {MAX_ATTEMPTS} attempts to update it; retry later"
        )))
    }

    /// Runs `view` on the current keyring. Versions whose deletion is due
    /// are already treated as destroyed.
    pub fn read<T>(&self, view: impl FnOnce(&Keyring) -> Result<T>) -> Result<T> {
        let _lock = self.backend.lock(false)?;
        let (mut ring, _) = self.load()?;
        ring.purge_due(super::now());
        view(&ring)
    }

    fn load(&self) -> Result<(Keyring, Revision)> {
        let stored = self.backend.load()?.ok_or_else(|| {
            ProviderError::Storage(format!(
                "no keyring at {}; {}",
                self.backend.location(),
                self.backend.missing_hint()
            ))
        })?;
        Ok((self.decode(&stored.bytes)?, stored.revision))
    }

    fn decode(&self, bytes: &[u8]) -> Result<Keyring> {
        let header = MAGIC.len() + 1;
        if bytes.len() < header + crypto::NONCE_LEN + crypto::TAG_LEN || &bytes[..4] != MAGIC {
            return Err(self.storage("not a Keyward keyring file"));
        }
        if bytes[4] != FILE_VERSION {
            return Err(self.storage(format!(
                "keyring format {} is newer than this Keyward",
                bytes[4]
            )));
        }
        let nonce: [u8; crypto::NONCE_LEN] =
            bytes[header..header + crypto::NONCE_LEN]
                .try_into()
                .map_err(|_| self.storage("not a Keyward keyring file"))?;
        let json = crypto::open(
            self.root.expose(),
            &nonce,
            &bytes[..header],
            &bytes[header + crypto::NONCE_LEN..],
        )
        .map_err(|_| {
            self.storage("cannot decrypt the keyring: wrong root key, or the file was modified")
        })?;
        let ring: Keyring = serde_json::from_slice(&json)
            .map_err(|e| self.storage(format!("corrupt keyring: {e}")))?;
        if ring.format != FORMAT {
            return Err(self.storage(format!(
                "keyring document format {} is not supported",
                ring.format
            )));
        }
        Ok(ring)
    }

    fn encode(&self, ring: &Keyring) -> Result<Vec<u8>> {
        let json = Zeroizing::new(serde_json::to_vec(ring).map_err(|e| self.storage(e))?);
        let mut header = MAGIC.to_vec();
        header.push(FILE_VERSION);
        let nonce = crypto::random_nonce();
        let mut bytes = header.clone();
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&crypto::seal(self.root.expose(), &nonce, &header, &json));
        Ok(bytes)
    }
}

/// 5, 10, 20 ... ms, capped at 320 ms, plus up to 50% jitter so racing
/// writers spread out.
fn backoff(attempt: u32) -> Duration {
    let base = 5u64 << attempt.min(6);
    let mut jitter = [0u8; 1];
    crypto::fill_random(&mut jitter);
    Duration::from_millis(base + base * u64::from(jitter[0]) / 512)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::backend::Stored;
    use crate::provider::{KeyAlgorithm, KeySpec};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    /// An optimistic in-memory backend whose next `conflicts` writes lose a
    /// race, the way a Kubernetes Secret update with a stale resourceVersion does.
    #[derive(Default)]
    struct Racy {
        data: Mutex<Option<(Vec<u8>, u64)>>,
        conflicts: AtomicU32,
    }

    impl KeyringBackend for Arc<Racy> {
        fn location(&self) -> String {
            "memory".into()
        }
        fn load(&self) -> Result<Option<Stored>> {
            Ok(self.data.lock().unwrap().as_ref().map(|(b, r)| Stored {
                bytes: b.clone(),
                revision: Revision(r.to_string()),
            }))
        }
        fn store(&self, bytes: &[u8], expected: Option<&Revision>) -> Result<(), WriteError> {
            let mut data = self.data.lock().unwrap();
            let current = data.as_ref().map(|(_, r)| Revision(r.to_string()));
            if current.as_ref() != expected {
                return Err(WriteError::Conflict);
            }
            let next = data.as_ref().map_or(1, |(_, r)| r + 1);
            if self.conflicts.load(Ordering::SeqCst) > 0 {
                self.conflicts.fetch_sub(1, Ordering::SeqCst);
                // Another writer stored first: same bytes, newer revision.
                let old = data.take().map(|(b, _)| b).unwrap_or_default();
                *data = Some((old, next));
                return Err(WriteError::Conflict);
            }
            *data = Some((bytes.to_vec(), next));
            Ok(())
        }
    }

    #[test]
    fn a_lost_race_reapplies_the_change_on_the_reloaded_keyring() {
        let racy = Arc::new(Racy::default());
        let store = KeyringStore::with_backend(Box::new(Arc::clone(&racy)), RootKey::generate());
        store.initialise().unwrap();
        assert!(store.initialise().is_err(), "initialise never replaces");
        racy.conflicts.store(2, Ordering::SeqCst);
        let spec = KeySpec {
            name: "a".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: Some("uid".into()),
            description: None,
        };
        let mut runs = 0;
        store
            .update(|ring| {
                runs += 1;
                ring.create(&spec, 0)
            })
            .unwrap();
        assert_eq!(runs, 3, "two conflicts, then the write lands");
        assert_eq!(store.read(|r| Ok(r.keys.len())).unwrap(), 1);
    }

    #[test]
    fn a_keyring_that_never_stops_changing_is_an_error_not_a_hang() {
        let racy = Arc::new(Racy::default());
        let store = KeyringStore::with_backend(Box::new(Arc::clone(&racy)), RootKey::generate());
        store.initialise().unwrap();
        racy.conflicts.store(u32::MAX, Ordering::SeqCst);
        let error = store.update(|_| Ok(())).unwrap_err();
        assert!(error.to_string().contains("retry later"), "{error}");
    }
}
