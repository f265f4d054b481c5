//! The providers one process was started with: found by a ManagedKey's
//! `spec.provider` (to create its key) or by key id (every other call, as a
//! `KeyProvider`).

use crate::args::{AzureSettings, Plan, ProviderArgs};
use crate::error::{NotServed, SetupError};
use crate::route::{Kind, kind_of_key_id};
use async_trait::async_trait;
use keyward_core::crypto::signing::ToSign;
use keyward_core::provider::{
    Claim, DeletionTarget, KeyInfo, KeySpec, NativeRotation, NativeSchedule, PublicKeyInfo, Result,
    Signature, Tags, VerifyingKey, WrapContext, WrappedDek,
};
use keyward_core::{Dek, KeyProvider, ProviderError};
use keyward_crds::{GcpProtectionLevel, ProviderKind, ProviderSpec};
use keyward_provider_aws::{AwsKmsConfig, AwsKmsProvider};
use keyward_provider_azure::{AzureKeyVaultConfig, AzureKeyVaultProvider};
use keyward_provider_gcp::{GcpKmsConfig, GcpKmsProvider, ProtectionLevel};
use keyward_provider_pkcs11::{Pkcs11Config, Pkcs11Provider};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

struct Aws {
    config: AwsKmsConfig,
    provider: Arc<AwsKmsProvider>,
}

struct Gcp {
    key_ring: String,
    software: Arc<GcpKmsProvider>,
    /// Same key ring, new keys created with protection level HSM.
    hsm: Arc<GcpKmsProvider>,
}

struct Azure {
    vault_url: String,
    provider: Arc<AzureKeyVaultProvider>,
}

struct Pkcs11 {
    token_label: String,
    slot: Option<u64>,
    provider: Arc<Pkcs11Provider>,
}

/// The configured providers. Build with [`Providers::connect`], then add
/// the local provider with [`Providers::with_local`].
#[derive(Default)]
pub struct Providers {
    local: Option<Arc<dyn KeyProvider>>,
    aws: Option<Aws>,
    gcp: Option<Gcp>,
    azure: Option<Azure>,
    pkcs11: Option<Pkcs11>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("kinds", &self.names())
            .finish_non_exhaustive()
    }
}

impl Providers {
    /// Checks the flags and connects every provider they enable (PKCS#11
    /// logs in to the token; the KMS clients only build, they do not call
    /// out yet). Errors name the flag and what to do.
    pub async fn connect(args: &ProviderArgs) -> std::result::Result<Self, SetupError> {
        let plan = args.plan()?;
        Providers::connect_plan(plan).await
    }

    /// Connects an already checked [`Plan`].
    pub async fn connect_plan(plan: Plan) -> std::result::Result<Self, SetupError> {
        let mut providers = Providers::default();
        if let Some(config) = plan.aws {
            let provider = AwsKmsProvider::connect(config.clone())
                .await
                .map_err(|e| SetupError::connect(Kind::Aws, e))?;
            providers.aws = Some(Aws {
                config,
                provider: Arc::new(provider),
            });
        }
        if let Some(config) = plan.gcp {
            providers.gcp = Some(connect_gcp(config).await?);
        }
        if let Some(settings) = plan.azure {
            providers.azure = Some(connect_azure(settings)?);
        }
        if let Some(config) = plan.pkcs11 {
            providers.pkcs11 = Some(connect_pkcs11(config).await?);
        }
        Ok(providers)
    }

    /// Adds the local provider (opened from the cluster by the caller).
    pub fn with_local(mut self, local: Arc<dyn KeyProvider>) -> Self {
        self.local = Some(local);
        self
    }

    /// Names of the configured providers, e.g. `["local", "aws"]`.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (Kind::Local, self.local.is_some()),
            (Kind::Aws, self.aws.is_some()),
            (Kind::Gcp, self.gcp.is_some()),
            (Kind::Azure, self.azure.is_some()),
            (Kind::Pkcs11, self.pkcs11.is_some()),
        ]
        .into_iter()
        .filter_map(|(kind, on)| on.then_some(kind.name()))
        .collect()
    }

    /// The AWS provider itself, for what the trait has no room for (native
    /// rotation).
    pub fn aws(&self) -> Option<&Arc<AwsKmsProvider>> {
        self.aws.as_ref().map(|a| &a.provider)
    }

    /// The provider a ManagedKey names, or why this process cannot serve
    /// it (not configured, or configured for another Region/token/key ring).
    pub fn for_spec(
        &self,
        spec: &ProviderSpec,
    ) -> std::result::Result<Arc<dyn KeyProvider>, NotServed> {
        let Some(kind) = spec.kind() else {
            return Err(NotServed::new(
                "ProviderMissing",
                "set exactly one of spec.provider.local, aws, gcp, azure or pkcs11",
            ));
        };
        match kind {
            ProviderKind::Local(_) => self
                .local
                .clone()
                .ok_or_else(|| not_configured(Kind::Local)),
            ProviderKind::Aws(wanted) => {
                let aws = self.aws.as_ref().ok_or_else(|| not_configured(Kind::Aws))?;
                let region = aws.config.region.as_deref().unwrap_or_default();
                if wanted.region != region {
                    return Err(NotServed::new(
                        "ProviderMismatch",
                        format!(
                            "spec.provider.aws.region is {} but this operator serves AWS KMS in {region} (--aws-region); one installation serves one Region: create the key in {region} or run an installation for {}",
                            wanted.region, wanted.region
                        ),
                    ));
                }
                if let Some(endpoint) = &wanted.endpoint
                    && aws.config.endpoint.as_ref() != Some(endpoint)
                {
                    return Err(NotServed::new(
                        "ProviderMismatch",
                        format!(
                            "spec.provider.aws.endpoint is {endpoint} but this operator calls {}; the endpoint is an operator setting (--aws-endpoint-url): drop it from the key or start the operator with it",
                            aws.config
                                .endpoint
                                .as_deref()
                                .unwrap_or("the Region's public endpoint")
                        ),
                    ));
                }
                if wanted.multi_region || wanted.custom_key_store_id.is_some() {
                    return Err(NotServed::new(
                        "ProviderUnsupported",
                        "multi-Region keys and custom key stores are not supported by Keyward's AWS provider yet; drop multiRegion and customKeyStoreId",
                    ));
                }
                Ok(aws.provider.clone())
            }
            ProviderKind::Gcp(wanted) => {
                let gcp = self.gcp.as_ref().ok_or_else(|| not_configured(Kind::Gcp))?;
                let ring = format!(
                    "projects/{}/locations/{}/keyRings/{}",
                    wanted.project, wanted.location, wanted.key_ring
                );
                if ring != gcp.key_ring {
                    return Err(NotServed::new(
                        "ProviderMismatch",
                        format!(
                            "the key asks for key ring {ring} but this operator serves {} (--gcp-key-ring); use that key ring or run an installation for {ring}",
                            gcp.key_ring
                        ),
                    ));
                }
                Ok(match wanted.protection_level {
                    GcpProtectionLevel::Software => gcp.software.clone(),
                    GcpProtectionLevel::Hsm => gcp.hsm.clone(),
                })
            }
            ProviderKind::Azure(wanted) => {
                let azure = (self.azure.as_ref()).ok_or_else(|| not_configured(Kind::Azure))?;
                if wanted.vault() != azure.vault_url {
                    return Err(NotServed::new(
                        "ProviderMismatch",
                        format!(
                            "the key asks for vault {} but this operator serves {} (--azure-vault-url); use that vault or run an installation for {}",
                            wanted.vault(),
                            azure.vault_url,
                            wanted.vault()
                        ),
                    ));
                }
                Ok(azure.provider.clone())
            }
            ProviderKind::Pkcs11(wanted) => {
                let p11 = self
                    .pkcs11
                    .as_ref()
                    .ok_or_else(|| not_configured(Kind::Pkcs11))?;
                let slot_differs = wanted.slot.is_some() && wanted.slot != p11.slot;
                if wanted.token_label != p11.token_label || slot_differs {
                    return Err(NotServed::new(
                        "ProviderMismatch",
                        format!(
                            "the key asks for token `{}`{} but this operator is logged in to token `{}`{} (--pkcs11-token-label, --pkcs11-slot); use that token or run an installation for the other",
                            wanted.token_label,
                            slot_text(wanted.slot),
                            p11.token_label,
                            slot_text(p11.slot)
                        ),
                    ));
                }
                Ok(p11.provider.clone())
            }
        }
    }

    /// The provider that minted `key_id`.
    pub fn for_key_id(&self, key_id: &str) -> Result<Arc<dyn KeyProvider>> {
        let kind =
            kind_of_key_id(key_id).ok_or_else(|| ProviderError::UnknownKey(key_id.into()))?;
        let found: Option<Arc<dyn KeyProvider>> = match kind {
            Kind::Local => self.local.clone(),
            Kind::Aws => self.aws.as_ref().map(|a| a.provider.clone() as _),
            Kind::Gcp => self.gcp.as_ref().map(|g| g.software.clone() as _),
            Kind::Azure => self.azure.as_ref().map(|a| a.provider.clone() as _),
            Kind::Pkcs11 => self.pkcs11.as_ref().map(|p| p.provider.clone() as _),
        };
        found.ok_or_else(|| {
            ProviderError::InvalidRequest(format!(
                "key `{key_id}` lives in {} but this process was started without it; start it with {}",
                kind.product(),
                kind.how_to_enable()
            ))
        })
    }
}

fn not_configured(kind: Kind) -> NotServed {
    NotServed::new(
        "ProviderNotConfigured",
        format!(
            "this operator was started without {}; start it with {} to serve spec.provider.{}",
            kind.product(),
            kind.how_to_enable(),
            kind.name()
        ),
    )
}

fn slot_text(slot: Option<u64>) -> String {
    slot.map(|s| format!(" (slot {s})")).unwrap_or_default()
}

async fn connect_gcp(config: GcpKmsConfig) -> std::result::Result<Gcp, SetupError> {
    let hsm_config = GcpKmsConfig {
        protection_level: ProtectionLevel::Hsm,
        ..config.clone()
    };
    let connect = |config| async move {
        GcpKmsProvider::connect(config)
            .await
            .map(Arc::new)
            .map_err(|e| SetupError::connect(Kind::Gcp, e))
    };
    Ok(Gcp {
        key_ring: config.key_ring.clone(),
        software: connect(config).await?,
        hsm: connect(hsm_config).await?,
    })
}

fn connect_azure(settings: AzureSettings) -> std::result::Result<Azure, SetupError> {
    let connect_error = |e| SetupError::connect(Kind::Azure, e);
    let credential = keyward_provider_azure::workload_identity(settings.ca_pem.as_deref())
        .map_err(connect_error)?;
    let mut config = AzureKeyVaultConfig::new(settings.vault_url.clone(), credential);
    config.ca_pem = settings.ca_pem;
    config.verify_challenge_resource = settings.verify_challenge_resource;
    let provider = AzureKeyVaultProvider::new(config).map_err(connect_error)?;
    Ok(Azure {
        vault_url: settings.vault_url,
        provider: Arc::new(provider),
    })
}

async fn connect_pkcs11(config: Pkcs11Config) -> std::result::Result<Pkcs11, SetupError> {
    let (token_label, slot) = (config.token_label.clone(), config.slot);
    let provider = Pkcs11Provider::connect(config)
        .await
        .map_err(|e| SetupError::connect(Kind::Pkcs11, e))?;
    Ok(Pkcs11 {
        token_label,
        slot,
        provider: Arc::new(provider),
    })
}

/// Routes every call on an existing key by its id; creation needs the
/// ManagedKey's spec, so it goes through [`Providers::for_spec`] instead.
#[async_trait]
impl KeyProvider for Providers {
    fn kind(&self) -> &'static str {
        "router"
    }

    fn kind_of_key(&self, key_id: &str) -> &'static str {
        kind_of_key_id(key_id).map_or("router", Kind::name)
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<KeyInfo> {
        Err(ProviderError::InvalidRequest(format!(
            "cannot tell which provider should hold new key `{}`; pick it from the ManagedKey's spec.provider (Providers::for_spec)",
            spec.name
        )))
    }

    async fn describe_key(&self, key: &str) -> Result<KeyInfo> {
        self.for_key_id(key)?.describe_key(key).await
    }

    fn keeps_claims(&self, key_id: &str) -> bool {
        self.for_key_id(key_id)
            .is_ok_and(|provider| provider.keeps_claims(key_id))
    }

    fn recorded_owner(&self, key_id: &str, owner: &str) -> String {
        match self.for_key_id(key_id) {
            Ok(provider) => provider.recorded_owner(key_id, owner),
            Err(_) => owner.to_owned(),
        }
    }

    async fn set_owner(&self, key_id: &str, owner: &str, claim: &Claim) -> Result<()> {
        self.for_key_id(key_id)?
            .set_owner(key_id, owner, claim)
            .await
    }

    async fn rotate_key(&self, key_id: &str) -> Result<KeyInfo> {
        self.for_key_id(key_id)?.rotate_key(key_id).await
    }

    async fn set_version_enabled(&self, key_id: &str, version: u32, enabled: bool) -> Result<()> {
        self.for_key_id(key_id)?
            .set_version_enabled(key_id, version, enabled)
            .await
    }

    async fn schedule_deletion(
        &self,
        key_id: &str,
        target: DeletionTarget,
        window: Duration,
    ) -> Result<SystemTime> {
        self.for_key_id(key_id)?
            .schedule_deletion(key_id, target, window)
            .await
    }

    async fn cancel_deletion(&self, key_id: &str, target: DeletionTarget) -> Result<()> {
        self.for_key_id(key_id)?
            .cancel_deletion(key_id, target)
            .await
    }

    async fn wrap_dek(&self, key_id: &str, dek: &Dek, context: &WrapContext) -> Result<WrappedDek> {
        self.for_key_id(key_id)?
            .wrap_dek(key_id, dek, context)
            .await
    }

    async fn wrap_dek_with_version(
        &self,
        key_id: &str,
        version: u32,
        dek: &Dek,
        context: &WrapContext,
    ) -> Result<WrappedDek> {
        self.for_key_id(key_id)?
            .wrap_dek_with_version(key_id, version, dek, context)
            .await
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<Dek> {
        self.for_key_id(&wrapped.key_id)?
            .unwrap_dek(wrapped, context)
            .await
    }

    async fn public_key(&self, key_id: &str, version: Option<u32>) -> Result<PublicKeyInfo> {
        self.for_key_id(key_id)?.public_key(key_id, version).await
    }

    async fn sign(&self, key_id: &str, version: Option<u32>, input: &ToSign) -> Result<Signature> {
        self.for_key_id(key_id)?.sign(key_id, version, input).await
    }

    async fn verifying_key(&self, key_id: &str, version: Option<u32>) -> Result<VerifyingKey> {
        self.for_key_id(key_id)?
            .verifying_key(key_id, version)
            .await
    }

    async fn rewrap(&self, wrapped: &WrappedDek, context: &WrapContext) -> Result<WrappedDek> {
        self.for_key_id(&wrapped.key_id)?
            .rewrap(wrapped, context)
            .await
    }

    async fn native_rotation(&self, key_id: &str) -> Result<Option<NativeRotation>> {
        self.for_key_id(key_id)?.native_rotation(key_id).await
    }

    async fn set_native_rotation(
        &self,
        key_id: &str,
        schedule: Option<NativeSchedule>,
    ) -> Result<()> {
        self.for_key_id(key_id)?
            .set_native_rotation(key_id, schedule)
            .await
    }

    async fn set_tags(&self, key_id: &str, tags: &Tags) -> Result<()> {
        self.for_key_id(key_id)?.set_tags(key_id, tags).await
    }

    async fn tags(&self, key_id: &str) -> Result<Tags> {
        self.for_key_id(key_id)?.tags(key_id).await
    }
}
