//! The owner and a cluster's claim on a key, kept as CryptoKey labels
//! (`keyward-owner`, `keyward-cluster`, `keyward-claimed-at`). Labels hold
//! lowercase letters, digits, `-` and `_` only, so the owner is stored as
//! [`naming::owner_label_value`] and the claim time as Unix seconds.

use crate::errors::At;
use crate::naming::{self, OWNER_LABEL};
use crate::provider::GcpKmsProvider;
use crate::retry::Idempotent;
use google_cloud_kms_v1::model::CryptoKey;
use google_cloud_wkt::FieldMask;
use keyward_core::provider::key_record::unix_seconds;
use keyward_core::provider::{Claim, ProviderError, Result};
use std::collections::HashMap;

pub const CLUSTER_LABEL: &str = "keyward-cluster";
pub const CLAIMED_AT_LABEL: &str = "keyward-claimed-at";

/// The claim the labels record; none when either is missing or unreadable.
pub(crate) fn from_labels(labels: &HashMap<String, String>) -> Option<Claim> {
    Claim::from_stored(labels.get(CLUSTER_LABEL), labels.get(CLAIMED_AT_LABEL))
}

/// `labels` with the owner and claim set, the others kept.
fn with_owner(
    labels: &HashMap<String, String>,
    owner: &str,
    claim: &Claim,
) -> Result<HashMap<String, String>> {
    if !naming::is_label_value(&claim.cluster) {
        return Err(ProviderError::InvalidRequest(format!(
            "cluster id `{}` cannot be a Cloud KMS label value (lowercase letters, digits, `-`, `_`; at most 63)",
            claim.cluster
        )));
    }
    let mut labels = labels.clone();
    labels.insert(OWNER_LABEL.into(), naming::owner_label_value(owner));
    labels.insert(CLUSTER_LABEL.into(), claim.cluster.clone());
    labels.insert(
        CLAIMED_AT_LABEL.into(),
        unix_seconds(claim.renewed_at).to_string(),
    );
    Ok(labels)
}

impl GcpKmsProvider {
    pub(crate) async fn set_owner_labels(
        &self,
        key_id: &str,
        owner: &str,
        claim: &Claim,
    ) -> Result<()> {
        let name = self.crypto_key_name(key_id)?;
        let key = self.get_key(&name).await?;
        self.set_labels(&name, with_owner(&key.labels, owner, claim)?)
            .await
    }

    /// Replaces the CryptoKey's labels.
    pub(crate) async fn set_labels(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let update = CryptoKey::new().set_name(name).set_labels(labels);
        self.call("UpdateCryptoKey", Idempotent::Yes, At::key(name), || {
            self.client
                .update_crypto_key()
                .set_crypto_key(update.clone())
                .set_update_mask(FieldMask::default().set_paths(["labels"]))
                .send()
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::provider::key_record::system_time;

    #[test]
    fn owner_and_claim_are_added_and_other_labels_kept() {
        let labels: HashMap<String, String> = [("team".to_owned(), "payments".to_owned())].into();
        let claim = Claim {
            cluster: "0b5e2c1a-6f1e-4b7e-9d0a-3c2f1e0d9c8b".into(),
            renewed_at: system_time(1_900_000_000),
        };
        let set = with_owner(&labels, "payments/db", &claim).unwrap();
        assert_eq!(set["team"], "payments");
        assert_eq!(set[OWNER_LABEL], naming::owner_label_value("payments/db"));
        assert_eq!(from_labels(&set), Some(claim.clone()));

        let bad = Claim {
            cluster: "Prod Cluster".into(),
            ..claim
        };
        assert!(with_owner(&labels, "payments/db", &bad).is_err());
    }
}
