//! A user's tags (`spec.tags`) on a Keyward key: on every version's KMS
//! key, next to Keyward's own `keyward.io/...` tags, which they never
//! replace. A new version starts with the primary's user tags.

use crate::errors::{At, from_sdk};
use crate::keys::tag;
use crate::provider::AwsKmsProvider;
use keyward_core::provider::{Result, Tags, VersionState};
use std::collections::BTreeMap;

/// Keyward's own tags, which a user's tags may not name.
pub(crate) fn is_keywards(name: &str) -> bool {
    name.starts_with("keyward.io/")
}

/// The user's tags among all of a KMS key's tags.
pub(crate) fn of(all: &BTreeMap<String, String>) -> Tags {
    all.iter()
        .filter(|(name, _)| !is_keywards(name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl AwsKmsProvider {
    /// Sets `wanted` on every version still in use (one pending deletion
    /// cannot be tagged, and will not be used again).
    pub(crate) async fn set_user_tags(&self, key_id: &str, wanted: &Tags) -> Result<()> {
        let key_id = self.key_id_for(key_id).await?;
        let resolved = self.resolve(&key_id, None).await?;
        for number in 1..=resolved.primary.version {
            let Some(found) = self.version(&key_id, number).await? else {
                continue;
            };
            if found.state == VersionState::PendingDeletion {
                continue;
            }
            let at = At::version(&key_id, number);
            self.sync(&found.kms_key_id, wanted, at).await?;
        }
        Ok(())
    }

    /// The user's tags on the primary version.
    pub(crate) async fn user_tags(&self, key_id: &str) -> Result<Tags> {
        let key_id = self.key_id_for(key_id).await?;
        Ok(self.resolve(&key_id, None).await?.user_tags)
    }

    /// One KMS key: tag what is missing or different, untag the user's
    /// tags no longer wanted; no call when nothing differs.
    async fn sync(&self, kms_key_id: &str, wanted: &Tags, at: At<'_>) -> Result<()> {
        let current = self.tags(kms_key_id, at).await?;
        let set = wanted
            .iter()
            .filter(|(name, value)| current.get(*name) != Some(value))
            .map(|(name, value)| tag(name, value))
            .collect::<Result<Vec<_>>>()?;
        if !set.is_empty() {
            self.tag_resource(kms_key_id, set, at).await?;
        }
        let stale: Vec<String> = of(&current)
            .into_keys()
            .filter(|name| !wanted.contains_key(name))
            .collect();
        if !stale.is_empty() {
            self.client
                .untag_resource()
                .key_id(kms_key_id)
                .set_tag_keys(Some(stale))
                .send()
                .await
                .map_err(|e| from_sdk(e, at))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywards_own_tags_are_not_the_users() {
        let all: BTreeMap<String, String> = [
            ("keyward.io/key", "db"),
            ("keyward.io/owner", "apps/db"),
            ("team", "payments"),
            ("cost-center", "42"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let users = of(&all);
        assert_eq!(users.keys().collect::<Vec<_>>(), ["cost-center", "team"]);
    }
}
