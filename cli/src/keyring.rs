//! Where the local keyring lives, and the public-key file `seal --cert` reads.

use anyhow::{Context, Result, anyhow, bail};
use keyward_core::crypto::{self, RsaPublicKey};
use keyward_core::envelope::PublicSealingKey;
use keyward_core::local::LocalProvider;
use keyward_core::provider::{KeyInfo, KeyProvider};
use std::path::{Path, PathBuf};

/// `--keyring`, else `$XDG_CONFIG_HOME/keyward/keyring`, else `~/.config/keyward/keyring`.
pub fn keyring_dir(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_owned());
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .ok_or_else(|| {
            anyhow!("no keyring directory: pass --keyring DIR or set KEYWARD_KEYRING")
        })?;
    Ok(config.join("keyward").join("keyring"))
}

/// The keyring's provider and its directory (where the audit log lives).
pub fn open(flag: Option<&Path>) -> Result<(LocalProvider, PathBuf)> {
    let dir = keyring_dir(flag)?;
    Ok((LocalProvider::open_dir(&dir)?, dir))
}

/// A ManagedKey reference made canonical: always `namespace/name`.
pub fn canonical_key_ref(key: &str, namespace: &str) -> Result<String> {
    let (key_namespace, name) = match key.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (namespace, key),
    };
    if key_namespace.is_empty() || name.is_empty() || name.contains('/') {
        bail!("key `{key}` is not NAME or NAMESPACE/NAME");
    }
    Ok(format!("{key_namespace}/{name}"))
}

/// Finds the keyring key for a reference: by `namespace/name` first, then by
/// its bare name (a laptop keyring has no namespaces).
pub async fn find_key(provider: &LocalProvider, key_ref: &str) -> Result<KeyInfo> {
    if let Ok(info) = provider.describe_key(key_ref).await {
        return Ok(info);
    }
    let name = key_ref.rsplit('/').next().unwrap_or(key_ref);
    provider.describe_key(name).await.with_context(|| {
        format!("key `{key_ref}` is not in the local keyring; list keys with `keyward local list`")
    })
}

const KEY_LINE: &str = "keyward-key:";
const VERSION_LINE: &str = "keyward-key-version:";
const KEY_ID_LINE: &str = "keyward-provider-key-id:";

/// PEM with Keyward's header lines before it; `openssl` ignores them.
pub fn public_key_file(key_name: &str, public: &PublicSealingKey) -> String {
    format!(
        "{KEY_LINE} {key_name}\n{VERSION_LINE} {}\n{KEY_ID_LINE} {}\n{}",
        public.key_version,
        public.provider_key_id,
        crypto::public_key_to_pem(&public.key)
    )
}

/// Reads a public-key file; returns the key and the key name it names, if any.
pub fn read_public_key_file(path: &Path) -> Result<(PublicSealingKey, Option<String>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read public key file {}", path.display()))?;
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(|value| value.trim().to_owned())
    };
    let missing = |prefix: &str| {
        anyhow!(
            "{} has no `{prefix}` line; export the key with `keyward local public-key KEY > FILE`",
            path.display()
        )
    };
    let key_version: u32 = field(VERSION_LINE)
        .ok_or_else(|| missing(VERSION_LINE))?
        .parse()
        .with_context(|| format!("{}: `{VERSION_LINE}` is not a number", path.display()))?;
    let provider_key_id = field(KEY_ID_LINE).ok_or_else(|| missing(KEY_ID_LINE))?;
    let key: RsaPublicKey = crypto::public_key_from_pem(&text)
        .with_context(|| format!("{} does not hold a usable RSA public key", path.display()))?;
    Ok((
        PublicSealingKey {
            key,
            key_version,
            provider_key_id,
        },
        field(KEY_LINE),
    ))
}
