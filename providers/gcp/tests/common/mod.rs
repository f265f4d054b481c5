//! Provider settings for tests against the Cloud KMS double: anonymous
//! credentials, short backoff, tight timeouts.
#![allow(dead_code)]

use keyward_provider_gcp::{
    CredentialSource, GcpKmsConfig, GcpKmsProvider, ProtectionLevel, RetrySettings, Timeouts,
};
use std::time::Duration;

pub const KEY_RING: &str = "projects/keyward-test/locations/europe-west1/keyRings/keyward";

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
