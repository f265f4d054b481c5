//! The keyring file: `"KWKR" | 0x01 | nonce[12] | AES-256-GCM(root, json) || tag`.
//! Readers take a shared lock, writers an exclusive one; a write goes to a
//! temporary file that is fsynced and renamed over the old one, then the
//! directory is fsynced, so a crash leaves either the old or the new keyring.

use super::keyring::{FORMAT, Keyring};
use super::root_key::RootKey;
use crate::crypto;
use crate::provider::{ProviderError, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use zeroize::Zeroizing;

pub const KEYRING_FILE: &str = "keyring.kwk";
pub const ROOT_KEY_FILE: &str = "root.key";
const LOCK_FILE: &str = "keyring.lock";
const MAGIC: &[u8; 4] = b"KWKR";
const FILE_VERSION: u8 = 1;

pub struct KeyringStore {
    dir: PathBuf,
    root: RootKey,
}

fn storage(path: &Path, error: impl std::fmt::Display) -> ProviderError {
    ProviderError::Storage(format!("{}: {error}", path.display()))
}

impl KeyringStore {
    pub fn new(dir: &Path, root: RootKey) -> Self {
        KeyringStore {
            dir: dir.to_owned(),
            root,
        }
    }

    pub fn keyring_path(&self) -> PathBuf {
        self.dir.join(KEYRING_FILE)
    }

    pub fn exists(&self) -> bool {
        self.keyring_path().exists()
    }

    /// Writes an empty keyring; refuses if one exists.
    pub fn initialise(&self) -> Result<()> {
        let _lock = self.lock(true)?;
        if self.exists() {
            return Err(ProviderError::InvalidRequest(format!(
                "a keyring already exists at {}; refusing to replace it",
                self.keyring_path().display()
            )));
        }
        self.save(&Keyring::new())
    }

    /// Applies `change` under an exclusive lock and persists the result.
    pub fn update<T>(&self, change: impl FnOnce(&mut Keyring) -> Result<T>) -> Result<T> {
        let _lock = self.lock(true)?;
        let mut ring = self.load()?;
        ring.purge_due(super::now());
        let result = change(&mut ring)?;
        self.save(&ring)?;
        Ok(result)
    }

    /// Runs `view` on the current keyring under a shared lock. Versions whose
    /// deletion is due are already treated as destroyed.
    pub fn read<T>(&self, view: impl FnOnce(&Keyring) -> Result<T>) -> Result<T> {
        let _lock = self.lock(false)?;
        let mut ring = self.load()?;
        ring.purge_due(super::now());
        view(&ring)
    }

    fn lock(&self, exclusive: bool) -> Result<File> {
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
        Ok(file)
    }

    fn load(&self) -> Result<Keyring> {
        let path = self.keyring_path();
        let bytes = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ProviderError::Storage(format!(
                    "no keyring at {}; create one with `keyward local init`",
                    path.display()
                ))
            } else {
                storage(&path, e)
            }
        })?;
        let header = MAGIC.len() + 1;
        if bytes.len() < header + crypto::NONCE_LEN + crypto::TAG_LEN || &bytes[..4] != MAGIC {
            return Err(storage(&path, "not a Keyward keyring file"));
        }
        if bytes[4] != FILE_VERSION {
            return Err(storage(
                &path,
                format!("keyring format {} is newer than this Keyward", bytes[4]),
            ));
        }
        let nonce: [u8; crypto::NONCE_LEN] = bytes[header..header + crypto::NONCE_LEN]
            .try_into()
            .expect("length checked");
        let json = crypto::open(
            self.root.expose(),
            &nonce,
            &bytes[..header],
            &bytes[header + crypto::NONCE_LEN..],
        )
        .map_err(|_| {
            storage(
                &path,
                "cannot decrypt the keyring: wrong root key, or the file was modified",
            )
        })?;
        let ring: Keyring = serde_json::from_slice(&json)
            .map_err(|e| storage(&path, format!("corrupt keyring: {e}")))?;
        if ring.format != FORMAT {
            return Err(storage(
                &path,
                format!("keyring document format {} is not supported", ring.format),
            ));
        }
        Ok(ring)
    }

    fn save(&self, ring: &Keyring) -> Result<()> {
        let path = self.keyring_path();
        let json = Zeroizing::new(serde_json::to_vec(ring).map_err(|e| storage(&path, e))?);
        let mut header = MAGIC.to_vec();
        header.push(FILE_VERSION);
        let nonce = crypto::random_nonce();
        let mut bytes = header.clone();
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&crypto::seal(self.root.expose(), &nonce, &header, &json));

        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let temp = self.dir.join(format!(
            ".{KEYRING_FILE}.{}.{stamp}.tmp",
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temp)?;
            file.write_all(&bytes)?;
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
