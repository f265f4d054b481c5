//! Cloud KMS resource names, the Keyward name → CryptoKey id mapping, the
//! owner label, and the canonical AAD encoding of a wrap context.

use keyward_core::crypto::sha256;
use keyward_core::provider::{ProviderError, Result, WrapContext, wrap_context_aad};

/// Label holding the owning resource's uid: makes `create_key` idempotent.
pub const OWNER_LABEL: &str = "keyward-owner";
/// Label marking keys Keyward manages.
pub const MANAGED_LABEL: &str = "keyward-managed";

const MAX_ID_LEN: usize = 63;
const MAX_LABEL_LEN: usize = 63;
/// Cloud KMS refuses more than 64 KiB of additional authenticated data.
const MAX_AAD_LEN: usize = 65_536;
const AAD_DOMAIN: &[u8] = b"keyward/gcp-kms/aad/v1";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `projects/P/locations/L/keyRings/R`.
pub fn validate_key_ring(key_ring: &str) -> Result<()> {
    let parts: Vec<&str> = key_ring.split('/').collect();
    let ok = parts.len() == 6
        && parts[0] == "projects"
        && parts[2] == "locations"
        && parts[4] == "keyRings"
        && [parts[1], parts[3], parts[5]].iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err(ProviderError::InvalidRequest(format!(
            "`{key_ring}` is not a key ring name; use projects/PROJECT/locations/LOCATION/keyRings/RING"
        )))
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The CryptoKey id for a Keyward key name: the name itself when it fits
/// `[a-zA-Z0-9_-]{1,63}`, otherwise the name with other characters replaced
/// by `-`, shortened, plus 8 hex digits of its SHA-256 so that `a/b` and
/// `a-b` do not meet.
pub fn crypto_key_id(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(ProviderError::InvalidRequest(
            "a key name cannot be empty".into(),
        ));
    }
    if name.len() <= MAX_ID_LEN && name.chars().all(is_id_char) {
        return Ok(name.to_owned());
    }
    let digest = hex(&sha256(name.as_bytes())[..4]);
    let cleaned: String = name
        .chars()
        .map(|c| if is_id_char(c) { c } else { '-' })
        .take(MAX_ID_LEN - digest.len() - 1)
        .collect();
    Ok(format!("{cleaned}-{digest}"))
}

/// The label value for an owner uid. Label values allow lowercase
/// letters, digits, `_` and `-`, up to 63 characters; Kubernetes uids fit
/// as they are. Anything else is stored as `h-` plus a SHA-256 prefix.
pub fn owner_label_value(owner: &str) -> String {
    if is_label_value(owner) {
        owner.to_owned()
    } else {
        format!("h-{}", &hex(&sha256(owner.as_bytes()))[..MAX_LABEL_LEN - 2])
    }
}

/// Whether `value` is a Cloud KMS label value as it is.
pub fn is_label_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LABEL_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The crypto key resource name inside `key_ring`, for either a full
/// resource name (which must be in this key ring) or a Keyward key name.
pub fn crypto_key_name(key_ring: &str, key: &str) -> Result<String> {
    if key.starts_with("projects/") {
        let prefix = format!("{key_ring}/cryptoKeys/");
        return match key.strip_prefix(&prefix) {
            Some(id) if !id.is_empty() && id.len() <= MAX_ID_LEN && id.chars().all(is_id_char) => {
                Ok(key.to_owned())
            }
            _ => Err(ProviderError::UnknownKey(key.to_owned())),
        };
    }
    Ok(format!("{key_ring}/cryptoKeys/{}", crypto_key_id(key)?))
}

pub fn version_name(crypto_key: &str, version: u32) -> String {
    format!("{crypto_key}/cryptoKeyVersions/{version}")
}

/// The version number: the last segment of a CryptoKeyVersion name.
pub fn version_number(version_name: &str) -> Option<u32> {
    let (_, number) = version_name.rsplit_once("/cryptoKeyVersions/")?;
    number.parse().ok().filter(|n| *n > 0)
}

/// The CryptoKey id (last segment) of a resource name.
pub fn short_id(crypto_key: &str) -> &str {
    crypto_key.rsplit('/').next().unwrap_or(crypto_key)
}

/// The wrap context as Cloud KMS `additionalAuthenticatedData`, in the
/// canonical encoding of `keyward_core::provider::wrap_context_aad`.
pub fn aad(context: &WrapContext) -> Result<Vec<u8>> {
    let out = wrap_context_aad(AAD_DOMAIN, &[], context);
    if out.len() > MAX_AAD_LEN {
        return Err(too_long());
    }
    Ok(out)
}

fn too_long() -> ProviderError {
    ProviderError::InvalidRequest(
        "the wrap context is longer than the 64 KiB Cloud KMS accepts as additional authenticated data".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING: &str = "projects/p/locations/europe-west1/keyRings/keyward";

    #[test]
    fn key_ring_names_are_checked() {
        validate_key_ring(RING).unwrap();
        for bad in [
            "",
            "projects/p",
            "projects//locations/l/keyRings/r",
            "p/l/k/r/x/y",
        ] {
            assert!(validate_key_ring(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn valid_names_are_kept_and_others_are_sanitized_without_collisions() {
        assert_eq!(crypto_key_id("payments-db_1").unwrap(), "payments-db_1");
        let slash = crypto_key_id("shop/db").unwrap();
        let dash = crypto_key_id("shop-db").unwrap();
        assert_ne!(slash, dash);
        assert!(slash.starts_with("shop-db-"), "{slash}");
        let long = crypto_key_id(&"x".repeat(100)).unwrap();
        assert_eq!(long.len(), 63);
        for id in [&slash, &long] {
            assert!(id.chars().all(is_id_char), "{id}");
        }
        assert!(crypto_key_id("").is_err());
    }

    #[test]
    fn owners_become_valid_label_values() {
        let uid = "3f0c6a4e-9b1d-4c0e-8a55-0d1f2e3a4b5c";
        assert_eq!(owner_label_value(uid), uid);
        let odd = owner_label_value("Team/Payments UID");
        assert!(odd.starts_with("h-") && odd.len() == 63, "{odd}");
        assert_ne!(odd, owner_label_value("team/payments uid"));
    }

    #[test]
    fn resource_names_stay_in_the_key_ring() {
        assert_eq!(
            crypto_key_name(RING, "db").unwrap(),
            format!("{RING}/cryptoKeys/db")
        );
        let full = format!("{RING}/cryptoKeys/db");
        assert_eq!(crypto_key_name(RING, &full).unwrap(), full);
        let other = "projects/p/locations/europe-west1/keyRings/other/cryptoKeys/db";
        assert!(matches!(
            crypto_key_name(RING, other),
            Err(ProviderError::UnknownKey(_))
        ));
        assert_eq!(version_number(&version_name(&full, 12)), Some(12));
        assert_eq!(version_number(&full), None);
        assert_eq!(short_id(&full), "db");
    }

    #[test]
    fn aad_is_canonical_and_unambiguous() {
        let a: WrapContext = [("ab".to_owned(), "c".to_owned())].into();
        let b: WrapContext = [("a".to_owned(), "bc".to_owned())].into();
        assert_ne!(aad(&a).unwrap(), aad(&b).unwrap());
        let empty = aad(&WrapContext::new()).unwrap();
        assert_eq!(empty, AAD_DOMAIN);
        let huge: WrapContext = [("k".to_owned(), "v".repeat(70_000))].into();
        assert!(matches!(aad(&huge), Err(ProviderError::InvalidRequest(_))));
    }
}
