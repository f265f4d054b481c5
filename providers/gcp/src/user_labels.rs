//! A user's tags (`spec.tags`) as CryptoKey labels, next to Keyward's own
//! `keyward-...` labels, which they never replace. Labels belong to the
//! CryptoKey, so every version has them.

use crate::provider::GcpKmsProvider;
use keyward_core::provider::{Result, Tags};
use std::collections::HashMap;

/// Keyward's own labels, which a user's tags may not name.
pub(crate) fn is_keywards(name: &str) -> bool {
    name.starts_with("keyward-")
}

/// The user's labels among all of a CryptoKey's.
pub(crate) fn of(all: &HashMap<String, String>) -> Tags {
    all.iter()
        .filter(|(name, _)| !is_keywards(name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Keyward's labels from `all`, and exactly `wanted` besides.
fn merged(all: &HashMap<String, String>, wanted: &Tags) -> HashMap<String, String> {
    all.iter()
        .filter(|(name, _)| is_keywards(name))
        .chain(wanted.iter())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl GcpKmsProvider {
    pub(crate) async fn set_user_labels(&self, key_id: &str, wanted: &Tags) -> Result<()> {
        let name = self.crypto_key_name(key_id)?;
        let key = self.get_key(&name).await?;
        if &of(&key.labels) == wanted {
            return Ok(());
        }
        self.set_labels(&name, merged(&key.labels, wanted)).await
    }

    pub(crate) async fn user_labels(&self, key_id: &str) -> Result<Tags> {
        let name = self.crypto_key_name(key_id)?;
        Ok(of(&self.get_key(&name).await?.labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_labels_are_replaced_and_keywards_kept() {
        let all: HashMap<String, String> = [
            ("keyward-owner", "h-1"),
            ("keyward-managed", "true"),
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
        assert_eq!(set["keyward-owner"], "h-1");
        assert!(!set.contains_key("old"));
        assert_eq!(of(&set), wanted);
    }
}
