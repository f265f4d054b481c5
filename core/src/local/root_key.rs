use crate::locked::Locked;
use crate::provider::ProviderError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::fmt;
use std::io::Write;
use std::path::Path;
use zeroize::Zeroizing;

/// The 256-bit key the local keyring file is encrypted under. Stored as one
/// line of base64; in a cluster it comes from a Kubernetes Secret. Held in
/// a locked block of its own, like every key ([`crate::secret`]).
#[derive(Clone)]
pub struct RootKey(Locked<[u8; 32]>);

impl RootKey {
    const WHAT: &str = "the keyring's root key";

    pub fn generate() -> Self {
        let mut key = Locked::zeroed(Self::WHAT);
        crate::crypto::fill_random(key.expose_mut());
        RootKey(key)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProviderError> {
        if bytes.len() != 32 {
            return Err(ProviderError::InvalidRequest(format!(
                "a root key is 32 bytes, this one has {}",
                bytes.len()
            )));
        }
        let mut key = Locked::zeroed(Self::WHAT);
        key.expose_mut().copy_from_slice(bytes);
        Ok(RootKey(key))
    }

    /// Accepts the base64 text written by [`RootKey::save_new`].
    pub fn from_base64(text: &str) -> Result<Self, ProviderError> {
        let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
            ProviderError::InvalidRequest("the root key is not valid base64".into())
        })?);
        Self::from_bytes(&bytes)
    }

    pub fn load(path: &Path) -> Result<Self, ProviderError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                "; create a keyring with `keyward local init`"
            } else {
                ""
            };
            ProviderError::Storage(format!(
                "cannot read root key {}: {e}{hint}",
                path.display()
            ))
        })?);
        refuse_world_readable(path)?;
        Self::from_base64(&text)
            .map_err(|e| ProviderError::Storage(format!("root key {}: {e}", path.display())))
    }

    /// Writes the key to a new file with mode 0600. Never overwrites: losing
    /// a root key loses every key in its keyring.
    pub fn save_new(&self, path: &Path) -> Result<(), ProviderError> {
        let io_error =
            |e: std::io::Error| ProviderError::Storage(format!("{}: {e}", path.display()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                ProviderError::InvalidRequest(format!(
                    "{} already exists; refusing to overwrite a root key",
                    path.display()
                ))
            } else {
                io_error(e)
            }
        })?;
        // Encoded straight into a buffer of the final size: no unwiped copy.
        let mut text = Zeroizing::new(String::with_capacity(45));
        STANDARD.encode_string(self.expose(), &mut text);
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(io_error)?;
        file.sync_all().map_err(io_error)
    }

    /// The key as a data key, for a KMS or HSM to wrap (the root key then
    /// never has to be stored in the clear).
    pub fn to_dek(&self) -> crate::secret::Dek {
        crate::secret::Dek::from_slice(self.expose()).expect("a root key is 32 bytes")
    }

    /// The root key a KMS or HSM unwrapped.
    pub fn from_dek(dek: &crate::secret::Dek) -> Self {
        Self::from_bytes(dek.expose()).expect("a data key is 32 bytes")
    }

    /// Constant-time comparison.
    pub fn same_as(&self, other: &RootKey) -> bool {
        crate::crypto::constant_time_eq(self.expose(), other.expose())
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        self.0.expose()
    }
}

#[cfg(unix)]
fn refuse_world_readable(path: &Path) -> Result<(), ProviderError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| ProviderError::Storage(format!("{}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        return Err(ProviderError::Storage(format!(
            "root key {} is accessible to all users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_world_readable(_: &Path) -> Result<(), ProviderError> {
    Ok(())
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}
