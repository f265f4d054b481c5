//! The owner and a cluster's claim on a key, kept as tags on its primary
//! version (`keyward-owner`, `keyward-cluster`, `keyward-claimed-at`) and
//! copied onto each version a rotation makes.

use crate::errors::At;
use crate::naming::{CLAIMED_AT_TAG, CLUSTER_TAG, MAX_TAG_VALUE_LEN, OWNER_TAG};
use crate::provider::AzureKeyVaultProvider;
use keyward_core::provider::key_record::unix_seconds;
use keyward_core::provider::{Claim, ProviderError, Result};
use std::collections::HashMap;

/// The claim the tags record; none when either tag is missing or unreadable.
pub(crate) fn from_tags(tags: &HashMap<String, String>) -> Option<Claim> {
    Claim::from_stored(tags.get(CLUSTER_TAG), tags.get(CLAIMED_AT_TAG))
}

/// The owner and claim tags of `from`, to copy onto a new version.
pub(crate) fn carried(from: &HashMap<String, String>) -> impl Iterator<Item = (String, String)> {
    [OWNER_TAG, CLUSTER_TAG, CLAIMED_AT_TAG]
        .into_iter()
        .filter_map(|tag| Some((tag.to_owned(), from.get(tag)?.clone())))
}

/// `tags` with the owner and claim set, the others kept.
fn with_owner(
    tags: &HashMap<String, String>,
    owner: &str,
    claim: &Claim,
) -> Result<HashMap<String, String>> {
    for (what, value) in [("owner", owner), ("cluster id", claim.cluster.as_str())] {
        if value.is_empty() || value.len() > MAX_TAG_VALUE_LEN {
            return Err(ProviderError::InvalidRequest(format!(
                "{what} `{value}` cannot be a Key Vault tag value (1 to {MAX_TAG_VALUE_LEN} characters)"
            )));
        }
    }
    let mut tags = tags.clone();
    tags.insert(OWNER_TAG.into(), owner.to_owned());
    tags.insert(CLUSTER_TAG.into(), claim.cluster.clone());
    tags.insert(
        CLAIMED_AT_TAG.into(),
        unix_seconds(claim.renewed_at).to_string(),
    );
    Ok(tags)
}

impl AzureKeyVaultProvider {
    pub(crate) async fn set_owner_tags(
        &self,
        key_id: &str,
        owner: &str,
        claim: &Claim,
    ) -> Result<()> {
        let name = self.key_name(key_id)?;
        let versions = self.versions(&name).await?;
        let primary = versions.primary();
        let tags = with_owner(&primary.tags, owner, claim)?;
        self.update_version(
            &name,
            primary,
            None,
            Some(tags),
            At::version(&name, primary.number),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::provider::key_record::system_time;

    #[test]
    fn owner_and_claim_are_added_and_other_tags_kept() {
        let tags: HashMap<String, String> = [("team".to_owned(), "payments".to_owned())].into();
        let claim = Claim {
            cluster: "0b5e2c1a-6f1e-4b7e-9d0a-3c2f1e0d9c8b".into(),
            renewed_at: system_time(1_900_000_000),
        };
        let set = with_owner(&tags, "payments/db", &claim).unwrap();
        assert_eq!(set["team"], "payments");
        assert_eq!(set[OWNER_TAG], "payments/db");
        assert_eq!(from_tags(&set), Some(claim.clone()));
        assert_eq!(carried(&set).count(), 3);
        assert!(with_owner(&tags, "", &claim).is_err());
    }
}
