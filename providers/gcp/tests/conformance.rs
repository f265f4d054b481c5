//! The shared provider conformance suite against the Cloud KMS REST test
//! double (`keyward-gcp-double`), with real RSA-OAEP and signing keys.
mod common;

use keyward_conformance::{Capabilities, run};
use keyward_core::provider::KeyAlgorithm;
use keyward_gcp_double::Double;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_provider_passes_the_conformance_suite() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let started = Instant::now();
    let ran = run(
        &provider,
        &Capabilities {
            real_rsa_oaep: true,
            rsa_algorithm: Some(KeyAlgorithm::Rsa4096),
            per_version_state: true,
            tags: true,
            name_prefix: "gcp".into(),
            signing: vec![
                KeyAlgorithm::RsaPss3072,
                KeyAlgorithm::EcP256,
                KeyAlgorithm::Ed25519,
            ],
            signs_digests: true,
            wrapping_key: KeyAlgorithm::Aes256,
        },
    )
    .await;
    eprintln!(
        "conformance against the Cloud KMS double: {} checks in {:?}: {ran:?}",
        ran.len(),
        started.elapsed()
    );
    assert_eq!(ran.len(), 13, "{ran:?}");
}

/// Per-operation latency against the double on loopback, and what the DEK
/// cache saves: `cargo test -p keyward-provider-gcp --test conformance -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_latency_and_dek_cache_effect() {
    let kms = Double::start().await;
    let provider = common::provider(&kms.endpoint()).await;
    let measured = keyward_conformance::measure(&provider, "gcp", 100).await;
    eprintln!("{measured}");
    assert_eq!(measured.calls_without_cache, 100);
    assert_eq!(
        measured.calls_with_cache, 1,
        "100 concurrent unwraps must cost one Cloud KMS call"
    );
}
