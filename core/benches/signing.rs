//! Sign and verify per scheme with the primitives every signing key uses
//! in the local provider (`keyward_core::crypto::signing`, aws-lc-rs): the
//! private key is parsed from its PKCS#8 form on each call, as the
//! provider does (nothing decoded is kept in memory between calls).
//!
//! `cargo bench -p keyward-core --bench signing -- --measurement-time 2 --warm-up-time 1`

use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use keyward_core::crypto::signing::{self, SigningAlgorithm, ToSign};

const SCHEMES: [(SigningAlgorithm, &str); 4] = [
    (SigningAlgorithm::EcdsaP256Sha256, "ecdsa-p256"),
    (SigningAlgorithm::Ed25519, "ed25519"),
    (SigningAlgorithm::RsaPss3072Sha256, "rsa-pss-3072"),
    (SigningAlgorithm::RsaPss4096Sha256, "rsa-pss-4096"),
];

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("signing");
    for (scheme, name) in SCHEMES {
        let private = signing::generate(scheme);
        let public = signing::public_key(scheme, &private).unwrap();
        let input = ToSign::for_data(scheme, b"keyward-1.0.0.tar.gz sha256 0123abcd").unwrap();
        let signature = signing::sign(scheme, &private, &input).unwrap();
        group.bench_function(BenchmarkId::new("sign", name), |b| {
            b.iter(|| signing::sign(scheme, black_box(&private), &input).unwrap())
        });
        group.bench_function(BenchmarkId::new("verify", name), |b| {
            b.iter(|| signing::verify(scheme, black_box(&public), &input, &signature).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
