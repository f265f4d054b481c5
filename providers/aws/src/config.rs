//! How to reach AWS KMS: region, endpoint, credentials, retries and timeouts.

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{Credentials, Region};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// Where credentials come from.
#[derive(Debug, Clone, Default)]
pub enum CredentialSource {
    /// The SDK's standard chain: environment variables, the shared profile
    /// files, IRSA web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` +
    /// `AWS_ROLE_ARN`), ECS/EKS Pod Identity container credentials, then EC2
    /// instance metadata. (SSO profiles and `credential_process` are not
    /// compiled in.)
    #[default]
    Chain,
    /// Fixed keys, for tests against moto and for non-AWS endpoints.
    Static(StaticCredentials),
}

/// Access keys. `Debug` never prints the secret parts.
#[derive(Debug, Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

/// Retries for throttling and transient failures, done by the SDK's
/// *standard* retry mode: exponential backoff with full jitter
/// (`random(0, min(max_backoff, initial_backoff * 2^attempt))`) and a
/// client-side retry quota (token bucket) that stops retrying when most
/// calls fail, so one busy client cannot multiply load on a struggling KMS.
///
/// Every retry spends the account's shared per-Region KMS request quota,
/// which all applications in the account draw from. Keep `max_attempts` low
/// and let the operator requeue instead of retrying for long here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    /// Total attempts including the first (1 disables retries).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Bounds on how long one call may take, so "KMS is down" becomes an
/// `Unavailable` error in seconds instead of a hung reconcile or pod start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// One HTTP attempt.
    pub attempt: Duration,
    /// The whole call, retries included.
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            attempt: Duration::from_secs(5),
            operation: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AwsKmsConfig {
    /// AWS Region; `None` takes it from the environment/profile.
    pub region: Option<String>,
    /// Endpoint override (VPC endpoint, FIPS endpoint, or a test server).
    pub endpoint: Option<String>,
    pub credentials: CredentialSource,
    /// First path segment of every alias Keyward creates
    /// (`alias/<prefix>/<name>`). Give each installation sharing an account
    /// and Region its own prefix.
    pub alias_prefix: String,
    pub retry: RetrySettings,
    pub timeouts: Timeouts,
    /// Check a version's state with `DescribeKey` before each cryptographic
    /// call. AWS enforces key state itself, so this only costs a request
    /// there; it exists for emulators that do not (moto).
    pub verify_key_state: bool,
}

impl Default for AwsKmsConfig {
    fn default() -> Self {
        AwsKmsConfig {
            region: None,
            endpoint: None,
            credentials: CredentialSource::Chain,
            alias_prefix: "keyward".into(),
            retry: RetrySettings::default(),
            timeouts: Timeouts::default(),
            verify_key_state: false,
        }
    }
}

impl AwsKmsConfig {
    pub(crate) async fn sdk_client(&self) -> aws_sdk_kms::Client {
        let retry = RetryConfig::standard()
            .with_max_attempts(self.retry.max_attempts.max(1))
            .with_initial_backoff(self.retry.initial_backoff)
            .with_max_backoff(self.retry.max_backoff);
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(self.timeouts.connect)
            .operation_attempt_timeout(self.timeouts.attempt)
            .operation_timeout(self.timeouts.operation)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(retry)
            .timeout_config(timeouts);
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let CredentialSource::Static(keys) = &self.credentials {
            loader = loader.credentials_provider(Credentials::new(
                keys.access_key_id.clone(),
                keys.secret_access_key.expose_secret().to_owned(),
                keys.session_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned()),
                None,
                "keyward-static",
            ));
        }
        aws_sdk_kms::Client::new(&loader.load().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secrets() {
        let config = AwsKmsConfig {
            credentials: CredentialSource::Static(StaticCredentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: SecretString::from("wJalrXUtnFEMI-very-secret"),
                session_token: Some(SecretString::from("session-token-secret")),
            }),
            ..AwsKmsConfig::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(!text.contains("session-token-secret"), "{text}");
        assert!(text.contains("AKIDEXAMPLE"), "the key id is not secret");
    }
}
