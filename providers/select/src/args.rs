//! Provider flags, each with an environment variable, checked into the
//! provider crates' own config types.

use crate::error::FlagError;
use crate::route::{Kind, kind_of_key_id};
use keyward_provider_aws::AwsKmsConfig;
use keyward_provider_gcp::{CredentialSource, GcpKmsConfig};
use keyward_provider_pkcs11::{DEFAULT_MAX_SESSIONS, Pkcs11Config};
use std::path::PathBuf;

/// Settings of the external providers. Nothing set = local provider only.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ProviderArgs {
    /// Serve `spec.provider.aws` keys from AWS KMS in this Region, e.g.
    /// eu-west-1. Credentials come from the SDK chain (IRSA, environment,
    /// instance profile).
    #[arg(long, env = "KEYWARD_AWS_REGION")]
    pub aws_region: Option<String>,

    /// KMS endpoint override: a VPC or FIPS endpoint, or a test server.
    #[arg(long, env = "KEYWARD_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,

    /// First segment of every alias Keyward creates (`alias/<prefix>/<name>`);
    /// one per installation sharing an account and Region.
    #[arg(long, env = "KEYWARD_AWS_ALIAS_PREFIX", default_value = "keyward")]
    pub aws_alias_prefix: String,

    /// Serve `spec.provider.pkcs11` keys through this PKCS#11 module, e.g.
    /// /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long, env = "KEYWARD_PKCS11_MODULE")]
    pub pkcs11_module: Option<PathBuf>,

    /// Label of the token that holds the keys (`softhsm2-util --show-slots`).
    #[arg(long, env = "KEYWARD_PKCS11_TOKEN_LABEL")]
    pub pkcs11_token_label: Option<String>,

    /// Slot number, when several tokens share the label.
    #[arg(long, env = "KEYWARD_PKCS11_SLOT")]
    pub pkcs11_slot: Option<u64>,

    /// File holding the token's user PIN (a mounted Secret); never a flag value.
    #[arg(long, env = "KEYWARD_PKCS11_PIN_FILE")]
    pub pkcs11_pin_file: Option<PathBuf>,

    /// Sessions opened on the token at most.
    #[arg(long, env = "KEYWARD_PKCS11_MAX_SESSIONS", default_value_t = DEFAULT_MAX_SESSIONS)]
    pub pkcs11_max_sessions: usize,

    /// Let the token choose AES-GCM IVs (Thales Luna, CloudHSM in FIPS mode).
    #[arg(long, env = "KEYWARD_PKCS11_TOKEN_GENERATES_IV")]
    pub pkcs11_token_generates_iv: bool,

    /// Serve `spec.provider.gcp` keys from this Cloud KMS key ring,
    /// `projects/P/locations/L/keyRings/R` (it must exist). Credentials are
    /// Application Default Credentials (Workload Identity on GKE).
    #[arg(long, env = "KEYWARD_GCP_KEY_RING")]
    pub gcp_key_ring: Option<String>,

    /// Cloud KMS endpoint override (regional or Private Service Connect).
    #[arg(long, env = "KEYWARD_GCP_ENDPOINT")]
    pub gcp_endpoint: Option<String>,

    /// Call Cloud KMS without credentials (no Authorization header). Only
    /// for test doubles and emulators: refused unless --gcp-endpoint is set;
    /// Google's service rejects anonymous calls.
    #[arg(long, env = "KEYWARD_GCP_ANONYMOUS")]
    pub gcp_anonymous: bool,

    /// Serve `spec.provider.azure` keys from this Key Vault, e.g.
    /// https://acme-prod.vault.azure.net. Credentials come from Azure
    /// Workload Identity (AZURE_CLIENT_ID, AZURE_TENANT_ID,
    /// AZURE_FEDERATED_TOKEN_FILE, set by the AKS webhook or the chart).
    #[arg(long, env = "KEYWARD_AZURE_VAULT_URL")]
    pub azure_vault_url: Option<String>,

    /// PEM file of an extra CA trusted for Key Vault and Entra ID calls: a
    /// private endpoint behind an inspecting proxy, or a test double.
    #[arg(long, env = "KEYWARD_AZURE_CA_FILE")]
    pub azure_ca_file: Option<PathBuf>,

    /// Accept any resource in Key Vault's authentication challenge. Only
    /// for a Key Vault test double; refused for Azure's own vault domains,
    /// where the check keeps tokens from going to another host.
    #[arg(long, env = "KEYWARD_AZURE_SKIP_CHALLENGE_RESOURCE_CHECK")]
    pub azure_skip_challenge_resource_check: bool,

    /// Wrap the local keyring's root key with this key of a provider above
    /// (an AWS KMS key ARN or `alias/...`, a Cloud KMS key name, a Key
    /// Vault RSA key URL, a PKCS#11 `p11k-...` id), so copies of the
    /// keyring Secrets open nothing alone.
    /// The operator and the webhook both need it and may decrypt with it.
    #[arg(long, env = "KEYWARD_ROOT_KEY_WRAPPING_KEY")]
    pub root_key_wrapping_key: Option<String>,
}

impl Default for ProviderArgs {
    /// The flags' defaults: no external provider.
    fn default() -> Self {
        ProviderArgs {
            aws_region: None,
            aws_endpoint_url: None,
            aws_alias_prefix: "keyward".into(),
            pkcs11_module: None,
            pkcs11_token_label: None,
            pkcs11_slot: None,
            pkcs11_pin_file: None,
            pkcs11_max_sessions: DEFAULT_MAX_SESSIONS,
            pkcs11_token_generates_iv: false,
            gcp_key_ring: None,
            gcp_endpoint: None,
            gcp_anonymous: false,
            azure_vault_url: None,
            azure_ca_file: None,
            azure_skip_challenge_resource_check: false,
            root_key_wrapping_key: None,
        }
    }
}

/// The external providers to connect to, in their crates' config types.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub aws: Option<AwsKmsConfig>,
    pub pkcs11: Option<Pkcs11Config>,
    pub gcp: Option<GcpKmsConfig>,
    pub azure: Option<AzureSettings>,
}

/// Azure Key Vault, as far as the flags say: the credential is made from
/// the pod's environment when connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureSettings {
    /// The vault URL without a trailing `/`.
    pub vault_url: String,
    /// The extra CA's PEM (a public certificate).
    pub ca_pem: Option<String>,
    pub verify_challenge_resource: bool,
}

impl ProviderArgs {
    /// Checks the flags without touching any provider.
    pub fn plan(&self) -> Result<Plan, FlagError> {
        let plan = Plan {
            aws: self.aws()?,
            pkcs11: self.pkcs11()?,
            gcp: self.gcp()?,
            azure: self.azure()?,
        };
        self.check_root_key_wrapping(&plan)?;
        Ok(plan)
    }

    /// The wrapping key, if set, must belong to a provider that is on.
    fn check_root_key_wrapping(&self, plan: &Plan) -> Result<(), FlagError> {
        let Some(key_id) = self.root_key_wrapping_key.as_deref() else {
            return Ok(());
        };
        let flag = "root-key-wrapping-key";
        let kind = match kind_of_key_id(key_id) {
            Some(Kind::Local) => {
                return Err(FlagError::new(
                    flag,
                    "names a local key; the root key must be wrapped outside the cluster, by AWS KMS, Cloud KMS, Azure Key Vault or PKCS#11",
                ));
            }
            Some(kind) => kind,
            None => {
                return Err(FlagError::new(
                    flag,
                    format!(
                        "`{key_id}` is not a key id: use an AWS KMS `arn:aws:kms:...` or `alias/...`, a Cloud KMS `projects/...` key name, a Key Vault `https://VAULT/keys/NAME` URL, or a PKCS#11 `p11k-...` id"
                    ),
                ));
            }
        };
        let on = match kind {
            Kind::Aws => plan.aws.is_some(),
            Kind::Pkcs11 => plan.pkcs11.is_some(),
            Kind::Gcp => plan.gcp.is_some(),
            Kind::Azure => plan.azure.is_some(),
            Kind::Local => false,
        };
        if on {
            return Ok(());
        }
        Err(FlagError::new(
            flag,
            format!(
                "`{key_id}` belongs to {}, which is off; also set {}",
                kind.product(),
                kind.how_to_enable()
            ),
        ))
    }

    fn aws(&self) -> Result<Option<AwsKmsConfig>, FlagError> {
        let Some(region) = non_empty(&self.aws_region) else {
            if self.aws_endpoint_url.is_some() {
                return Err(FlagError::new(
                    "aws-endpoint-url",
                    "is set but AWS KMS is off; also set --aws-region (KEYWARD_AWS_REGION)",
                ));
            }
            return Ok(None);
        };
        if !is_region(region) {
            return Err(FlagError::new(
                "aws-region",
                format!("`{region}` is not an AWS Region name; use one like `eu-west-1`"),
            ));
        }
        if let Some(url) = &self.aws_endpoint_url {
            check_url("aws-endpoint-url", url)?;
        }
        keyward_provider_aws::naming::validate_prefix(&self.aws_alias_prefix)
            .map_err(|e| FlagError::new("aws-alias-prefix", provider_message(e)))?;
        Ok(Some(AwsKmsConfig {
            region: Some(region.to_owned()),
            endpoint: self.aws_endpoint_url.clone(),
            alias_prefix: self.aws_alias_prefix.clone(),
            ..AwsKmsConfig::default()
        }))
    }

    fn pkcs11(&self) -> Result<Option<Pkcs11Config>, FlagError> {
        let label = non_empty(&self.pkcs11_token_label);
        let any = self.pkcs11_module.is_some()
            || label.is_some()
            || self.pkcs11_pin_file.is_some()
            || self.pkcs11_slot.is_some();
        if !any {
            return Ok(None);
        }
        let missing = |flag: &'static str| {
            FlagError::new(
                flag,
                "is required with the other --pkcs11-* flags: PKCS#11 needs the module, the token label and the PIN file",
            )
        };
        let module = self
            .pkcs11_module
            .as_ref()
            .ok_or_else(|| missing("pkcs11-module"))?;
        let label = label.ok_or_else(|| missing("pkcs11-token-label"))?;
        let pin_file = self
            .pkcs11_pin_file
            .as_ref()
            .ok_or_else(|| missing("pkcs11-pin-file"))?;
        if !module.is_file() {
            return Err(FlagError::new(
                "pkcs11-module",
                format!(
                    "{} is not a file; point it at the vendor's PKCS#11 library (mounted into the pod)",
                    module.display()
                ),
            ));
        }
        if label.len() > 32 {
            return Err(FlagError::new(
                "pkcs11-token-label",
                "is longer than 32 bytes, the PKCS#11 limit; copy it from `softhsm2-util --show-slots` or the vendor tool",
            ));
        }
        if !pin_file.is_file() {
            return Err(FlagError::new(
                "pkcs11-pin-file",
                format!(
                    "{} is not a file; mount the Secret holding the user PIN there",
                    pin_file.display()
                ),
            ));
        }
        if self.pkcs11_max_sessions == 0 {
            return Err(FlagError::new("pkcs11-max-sessions", "must be at least 1"));
        }
        let mut config = Pkcs11Config::new(module, label, pin_file);
        config.slot = self.pkcs11_slot;
        config.max_sessions = self.pkcs11_max_sessions;
        config.token_generates_iv = self.pkcs11_token_generates_iv;
        Ok(Some(config))
    }

    fn gcp(&self) -> Result<Option<GcpKmsConfig>, FlagError> {
        let Some(key_ring) = non_empty(&self.gcp_key_ring) else {
            let stray = if self.gcp_endpoint.is_some() {
                Some("gcp-endpoint")
            } else if self.gcp_anonymous {
                Some("gcp-anonymous")
            } else {
                None
            };
            if let Some(flag) = stray {
                return Err(FlagError::new(
                    flag,
                    "is set but Cloud KMS is off; also set --gcp-key-ring (KEYWARD_GCP_KEY_RING)",
                ));
            }
            return Ok(None);
        };
        keyward_provider_gcp::naming::validate_key_ring(key_ring)
            .map_err(|e| FlagError::new("gcp-key-ring", provider_message(e)))?;
        if let Some(url) = &self.gcp_endpoint {
            check_url("gcp-endpoint", url)?;
        }
        let credentials = match (self.gcp_anonymous, non_empty(&self.gcp_endpoint)) {
            (false, _) => CredentialSource::ApplicationDefault,
            (true, Some(_)) => CredentialSource::Anonymous,
            (true, None) => {
                return Err(FlagError::new(
                    "gcp-anonymous",
                    "is only for a Cloud KMS test double or emulator, and Google's service refuses anonymous calls; set --gcp-endpoint (KEYWARD_GCP_ENDPOINT) to the double, or drop --gcp-anonymous to use Application Default Credentials",
                ));
            }
        };
        Ok(Some(GcpKmsConfig {
            key_ring: key_ring.to_owned(),
            endpoint: self.gcp_endpoint.clone(),
            credentials,
            ..GcpKmsConfig::default()
        }))
    }
}

impl ProviderArgs {
    fn azure(&self) -> Result<Option<AzureSettings>, FlagError> {
        let Some(url) = non_empty(&self.azure_vault_url) else {
            let stray = if self.azure_ca_file.is_some() {
                Some("azure-ca-file")
            } else if self.azure_skip_challenge_resource_check {
                Some("azure-skip-challenge-resource-check")
            } else {
                None
            };
            if let Some(flag) = stray {
                return Err(FlagError::new(
                    flag,
                    "is set but Azure Key Vault is off; also set --azure-vault-url (KEYWARD_AZURE_VAULT_URL)",
                ));
            }
            return Ok(None);
        };
        let url = url.trim_end_matches('/');
        if !keyward_crds::is_vault_url(url) {
            return Err(FlagError::new(
                "azure-vault-url",
                format!(
                    "`{url}` is not a vault URL; give the vault's https:// URL without a path, e.g. https://acme-prod.vault.azure.net"
                ),
            ));
        }
        let host = url.strip_prefix("https://").unwrap_or_default();
        if self.azure_skip_challenge_resource_check && is_azure_vault_host(host) {
            return Err(FlagError::new(
                "azure-skip-challenge-resource-check",
                format!(
                    "is only for a Key Vault test double, and {url} is Azure's own; drop the flag"
                ),
            ));
        }
        let ca_pem = match &self.azure_ca_file {
            None => None,
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                FlagError::new(
                    "azure-ca-file",
                    format!(
                        "{} cannot be read ({e}); mount the CA certificate (PEM) there",
                        path.display()
                    ),
                )
            })?),
        };
        if let Some(pem) = &ca_pem
            && !pem.contains("-----BEGIN CERTIFICATE-----")
        {
            return Err(FlagError::new(
                "azure-ca-file",
                "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            ));
        }
        Ok(Some(AzureSettings {
            vault_url: url.to_owned(),
            ca_pem,
            verify_challenge_resource: !self.azure_skip_challenge_resource_check,
        }))
    }
}

/// Key Vault's own domains (public and sovereign clouds), where the
/// challenge's resource must be checked.
fn is_azure_vault_host(host: &str) -> bool {
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    [
        ".vault.azure.net",
        ".vault.azure.cn",
        ".vault.usgovcloudapi.net",
        ".vault.microsoftazure.de",
        ".managedhsm.azure.net",
    ]
    .iter()
    .any(|domain| host.ends_with(domain))
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// `eu-west-1`, `us-gov-west-1`, `ap-southeast-2`: letters, dashes, a number.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn check_url(flag: &'static str, url: &str) -> Result<(), FlagError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(()),
        _ => Err(FlagError::new(
            flag,
            format!("`{url}` is not an http(s) URL; use e.g. https://kms.eu-west-1.amazonaws.com"),
        )),
    }
}

/// The provider crates phrase their checks as `invalid request: ...`.
fn provider_message(error: keyward_core::ProviderError) -> String {
    match error {
        keyward_core::ProviderError::InvalidRequest(message) => message,
        other => other.to_string(),
    }
}
