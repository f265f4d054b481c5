//! Per-operation latency on SoftHSM2 and the DEK cache's effect. A test
//! binary of its own, so it gets its own token: the object-counting tests in
//! softhsm.rs must not see this test's keys.
mod common;

use common::{TOKEN, softhsm};
use keyward_provider_pkcs11::Pkcs11Provider;

/// Per-operation latency on SoftHSM2, and what the DEK cache saves:
/// `cargo test -p keyward-provider-pkcs11 --test latency -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn softhsm_latency_and_dek_cache_effect() {
    let provider = Pkcs11Provider::connect(softhsm().config(TOKEN))
        .await
        .unwrap_or_else(|e| panic!("cannot open the SoftHSM2 test token: {e}"));
    let measured = keyward_conformance::measure(&provider, "pkcs11", 100).await;
    eprintln!("{measured}");
    assert_eq!(measured.calls_without_cache, 100);
    assert_eq!(
        measured.calls_with_cache, 1,
        "100 concurrent unwraps must cost one token call"
    );
}
