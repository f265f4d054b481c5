//! The shared provider conformance suite against the Cloud KMS REST test
//! double (tests/double), with real RSA-OAEP.
mod common;
mod double;

use keyward_conformance::{Capabilities, run};
use keyward_core::provider::KeyAlgorithm;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_provider_passes_the_conformance_suite() {
    let kms = double::Double::start().await;
    assert_eq!(common::KEY_RING, double::KEY_RING);
    let provider = common::provider(&kms.endpoint()).await;
    let started = Instant::now();
    let ran = run(
        &provider,
        &Capabilities {
            real_rsa_oaep: true,
            rsa_algorithm: Some(KeyAlgorithm::Rsa4096),
            per_version_state: true,
            name_prefix: "gcp".into(),
        },
    )
    .await;
    eprintln!(
        "conformance against the Cloud KMS double: {} checks in {:?}: {ran:?}",
        ran.len(),
        started.elapsed()
    );
    assert_eq!(ran.len(), 10, "{ran:?}");
}
