//! How to reach Cloud KMS: key ring, endpoint, credentials, protection
//! level, destruction window, retries and timeouts.

use google_cloud_kms_v1::client::KeyManagementService;
use keyward_core::provider::{ProviderError, Result};
use std::time::Duration;

/// Where credentials come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CredentialSource {
    /// Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS`,
    /// the gcloud user file, then the metadata server (GKE Workload
    /// Identity, Compute Engine).
    #[default]
    ApplicationDefault,
    /// No `Authorization` header at all: only for test doubles and
    /// emulators. Google's service refuses such calls.
    Anonymous,
}

/// `protectionLevel` of new keys. Fixed per key at creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProtectionLevel {
    /// Key material in Google's software KMS.
    #[default]
    Software,
    /// Key material in Cloud HSM (FIPS 140-2 Level 3).
    Hsm,
}

/// Retries for throttling (`RESOURCE_EXHAUSTED`) and transient failures
/// (`UNAVAILABLE`, refused connections), with exponential backoff and full
/// jitter: attempt `n` waits `random(0, min(max_backoff, initial_backoff *
/// 2^n))`. Cloud KMS quotas are per project and per region (cryptographic
/// requests per minute), shared by every client of the project: keep
/// `max_attempts` low and let the operator requeue instead.
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

/// Bounds on one call, so "Cloud KMS is down" becomes `Unavailable` in
/// seconds instead of a hung reconcile or pod start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// One HTTP attempt, connecting included.
    pub attempt: Duration,
    /// The whole call, retries and backoff included.
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            attempt: Duration::from_secs(5),
            operation: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GcpKmsConfig {
    /// `projects/P/locations/L/keyRings/R`; must exist (Keyward never
    /// creates key rings: they can never be deleted).
    pub key_ring: String,
    /// Endpoint override (`https://cloudkms.googleapis.com` by default):
    /// a regional or Private Service Connect endpoint, or a test double.
    pub endpoint: Option<String>,
    pub credentials: CredentialSource,
    pub protection_level: ProtectionLevel,
    /// `destroyScheduledDuration` of new keys: how long a version stays
    /// `DESTROY_SCHEDULED` (restorable) before its material is destroyed.
    /// Cloud KMS allows 24 hours to 120 days and fixes it per key at
    /// creation; a deletion window longer than this is refused.
    pub destroy_scheduled_duration: Duration,
    pub retry: RetrySettings,
    pub timeouts: Timeouts,
}

impl Default for GcpKmsConfig {
    fn default() -> Self {
        GcpKmsConfig {
            key_ring: String::new(),
            endpoint: None,
            credentials: CredentialSource::ApplicationDefault,
            protection_level: ProtectionLevel::Software,
            destroy_scheduled_duration: Duration::from_secs(30 * 24 * 3600),
            retry: RetrySettings::default(),
            timeouts: Timeouts::default(),
        }
    }
}

pub(crate) const MIN_DESTROY_DURATION: Duration = Duration::from_secs(24 * 3600);
pub(crate) const MAX_DESTROY_DURATION: Duration = Duration::from_secs(120 * 24 * 3600);

impl GcpKmsConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        crate::naming::validate_key_ring(&self.key_ring)?;
        if !(MIN_DESTROY_DURATION..=MAX_DESTROY_DURATION).contains(&self.destroy_scheduled_duration)
        {
            return Err(ProviderError::InvalidRequest(format!(
                "destroy_scheduled_duration must be between 24 hours and 120 days (Cloud KMS limits), got {:?}",
                self.destroy_scheduled_duration
            )));
        }
        if self.retry.max_attempts == 0 {
            return Err(ProviderError::InvalidRequest(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The official client with its own retries switched off: the provider
    /// retries itself (see [`RetrySettings`]) so that throttling and
    /// outages are handled the same way for every call.
    pub(crate) async fn client(&self) -> Result<KeyManagementService> {
        let mut builder = KeyManagementService::builder()
            .with_retry_policy(google_cloud_gax::retry_policy::NeverRetry)
            .with_attempt_timeout(self.timeouts.attempt);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        if self.credentials == CredentialSource::Anonymous {
            builder = builder.with_credentials(
                google_cloud_auth::credentials::anonymous::Builder::new().build(),
            );
        }
        builder.build().await.map_err(|e| {
            ProviderError::InvalidRequest(format!(
                "cannot set up the Cloud KMS client: {e}; check the endpoint and the Google credentials (docs/providers.md)"
            ))
        })
    }
}
