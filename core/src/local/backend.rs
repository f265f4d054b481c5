//! Where the encrypted keyring bytes live. The store encrypts and decrypts;
//! a backend only keeps opaque bytes and says which revision it holds, so
//! the same keyring works from a file (CLI, laptop) or from a Kubernetes
//! Secret (operator and webhook in separate pods).

use crate::provider::ProviderError;
use std::fmt;

/// An opaque token naming one stored version of the keyring (a content hash
/// for files, a `resourceVersion` for Kubernetes Secrets).
#[derive(Clone, PartialEq, Eq)]
pub struct Revision(pub String);

impl fmt::Debug for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Revision({})", self.0)
    }
}

/// The keyring bytes as stored, with the revision they were read at.
pub struct Stored {
    pub bytes: Vec<u8>,
    pub revision: Revision,
}

/// Why a write did not happen.
#[derive(Debug)]
pub enum WriteError {
    /// Someone else wrote first (or the keyring exists/vanished unexpectedly):
    /// reload, re-apply the change and try again.
    Conflict,
    Storage(ProviderError),
}

impl From<ProviderError> for WriteError {
    fn from(error: ProviderError) -> Self {
        WriteError::Storage(error)
    }
}

/// Held while a read-modify-write is in progress; dropping it releases
/// whatever the backend locked (nothing, for optimistic backends).
pub type LockGuard = Box<dyn Send>;

/// Storage for the encrypted keyring. Calls are blocking; the provider runs
/// them on tokio's blocking threads.
pub trait KeyringBackend: Send + Sync {
    /// Where the keyring is, for messages (`/path/keyring.kwk`, `Secret ns/name`).
    fn location(&self) -> String;

    /// What to tell a user when there is no keyring yet.
    fn missing_hint(&self) -> String {
        "create one with `keyward local init`".into()
    }

    /// The current bytes and their revision, or `None` if no keyring exists.
    fn load(&self) -> Result<Option<Stored>, ProviderError>;

    /// Writes `bytes` if the stored revision is still `expected` (`None`:
    /// only if no keyring exists yet); otherwise [`WriteError::Conflict`].
    fn store(&self, bytes: &[u8], expected: Option<&Revision>) -> Result<(), WriteError>;

    /// [`store`](Self::store), also saying which revision the keyring has
    /// after the write, if the backend knows it: the store then keeps what
    /// it wrote as its cached copy and needs no read before its next write.
    /// `None` (the default) makes the next write read the keyring first.
    fn store_revision(
        &self,
        bytes: &[u8],
        expected: Option<&Revision>,
    ) -> Result<Option<Revision>, WriteError> {
        self.store(bytes, expected).map(|()| None)
    }

    /// The highest keyring generation written so far, kept apart from the
    /// keyring so that writing back an older copy of it is noticed. `None`:
    /// nothing recorded yet, or this backend keeps no record (the store
    /// then only remembers what it saw while it runs).
    fn generation_floor(&self) -> Result<Option<u64>, ProviderError> {
        Ok(None)
    }

    /// How an operator accepts an older keyring on purpose (a restore).
    fn accept_older_hint(&self) -> String {
        "delete the recorded generation, then restart".into()
    }

    /// Records that `generation` was written; a lower one never replaces a
    /// higher one. Called after the keyring itself was written.
    fn raise_generation_floor(&self, _generation: u64) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Pessimistic backends (files) lock here; optimistic ones return a no-op
    /// guard and rely on [`WriteError::Conflict`].
    fn lock(&self, _exclusive: bool) -> Result<LockGuard, ProviderError> {
        Ok(Box::new(()))
    }
}
