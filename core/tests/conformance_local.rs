//! The shared provider conformance suite against the embedded `local` provider.

use keyward_conformance::{Capabilities, fresh_local_provider, measure, run};

#[tokio::test]
async fn local_provider_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let provider = fresh_local_provider(dir.path());
    let ran = run(&provider, &Capabilities::default()).await;
    assert_eq!(
        ran.len(),
        13,
        "every check must run against the local provider: {ran:?}"
    );
}

/// `cargo test -p keyward-core --test conformance_local -- --nocapture` prints the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_provider_latency_and_dek_cache_effect() {
    let dir = tempfile::tempdir().unwrap();
    let provider = fresh_local_provider(dir.path());
    let measured = measure(&provider, "conformance", 100).await;
    println!("{measured}");
    assert_eq!(measured.calls_without_cache, 100);
    assert_eq!(
        measured.calls_with_cache, 1,
        "100 concurrent unwraps must cost one provider call"
    );
}
