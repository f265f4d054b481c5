//! Adopting a CryptoKey made outside Keyward (Terraform's
//! `google_kms_crypto_key`, gcloud) in the operator's key ring: labelled as
//! Keyward's (`keyward-managed`, `keyward-owner`, `keyward-adopted`), its
//! versions kept as they are. Terraform users: add the `keyward-` labels to
//! `lifecycle { ignore_changes = [labels] }`.

use crate::keys::algorithm_of;
use crate::naming::{self, MANAGED_LABEL, OWNER_LABEL};
use crate::provider::GcpKmsProvider;
use keyward_core::provider::{KeyInfo, KeySpec, ProviderError, Result};

pub const ADOPTED_LABEL: &str = "keyward-adopted";

impl GcpKmsProvider {
    pub(crate) async fn adopt_by_reference(
        &self,
        reference: &str,
        spec: &KeySpec,
    ) -> Result<KeyInfo> {
        let name = self.crypto_key_name(reference)?;
        let key = match self.get_key(&name).await {
            Ok(key) => key,
            Err(ProviderError::UnknownKey(_)) => {
                return Err(ProviderError::InvalidRequest(format!(
                    "no CryptoKey `{name}`; check spec.existingKey"
                )));
            }
            Err(other) => return Err(other),
        };
        let refuse = |why: String| {
            Err(ProviderError::InvalidRequest(format!(
                "cannot adopt `{name}`: {why}"
            )))
        };
        let algorithm = algorithm_of(&key)?;
        if algorithm != spec.algorithm {
            return refuse(format!(
                "it is {}, not {} (spec.algorithm)",
                algorithm.describe(),
                spec.algorithm.describe()
            ));
        }
        let owner = spec.owner.as_deref().map(naming::owner_label_value);
        let recorded = key.labels.get(OWNER_LABEL).cloned();
        if recorded.is_some() && recorded != owner {
            return refuse(format!(
                "it already belongs to another Keyward key (keyward-owner {})",
                recorded.unwrap_or_default()
            ));
        }
        if recorded.is_none() {
            let mut labels = key.labels.clone();
            labels.insert(MANAGED_LABEL.into(), "true".into());
            labels.insert(ADOPTED_LABEL.into(), "true".into());
            if let Some(owner) = owner {
                labels.insert(OWNER_LABEL.into(), owner);
            }
            self.set_labels(&name, labels).await?;
            tracing::info!(key = %name, "adopted CryptoKey");
        }
        self.info_of(&self.get_key(&name).await?, Some(&spec.name))
            .await
    }
}
