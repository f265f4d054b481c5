//! Finding and making the KMS keys behind a Keyward key: alias lookups,
//! tags, per-version KMS keys, and the caches that spare repeat lookups.

use crate::claims;
use crate::errors::{At, from_sdk};
use crate::naming::{self, TAG_KEY, TAG_MANAGED_BY, TAG_OWNER, TAG_VERSION};
use crate::provider::AwsKmsProvider;
use crate::user_tags;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::DateTime;
use aws_sdk_kms::types::{KeyMetadata, KeySpec as KmsKeySpec, KeyState, KeyUsageType, Tag};
use keyward_core::provider::{
    Claim, KeyAlgorithm, KeyInfo, ProviderError, Result, Tags, VersionInfo, VersionState,
    WrapContext,
};
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

/// One KMS key of a Keyward key, as read from `DescribeKey` + tags.
#[derive(Debug, Clone)]
pub(crate) struct KmsVersion {
    pub kms_key_id: String,
    pub version: u32,
    pub state: VersionState,
    pub created_at: SystemTime,
    pub deletion_at: Option<SystemTime>,
}

/// What a version's KMS key is made with.
#[derive(Clone, Copy)]
pub(crate) struct NewVersion<'a> {
    pub name: &'a str,
    pub owner: Option<&'a str>,
    pub algorithm: KeyAlgorithm,
    pub description: Option<&'a str>,
    /// The user's tags (`spec.tags`), next to Keyward's own.
    pub user_tags: &'a Tags,
}

/// Everything about a Keyward key, resolved from its primary alias.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub key_id: String,
    pub name: String,
    pub owner: Option<String>,
    pub algorithm: KeyAlgorithm,
    pub primary: KmsVersion,
    pub claim: Option<Claim>,
    /// The user's tags on the primary version (`spec.tags`).
    pub user_tags: Tags,
}

impl AwsKmsProvider {
    /// The primary alias (Keyward key id) for any reference a caller holds.
    pub(crate) async fn key_id_for(&self, reference: &str) -> Result<String> {
        if let Some(alias) = naming::alias_for_reference(&self.config.alias_prefix, reference)? {
            return Ok(alias);
        }
        // A KMS key id or ARN of one of our versions: its tags name the key.
        let tags = self.tags(reference, At::key(reference)).await?;
        let name = tags
            .get(TAG_KEY)
            .ok_or_else(|| ProviderError::UnknownKey(format!("{reference} (not a Keyward key)")))?;
        naming::primary_alias(&self.config.alias_prefix, name)
    }

    pub(crate) async fn describe_kms(&self, kms_ref: &str, at: At<'_>) -> Result<KeyMetadata> {
        let output = self
            .client
            .describe_key()
            .key_id(kms_ref)
            .send()
            .await
            .map_err(|e| from_sdk(e, at))?;
        output
            .key_metadata
            .ok_or_else(|| ProviderError::Unavailable("DescribeKey returned no metadata".into()))
    }

    pub(crate) async fn tags(&self, kms_ref: &str, at: At<'_>) -> Result<BTreeMap<String, String>> {
        let mut tags = BTreeMap::new();
        let mut marker = None;
        loop {
            let output = self
                .client
                .list_resource_tags()
                .key_id(kms_ref)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| from_sdk(e, at))?;
            for tag in output.tags() {
                tags.insert(tag.tag_key().to_owned(), tag.tag_value().to_owned());
            }
            marker = output.next_marker;
            if !output.truncated || marker.is_none() {
                return Ok(tags);
            }
        }
    }

    /// Reads the key behind a primary alias. A name whose alias is taken by
    /// a different name (`a.b` vs `a_b`) is reported unknown.
    pub(crate) async fn resolve(&self, key_id: &str, name: Option<&str>) -> Result<Resolved> {
        let at = At::key(key_id);
        let metadata = self.describe_kms(key_id, at).await?;
        let tags = self.tags(metadata.key_id(), at).await?;
        let (Some(tag_name), Some(version)) = (
            tags.get(TAG_KEY),
            tags.get(TAG_VERSION).and_then(|v| v.parse::<u32>().ok()),
        ) else {
            return Err(ProviderError::InvalidRequest(format!(
                "{key_id} points at a KMS key without Keyward tags; remove the alias or choose another name"
            )));
        };
        if name.is_some_and(|n| n != tag_name) {
            return Err(ProviderError::UnknownKey(
                name.unwrap_or_default().to_owned(),
            ));
        }
        let algorithm = algorithm_of(&metadata, key_id)?;
        self.remember(key_id, algorithm, &metadata, version);
        Ok(Resolved {
            key_id: key_id.to_owned(),
            name: tag_name.clone(),
            owner: tags.get(TAG_OWNER).cloned(),
            algorithm,
            primary: kms_version(&metadata, version),
            claim: claims::from_tags(&tags),
            user_tags: user_tags::of(&tags),
        })
    }

    pub(crate) fn remember(
        &self,
        key_id: &str,
        algorithm: KeyAlgorithm,
        metadata: &KeyMetadata,
        version: u32,
    ) {
        self.algorithms
            .lock()
            .expect("cache lock")
            .insert(key_id.to_owned(), algorithm);
        let mut versions = self.versions_by_arn.lock().expect("cache lock");
        versions.insert(metadata.key_id().to_owned(), version);
        if let Some(arn) = metadata.arn() {
            versions.insert(arn.to_owned(), version);
        }
    }

    /// One version's KMS key, or `None` once it has been deleted.
    pub(crate) async fn version(&self, key_id: &str, version: u32) -> Result<Option<KmsVersion>> {
        let alias = naming::version_alias(key_id, version);
        match self
            .describe_kms(&alias, At::version(key_id, version))
            .await
        {
            Ok(metadata) => Ok(Some(kms_version(&metadata, version))),
            Err(ProviderError::UnknownVersion { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    pub(crate) async fn existing_version(&self, key_id: &str, version: u32) -> Result<KmsVersion> {
        self.version(key_id, version)
            .await?
            .ok_or_else(|| ProviderError::UnknownVersion {
                key: key_id.to_owned(),
                version,
            })
    }

    pub(crate) async fn info(&self, resolved: &Resolved) -> Result<KeyInfo> {
        let mut versions = Vec::new();
        for number in 1..resolved.primary.version {
            versions.push(match self.version(&resolved.key_id, number).await? {
                Some(found) => version_info(&found),
                None => VersionInfo {
                    version: number,
                    state: VersionState::Destroyed,
                    created_at: SystemTime::UNIX_EPOCH,
                    deletion_at: None,
                },
            });
        }
        versions.push(version_info(&resolved.primary));
        Ok(KeyInfo {
            key_id: resolved.key_id.clone(),
            name: resolved.name.clone(),
            algorithm: resolved.algorithm,
            owner: resolved.owner.clone(),
            primary_version: resolved.primary.version,
            versions,
            deletion_at: (resolved.primary.state == VersionState::PendingDeletion)
                .then_some(resolved.primary.deletion_at)
                .flatten(),
            claim: resolved.claim.clone(),
        })
    }

    /// Creates the KMS key for one version and its version alias. If the
    /// alias already exists (a retried call after a crash), reuses that key
    /// when its tags say it is the same key and version.
    pub(crate) async fn create_version(
        &self,
        key_id: &str,
        new: &NewVersion<'_>,
        version: u32,
    ) -> Result<KmsVersion> {
        let NewVersion {
            name,
            owner,
            algorithm,
            description,
            user_tags,
        } = *new;
        let alias = naming::version_alias(key_id, version);
        let at = At::version(key_id, version);
        if let Some(found) = self
            .adopt_version(&alias, key_id, name, owner, version)
            .await?
        {
            return Ok(found);
        }
        let mut tags = vec![
            tag(TAG_MANAGED_BY, naming::MANAGED_BY)?,
            tag(TAG_KEY, name)?,
            tag(TAG_VERSION, &version.to_string())?,
        ];
        if let Some(owner) = owner {
            tags.push(tag(TAG_OWNER, owner)?);
        }
        for (tag_name, value) in user_tags {
            tags.push(tag(tag_name, value)?);
        }
        let description = match description {
            Some(text) => format!("Keyward key {name} version {version}: {text}"),
            None => format!("Keyward key {name} version {version}"),
        };
        let created = self
            .client
            .create_key()
            .key_spec(kms_key_spec(algorithm))
            .key_usage(if algorithm.signing().is_some() {
                KeyUsageType::SignVerify
            } else {
                KeyUsageType::EncryptDecrypt
            })
            .description(description)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| from_sdk(e, at))?;
        let metadata = created
            .key_metadata
            .ok_or_else(|| ProviderError::Unavailable("CreateKey returned no metadata".into()))?;
        let made = self
            .client
            .create_alias()
            .alias_name(&alias)
            .target_key_id(metadata.key_id())
            .send()
            .await;
        if let Err(error) = made {
            // Lost a race with another creator: give our key back, use theirs.
            if error.code() == Some("AlreadyExistsException") {
                self.discard(metadata.key_id()).await;
                return self
                    .adopt_version(&alias, key_id, name, owner, version)
                    .await?
                    .ok_or_else(|| ProviderError::Unavailable(format!("{alias} vanished")));
            }
            self.discard(metadata.key_id()).await;
            return Err(from_sdk(error, at));
        }
        tracing::info!(
            key = key_id,
            version,
            kms_key = metadata.key_id(),
            "created KMS key"
        );
        Ok(kms_version(&metadata, version))
    }

    /// The existing KMS key behind a version alias, if it is ours.
    pub(crate) async fn adopt_version(
        &self,
        alias: &str,
        key_id: &str,
        name: &str,
        owner: Option<&str>,
        version: u32,
    ) -> Result<Option<KmsVersion>> {
        let at = At::version(key_id, version);
        let metadata = match self.describe_kms(alias, at).await {
            Ok(metadata) => metadata,
            Err(ProviderError::UnknownVersion { .. }) => return Ok(None),
            Err(other) => return Err(other),
        };
        let tags = self.tags(metadata.key_id(), at).await?;
        let same = tags.get(TAG_KEY).map(String::as_str) == Some(name)
            && tags.get(TAG_VERSION) == Some(&version.to_string())
            && tags.get(TAG_OWNER).map(String::as_str) == owner;
        if !same {
            return Err(ProviderError::InvalidRequest(format!(
                "{alias} already points at a KMS key of another owner; pick another key name or alias prefix"
            )));
        }
        Ok(Some(kms_version(&metadata, version)))
    }

    /// Schedules an unused KMS key for deletion after a failed create.
    pub(crate) async fn discard(&self, kms_key_id: &str) {
        let result = self
            .client
            .schedule_key_deletion()
            .key_id(kms_key_id)
            .pending_window_in_days(naming::MIN_DELETION_DAYS as i32)
            .send()
            .await;
        if let Err(error) = result {
            tracing::warn!(kms_key = kms_key_id, error = %from_sdk(error, At::key(kms_key_id)),
                "could not discard an unused KMS key; it is tagged keyward.io/* and can be deleted by hand");
        }
    }

    /// Creates the primary alias; `false` when it already exists (a
    /// concurrent create got there first).
    pub(crate) async fn create_primary_alias(
        &self,
        key_id: &str,
        kms_key_id: &str,
    ) -> Result<bool> {
        match self
            .client
            .create_alias()
            .alias_name(key_id)
            .target_key_id(kms_key_id)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if error.code() == Some("AlreadyExistsException") => Ok(false),
            Err(error) => Err(from_sdk(error, At::key(key_id))),
        }
    }

    pub(crate) async fn move_primary_alias(&self, key_id: &str, kms_key_id: &str) -> Result<()> {
        self.client
            .update_alias()
            .alias_name(key_id)
            .target_key_id(kms_key_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| from_sdk(e, At::key(key_id)))
    }

    pub(crate) async fn algorithm(&self, key_id: &str) -> Result<KeyAlgorithm> {
        if let Some(known) = self.algorithms.lock().expect("cache lock").get(key_id) {
            return Ok(*known);
        }
        Ok(self.resolve(key_id, None).await?.algorithm)
    }

    /// `GetPublicKey` of `version` (the primary when `None`): the version
    /// and its SubjectPublicKeyInfo DER.
    pub(crate) async fn public_key_der(
        &self,
        key_id: &str,
        version: Option<u32>,
    ) -> Result<(u32, Vec<u8>)> {
        let (kms_ref, at) = match version {
            Some(number) => (
                naming::version_alias(key_id, number),
                At::version(key_id, number),
            ),
            None => (key_id.to_owned(), At::key(key_id)),
        };
        let output = self
            .client
            .get_public_key()
            .key_id(kms_ref)
            .send()
            .await
            .map_err(|e| from_sdk(e, at))?;
        let version = match version {
            Some(number) => number,
            None => self.version_of(key_id, output.key_id()).await?,
        };
        let der = output
            .public_key
            .ok_or_else(|| ProviderError::Unavailable("GetPublicKey returned no key".into()))?
            .into_inner();
        Ok((version, der))
    }

    pub(crate) fn forget(&self, key_id: &str) {
        self.algorithms.lock().expect("cache lock").remove(key_id);
    }

    /// The Keyward version of the KMS key an operation actually used.
    pub(crate) async fn version_of(&self, key_id: &str, kms_key: Option<&str>) -> Result<u32> {
        let kms_key = kms_key.ok_or_else(|| {
            ProviderError::Unavailable("AWS KMS did not say which key it used".into())
        })?;
        if let Some(version) = self
            .versions_by_arn
            .lock()
            .expect("cache lock")
            .get(kms_key)
        {
            return Ok(*version);
        }
        let tags = self.tags(kms_key, At::key(key_id)).await?;
        let version = tags
            .get(TAG_VERSION)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                ProviderError::InvalidRequest(format!(
                    "{key_id} points at a KMS key without a keyward.io/version tag"
                ))
            })?;
        self.versions_by_arn
            .lock()
            .expect("cache lock")
            .insert(kms_key.to_owned(), version);
        Ok(version)
    }

    /// With `verify_key_state`, refuses to use a version AWS would refuse.
    pub(crate) async fn preflight(&self, key_id: &str, version: u32) -> Result<()> {
        if !self.config.verify_key_state {
            return Ok(());
        }
        let found = self.existing_version(key_id, version).await?;
        state_allows_use(key_id, &found)
    }

    /// After a failed wrap: which version is primary, for the message.
    pub(crate) async fn primary_error(&self, key_id: &str, error: ProviderError) -> ProviderError {
        match error {
            ProviderError::VersionDisabled { version: 0, .. }
            | ProviderError::PendingDeletion { version: 0, .. } => {
                match self.resolve(key_id, None).await {
                    Ok(resolved) => match state_allows_use(key_id, &resolved.primary) {
                        Err(precise) => precise,
                        Ok(()) => error,
                    },
                    Err(_) => error,
                }
            }
            other => other,
        }
    }
}

pub(crate) fn tag(key: &str, value: &str) -> Result<Tag> {
    Tag::builder()
        .tag_key(key)
        .tag_value(value)
        .build()
        .map_err(|e| ProviderError::InvalidRequest(format!("bad tag {key}: {e}")))
}

pub(crate) fn kms_context(context: &WrapContext) -> HashMap<String, String> {
    context
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(crate) fn kms_key_spec(algorithm: KeyAlgorithm) -> KmsKeySpec {
    match algorithm {
        KeyAlgorithm::Aes256 => KmsKeySpec::SymmetricDefault,
        KeyAlgorithm::Rsa3072 | KeyAlgorithm::RsaPss3072 => KmsKeySpec::Rsa3072,
        KeyAlgorithm::Rsa4096 | KeyAlgorithm::RsaPss4096 => KmsKeySpec::Rsa4096,
        KeyAlgorithm::EcP256 => KmsKeySpec::EccNistP256,
        KeyAlgorithm::Ed25519 => KmsKeySpec::EccNistEdwards25519,
    }
}

pub(crate) fn algorithm_of(metadata: &KeyMetadata, key_id: &str) -> Result<KeyAlgorithm> {
    let signing = metadata.key_usage() == Some(&KeyUsageType::SignVerify);
    match (metadata.key_spec(), signing) {
        (Some(KmsKeySpec::SymmetricDefault), false) => Ok(KeyAlgorithm::Aes256),
        (Some(KmsKeySpec::Rsa3072), false) => Ok(KeyAlgorithm::Rsa3072),
        (Some(KmsKeySpec::Rsa4096), false) => Ok(KeyAlgorithm::Rsa4096),
        (Some(KmsKeySpec::EccNistP256), true) => Ok(KeyAlgorithm::EcP256),
        (other, _) => Err(ProviderError::InvalidRequest(format!(
            "{key_id} is a {} {} KMS key, which Keyward does not use",
            other.map(|s| s.as_str()).unwrap_or("unknown"),
            metadata
                .key_usage()
                .map(|u| u.as_str())
                .unwrap_or("unknown usage"),
        ))),
    }
}

pub(crate) fn kms_version(metadata: &KeyMetadata, version: u32) -> KmsVersion {
    KmsVersion {
        kms_key_id: metadata.key_id().to_owned(),
        version,
        state: match metadata.key_state() {
            Some(KeyState::Enabled) => VersionState::Enabled,
            Some(KeyState::PendingDeletion | KeyState::PendingReplicaDeletion) => {
                VersionState::PendingDeletion
            }
            _ => VersionState::Disabled,
        },
        created_at: metadata
            .creation_date()
            .and_then(to_system_time)
            .unwrap_or(SystemTime::UNIX_EPOCH),
        deletion_at: metadata.deletion_date().and_then(to_system_time),
    }
}

pub(crate) fn version_info(found: &KmsVersion) -> VersionInfo {
    VersionInfo {
        version: found.version,
        state: found.state,
        created_at: found.created_at,
        deletion_at: found.deletion_at,
    }
}

pub(crate) fn state_allows_use(key_id: &str, found: &KmsVersion) -> Result<()> {
    let (key, version) = (key_id.to_owned(), found.version);
    match found.state {
        VersionState::Enabled => Ok(()),
        VersionState::Disabled => Err(ProviderError::VersionDisabled { key, version }),
        VersionState::PendingDeletion => Err(ProviderError::PendingDeletion { key, version }),
        VersionState::Destroyed => Err(ProviderError::UnknownVersion { key, version }),
    }
}

pub(crate) fn to_system_time(time: &DateTime) -> Option<SystemTime> {
    SystemTime::try_from(*time).ok()
}
