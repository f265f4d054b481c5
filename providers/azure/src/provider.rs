//! [`KeyProvider`] on Azure Key Vault: one Keyward key is one Key Vault
//! key, its numbered versions are Key Vault versions tagged
//! `keyward-version=N`.

use crate::config::AzureKeyVaultConfig;
use crate::errors::{At, from_azure};
use crate::naming::{self, ALGORITHM_TAG, OWNER_TAG, VERSION_TAG};
use crate::versions::{Version, Versions, distinct};
use crate::{claims, spki, user_tags};
use async_trait::async_trait;
use azure_security_keyvault_keys::KeyClient;
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, CurveName, JsonWebKey, KeyAttributes, KeyClientGetKeyOptions,
    KeyClientUpdateKeyPropertiesOptions, KeyOperation, KeyType, UpdateKeyPropertiesParameters,
};
use futures::TryStreamExt;
use keyward_core::crypto::RsaPublicKey;
use keyward_core::crypto::signing::ToSign;
use keyward_core::provider::key_record::refuse_unusable;
use keyward_core::provider::{
    Claim, DeletionTarget, KeyAlgorithm, KeyInfo, KeyProvider, KeySpec, ProviderError,
    PublicKeyInfo, Result, Signature, Tags, VerifyingKey, VersionState, WrapContext, WrappedDek,
};
use keyward_core::secret::Dek;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

pub struct AzureKeyVaultProvider {
    client: KeyClient,
    config: AzureKeyVaultConfig,
    /// (key name, Keyward version) -> Key Vault version id (never changes).
    ids: Mutex<HashMap<(String, u32), String>>,
    /// Key Vault version id -> its public key (SPKI DER; never changes).
    public_keys: Mutex<HashMap<String, Vec<u8>>>,
}

impl std::fmt::Debug for AzureKeyVaultProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKeyVaultProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The error for a request the SDK could not build.
pub(crate) fn conversion(what: &str, error: azure_core::Error) -> ProviderError {
    ProviderError::InvalidRequest(format!(
        "could not build the Key Vault request ({what}): {error}"
    ))
}

/// Refuses what Key Vault (vault keys) cannot make.
fn refuse_unsupported(algorithm: KeyAlgorithm) -> Result<()> {
    match algorithm {
        KeyAlgorithm::Aes256 => Err(ProviderError::InvalidRequest(
            "Azure Key Vault has no symmetric keys; Managed HSM is not supported yet: use RSA3072 with usage Seal".into(),
        )),
        KeyAlgorithm::Ed25519 => Err(ProviderError::InvalidRequest(
            "Azure Key Vault makes no ED25519 signing keys: use algorithm ECP256, RSA3072 or RSA4096 with usage Sign".into(),
        )),
        _ => Ok(()),
    }
}

/// The create parameters of a new version of an `algorithm` key.
/// `hsm`: HSM-protected (`RSA-HSM`, `EC-HSM`; a Premium vault), as an
/// adopted key may be; a rotation keeps the protection of the primary.
fn parameters(
    algorithm: KeyAlgorithm,
    hsm: bool,
    tags: HashMap<String, String>,
) -> CreateKeyParameters {
    let (kty, size, curve, ops) = match algorithm {
        KeyAlgorithm::Rsa3072 => (
            KeyType::Rsa,
            Some(3072),
            None,
            [KeyOperation::WrapKey, KeyOperation::UnwrapKey],
        ),
        KeyAlgorithm::Rsa4096 => (
            KeyType::Rsa,
            Some(4096),
            None,
            [KeyOperation::WrapKey, KeyOperation::UnwrapKey],
        ),
        KeyAlgorithm::RsaPss3072 => (
            KeyType::Rsa,
            Some(3072),
            None,
            [KeyOperation::Sign, KeyOperation::Verify],
        ),
        KeyAlgorithm::RsaPss4096 => (
            KeyType::Rsa,
            Some(4096),
            None,
            [KeyOperation::Sign, KeyOperation::Verify],
        ),
        // Refused before: refuse_unsupported.
        KeyAlgorithm::EcP256 | KeyAlgorithm::Aes256 | KeyAlgorithm::Ed25519 => (
            KeyType::Ec,
            None,
            Some(CurveName::P256),
            [KeyOperation::Sign, KeyOperation::Verify],
        ),
    };
    let kty = match (kty, hsm) {
        (KeyType::Rsa, true) => KeyType::RsaHsm,
        (KeyType::Ec, true) => KeyType::EcHsm,
        (kty, _) => kty,
    };
    CreateKeyParameters {
        kty: Some(kty),
        key_size: size,
        curve,
        key_ops: Some(ops.to_vec()),
        key_attributes: Some(KeyAttributes {
            enabled: Some(true),
            ..Default::default()
        }),
        tags: Some(tags),
        ..Default::default()
    }
}

/// The usable `wanted` version (the primary when `None`): enabled and not
/// scheduled for destruction.
pub(crate) fn usable(versions: &Versions, wanted: Option<u32>) -> Result<&Version> {
    let key = versions.name.clone();
    let number = wanted.unwrap_or(versions.primary().number);
    let version = versions.get(number).ok_or(ProviderError::UnknownVersion {
        key: key.clone(),
        version: number,
    })?;
    refuse_unusable(&key, number, version.state(SystemTime::now()))?;
    Ok(version)
}

impl AzureKeyVaultProvider {
    /// Builds the client; does not call Key Vault yet.
    pub fn new(config: AzureKeyVaultConfig) -> Result<Self> {
        config.validate()?;
        let client = config.client()?;
        Ok(AzureKeyVaultProvider {
            client,
            config,
            ids: Mutex::new(HashMap::new()),
            public_keys: Mutex::new(HashMap::new()),
        })
    }

    pub fn client(&self) -> &KeyClient {
        &self.client
    }

    pub fn config(&self) -> &AzureKeyVaultConfig {
        &self.config
    }

    /// The Key Vault key name for a key id (a name or `https://VAULT/keys/NAME`)
    /// or a Keyward key name.
    pub fn key_name(&self, key: &str) -> Result<String> {
        naming::resolve(&self.config.vault_url, key)
    }

    /// The key id Keyward records for key `name`: its URL without a
    /// version, which routes every later call (and every envelope's
    /// unwrap) back to this vault.
    pub fn key_id_of(&self, name: &str) -> String {
        naming::key_id(&self.config.vault_url, name)
    }

    /// Every Keyward version of key `name` (all pages).
    pub(crate) async fn versions(&self, name: &str) -> Result<Versions> {
        Versions::new(name, self.keyward_versions(name).await?)
    }

    /// The versions of key `name` that carry a Keyward number, in any
    /// order; empty for a key made outside Keyward.
    pub(crate) async fn keyward_versions(&self, name: &str) -> Result<Vec<Version>> {
        let pager = self
            .client
            .list_key_properties_versions(name, None)
            .map_err(|e| from_azure(&e, At::key(name)))?;
        let listed: Vec<_> = pager
            .try_collect()
            .await
            .map_err(|e| from_azure(&e, At::key(name)))?;
        let list = distinct(listed.iter().filter_map(Version::from_properties).collect());
        if let Ok(mut ids) = self.ids.lock() {
            for v in &list {
                ids.insert((name.to_owned(), v.number), v.id.clone());
            }
        }
        Ok(list)
    }

    /// The soft-deleted key `name`, if it is one.
    pub(crate) async fn deleted(
        &self,
        name: &str,
    ) -> Result<Option<azure_security_keyvault_keys::models::DeletedKey>> {
        match self.client.get_deleted_key(name, None).await {
            Ok(response) => Ok(Some(
                response
                    .into_model()
                    .map_err(|e| from_azure(&e, At::key(name)))?,
            )),
            Err(e) => match from_azure(&e, At::key(name)) {
                ProviderError::UnknownKey(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The key as Keyward sees it, a soft-deleted one included (its
    /// versions pending deletion until the vault purges it).
    pub(crate) async fn info(&self, name: &str) -> Result<KeyInfo> {
        match self.versions(name).await {
            Ok(versions) => versions.info(self.key_id_of(name), None),
            Err(ProviderError::UnknownKey(_)) => {
                let Some(deleted) = self.deleted(name).await? else {
                    return Err(ProviderError::UnknownKey(name.to_owned()));
                };
                let version = Version::of(
                    deleted.key.as_ref().and_then(|k| k.kid.as_deref()),
                    deleted.attributes.as_ref(),
                    deleted.tags.as_ref(),
                );
                let at = deleted
                    .scheduled_purge_date
                    .map(SystemTime::from)
                    .unwrap_or_else(SystemTime::now);
                Versions::new(name, version.into_iter().collect())?
                    .info(self.key_id_of(name), Some(at))
            }
            Err(other) => Err(other),
        }
    }

    /// A key that is soft-deleted reports its operations as pending
    /// deletion; `error` otherwise.
    pub(crate) async fn explain_missing(
        &self,
        name: &str,
        version: u32,
        error: ProviderError,
    ) -> ProviderError {
        match error {
            ProviderError::UnknownKey(_) | ProviderError::UnknownVersion { .. } => {
                match self.deleted(name).await {
                    Ok(Some(_)) => ProviderError::PendingDeletion {
                        key: name.to_owned(),
                        version,
                    },
                    _ => error,
                }
            }
            other => other,
        }
    }

    /// The Key Vault version id of Keyward version `number`.
    pub(crate) async fn version_id(&self, name: &str, number: u32) -> Result<String> {
        let cached = self
            .ids
            .lock()
            .ok()
            .and_then(|ids| ids.get(&(name.to_owned(), number)).cloned());
        if let Some(id) = cached {
            return Ok(id);
        }
        let versions = self.versions(name).await?;
        versions
            .get(number)
            .map(|v| v.id.clone())
            .ok_or(ProviderError::UnknownVersion {
                key: name.to_owned(),
                version: number,
            })
    }

    /// Sets a version's `enabled` and/or replaces its tags.
    pub(crate) async fn update_version(
        &self,
        name: &str,
        version: &Version,
        enabled: Option<bool>,
        tags: Option<HashMap<String, String>>,
        at: At<'_>,
    ) -> Result<()> {
        let update = UpdateKeyPropertiesParameters {
            key_attributes: enabled.map(|enabled| KeyAttributes {
                enabled: Some(enabled),
                ..Default::default()
            }),
            tags,
            ..Default::default()
        };
        let options = KeyClientUpdateKeyPropertiesOptions {
            key_version: Some(version.id.clone()),
            ..Default::default()
        };
        let content = update.try_into().map_err(|e| conversion("update", e))?;
        self.client
            .update_key_properties(name, content, Some(options))
            .await
            .map_err(|e| from_azure(&e, at))?;
        Ok(())
    }

    /// Makes a new version of `name` (the key too, for version 1) with
    /// `tags`, which carry its number: one request, so the number is set
    /// with the version.
    async fn create_version(
        &self,
        name: &str,
        algorithm: KeyAlgorithm,
        hsm: bool,
        number: u32,
        mut tags: HashMap<String, String>,
    ) -> Result<()> {
        tags.insert(VERSION_TAG.into(), number.to_string());
        tags.insert(ALGORITHM_TAG.into(), algorithm.as_str().into());
        let content = parameters(algorithm, hsm, tags)
            .try_into()
            .map_err(|e| conversion("create", e))?;
        let made = self
            .client
            .create_key(name, content, None)
            .await
            .map_err(|e| from_azure(&e, At::version(name, number)))?
            .into_model()
            .map_err(|e| from_azure(&e, At::version(name, number)))?;
        if let Some(id) = made
            .key
            .as_ref()
            .and_then(|k| k.kid.as_deref())
            .and_then(naming::version_id)
            && let Ok(mut ids) = self.ids.lock()
        {
            ids.insert((name.to_owned(), number), id.to_owned());
        }
        tracing::info!(key = %name, version = number, algorithm = %algorithm, "created Key Vault key version");
        Ok(())
    }

    /// The JWK of a version, by Keyward number.
    async fn jwk(&self, name: &str, number: u32) -> Result<(String, JsonWebKey)> {
        let id = self.version_id(name, number).await?;
        let options = KeyClientGetKeyOptions {
            key_version: Some(id.clone()),
            ..Default::default()
        };
        let at = At::version(name, number);
        let key = self
            .client
            .get_key(name, Some(options))
            .await
            .map_err(|e| from_azure(&e, at))?
            .into_model()
            .map_err(|e| from_azure(&e, at))?;
        let jwk = key.key.ok_or_else(|| {
            ProviderError::Unavailable(format!(
                "Key Vault returned no JWK for version {number} of `{name}`"
            ))
        })?;
        Ok((id, jwk))
    }

    /// A version's public key as SubjectPublicKeyInfo DER, from its JWK
    /// (RSA `n`/`e`, P-256 `x`/`y`); cached.
    pub(crate) async fn version_spki(&self, name: &str, number: u32) -> Result<Vec<u8>> {
        let id = self.version_id(name, number).await?;
        let cached = self
            .public_keys
            .lock()
            .ok()
            .and_then(|k| k.get(&id).cloned());
        if let Some(known) = cached {
            return Ok(known);
        }
        let (id, jwk) = self.jwk(name, number).await?;
        let unusable = || {
            ProviderError::InvalidRequest(format!(
                "Key Vault returned an unusable public key for version {number} of `{name}`"
            ))
        };
        let der = match jwk.kty {
            Some(KeyType::Rsa | KeyType::RsaHsm) => spki::rsa(
                jwk.n.as_deref().ok_or_else(unusable)?,
                jwk.e.as_deref().ok_or_else(unusable)?,
            ),
            Some(KeyType::Ec | KeyType::EcHsm) if jwk.crv == Some(CurveName::P256) => spki::p256(
                jwk.x.as_deref().ok_or_else(unusable)?,
                jwk.y.as_deref().ok_or_else(unusable)?,
            )
            .ok_or_else(unusable)?,
            _ => return Err(unusable()),
        };
        if let Ok(mut known) = self.public_keys.lock() {
            known.insert(id, der.clone());
        }
        Ok(der)
    }

    /// Returns an existing key for `spec` if it has the same owner and
    /// algorithm; refuses one that belongs to someone else.
    pub(crate) fn matching_existing(existing: KeyInfo, spec: &KeySpec) -> Result<KeyInfo> {
        if existing.deletion_at.is_some() {
            return Err(ProviderError::InvalidRequest(format!(
                "key `{}` is deleted but recoverable (soft delete); cancel the deletion to recover it, or pick another name",
                existing.key_id
            )));
        }
        if spec.owner.is_none() || existing.owner != spec.owner {
            return Err(ProviderError::InvalidRequest(format!(
                "Key Vault key `{}` already exists and belongs to another owner ({}); pick another name",
                existing.key_id,
                existing.owner.as_deref().unwrap_or("no keyward-owner tag")
            )));
        }
        if existing.algorithm != spec.algorithm {
            return Err(ProviderError::InvalidRequest(format!(
                "key `{}` exists as {}, not {}; algorithms cannot change",
                spec.name,
                existing.algorithm.describe(),
                spec.algorithm.describe()
            )));
        }
        Ok(existing)
    }
}

#[async_trait]
impl KeyProvider for AzureKeyVaultProvider {
    fn kind(&self) -> &'static str {
        "azure"
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo> {
        refuse_unsupported(spec.algorithm)?;
        let name = naming::key_name(&spec.name)?;
        match self.info(&name).await {
            Ok(existing) => return Self::matching_existing(existing, spec),
            Err(ProviderError::UnknownKey(_)) => {}
            Err(other) => return Err(other),
        }
        let mut tags = HashMap::new();
        if let Some(owner) = &spec.owner {
            tags.insert(OWNER_TAG.to_owned(), owner.clone());
        }
        self.create_version(&name, spec.algorithm, false, 1, tags)
            .await?;
        self.info(&name).await
    }

    async fn adopt_key(&self, reference: &str, spec: &KeySpec) -> Result<KeyInfo> {
        refuse_unsupported(spec.algorithm)?;
        self.adopt_existing(reference, spec).await
    }

    fn keeps_claims(&self, _key_id: &str) -> bool {
        true
    }

    async fn set_owner(&self, key_id: &str, owner: &str, claim: &Claim) -> Result<()> {
        self.set_owner_tags(key_id, owner, claim).await
    }

    async fn describe_key(&self, key: &str) -> Result<KeyInfo> {
        let name = self.key_name(key)?;
        match self.info(&name).await {
            Err(ProviderError::UnknownKey(_)) => Err(ProviderError::UnknownKey(key.to_owned())),
            other => other,
        }
    }

    async fn rotate_key(&self, key_id: &str) -> Result<KeyInfo> {
        let name = self.key_name(key_id)?;
        let info = self.info(&name).await?;
        if info.deletion_at.is_some() {
            return Err(ProviderError::PendingDeletion {
                key: name,
                version: info.primary_version,
            });
        }
        let versions = self.versions(&name).await?;
        let primary = versions.primary();
        let tags: HashMap<String, String> = claims::carried(&primary.tags)
            .chain(user_tags::of(&primary.tags))
            .collect();
        let next = versions.next_number();
        // An adopted key may be HSM-protected; its new versions stay so.
        // Read from the newest enabled version: Key Vault refuses `get` on
        // a disabled one.
        let now = SystemTime::now();
        let probe = versions
            .list
            .iter()
            .rev()
            .find(|v| v.state(now) == VersionState::Enabled)
            .unwrap_or(primary);
        let (_, jwk) = self.jwk(&name, probe.number).await?;
        let hsm = matches!(jwk.kty, Some(KeyType::RsaHsm | KeyType::EcHsm));
        self.create_version(&name, versions.algorithm()?, hsm, next, tags)
            .await?;
        tracing::info!(key = %name, version = next, "rotated: new primary version");
        self.info(&name).await
    }

    async fn set_version_enabled(&self, key_id: &str, version: u32, enabled: bool) -> Result<()> {
        let name = self.key_name(key_id)?;
        let versions = self.versions(&name).await?;
        let found = versions.get(version).ok_or(ProviderError::UnknownVersion {
            key: name.clone(),
            version,
        })?;
        match found.state(SystemTime::now()) {
            VersionState::PendingDeletion if enabled => {
                return Err(ProviderError::PendingDeletion { key: name, version });
            }
            VersionState::Destroyed => {
                return Err(ProviderError::UnknownVersion { key: name, version });
            }
            _ => {}
        }
        if found.enabled != enabled {
            self.update_version(
                &name,
                found,
                Some(enabled),
                None,
                At::version(&name, version),
            )
            .await?;
        }
        tracing::info!(key = %name, version, enabled, "changed version state");
        Ok(())
    }

    async fn schedule_deletion(
        &self,
        key_id: &str,
        target: DeletionTarget,
        window: Duration,
    ) -> Result<SystemTime> {
        self.schedule(key_id, target, window).await
    }

    async fn cancel_deletion(&self, key_id: &str, target: DeletionTarget) -> Result<()> {
        self.cancel(key_id, target).await
    }

    async fn wrap_dek(&self, key_id: &str, dek: &Dek, context: &WrapContext) -> Result<WrappedDek> {
        self.wrap(key_id, dek, context).await
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<Dek> {
        self.unwrap(wrapped, context).await
    }

    async fn public_key(&self, key_id: &str, version: Option<u32>) -> Result<PublicKeyInfo> {
        let name = self.key_name(key_id)?;
        let versions = self.versions(&name).await?;
        let algorithm = versions.algorithm()?;
        if !algorithm.is_sealing() {
            return Err(ProviderError::WrongKeyType {
                key: name,
                expected: "an asymmetric (RSA) sealing key",
                actual: algorithm.describe(),
            });
        }
        let number = match version {
            Some(number) => number,
            None => usable(&versions, None)?.number,
        };
        let der = self.version_spki(&name, number).await?;
        let public_key = RsaPublicKey::from_spki_der(&der).map_err(|e| {
            ProviderError::InvalidRequest(format!(
                "Key Vault returned an unusable public key for version {number} of `{name}`: {e}"
            ))
        })?;
        let bits = if algorithm == KeyAlgorithm::Rsa4096 {
            4096
        } else {
            3072
        };
        if public_key.bits() != bits {
            return Err(ProviderError::InvalidRequest(format!(
                "version {number} of `{name}` has a {}-bit public key, expected {bits}",
                public_key.bits()
            )));
        }
        Ok(PublicKeyInfo {
            key_id: self.key_id_of(&name),
            version: number,
            public_key,
        })
    }

    async fn sign(&self, key_id: &str, version: Option<u32>, input: &ToSign) -> Result<Signature> {
        self.sign_with(key_id, version, input).await
    }

    async fn verifying_key(&self, key_id: &str, version: Option<u32>) -> Result<VerifyingKey> {
        self.verifying_key_of(key_id, version).await
    }

    async fn set_tags(&self, key_id: &str, tags: &Tags) -> Result<()> {
        self.set_user_tags(key_id, tags).await
    }

    async fn tags(&self, key_id: &str) -> Result<Tags> {
        self.user_tags(key_id).await
    }
}
