//! Key Vault key names for Keyward key names, and Keyward's tags.

use keyward_core::crypto::sha256;
use keyward_core::provider::{ProviderError, Result};

/// Keyward's version number of a Key Vault key version.
pub const VERSION_TAG: &str = "keyward-version";
/// The Keyward algorithm (`RSA3072`, `ECP256`...) the key was made as.
pub const ALGORITHM_TAG: &str = "keyward-algorithm";
/// The stable owner (idempotent create), on the primary version.
pub const OWNER_TAG: &str = "keyward-owner";
/// The claiming cluster and when it renewed its claim (Unix seconds).
pub const CLUSTER_TAG: &str = "keyward-cluster";
pub const CLAIMED_AT_TAG: &str = "keyward-claimed-at";
/// When a version scheduled for destruction is destroyed (Unix seconds):
/// Keyward-enforced, as Key Vault has no per-version deletion.
pub const DESTROY_AT_TAG: &str = "keyward-destroy-at";

/// Key Vault's longest key name.
const MAX_NAME_LEN: usize = 127;
/// Key Vault's longest tag value.
pub const MAX_TAG_VALUE_LEN: usize = 256;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// Whether `tag` is one of Keyward's own, which user tags may not name.
pub fn is_keywards(tag: &str) -> bool {
    tag.starts_with("keyward-")
}

/// The Key Vault key name for a Keyward key name: the name itself when it
/// fits `[0-9a-zA-Z-]{1,127}`, otherwise the name with other characters
/// replaced by `-`, shortened, plus 8 hex digits of its SHA-256 so that
/// `a/b` and `a-b` do not meet.
pub fn key_name(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(ProviderError::InvalidRequest(
            "a key name cannot be empty".into(),
        ));
    }
    if name.len() <= MAX_NAME_LEN && name.chars().all(is_name_char) {
        return Ok(name.to_owned());
    }
    let digest: String = sha256(name.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cleaned: String = name
        .chars()
        .map(|c| if is_name_char(c) { c } else { '-' })
        .take(MAX_NAME_LEN - digest.len() - 1)
        .collect();
    Ok(format!("{cleaned}-{digest}"))
}

/// The Key Vault key name for a key id (`https://VAULT/keys/NAME[/VERSION]`,
/// which must be in `vault_url`) or a Keyward key name.
pub fn resolve(vault_url: &str, key: &str) -> Result<String> {
    if key.starts_with("https://") {
        let prefix = format!("{}/keys/", vault_url.trim_end_matches('/'));
        let rest = key
            .strip_prefix(&prefix)
            .ok_or_else(|| ProviderError::UnknownKey(key.to_owned()))?;
        let name = rest.split('/').next().unwrap_or_default();
        if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(is_name_char) {
            return Err(ProviderError::UnknownKey(key.to_owned()));
        }
        return Ok(name.to_owned());
    }
    key_name(key)
}

/// The key id Keyward records: the key's URL without a version.
pub fn key_id(vault_url: &str, name: &str) -> String {
    format!("{}/keys/{name}", vault_url.trim_end_matches('/'))
}

/// The Key Vault version id: the last segment of a `kid`.
pub fn version_id(kid: &str) -> Option<&str> {
    let (_, id) = kid.rsplit_once('/')?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_key_vault_names() {
        assert_eq!(key_name("kek-1").unwrap(), "kek-1");
        let mapped = key_name("keyward/shop/db").unwrap();
        assert!(mapped.starts_with("keyward-shop-db-"), "{mapped}");
        assert_ne!(mapped, key_name("keyward-shop-db").unwrap());
        assert_eq!(key_name(&"x".repeat(300)).unwrap().len(), 127);
        assert!(key_name("").is_err());
    }

    #[test]
    fn key_ids_resolve_in_their_vault_only() {
        let vault = "https://v.vault.azure.net";
        assert_eq!(resolve(vault, &key_id(vault, "kek")).unwrap(), "kek");
        assert_eq!(
            resolve(vault, "https://v.vault.azure.net/keys/kek/abc").unwrap(),
            "kek"
        );
        assert!(resolve(vault, "https://other.vault.azure.net/keys/kek").is_err());
        assert_eq!(version_id("https://v/keys/kek/0123"), Some("0123"));
    }
}
