//! The shared provider conformance suite against moto.
mod common;

use keyward_conformance::{Capabilities, run};
use keyward_core::provider::KeyAlgorithm;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_provider_passes_the_conformance_suite() {
    let moto = common::Moto::start();
    let provider = common::provider(&moto.endpoint()).await;
    let started = Instant::now();
    let ran = run(
        &provider,
        &Capabilities {
            // moto's RSA "decrypt" is not RSA-OAEP: a value sealed offline
            // with the real public key does not open there.
            real_rsa_oaep: false,
            rsa_algorithm: Some(KeyAlgorithm::Rsa4096),
            per_version_state: true,
            tags: true,
            name_prefix: "aws".into(),
            // moto: ECP256 only, and a DIGEST is hashed again there.
            signing: vec![KeyAlgorithm::EcP256],
            signs_digests: false,
            wrapping_key: KeyAlgorithm::Aes256,
        },
    )
    .await;
    eprintln!(
        "conformance against moto: {} checks in {:?}: {ran:?}",
        ran.len(),
        started.elapsed()
    );
    assert_eq!(ran.len(), 12, "{ran:?}");
}

/// Per-operation latency against moto on loopback, and what the DEK cache
/// saves: `cargo test -p keyward-provider-aws --test conformance -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_latency_and_dek_cache_effect() {
    let moto = common::Moto::start();
    let provider = common::provider(&moto.endpoint()).await;
    let measured = keyward_conformance::measure(&provider, "aws", 100).await;
    eprintln!("{measured}");
    assert_eq!(measured.calls_without_cache, 100);
    assert_eq!(
        measured.calls_with_cache, 1,
        "100 concurrent unwraps must cost one KMS call"
    );
}
