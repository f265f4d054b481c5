//! Where a ManagedKey lives: exactly one of `local`, `aws`, `gcp`, `azure`,
//! `pkcs11`.
//!
//! Modelled as a struct of optional fields rather than a Rust enum so the
//! CRD schema stays structural on Kubernetes 1.20 (no CEL): the API server
//! enforces "exactly one" with `minProperties`/`maxProperties`, and unknown
//! providers are pruned, which leaves an empty object that fails
//! `minProperties`. [`ProviderSpec::kind`] gives the operator an enum view.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation::Collector;

/// Names of the providers, in the order they are documented.
pub const PROVIDER_NAMES: [&str; 5] = ["local", "aws", "gcp", "azure", "pkcs11"];

/// Where the key lives. Set exactly one of `local`, `aws`, `gcp`, `azure`
/// or `pkcs11`; the provider cannot be changed after creation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct ProviderSpec {
    /// Keyward's embedded keyring (a file encrypted under a root key). For
    /// laptops, CI and clusters without a KMS. Takes no settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalProvider>,

    /// AWS KMS. Credentials come from the operator's environment (IRSA or
    /// the default chain), never from this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsProvider>,

    /// Google Cloud KMS. Credentials come from the operator's environment
    /// (Workload Identity or application default credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<GcpProvider>,

    /// Azure Key Vault (vault keys: RSA for usage Seal, RSA or ECP256 for
    /// usage Sign; Key Vault has no symmetric keys). Credentials come from
    /// the operator's environment (Azure Workload Identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureProvider>,

    /// A PKCS#11 HSM (SoftHSM2, Thales Luna, AWS CloudHSM, ...). The module
    /// path and user PIN are operator settings, not part of this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<Pkcs11Provider>,
}

/// The embedded provider has no per-key settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct LocalProvider {}

/// Settings for a key in AWS KMS.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsProvider {
    /// AWS region that holds the key, e.g. `eu-west-1`.
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"))]
    pub region: String,

    /// KMS endpoint URL override, e.g. a VPC endpoint or LocalStack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s]+$"))]
    pub endpoint: Option<String>,

    /// Reserved: a multi-Region primary key. Refused at admission until the
    /// AWS provider creates them; adopt one with `existingKey` instead.
    #[serde(default)]
    pub multi_region: bool,

    /// Reserved: a custom key store (CloudHSM or external), e.g.
    /// `cks-1234567890abcdef0`. Refused at admission until the AWS
    /// provider creates keys there; adopt one with `existingKey` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^cks-[a-z0-9]+$"))]
    pub custom_key_store_id: Option<String>,
}

/// Settings for a key in Google Cloud KMS.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpProvider {
    /// Google Cloud project ID, e.g. `acme-prod`.
    #[schemars(regex(pattern = r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$"))]
    pub project: String,

    /// KMS location, e.g. `europe-west1` or `global`.
    #[schemars(regex(pattern = r"^[a-z][-a-z0-9]*[a-z0-9]$"))]
    pub location: String,

    /// Existing key ring that will hold the key.
    #[schemars(regex(pattern = r"^[a-zA-Z0-9_-]{1,63}$"))]
    pub key_ring: String,

    /// `SOFTWARE` (default) or `HSM` (FIPS 140-2 Level 3 Cloud HSM).
    #[serde(default)]
    pub protection_level: GcpProtectionLevel,
}

/// Cloud KMS protection level.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GcpProtectionLevel {
    /// Software-backed key.
    #[default]
    Software,
    /// Cloud HSM-backed key.
    Hsm,
}

/// Settings for a key in Azure Key Vault.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureProvider {
    /// The vault that holds the key, e.g. `https://acme-prod.vault.azure.net`
    /// (the operator must be started with the same `--azure-vault-url`).
    #[schemars(length(max = 2048), regex(pattern = r"^https://[^\s/]+/?$"))]
    pub vault_url: String,
}

impl AzureProvider {
    /// The vault URL without a trailing `/`, as the operator compares it.
    pub fn vault(&self) -> &str {
        self.vault_url.trim_end_matches('/')
    }
}

/// Settings for a key in a PKCS#11 token.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pkcs11Provider {
    /// Label of the token (partition) that holds the key; PKCS#11 limits
    /// labels to 32 bytes.
    #[schemars(length(min = 1, max = 32))]
    pub token_label: String,

    /// Slot number, when several tokens share a label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
}

/// Borrowed view of the one configured provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind<'a> {
    /// The embedded keyring.
    Local(&'a LocalProvider),
    /// AWS KMS.
    Aws(&'a AwsProvider),
    /// Google Cloud KMS.
    Gcp(&'a GcpProvider),
    /// Azure Key Vault.
    Azure(&'a AzureProvider),
    /// A PKCS#11 HSM.
    Pkcs11(&'a Pkcs11Provider),
}

impl ProviderKind<'_> {
    /// The provider's name as written in YAML.
    pub fn name(&self) -> &'static str {
        match self {
            ProviderKind::Local(_) => "local",
            ProviderKind::Aws(_) => "aws",
            ProviderKind::Gcp(_) => "gcp",
            ProviderKind::Azure(_) => "azure",
            ProviderKind::Pkcs11(_) => "pkcs11",
        }
    }
}

impl ProviderSpec {
    /// Names of the providers that are set, in documentation order.
    pub fn configured(&self) -> Vec<&'static str> {
        let set = [
            self.local.is_some(),
            self.aws.is_some(),
            self.gcp.is_some(),
            self.azure.is_some(),
            self.pkcs11.is_some(),
        ];
        PROVIDER_NAMES
            .into_iter()
            .zip(set)
            .filter_map(|(name, on)| on.then_some(name))
            .collect()
    }

    /// The provider, when exactly one is set.
    pub fn kind(&self) -> Option<ProviderKind<'_>> {
        if self.configured().len() != 1 {
            return None;
        }
        (self.local.as_ref().map(ProviderKind::Local))
            .or_else(|| self.aws.as_ref().map(ProviderKind::Aws))
            .or_else(|| self.gcp.as_ref().map(ProviderKind::Gcp))
            .or_else(|| self.azure.as_ref().map(ProviderKind::Azure))
            .or_else(|| self.pkcs11.as_ref().map(ProviderKind::Pkcs11))
    }

    pub(crate) fn check(&self, field: &str, errors: &mut Collector) {
        let options = PROVIDER_NAMES.join(", ");
        match self.configured().as_slice() {
            [] => errors.push(
                field,
                format!("no provider is set; set exactly one of {options} (e.g. `local: {{}}`)"),
            ),
            [_] => {}
            many => errors.push(
                field,
                format!(
                    "sets {} providers ({}); a key lives in exactly one, so keep one of them",
                    many.len(),
                    many.join(", ")
                ),
            ),
        }
        // Accepted by the schema for manifests written against it, refused
        // until the AWS provider creates such keys (docs/providers.md).
        if let Some(aws) = &self.aws {
            if aws.multi_region {
                errors.push(
                    format!("{field}.aws.multiRegion"),
                    "Keyward's AWS provider does not create multi-Region keys yet; remove multiRegion (or set it false), or adopt a multi-Region key made elsewhere with existingKey",
                );
            }
            if aws.custom_key_store_id.is_some() {
                errors.push(
                    format!("{field}.aws.customKeyStoreId"),
                    "Keyward's AWS provider does not create keys in custom key stores yet; remove customKeyStoreId, or adopt a key made in the store with existingKey",
                );
            }
        }
        if let Some(aws) = &self.aws
            && aws.region.trim().is_empty()
        {
            errors.push(
                format!("{field}.aws.region"),
                "is empty; name the AWS region, e.g. `eu-west-1`",
            );
        }
        if let Some(gcp) = &self.gcp {
            for (name, value) in [
                ("project", &gcp.project),
                ("location", &gcp.location),
                ("keyRing", &gcp.key_ring),
            ] {
                if value.trim().is_empty() {
                    errors.push(format!("{field}.gcp.{name}"), "is empty");
                }
            }
        }
        if let Some(azure) = &self.azure
            && !is_vault_url(&azure.vault_url)
        {
            errors.push(
                format!("{field}.azure.vaultUrl"),
                format!(
                    "`{}` is not a vault URL; give the vault's https:// URL without a path, e.g. `https://acme-prod.vault.azure.net`",
                    azure.vault_url
                ),
            );
        }
        if let Some(p) = &self.pkcs11
            && (p.token_label.is_empty() || p.token_label.len() > 32)
        {
            errors.push(
                format!("{field}.pkcs11.tokenLabel"),
                "must be 1 to 32 bytes long (the PKCS#11 token label limit)",
            );
        }
    }
}

/// `https://HOST[:PORT]` with an optional trailing `/` and nothing else:
/// a Key Vault URL as `spec.provider.azure.vaultUrl` and the binaries'
/// `--azure-vault-url` take it.
pub fn is_vault_url(url: &str) -> bool {
    url.strip_prefix("https://")
        .map(|rest| rest.strip_suffix('/').unwrap_or(rest))
        .is_some_and(|host| {
            !host.is_empty()
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        })
}
