//! Provider settings for tests against the Cloud KMS double: anonymous
//! credentials, short backoff, tight timeouts.
#![allow(dead_code)]

use keyward_provider_gcp::{
    CredentialSource, GcpKmsConfig, GcpKmsProvider, ProtectionLevel, RetrySettings, Timeouts,
};
use std::time::Duration;

/// The one key ring the double serves.
pub use keyward_gcp_double::KEY_RING;

pub fn config(endpoint: &str) -> GcpKmsConfig {
    GcpKmsConfig {
        key_ring: KEY_RING.into(),
        endpoint: Some(endpoint.to_owned()),
        credentials: CredentialSource::Anonymous,
        protection_level: ProtectionLevel::Software,
        destroy_scheduled_duration: Duration::from_secs(30 * 24 * 3600),
        retry: RetrySettings {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        },
        timeouts: Timeouts {
            attempt: Duration::from_secs(10),
            operation: Duration::from_secs(60),
        },
    }
}

pub async fn provider(endpoint: &str) -> GcpKmsProvider {
    GcpKmsProvider::connect(config(endpoint))
        .await
        .expect("provider config")
}
