//! [`KeyProvider`] on AWS KMS with the "managed" version strategy: every
//! Keyward key version is its own KMS key, so versions can be disabled and
//! destroyed one by one (AWS native rotation keeps all material under one
//! key id and cannot; see [`crate::rotation`] for it).

use crate::config::AwsKmsConfig;
use crate::errors::{At, from_sdk};
use crate::keys::{NewVersion, kms_context, state_allows_use, to_system_time};
use crate::naming;
use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::EncryptionAlgorithmSpec;
use keyward_core::crypto::RsaPublicKey;
use keyward_core::crypto::signing::ToSign;
use keyward_core::provider::{
    Claim, DeletionTarget, KeyAlgorithm, KeyInfo, KeyProvider, KeySpec, NativeRotation,
    NativeSchedule, ProviderError, PublicKeyInfo, Result, Signature, Tags, VerifyingKey,
    VersionState, WrapAlgorithm, WrapContext, WrappedDek, refuse_signing,
};
use keyward_core::secret::Dek;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

pub struct AwsKmsProvider {
    pub(crate) client: Client,
    pub(crate) config: AwsKmsConfig,
    /// KMS key ARN/id -> Keyward version. A KMS key's version never changes,
    /// so this never goes stale; it saves a tag lookup per wrap.
    pub(crate) versions_by_arn: Mutex<HashMap<String, u32>>,
    /// Keyward key id -> algorithm, to pick the Encrypt parameters.
    pub(crate) algorithms: Mutex<HashMap<String, KeyAlgorithm>>,
}

impl std::fmt::Debug for AwsKmsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKmsProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AwsKmsProvider {
    /// Builds the SDK client; does not call AWS yet.
    pub async fn connect(config: AwsKmsConfig) -> Result<Self> {
        naming::validate_prefix(&config.alias_prefix)?;
        let client = config.sdk_client().await;
        Ok(AwsKmsProvider {
            client,
            config,
            versions_by_arn: Mutex::new(HashMap::new()),
            algorithms: Mutex::new(HashMap::new()),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait]
impl KeyProvider for AwsKmsProvider {
    fn kind(&self) -> &'static str {
        "aws"
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo> {
        crate::signing::refuse_untested(spec.algorithm)?;
        let key_id = naming::primary_alias(&self.config.alias_prefix, &spec.name)?;
        match self.resolve(&key_id, None).await {
            Ok(existing)
                if existing.owner.is_some()
                    && existing.owner == spec.owner
                    && existing.name == spec.name =>
            {
                if existing.algorithm != spec.algorithm {
                    return Err(ProviderError::InvalidRequest(format!(
                        "key `{}` exists as {}, not {}; algorithms cannot change",
                        spec.name,
                        existing.algorithm.describe(),
                        spec.algorithm.describe()
                    )));
                }
                return self.info(&existing).await;
            }
            Ok(_) => {
                return Err(ProviderError::InvalidRequest(format!(
                    "a key named `{}` already exists in this AWS account and Region ({key_id}); pick another name or rotate the existing key",
                    spec.name
                )));
            }
            Err(ProviderError::UnknownKey(_)) => {}
            Err(other) => return Err(other),
        }
        let first = self
            .create_version(
                &key_id,
                &NewVersion {
                    name: &spec.name,
                    owner: spec.owner.as_deref(),
                    algorithm: spec.algorithm,
                    description: spec.description.as_deref(),
                    user_tags: &Tags::new(),
                },
                1,
            )
            .await?;
        // When a concurrent create made the alias first, the owner check
        // below decides whether it was the same ManagedKey.
        self.create_primary_alias(&key_id, &first.kms_key_id)
            .await?;
        let resolved = self.resolve(&key_id, Some(&spec.name)).await?;
        if resolved.owner != spec.owner {
            return Err(ProviderError::InvalidRequest(format!(
                "a key named `{}` was just created by another owner; pick another name",
                spec.name
            )));
        }
        self.info(&resolved).await
    }

    async fn adopt_key(&self, reference: &str, spec: &KeySpec) -> Result<KeyInfo> {
        refuse_signing(self.kind(), spec.algorithm)?;
        self.adopt(reference, spec).await
    }

    fn keeps_claims(&self, _key_id: &str) -> bool {
        true
    }

    async fn set_owner(&self, key_id: &str, owner: &str, claim: &Claim) -> Result<()> {
        let key_id = self.key_id_for(key_id).await?;
        let resolved = self.resolve(&key_id, None).await?;
        let at = At::key(&key_id);
        self.tag_owner(&resolved.primary.kms_key_id, Some(owner), Some(claim), at)
            .await
    }

    async fn set_tags(&self, key_id: &str, tags: &Tags) -> Result<()> {
        self.set_user_tags(key_id, tags).await
    }

    async fn tags(&self, key_id: &str) -> Result<Tags> {
        self.user_tags(key_id).await
    }

    async fn describe_key(&self, key: &str) -> Result<KeyInfo> {
        let key_id = self.key_id_for(key).await?;
        let by_name =
            (!key.starts_with("alias/") && !key.starts_with("arn:") && !naming::is_kms_key_id(key))
                .then_some(key);
        let resolved = match self.resolve(&key_id, by_name).await {
            Err(ProviderError::UnknownKey(_)) => {
                return Err(ProviderError::UnknownKey(key.to_owned()));
            }
            other => other?,
        };
        self.info(&resolved).await
    }

    async fn rotate_key(&self, key_id: &str) -> Result<KeyInfo> {
        let key_id = self.key_id_for(key_id).await?;
        let current = self.resolve(&key_id, None).await?;
        if current.primary.state == VersionState::PendingDeletion {
            return Err(ProviderError::PendingDeletion {
                key: key_id,
                version: current.primary.version,
            });
        }
        let next = current.primary.version + 1;
        let made = self
            .create_version(
                &key_id,
                &NewVersion {
                    name: &current.name,
                    owner: current.owner.as_deref(),
                    algorithm: current.algorithm,
                    description: None,
                    user_tags: &current.user_tags,
                },
                next,
            )
            .await?;
        // Before the alias moves, so the claim never looks released.
        let at = At::version(&key_id, next);
        self.tag_owner(&made.kms_key_id, None, current.claim.as_ref(), at)
            .await?;
        self.move_primary_alias(&key_id, &made.kms_key_id).await?;
        tracing::info!(key = %key_id, version = next, "rotated: primary alias moved");
        let resolved = self.resolve(&key_id, None).await?;
        self.info(&resolved).await
    }

    async fn set_version_enabled(&self, key_id: &str, version: u32, enabled: bool) -> Result<()> {
        let key_id = self.key_id_for(key_id).await?;
        let found = self.existing_version(&key_id, version).await?;
        if found.state == VersionState::PendingDeletion {
            return Err(ProviderError::PendingDeletion {
                key: key_id,
                version,
            });
        }
        let at = At::version(&key_id, version);
        if enabled {
            self.client
                .enable_key()
                .key_id(&found.kms_key_id)
                .send()
                .await
                .map_err(|e| from_sdk(e, at))?;
        } else {
            self.client
                .disable_key()
                .key_id(&found.kms_key_id)
                .send()
                .await
                .map_err(|e| from_sdk(e, at))?;
        }
        tracing::info!(key = %key_id, version, enabled, "changed version state");
        Ok(())
    }

    async fn schedule_deletion(
        &self,
        key_id: &str,
        target: DeletionTarget,
        window: Duration,
    ) -> Result<SystemTime> {
        let days = naming::deletion_days(window)?;
        let key_id = self.key_id_for(key_id).await?;
        let resolved = self.resolve(&key_id, None).await?;
        let targets = match target {
            DeletionTarget::WholeKey => {
                let mut all = Vec::new();
                for number in 1..resolved.primary.version {
                    if let Some(found) = self.version(&key_id, number).await? {
                        all.push(found);
                    }
                }
                all.push(resolved.primary.clone());
                all
            }
            DeletionTarget::Version(number) if number == resolved.primary.version => {
                return Err(ProviderError::InvalidRequest(format!(
                    "version {number} is the primary version of `{}`; rotate the key first, or delete the whole key",
                    resolved.name
                )));
            }
            DeletionTarget::Version(number) => vec![self.existing_version(&key_id, number).await?],
        };
        let mut latest = SystemTime::now() + Duration::from_secs(days as u64 * 24 * 3600);
        for found in targets {
            if let (VersionState::PendingDeletion, Some(at)) = (found.state, found.deletion_at) {
                latest = latest.max(at);
                continue;
            }
            let output = self
                .client
                .schedule_key_deletion()
                .key_id(&found.kms_key_id)
                .pending_window_in_days(days)
                .send()
                .await
                .map_err(|e| from_sdk(e, At::version(&key_id, found.version)))?;
            if let Some(at) = output.deletion_date().and_then(to_system_time) {
                latest = latest.max(at);
            }
        }
        tracing::info!(key = %key_id, ?target, days, "scheduled deletion");
        Ok(latest)
    }

    async fn cancel_deletion(&self, key_id: &str, target: DeletionTarget) -> Result<()> {
        let key_id = self.key_id_for(key_id).await?;
        let resolved = self.resolve(&key_id, None).await?;
        let numbers: Vec<u32> = match target {
            DeletionTarget::WholeKey => (1..=resolved.primary.version).collect(),
            DeletionTarget::Version(number) => vec![number],
        };
        for number in numbers {
            let found = if number == resolved.primary.version {
                Some(resolved.primary.clone())
            } else {
                self.version(&key_id, number).await?
            };
            let Some(found) = found else {
                if target != DeletionTarget::WholeKey {
                    return Err(ProviderError::UnknownVersion {
                        key: key_id,
                        version: number,
                    });
                }
                continue;
            };
            if found.state != VersionState::PendingDeletion {
                continue;
            }
            self.client
                .cancel_key_deletion()
                .key_id(&found.kms_key_id)
                .send()
                .await
                .map_err(|e| from_sdk(e, At::version(&key_id, number)))?;
        }
        // AWS leaves a cancelled key Disabled; enabling it is a separate,
        // explicit decision (set_version_enabled).
        tracing::info!(key = %key_id, ?target, "cancelled deletion; versions stay disabled until enabled");
        Ok(())
    }

    async fn wrap_dek(&self, key_id: &str, dek: &Dek, context: &WrapContext) -> Result<WrappedDek> {
        let key_id = self.key_id_for(key_id).await?;
        let algorithm = self.algorithm(&key_id).await?;
        // A signing key is refused for what it is, before its state.
        let wrapping = algorithm.wrapping(&key_id)?;
        if self.config.verify_key_state {
            let resolved = self.resolve(&key_id, None).await?;
            state_allows_use(&key_id, &resolved.primary)?;
        }
        let mut request = self
            .client
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(dek.expose().to_vec()));
        request = match wrapping {
            WrapAlgorithm::Symmetric => request.set_encryption_context(Some(kms_context(context))),
            WrapAlgorithm::RsaOaepSha256 => {
                request.encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
            }
        };
        let output = match request.send().await {
            Ok(output) => output,
            Err(error) => {
                self.forget(&key_id);
                let error = from_sdk(error, At::key(&key_id));
                return Err(self.primary_error(&key_id, error).await);
            }
        };
        let version = self.version_of(&key_id, output.key_id()).await?;
        let blob = output
            .ciphertext_blob
            .ok_or_else(|| ProviderError::Unavailable("Encrypt returned no ciphertext".into()))?;
        Ok(WrappedDek {
            key_id,
            version,
            algorithm: wrapping,
            blob: blob.into_inner(),
        })
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<Dek> {
        let key_id = self.key_id_for(&wrapped.key_id).await?;
        self.preflight(&key_id, wrapped.version).await?;
        let mut request = self
            .client
            .decrypt()
            .key_id(naming::version_alias(&key_id, wrapped.version))
            .ciphertext_blob(Blob::new(wrapped.blob.clone()));
        request = match wrapped.algorithm {
            WrapAlgorithm::Symmetric => request.set_encryption_context(Some(kms_context(context))),
            WrapAlgorithm::RsaOaepSha256 => {
                request.encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
            }
        };
        let mut output = request
            .send()
            .await
            .map_err(|e| from_sdk(e, At::version(&key_id, wrapped.version)))?;
        let plaintext = Zeroizing::new(
            output
                .plaintext
                .take()
                .ok_or(ProviderError::UnwrapFailed)?
                .into_inner(),
        );
        Dek::from_slice(&plaintext).ok_or(ProviderError::UnwrapFailed)
    }

    async fn public_key(&self, key_id: &str, version: Option<u32>) -> Result<PublicKeyInfo> {
        let key_id = self.key_id_for(key_id).await?;
        let algorithm = self.algorithm(&key_id).await?;
        if !algorithm.is_sealing() {
            return Err(ProviderError::WrongKeyType {
                key: key_id,
                expected: "an asymmetric (RSA) key",
                actual: algorithm.describe(),
            });
        }
        let (version, der) = self.public_key_der(&key_id, version).await?;
        let public_key = RsaPublicKey::from_spki_der(&der).map_err(|e| {
            ProviderError::InvalidRequest(format!("AWS KMS returned an unusable public key: {e}"))
        })?;
        Ok(PublicKeyInfo {
            key_id,
            version,
            public_key,
        })
    }

    async fn sign(&self, key_id: &str, version: Option<u32>, input: &ToSign) -> Result<Signature> {
        self.sign_with(key_id, version, input).await
    }

    async fn verifying_key(&self, key_id: &str, version: Option<u32>) -> Result<VerifyingKey> {
        self.verifying_key_of(key_id, version).await
    }

    /// `ReEncrypt`: KMS decrypts under the old version and encrypts under
    /// the primary internally, so the DEK never reaches this process.
    async fn rewrap(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<WrappedDek> {
        let key_id = self.key_id_for(&wrapped.key_id).await?;
        self.preflight(&key_id, wrapped.version).await?;
        if self.config.verify_key_state {
            let resolved = self.resolve(&key_id, None).await?;
            state_allows_use(&key_id, &resolved.primary)?;
        }
        let mut request = self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(wrapped.blob.clone()))
            .source_key_id(naming::version_alias(&key_id, wrapped.version))
            .destination_key_id(&key_id);
        request = match wrapped.algorithm {
            WrapAlgorithm::Symmetric => request
                .set_source_encryption_context(Some(kms_context(context)))
                .set_destination_encryption_context(Some(kms_context(context))),
            WrapAlgorithm::RsaOaepSha256 => request
                .source_encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
                .destination_encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256),
        };
        let output = request
            .send()
            .await
            .map_err(|e| from_sdk(e, At::version(&key_id, wrapped.version)))?;
        let version = self.version_of(&key_id, output.key_id()).await?;
        let blob = output
            .ciphertext_blob
            .ok_or_else(|| ProviderError::Unavailable("ReEncrypt returned no ciphertext".into()))?;
        Ok(WrappedDek {
            key_id,
            version,
            algorithm: wrapped.algorithm,
            blob: blob.into_inner(),
        })
    }

    /// AWS automatic key rotation of the primary version's KMS key: new
    /// material under the same version (see [`crate::rotation`]).
    async fn native_rotation(&self, key_id: &str) -> Result<Option<NativeRotation>> {
        self.native_rotation_status(key_id).await
    }

    async fn set_native_rotation(
        &self,
        key_id: &str,
        schedule: Option<NativeSchedule>,
    ) -> Result<()> {
        self.apply_native_schedule(key_id, schedule).await
    }
}
