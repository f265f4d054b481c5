//! How a Keyward key maps onto KMS names: one KMS key per version, found
//! through aliases, described by tags.
//!
//! - `alias/<prefix>/<name>` points at the primary version's KMS key; it is
//!   also the Keyward key id, and a valid KMS `KeyId` in its own right.
//! - `alias/<prefix>/<name>/v<n>` points at version `n` (pins unwraps to it).
//! - Tags on every KMS key: `keyward.io/key`, `keyward.io/version`,
//!   `keyward.io/owner` (the ManagedKey's `namespace/name`; its uid on
//!   keys made before 0.9), `keyward.io/managed-by`.
//! - On the primary version's KMS key only: `keyward.io/cluster` and
//!   `keyward.io/claimed-at`, the claim (see `claims.rs`).

use keyward_core::provider::{ProviderError, Result};
use std::time::Duration;

pub const TAG_KEY: &str = "keyward.io/key";
pub const TAG_VERSION: &str = "keyward.io/version";
pub const TAG_OWNER: &str = "keyward.io/owner";
pub const TAG_MANAGED_BY: &str = "keyward.io/managed-by";
/// On the primary version's KMS key: the cluster that claims the key and
/// when it last renewed the claim (Unix seconds).
pub const TAG_CLUSTER: &str = "keyward.io/cluster";
pub const TAG_CLAIMED_AT: &str = "keyward.io/claimed-at";
pub const MANAGED_BY: &str = "keyward";

const MAX_ALIAS_LEN: usize = 256;

/// AWS accepts 7 to 30 days between scheduling and deleting a KMS key.
pub const MIN_DELETION_DAYS: u64 = 7;
pub const MAX_DELETION_DAYS: u64 = 30;

/// Native rotation periods AWS accepts (`RotationPeriodInDays`).
pub const NATIVE_ROTATION_DAYS: std::ops::RangeInclusive<u32> = 90..=2560;

/// Checks an alias prefix from configuration.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && !prefix.to_ascii_lowercase().starts_with("aws")
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ProviderError::InvalidRequest(format!(
            "alias prefix `{prefix}` must be letters, digits, `-` or `_`, and must not start with `aws`"
        )))
    }
}

/// The primary alias (= Keyward key id) for a key name. Names may use
/// letters, digits, `-`, `_`, `.` and `/` (`.` is stored as `_`, since KMS
/// aliases do not allow it; the exact name lives in the `keyward.io/key`
/// tag). The last path segment must not look like `v<digits>`, which is
/// reserved for version aliases.
pub fn primary_alias(prefix: &str, name: &str) -> Result<String> {
    let invalid = |why: &str| {
        ProviderError::InvalidRequest(format!("`{name}` is not a usable AWS KMS key name: {why}"))
    };
    if name.is_empty() || name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err(invalid(
            "it must be non-empty, with no leading, trailing or doubled `/`",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    {
        return Err(invalid("use only letters, digits, `-`, `_`, `.` and `/`"));
    }
    if is_version_segment(name.rsplit('/').next().unwrap_or(name)) {
        return Err(invalid(
            "a last path segment like `v2` is reserved for version aliases",
        ));
    }
    let alias = format!("alias/{prefix}/{}", name.replace('.', "_"));
    // Room for the longest version suffix.
    if alias.len() + "/v4294967295".len() > MAX_ALIAS_LEN {
        return Err(invalid("it is too long for a KMS alias"));
    }
    Ok(alias)
}

fn is_version_segment(segment: &str) -> bool {
    segment.len() > 1
        && segment.starts_with('v')
        && segment[1..].chars().all(|c| c.is_ascii_digit())
}

pub fn version_alias(primary_alias: &str, version: u32) -> String {
    format!("{primary_alias}/v{version}")
}

/// Turns what a caller passed as a key reference into the primary alias,
/// when that needs no lookup: a Keyward key id (`alias/<prefix>/...`), an
/// alias ARN, or a plain name. KMS key ids and key ARNs return `None`.
pub fn alias_for_reference(prefix: &str, reference: &str) -> Result<Option<String>> {
    let alias = if let Some(rest) = reference
        .strip_prefix("arn:")
        .and_then(|r| r.split_once(":alias/"))
    {
        format!("alias/{}", rest.1)
    } else if reference.starts_with("alias/") {
        reference.to_owned()
    } else if is_kms_key_id(reference) {
        return Ok(None);
    } else {
        return primary_alias(prefix, reference).map(Some);
    };
    let ours = alias
        .strip_prefix("alias/")
        .and_then(|a| a.strip_prefix(prefix))
        .is_some_and(|a| a.starts_with('/'));
    if !ours {
        return Err(ProviderError::UnknownKey(format!(
            "{reference} (not under alias/{prefix}/)"
        )));
    }
    Ok(Some(alias))
}

/// A KMS key id (UUID or `mrk-` id) or key ARN.
pub fn is_kms_key_id(reference: &str) -> bool {
    if reference.starts_with("arn:") {
        return reference.contains(":key/");
    }
    let id = reference.strip_prefix("mrk-").unwrap_or(reference);
    let parts: Vec<&str> = id.split('-').collect();
    id.len() == 36
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whole days for `ScheduleKeyDeletion`. Shorter windows are raised to the
/// AWS minimum (deleting later than asked is safe, and the caller sees the
/// real date); longer ones are refused, because AWS would delete sooner.
pub fn deletion_days(window: Duration) -> Result<i32> {
    let days = window.as_secs().div_ceil(24 * 3600).max(MIN_DELETION_DAYS);
    if days > MAX_DELETION_DAYS {
        return Err(ProviderError::InvalidRequest(format!(
            "AWS KMS deletes keys 7 to 30 days after scheduling; a {days}-day window is too long. Use at most 30 days"
        )));
    }
    Ok(days as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_for_names() {
        assert_eq!(
            primary_alias("keyward", "shop/db.main").unwrap(),
            "alias/keyward/shop/db_main"
        );
        assert_eq!(
            version_alias("alias/keyward/shop/db", 3),
            "alias/keyward/shop/db/v3"
        );
        for bad in ["", "/a", "a/", "a//b", "a b", "a/v2", "v10", "é"] {
            assert!(primary_alias("keyward", bad).is_err(), "{bad:?}");
        }
        // `v` alone or `version` is a fine last segment.
        assert!(primary_alias("keyward", "a/v").is_ok());
        assert!(primary_alias("keyward", "a/version").is_ok());
        assert!(primary_alias("keyward", &"x".repeat(300)).is_err());
    }

    #[test]
    fn references_resolve_to_aliases() {
        let p = "keyward";
        assert_eq!(
            alias_for_reference(p, "db").unwrap().as_deref(),
            Some("alias/keyward/db")
        );
        assert_eq!(
            alias_for_reference(p, "alias/keyward/db")
                .unwrap()
                .as_deref(),
            Some("alias/keyward/db")
        );
        assert_eq!(
            alias_for_reference(p, "arn:aws:kms:eu-west-1:111122223333:alias/keyward/db")
                .unwrap()
                .as_deref(),
            Some("alias/keyward/db")
        );
        assert!(matches!(
            alias_for_reference(p, "alias/other/db"),
            Err(ProviderError::UnknownKey(_))
        ));
        assert!(matches!(
            alias_for_reference(p, "alias/keywardx/db"),
            Err(ProviderError::UnknownKey(_))
        ));
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(alias_for_reference(p, id).unwrap(), None);
        assert_eq!(
            alias_for_reference(p, &format!("arn:aws:kms:eu-west-1:111122223333:key/{id}"))
                .unwrap(),
            None
        );
    }

    #[test]
    fn deletion_windows() {
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(deletion_days(day * 7).unwrap(), 7);
        assert_eq!(deletion_days(day).unwrap(), 7, "raised to the minimum");
        assert_eq!(
            deletion_days(day * 10 + Duration::from_secs(1)).unwrap(),
            11
        );
        assert_eq!(deletion_days(day * 30).unwrap(), 30);
        let error = deletion_days(day * 31).unwrap_err();
        assert!(error.to_string().contains("at most 30 days"), "{error}");
    }

    #[test]
    fn prefixes() {
        assert!(validate_prefix("keyward").is_ok());
        assert!(validate_prefix("keyward-prod_1").is_ok());
        for bad in ["", "aws", "AWS-x", "a/b"] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
