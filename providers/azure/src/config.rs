//! How the provider reaches a vault: its URL, an Entra ID credential, an
//! optional extra trust anchor, and the SDK's retry policy.

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use keyward_core::provider::{ProviderError, Result};
use std::sync::Arc;

#[derive(Clone)]
pub struct AzureKeyVaultConfig {
    /// `https://VAULT.vault.azure.net` (or a private endpoint).
    pub vault_url: String,
    /// The identity (workload identity in the cluster; a fixed token in tests).
    pub credential: Arc<dyn TokenCredential>,
    /// An extra trust anchor (PEM) besides the platform's roots: private
    /// endpoints behind an inspecting proxy, the test double.
    pub ca_pem: Option<String>,
    /// Accept only `*.vault.azure.net` (and sovereign clouds) as the
    /// resource in Key Vault's authentication challenge. Keep it on
    /// against Azure; the loopback double needs it off.
    pub verify_challenge_resource: bool,
    /// The SDK's retry policy: by default it retries 408, 429 and 5xx,
    /// honouring `Retry-After`; errors left after it are reported
    /// (throttling and outages as retryable).
    pub retry: RetryOptions,
}

impl std::fmt::Debug for AzureKeyVaultConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKeyVaultConfig")
            .field("vault_url", &self.vault_url)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "(set)"))
            .field("verify_challenge_resource", &self.verify_challenge_resource)
            .finish_non_exhaustive()
    }
}

impl AzureKeyVaultConfig {
    /// A vault with the SDK's defaults (platform roots, challenge check on,
    /// default retries).
    pub fn new(vault_url: impl Into<String>, credential: Arc<dyn TokenCredential>) -> Self {
        AzureKeyVaultConfig {
            vault_url: vault_url.into(),
            credential,
            ca_pem: None,
            verify_challenge_resource: true,
            retry: RetryOptions::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !self.vault_url.starts_with("https://") {
            return Err(ProviderError::InvalidRequest(format!(
                "vault URL `{}` must be https:// (Key Vault sends no token over plain HTTP)",
                self.vault_url
            )));
        }
        Ok(())
    }

    pub(crate) fn client(&self) -> Result<KeyClient> {
        let options = KeyClientOptions {
            client_options: ClientOptions {
                transport: transport(self.ca_pem.as_deref())?,
                retry: self.retry.clone(),
                ..Default::default()
            },
            verify_challenge_resource: Some(self.verify_challenge_resource),
            ..Default::default()
        };
        KeyClient::new(&self.vault_url, self.credential.clone(), Some(options)).map_err(|e| {
            ProviderError::InvalidRequest(format!(
                "could not make a Key Vault client for `{}`: {e}",
                self.vault_url
            ))
        })
    }
}

/// An HTTPS transport that also trusts `ca_pem`, or the SDK's default
/// (platform roots) without one. The credential and the vault client both
/// use it, as both may sit behind the same private endpoint or proxy.
pub(crate) fn transport(ca_pem: Option<&str>) -> Result<Option<Transport>> {
    let Some(pem) = ca_pem else {
        return Ok(None);
    };
    let ca = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| {
        ProviderError::InvalidRequest(format!("the extra CA is not a PEM certificate: {e}"))
    })?;
    let http = reqwest::Client::builder()
        .tls_certs_merge([ca])
        // As the SDK's own client: neither Key Vault nor Entra ID redirects.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| {
            ProviderError::InvalidRequest(format!("could not build the HTTPS client: {e}"))
        })?;
    Ok(Some(Transport::new(Arc::new(http))))
}
