//! Adopting a KMS key made outside Keyward (Terraform, the console) as
//! version 1 of a Keyward key: it is tagged as Keyward's
//! (`keyward.io/adopted: "true"` among them) and given the version and
//! primary aliases, after which it is read like a key Keyward made.
//!
//! Terraform users: the tags are Keyward's record of ownership; keep
//! Terraform from removing them with `ignore_tags { key_prefixes =
//! ["keyward.io/"] }` in the AWS provider block.

use crate::errors::{At, from_sdk};
use crate::keys::{algorithm_of, tag};
use crate::naming::{self, TAG_KEY, TAG_MANAGED_BY, TAG_OWNER, TAG_VERSION};
use crate::provider::AwsKmsProvider;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::types::{KeyManagerType, KeyMetadata, KeyState, KeyUsageType};
use keyward_core::provider::{KeyInfo, KeySpec, ProviderError, Result};

/// Tag on an adopted KMS key.
pub const TAG_ADOPTED: &str = "keyward.io/adopted";

impl AwsKmsProvider {
    pub(crate) async fn adopt(&self, reference: &str, spec: &KeySpec) -> Result<KeyInfo> {
        let key_id = naming::primary_alias(&self.config.alias_prefix, &spec.name)?;
        let at = At::key(reference);
        let metadata = match self.describe_kms(reference, at).await {
            Ok(metadata) => metadata,
            Err(ProviderError::UnknownKey(_) | ProviderError::UnknownVersion { .. }) => {
                return Err(ProviderError::InvalidRequest(format!(
                    "no KMS key `{reference}` in this account and Region; check spec.existingKey and spec.provider.aws.region"
                )));
            }
            Err(other) => return Err(other),
        };
        usable(&metadata, reference, spec)?;
        let kms_key_id = metadata.key_id().to_owned();
        let tags = self.tags(&kms_key_id, at).await?;
        let ours = tags.get(TAG_KEY).map(String::as_str) == Some(spec.name.as_str())
            && tags.get(TAG_OWNER).map(String::as_str) == spec.owner.as_deref();
        if ours {
            // Adopted before (a retry, or the same manifest in a cluster
            // rebuilt from Git): the key as it is now, rotations and all.
            match self.resolve(&key_id, Some(&spec.name)).await {
                Ok(resolved) => return self.info(&resolved).await,
                Err(ProviderError::UnknownKey(_)) => {}
                Err(other) => return Err(other),
            }
        }
        if tags.contains_key(TAG_KEY) && !ours {
            return Err(ProviderError::InvalidRequest(format!(
                "KMS key `{reference}` is already Keyward key `{}`; adopt it only once, or use that key",
                tags[TAG_KEY]
            )));
        }
        if tags.get(TAG_VERSION).is_some_and(|v| v != "1") {
            return Err(ProviderError::InvalidRequest(format!(
                "KMS key `{reference}` is version {} of a Keyward key, not a key to adopt",
                tags[TAG_VERSION]
            )));
        }
        let mut new_tags = vec![
            tag(TAG_MANAGED_BY, naming::MANAGED_BY)?,
            tag(TAG_KEY, &spec.name)?,
            tag(TAG_VERSION, "1")?,
            tag(TAG_ADOPTED, "true")?,
        ];
        if let Some(owner) = &spec.owner {
            new_tags.push(tag(TAG_OWNER, owner)?);
        }
        self.client
            .tag_resource()
            .key_id(&kms_key_id)
            .set_tags(Some(new_tags))
            .send()
            .await
            .map_err(|e| from_sdk(e, at))?;
        // Aliases last: a retry after a crash finds the tags and goes on.
        self.alias_to(&naming::version_alias(&key_id, 1), &kms_key_id)
            .await?;
        self.alias_to(&key_id, &kms_key_id).await?;
        tracing::info!(key = %key_id, kms_key = %kms_key_id, reference, "adopted KMS key as version 1");
        let resolved = self.resolve(&key_id, Some(&spec.name)).await?;
        self.info(&resolved).await
    }

    /// Creates `alias` for `kms_key_id`; one that already names that key
    /// is fine, one that names another key is refused.
    async fn alias_to(&self, alias: &str, kms_key_id: &str) -> Result<()> {
        let made = self
            .client
            .create_alias()
            .alias_name(alias)
            .target_key_id(kms_key_id)
            .send()
            .await;
        match made {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some("AlreadyExistsException") => {
                let existing = self.describe_kms(alias, At::key(alias)).await?;
                if existing.key_id() == kms_key_id {
                    Ok(())
                } else {
                    Err(ProviderError::InvalidRequest(format!(
                        "{alias} already points at another KMS key; pick another name or remove that alias"
                    )))
                }
            }
            Err(error) => Err(from_sdk(error, At::key(alias))),
        }
    }
}

/// Refuses a key Keyward cannot use as a key-encryption key of `spec`.
fn usable(metadata: &KeyMetadata, reference: &str, spec: &KeySpec) -> Result<()> {
    let refuse = |why: String| {
        Err(ProviderError::InvalidRequest(format!(
            "cannot adopt `{reference}`: {why}"
        )))
    };
    if metadata.key_manager() == Some(&KeyManagerType::Aws) {
        return refuse("it is an AWS managed key; adopt a customer managed key".into());
    }
    // Unreported fields are left to the first wrap to try.
    if let Some(usage) = metadata.key_usage()
        && *usage != KeyUsageType::EncryptDecrypt
    {
        return refuse(format!(
            "its key usage is {}, not ENCRYPT_DECRYPT",
            usage.as_str()
        ));
    }
    if let Some(state) = metadata.key_state()
        && *state != KeyState::Enabled
    {
        return refuse(format!("it is {}, not Enabled", state.as_str()));
    }
    let algorithm = algorithm_of(metadata, reference)?;
    if algorithm != spec.algorithm {
        return refuse(format!(
            "it is {}, not {} (spec.algorithm)",
            algorithm.describe(),
            spec.algorithm.describe()
        ));
    }
    Ok(())
}
