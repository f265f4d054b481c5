//! [`KeyProvider`] on Google Cloud KMS: one Keyward key is one CryptoKey
//! in the configured key ring, its versions are CryptoKeyVersions.

use crate::config::{GcpKmsConfig, ProtectionLevel};
use crate::errors::At;
use crate::keys::{algorithm_of, is_symmetric, purpose_of, to_system_time, version_algorithm};
use crate::naming::{self, MANAGED_LABEL, OWNER_LABEL};
use crate::retry::{Idempotent, retrying};
use async_trait::async_trait;
use google_cloud_gax::error::Error as GaxError;
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionState;
use google_cloud_kms_v1::model::{
    CryptoKey, CryptoKeyVersion, CryptoKeyVersionTemplate, ProtectionLevel as GcpProtection,
};
use google_cloud_wkt::FieldMask;
use keyward_core::crypto::signing::ToSign;
use keyward_core::crypto::{RsaPublicKey, public_key_from_pem};
use keyward_core::provider::{
    Claim, DeletionTarget, KeyAlgorithm, KeyInfo, KeyProvider, KeySpec, NativeRotation,
    NativeSchedule, ProviderError, PublicKeyInfo, Result, Signature, Tags, VerifyingKey,
    VersionState, WrapAlgorithm, WrapContext, WrappedDek,
};
use keyward_core::secret::Dek;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

pub struct GcpKmsProvider {
    pub(crate) client: KeyManagementService,
    pub(crate) config: GcpKmsConfig,
    /// Crypto key name -> algorithm (immutable in Cloud KMS).
    algorithms: Mutex<HashMap<String, KeyAlgorithm>>,
    /// Version name -> public key (a version's key pair never changes).
    public_keys: Mutex<HashMap<String, RsaPublicKey>>,
    /// Version name -> a signing version's SubjectPublicKeyInfo DER.
    pub(crate) verifying_keys: Mutex<HashMap<String, Vec<u8>>>,
}

impl std::fmt::Debug for GcpKmsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpKmsProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GcpKmsProvider {
    /// Builds the client; does not call Cloud KMS yet.
    pub async fn connect(config: GcpKmsConfig) -> Result<Self> {
        config.validate()?;
        let client = config.client().await?;
        Ok(GcpKmsProvider {
            client,
            config,
            algorithms: Mutex::new(HashMap::new()),
            public_keys: Mutex::new(HashMap::new()),
            verifying_keys: Mutex::new(HashMap::new()),
        })
    }

    pub fn client(&self) -> &KeyManagementService {
        &self.client
    }

    pub fn config(&self) -> &GcpKmsConfig {
        &self.config
    }

    /// The crypto key resource name for a key id or Keyward name.
    pub fn crypto_key_name(&self, key: &str) -> Result<String> {
        naming::crypto_key_name(&self.config.key_ring, key)
    }

    pub(crate) async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        idempotent: Idempotent,
        at: At<'_>,
        call: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GaxError>>,
    {
        retrying(
            &self.config.retry,
            &self.config.timeouts,
            operation,
            idempotent,
            at,
            call,
        )
        .await
    }

    pub(crate) fn remember_algorithm(&self, name: &str, algorithm: KeyAlgorithm) {
        if let Ok(mut known) = self.algorithms.lock() {
            known.insert(name.to_owned(), algorithm);
        }
    }

    pub(crate) fn known_algorithm(&self, name: &str) -> Option<KeyAlgorithm> {
        self.algorithms.lock().ok()?.get(name).copied()
    }

    fn new_crypto_key(&self, spec: &KeySpec) -> CryptoKey {
        let purpose = purpose_of(spec.algorithm);
        let protection = match self.config.protection_level {
            ProtectionLevel::Software => GcpProtection::Software,
            ProtectionLevel::Hsm => GcpProtection::Hsm,
        };
        let mut labels = vec![(MANAGED_LABEL.to_owned(), "true".to_owned())];
        if let Some(owner) = &spec.owner {
            labels.push((OWNER_LABEL.to_owned(), naming::owner_label_value(owner)));
        }
        let window = self.config.destroy_scheduled_duration;
        CryptoKey::new()
            .set_purpose(purpose)
            .set_version_template(
                CryptoKeyVersionTemplate::new()
                    .set_protection_level(protection)
                    .set_algorithm(version_algorithm(spec.algorithm)),
            )
            .set_labels(labels)
            .set_destroy_scheduled_duration(google_cloud_wkt::Duration::clamp(
                window.as_secs() as i64,
                0,
            ))
    }

    /// Returns an existing key for `spec` if it has the same owner and
    /// algorithm; refuses one that belongs to someone else.
    async fn adopt(&self, existing: CryptoKey, spec: &KeySpec) -> Result<KeyInfo> {
        let expected = spec.owner.as_deref().map(naming::owner_label_value);
        let found = existing.labels.get(OWNER_LABEL).cloned();
        if expected.is_none() || found != expected {
            return Err(ProviderError::InvalidRequest(format!(
                "crypto key `{}` already exists and belongs to another owner ({}); pick another name",
                existing.name,
                found.as_deref().unwrap_or("no keyward-owner label")
            )));
        }
        let algorithm = algorithm_of(&existing)?;
        if algorithm != spec.algorithm {
            return Err(ProviderError::InvalidRequest(format!(
                "key `{}` exists as {}, not {}; algorithms cannot change",
                spec.name,
                algorithm.describe(),
                spec.algorithm.describe()
            )));
        }
        if !is_symmetric(algorithm) {
            self.wait_generated(&existing.name, 1).await?;
        }
        self.info_of(&existing, Some(&spec.name)).await
    }

    async fn create_version(&self, key: &str) -> Result<u32> {
        let made = self
            .call(
                "CreateCryptoKeyVersion",
                Idempotent::No,
                At::key(key),
                || {
                    self.client
                        .create_crypto_key_version()
                        .set_parent(key)
                        .set_crypto_key_version(CryptoKeyVersion::new())
                        .send()
                },
            )
            .await?;
        naming::version_number(&made.name).ok_or_else(|| {
            ProviderError::Unavailable(format!(
                "Cloud KMS returned a version without a number: `{}`",
                made.name
            ))
        })
    }

    async fn destroy_version(&self, key: &str, version: u32) -> Result<Option<SystemTime>> {
        let name = naming::version_name(key, version);
        let destroyed = self
            .call(
                "DestroyCryptoKeyVersion",
                Idempotent::No,
                At::version(key, version),
                || {
                    self.client
                        .destroy_crypto_key_version()
                        .set_name(&name)
                        .send()
                },
            )
            .await?;
        Ok(to_system_time(destroyed.destroy_time.as_ref()))
    }

    async fn restore_version(&self, key: &str, version: u32) -> Result<()> {
        let name = naming::version_name(key, version);
        self.call(
            "RestoreCryptoKeyVersion",
            Idempotent::No,
            At::version(key, version),
            || {
                self.client
                    .restore_crypto_key_version()
                    .set_name(&name)
                    .send()
            },
        )
        .await?;
        Ok(())
    }

    async fn version_public_key(&self, key: &str, version: u32) -> Result<RsaPublicKey> {
        let name = naming::version_name(key, version);
        if let Some(known) = self
            .public_keys
            .lock()
            .ok()
            .and_then(|k| k.get(&name).cloned())
        {
            return Ok(known);
        }
        let pem = self.public_pem(key, version).await?;
        let parsed = public_key_from_pem(&pem).map_err(|e| {
            ProviderError::InvalidRequest(format!(
                "Cloud KMS returned an unusable public key for version {version} of `{key}`: {e}"
            ))
        })?;
        if let Ok(mut known) = self.public_keys.lock() {
            known.insert(name, parsed.clone());
        }
        Ok(parsed)
    }

    /// The PEM public key of an asymmetric key's version (`GetPublicKey`).
    pub(crate) async fn public_pem(&self, key: &str, version: u32) -> Result<String> {
        let name = naming::version_name(key, version);
        let public = self
            .call(
                "GetPublicKey",
                Idempotent::Yes,
                At::version(key, version),
                || self.client.get_public_key().set_name(&name).send(),
            )
            .await?;
        Ok(public.pem)
    }

    /// The primary version of an asymmetric key ([`crate::keys::primary_of`]),
    /// refused unless enabled: what a sealing key seals to and a signing
    /// key signs with.
    pub(crate) async fn usable_primary(&self, key: &str) -> Result<u32> {
        self.usable_version(key, None).await
    }

    /// `version` (the primary when `None`) when it is enabled.
    pub(crate) async fn usable_version(&self, key: &str, version: Option<u32>) -> Result<u32> {
        let info = self.info(key).await?;
        let wanted = version.unwrap_or(info.primary_version);
        match info.versions.iter().find(|v| v.version == wanted) {
            Some(v) if v.state == VersionState::Enabled => Ok(v.version),
            Some(v) if v.state == VersionState::PendingDeletion => {
                Err(ProviderError::PendingDeletion {
                    key: key.to_owned(),
                    version: v.version,
                })
            }
            Some(v) => Err(ProviderError::VersionDisabled {
                key: key.to_owned(),
                version: v.version,
            }),
            None => Err(ProviderError::UnknownVersion {
                key: key.to_owned(),
                version: wanted,
            }),
        }
    }
}

#[async_trait]
impl KeyProvider for GcpKmsProvider {
    fn kind(&self) -> &'static str {
        "gcp"
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo> {
        let id = naming::crypto_key_id(&spec.name)?;
        let name = format!("{}/cryptoKeys/{id}", self.config.key_ring);
        match self.get_key(&name).await {
            Ok(existing) => return self.adopt(existing, spec).await,
            Err(ProviderError::UnknownKey(_)) => {}
            Err(other) => return Err(other),
        }
        let key = self.new_crypto_key(spec);
        let ring = &self.config.key_ring;
        let created = self
            .call("CreateCryptoKey", Idempotent::No, At::key(&name), || {
                self.client
                    .create_crypto_key()
                    .set_parent(ring)
                    .set_crypto_key_id(&id)
                    .set_crypto_key(key.clone())
                    .send()
            })
            .await;
        let created = match created {
            Ok(created) => created,
            // A concurrent reconcile, or a retried create whose first
            // attempt went through: the owner label decides.
            Err(error) => match self.get_key(&name).await {
                Ok(existing) => return self.adopt(existing, spec).await,
                Err(_) => return Err(error),
            },
        };
        tracing::info!(key = %name, algorithm = %spec.algorithm, "created Cloud KMS crypto key");
        self.remember_algorithm(&name, spec.algorithm);
        if !is_symmetric(spec.algorithm) {
            self.wait_generated(&name, 1).await?;
        }
        self.info_of(&created, Some(&spec.name)).await
    }

    async fn adopt_key(&self, reference: &str, spec: &KeySpec) -> Result<KeyInfo> {
        self.adopt_by_reference(reference, spec).await
    }

    fn keeps_claims(&self, _key_id: &str) -> bool {
        true
    }

    fn recorded_owner(&self, _key_id: &str, owner: &str) -> String {
        naming::owner_label_value(owner)
    }

    async fn set_owner(&self, key_id: &str, owner: &str, claim: &Claim) -> Result<()> {
        self.set_owner_labels(key_id, owner, claim).await
    }

    async fn set_tags(&self, key_id: &str, tags: &Tags) -> Result<()> {
        self.set_user_labels(key_id, tags).await
    }

    async fn tags(&self, key_id: &str) -> Result<Tags> {
        self.user_labels(key_id).await
    }

    async fn describe_key(&self, key: &str) -> Result<KeyInfo> {
        let name = self.crypto_key_name(key)?;
        match self.info(&name).await {
            Err(ProviderError::UnknownKey(_)) => Err(ProviderError::UnknownKey(key.to_owned())),
            other => other,
        }
    }

    async fn rotate_key(&self, key_id: &str) -> Result<KeyInfo> {
        let name = self.crypto_key_name(key_id)?;
        let current = self.info(&name).await?;
        if current.deletion_at.is_some() {
            return Err(ProviderError::PendingDeletion {
                key: name,
                version: current.primary_version,
            });
        }
        // The new version takes the key's version template, so its
        // algorithm is the key's.
        let next = self.create_version(&name).await?;
        if !is_symmetric(current.algorithm) {
            self.wait_generated(&name, next).await?;
        } else {
            let id = next.to_string();
            self.call(
                "UpdateCryptoKeyPrimaryVersion",
                Idempotent::Yes,
                At::version(&name, next),
                || {
                    self.client
                        .update_crypto_key_primary_version()
                        .set_name(&name)
                        .set_crypto_key_version_id(&id)
                        .send()
                },
            )
            .await?;
        }
        tracing::info!(key = %name, version = next, "rotated: new primary version");
        self.info(&name).await
    }

    async fn set_version_enabled(&self, key_id: &str, version: u32, enabled: bool) -> Result<()> {
        let name = self.crypto_key_name(key_id)?;
        let state = if enabled {
            CryptoKeyVersionState::Enabled
        } else {
            CryptoKeyVersionState::Disabled
        };
        let update = CryptoKeyVersion::new()
            .set_name(naming::version_name(&name, version))
            .set_state(state);
        self.call(
            "UpdateCryptoKeyVersion",
            Idempotent::Yes,
            At::version(&name, version),
            || {
                self.client
                    .update_crypto_key_version()
                    .set_crypto_key_version(update.clone())
                    .set_update_mask(FieldMask::default().set_paths(["state"]))
                    .send()
            },
        )
        .await?;
        tracing::info!(key = %name, version, enabled, "changed version state");
        Ok(())
    }

    async fn schedule_deletion(
        &self,
        key_id: &str,
        target: DeletionTarget,
        window: Duration,
    ) -> Result<SystemTime> {
        let name = self.crypto_key_name(key_id)?;
        let key = self.get_key(&name).await?;
        let fixed = key
            .destroy_scheduled_duration
            .as_ref()
            .and_then(|d| u64::try_from(d.seconds()).ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(30 * 24 * 3600));
        // Cloud KMS fixes the window per key at creation; destroying sooner
        // than asked would be wrong, later is only more cautious.
        if window > fixed + Duration::from_secs(60) {
            return Err(ProviderError::InvalidRequest(format!(
                "key `{name}` destroys versions {} days after scheduling (destroyScheduledDuration, fixed at creation); a {}-day window cannot be honoured",
                fixed.as_secs() / 86_400,
                window.as_secs() / 86_400
            )));
        }
        let info = self.info_of(&key, None).await?;
        let targets: Vec<_> = match target {
            DeletionTarget::WholeKey => info.versions.clone(),
            DeletionTarget::Version(number)
                if number == info.primary_version
                    && info
                        .versions
                        .iter()
                        .filter(|v| v.state != VersionState::Destroyed)
                        .count()
                        > 1 =>
            {
                return Err(ProviderError::InvalidRequest(format!(
                    "version {number} is the primary version of `{name}`; rotate the key first, or delete the whole key"
                )));
            }
            DeletionTarget::Version(number) => vec![
                info.versions
                    .iter()
                    .find(|v| v.version == number)
                    .cloned()
                    .ok_or(ProviderError::UnknownVersion {
                        key: name.clone(),
                        version: number,
                    })?,
            ],
        };
        let mut latest = SystemTime::now() + fixed;
        for version in targets {
            match (version.state, version.deletion_at) {
                (VersionState::Destroyed, _) => continue,
                (VersionState::PendingDeletion, Some(at)) => latest = latest.max(at),
                _ => {
                    if let Some(at) = self.destroy_version(&name, version.version).await? {
                        latest = latest.max(at);
                    }
                }
            }
        }
        tracing::info!(key = %name, ?target, "scheduled destruction");
        Ok(latest)
    }

    async fn cancel_deletion(&self, key_id: &str, target: DeletionTarget) -> Result<()> {
        let name = self.crypto_key_name(key_id)?;
        let info = self.info(&name).await?;
        let numbers: Vec<u32> = match target {
            DeletionTarget::WholeKey => info.versions.iter().map(|v| v.version).collect(),
            DeletionTarget::Version(number) => vec![number],
        };
        for number in numbers {
            let Some(version) = info.versions.iter().find(|v| v.version == number) else {
                return Err(ProviderError::UnknownVersion {
                    key: name,
                    version: number,
                });
            };
            if version.state == VersionState::PendingDeletion {
                self.restore_version(&name, number).await?;
            }
        }
        // Cloud KMS restores versions as DISABLED; enabling them is a
        // separate, explicit decision (set_version_enabled).
        tracing::info!(key = %name, ?target, "cancelled destruction; versions stay disabled until enabled");
        Ok(())
    }

    async fn wrap_dek(&self, key_id: &str, dek: &Dek, context: &WrapContext) -> Result<WrappedDek> {
        let name = self.crypto_key_name(key_id)?;
        let algorithm = self.algorithm(&name).await?;
        if algorithm.wrapping(&name)? == WrapAlgorithm::RsaOaepSha256 {
            // Cloud KMS has no asymmetric encrypt: seal locally with the
            // version's public key, exactly as offline sealing does.
            let version = self.usable_primary(&name).await?;
            let public = self.version_public_key(&name, version).await?;
            return Ok(WrappedDek {
                key_id: name,
                version,
                algorithm: WrapAlgorithm::RsaOaepSha256,
                blob: public.encrypt(dek.expose()),
            });
        }
        let aad = bytes::Bytes::from(naming::aad(context)?);
        let plaintext = bytes::Bytes::copy_from_slice(dek.expose());
        let output = self
            .call("Encrypt", Idempotent::Yes, At::key(&name), || {
                self.client
                    .encrypt()
                    .set_name(&name)
                    .set_plaintext(plaintext.clone())
                    .set_additional_authenticated_data(aad.clone())
                    .send()
            })
            .await?;
        let version = naming::version_number(&output.name).ok_or_else(|| {
            ProviderError::Unavailable(format!(
                "Cloud KMS Encrypt did not name the version it used (`{}`)",
                output.name
            ))
        })?;
        Ok(WrappedDek {
            key_id: name,
            version,
            algorithm: WrapAlgorithm::Symmetric,
            blob: output.ciphertext.to_vec(),
        })
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<Dek> {
        let name = self.crypto_key_name(&wrapped.key_id)?;
        let algorithm = self.algorithm(&name).await?;
        if algorithm.wrapping(&name)? != wrapped.algorithm {
            return Err(ProviderError::UnwrapFailed);
        }
        let at = At::version(&name, wrapped.version).decrypting();
        let ciphertext = bytes::Bytes::copy_from_slice(&wrapped.blob);
        let plaintext = match wrapped.algorithm {
            // Cloud KMS finds the version inside the ciphertext.
            WrapAlgorithm::Symmetric => {
                let aad = bytes::Bytes::from(naming::aad(context)?);
                let output = self
                    .call("Decrypt", Idempotent::Yes, at, || {
                        self.client
                            .decrypt()
                            .set_name(&name)
                            .set_ciphertext(ciphertext.clone())
                            .set_additional_authenticated_data(aad.clone())
                            .send()
                    })
                    .await?;
                Zeroizing::new(output.plaintext.to_vec())
            }
            WrapAlgorithm::RsaOaepSha256 => {
                let version = naming::version_name(&name, wrapped.version);
                let output = self
                    .call("AsymmetricDecrypt", Idempotent::Yes, at, || {
                        self.client
                            .asymmetric_decrypt()
                            .set_name(&version)
                            .set_ciphertext(ciphertext.clone())
                            .send()
                    })
                    .await?;
                Zeroizing::new(output.plaintext.to_vec())
            }
        };
        Dek::from_slice(&plaintext).ok_or(ProviderError::UnwrapFailed)
    }

    async fn public_key(&self, key_id: &str, version: Option<u32>) -> Result<PublicKeyInfo> {
        let name = self.crypto_key_name(key_id)?;
        let algorithm = self.algorithm(&name).await?;
        if !algorithm.is_sealing() {
            return Err(ProviderError::WrongKeyType {
                key: name,
                expected: "an asymmetric (RSA) key",
                actual: algorithm.describe(),
            });
        }
        let version = match version {
            Some(number) => number,
            None => self.usable_primary(&name).await?,
        };
        let public_key = self.version_public_key(&name, version).await?;
        let bits = if algorithm == KeyAlgorithm::Rsa4096 {
            4096
        } else {
            3072
        };
        if public_key.bits() != bits {
            return Err(ProviderError::InvalidRequest(format!(
                "version {version} of `{name}` has a {}-bit public key, expected {bits}",
                public_key.bits()
            )));
        }
        Ok(PublicKeyInfo {
            key_id: name,
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

    /// Cloud KMS automatic rotation: each one is a new primary version.
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
