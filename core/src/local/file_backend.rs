//! The keyring as a file. Readers take a shared lock, writers an exclusive
//! one; a write goes to a temporary file that is fsynced and renamed over the
//! old one, then the directory is fsynced, so a crash leaves either the old
//! or the new keyring.

use super::backend::{KeyringBackend, LockGuard, Revision, Stored, WriteError};
use crate::crypto;
use crate::provider::ProviderError;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub const KEYRING_FILE: &str = "keyring.kwk";
const LOCK_FILE: &str = "keyring.lock";
/// The highest keyring generation written, in decimal: see
/// [`KeyringBackend::generation_floor`].
pub const GENERATION_FILE: &str = "keyring.generation";

pub struct FileBackend {
    dir: PathBuf,
}

fn storage(path: &Path, error: impl std::fmt::Display) -> ProviderError {
    ProviderError::Storage(format!("{}: {error}", path.display()))
}

fn revision_of(bytes: &[u8]) -> Revision {
    Revision(
        crypto::sha256(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

impl FileBackend {
    pub fn new(dir: &Path) -> Self {
        FileBackend {
            dir: dir.to_owned(),
        }
    }

    pub fn keyring_path(&self) -> PathBuf {
        self.dir.join(KEYRING_FILE)
    }

    fn write_atomically(&self, bytes: &[u8]) -> Result<(), ProviderError> {
        self.replace_file(KEYRING_FILE, bytes)
    }

    /// Writes `dir/name` through a temporary file renamed over it.
    fn replace_file(&self, name: &str, bytes: &[u8]) -> Result<(), ProviderError> {
        let path = self.dir.join(name);
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let temp = self
            .dir
            .join(format!(".{name}.{}.{stamp}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            storage(&path, e)
        })
    }
}

impl KeyringBackend for FileBackend {
    fn location(&self) -> String {
        self.keyring_path().display().to_string()
    }

    fn load(&self) -> Result<Option<Stored>, ProviderError> {
        let path = self.keyring_path();
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(Stored {
                revision: revision_of(&bytes),
                bytes,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(storage(&path, e)),
        }
    }

    /// Callers hold the exclusive lock, so the check and the rename cannot
    /// interleave with another writer that also locks.
    fn store(&self, bytes: &[u8], expected: Option<&Revision>) -> Result<(), WriteError> {
        let current = self.load()?.map(|stored| stored.revision);
        if current.as_ref() != expected {
            return Err(WriteError::Conflict);
        }
        Ok(self.write_atomically(bytes)?)
    }

    fn store_revision(
        &self,
        bytes: &[u8],
        expected: Option<&Revision>,
    ) -> Result<Option<Revision>, WriteError> {
        self.store(bytes, expected)?;
        Ok(Some(revision_of(bytes)))
    }

    fn accept_older_hint(&self) -> String {
        format!("delete {}", self.dir.join(GENERATION_FILE).display())
    }

    fn generation_floor(&self) -> Result<Option<u64>, ProviderError> {
        let path = self.dir.join(GENERATION_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map(Some).map_err(|_| {
                storage(
                    &path,
                    "not a generation number; restore it, or delete it to accept the keyring as it is",
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(storage(&path, e)),
        }
    }

    /// Writers hold the exclusive lock, so read-compare-write is safe here.
    fn raise_generation_floor(&self, generation: u64) -> Result<(), ProviderError> {
        if self
            .generation_floor()?
            .is_some_and(|floor| floor >= generation)
        {
            return Ok(());
        }
        self.replace_file(GENERATION_FILE, format!("{generation}\n").as_bytes())
    }

    fn lock(&self, exclusive: bool) -> Result<LockGuard, ProviderError> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| storage(&path, e))?;
        let locked = if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        };
        locked.map_err(|e| storage(&path, e))?;
        Ok(Box::new(file))
    }
}
