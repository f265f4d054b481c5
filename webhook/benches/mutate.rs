//! `/mutate`'s own work per review, stage by stage, on the 1.5 KB fixture
//! the load test sends (`scripts/bench-webhook.sh load`): reading the review
//! with its Pod, building the patch, writing it. "read as a JSON tree" is
//! the same bytes into `serde_json::Value`, for scale.
//!
//! `cargo bench -p keyward-webhook --bench mutate`
//! (shorter: append `-- --measurement-time 2 --warm-up-time 1`)
//!
//! In a loop these stages are hot in the caches; under load, between TLS
//! and the kernel, the same work costs more (docs/performance.md).

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Pod;
use keyward_webhook::mutate::{InjectorConfig, patch};
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use std::time::Duration;

const REVIEW: &[u8] = include_bytes!("../tests/fixtures/pod-create-annotated.json");

fn config() -> InjectorConfig {
    // A CA bundle of the size `tls::bootstrap` makes; every init container
    // carries it in its environment.
    let ca = keyward_webhook::tls::bootstrap(&["127.0.0.1".to_owned()])
        .expect("a CA")
        .ca_pem;
    InjectorConfig {
        image: "keyward/webhook:bench".into(),
        image_pull_policy: None,
        unseal_url: "https://keyward-webhook.keyward.svc:8443/v1/unseal".into(),
        ca_pem: Some(ca),
        default_delivery: Default::default(),
    }
}

fn read_review(bytes: &[u8]) -> AdmissionRequest<Pod> {
    let review: AdmissionReview<Pod> = serde_json::from_slice(bytes).expect("a Pod review");
    review.try_into().expect("a request")
}

fn stages(c: &mut Criterion) {
    let config = config();
    let pod = read_review(REVIEW).object.expect("the Pod");
    let ops = patch(&pod, &config).expect("a patch");
    let mut group = c.benchmark_group("mutate");
    group.bench_function("read the review", |b| {
        b.iter(|| read_review(black_box(REVIEW)))
    });
    group.bench_function("read as a JSON tree", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(REVIEW)).unwrap())
    });
    group.bench_function("build the patch", |b| {
        b.iter(|| patch(black_box(&pod), &config).unwrap())
    });
    group.bench_function("write the patch", |b| {
        b.iter(|| serde_json::to_vec(black_box(&ops)).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = stages
}
criterion_main!(benches);
