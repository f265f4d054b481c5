//! A user's tags (`spec.tags`) on every version of the key, next to
//! Keyward's own `keyward-...` tags, which they never replace. A rotation
//! copies them onto the new version.

use crate::errors::At;
use crate::naming::is_keywards;
use crate::provider::AzureKeyVaultProvider;
use keyward_core::provider::{ProviderError, Result, Tags, VersionState};
use std::collections::HashMap;
use std::time::SystemTime;

/// The user's tags among all of a version's.
pub(crate) fn of(all: &HashMap<String, String>) -> Tags {
    all.iter()
        .filter(|(name, _)| !is_keywards(name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Keyward's tags from `all`, and exactly `wanted` besides.
pub(crate) fn merged(all: &HashMap<String, String>, wanted: &Tags) -> HashMap<String, String> {
    all.iter()
        .filter(|(name, _)| is_keywards(name))
        .chain(wanted.iter())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl AzureKeyVaultProvider {
    pub(crate) async fn set_user_tags(&self, key_id: &str, wanted: &Tags) -> Result<()> {
        if let Some(name) = wanted.keys().find(|n| is_keywards(n)) {
            return Err(ProviderError::InvalidRequest(format!(
                "tag `{name}` is reserved for Keyward's own records; rename it"
            )));
        }
        let name = self.key_name(key_id)?;
        let versions = self.versions(&name).await?;
        let now = SystemTime::now();
        for version in &versions.list {
            if version.state(now) == VersionState::Destroyed || &of(&version.tags) == wanted {
                continue;
            }
            let tags = merged(&version.tags, wanted);
            self.update_version(
                &name,
                version,
                None,
                Some(tags),
                At::version(&name, version.number),
            )
            .await?;
        }
        Ok(())
    }

    pub(crate) async fn user_tags(&self, key_id: &str) -> Result<Tags> {
        let name = self.key_name(key_id)?;
        Ok(of(&self.versions(&name).await?.primary().tags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_tags_are_replaced_and_keywards_kept() {
        let all: HashMap<String, String> = [
            ("keyward-owner", "shop/db"),
            ("keyward-version", "2"),
            ("team", "payments"),
            ("old", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let wanted: Tags = [("team".to_owned(), "billing".to_owned())].into();
        let set = merged(&all, &wanted);
        assert_eq!(set.len(), 3);
        assert_eq!(set["team"], "billing");
        assert_eq!(set["keyward-version"], "2");
        assert!(!set.contains_key("old"));
        assert_eq!(of(&set), wanted);
    }
}
