//! A provider pointed at the double: a fixed-token credential, the
//! double's CA as an extra trust anchor, the challenge resource check off.

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::RetryOptions;
use azure_core::time::{Duration, OffsetDateTime};
use keyward_azure_double::Double;
use keyward_core::provider::{KeyAlgorithm, KeySpec};
use keyward_provider_azure::{AzureKeyVaultConfig, AzureKeyVaultProvider};
use std::sync::Arc;

/// A credential that always returns one token: no Entra ID involved.
#[derive(Debug)]
pub struct FixedToken(pub String);

#[async_trait::async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.0.clone(),
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
    }
}

pub fn config(double: &Double, token: &str, retry: RetryOptions) -> AzureKeyVaultConfig {
    AzureKeyVaultConfig {
        vault_url: double.vault_url(),
        credential: Arc::new(FixedToken(token.to_owned())),
        ca_pem: Some(double.ca_pem().to_owned()),
        verify_challenge_resource: false,
        retry,
    }
}

/// The SDK's default retries.
pub fn provider(double: &Double) -> AzureKeyVaultProvider {
    AzureKeyVaultProvider::new(config(double, &double.token(), RetryOptions::default()))
        .expect("provider")
}

/// No retries: 429 and 503 reach the provider.
pub fn provider_no_retry(double: &Double) -> AzureKeyVaultProvider {
    AzureKeyVaultProvider::new(config(double, &double.token(), RetryOptions::none()))
        .expect("provider")
}

pub fn spec(name: &str, algorithm: KeyAlgorithm) -> KeySpec {
    KeySpec {
        name: name.into(),
        algorithm,
        owner: Some(format!("uid-{name}")),
        description: None,
    }
}

/// The Key Vault key name in a key id (`https://VAULT/keys/NAME`), as the
/// double files its keys.
pub fn name_in(key_id: &str) -> &str {
    key_id.rsplit('/').next().unwrap_or(key_id)
}
