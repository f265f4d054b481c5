//! A cluster's claim on a Keyward key, kept as two tags on the primary
//! version's KMS key (`keyward.io/cluster`, `keyward.io/claimed-at`) next to
//! `keyward.io/owner`. A rotation copies them to the new primary.

use crate::errors::{At, from_sdk};
use crate::keys::tag;
use crate::naming::{self, TAG_CLAIMED_AT, TAG_CLUSTER, TAG_MANAGED_BY, TAG_OWNER};
use crate::provider::AwsKmsProvider;
use aws_sdk_kms::types::Tag;
use keyward_core::provider::key_record::unix_seconds;
use keyward_core::provider::{Claim, Result};
use std::collections::BTreeMap;

/// The claim the tags record; none when either tag is missing or unreadable.
pub(crate) fn from_tags(tags: &BTreeMap<String, String>) -> Option<Claim> {
    Claim::from_stored(tags.get(TAG_CLUSTER), tags.get(TAG_CLAIMED_AT))
}

impl AwsKmsProvider {
    /// Tags one KMS key with the owner and, when given, the claim.
    pub(crate) async fn tag_owner(
        &self,
        kms_key_id: &str,
        owner: Option<&str>,
        claim: Option<&Claim>,
        at: At<'_>,
    ) -> Result<()> {
        let mut tags = Vec::new();
        if let Some(owner) = owner {
            tags.push(tag(TAG_OWNER, owner)?);
        }
        if let Some(claim) = claim {
            tags.push(tag(TAG_CLUSTER, &claim.cluster)?);
            tags.push(tag(
                TAG_CLAIMED_AT,
                &unix_seconds(claim.renewed_at).to_string(),
            )?);
        }
        self.tag_resource(kms_key_id, tags, at).await
    }

    /// One `TagResource`, with managed-by, which IAM policies may require
    /// on every tag write.
    pub(crate) async fn tag_resource(
        &self,
        kms_key_id: &str,
        mut tags: Vec<Tag>,
        at: At<'_>,
    ) -> Result<()> {
        tags.push(tag(TAG_MANAGED_BY, naming::MANAGED_BY)?);
        self.client
            .tag_resource()
            .key_id(kms_key_id)
            .set_tags(Some(tags))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| from_sdk(e, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::provider::key_record::system_time;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_claim_needs_both_tags_and_a_readable_time() {
        let claim = from_tags(&tags(&[(TAG_CLUSTER, "c-1"), (TAG_CLAIMED_AT, "1900")]));
        assert_eq!(
            claim,
            Some(Claim {
                cluster: "c-1".into(),
                renewed_at: system_time(1900),
            })
        );
        assert_eq!(from_tags(&tags(&[(TAG_CLUSTER, "c-1")])), None);
        assert_eq!(from_tags(&tags(&[(TAG_CLAIMED_AT, "1900")])), None);
        assert_eq!(
            from_tags(&tags(&[(TAG_CLUSTER, "c-1"), (TAG_CLAIMED_AT, "soon")])),
            None
        );
    }
}
