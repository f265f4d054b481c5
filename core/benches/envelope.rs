//! Seal and open of one item (DEK already unwrapped) through the envelope,
//! against raw AES-256-GCM of the same crate (`keyward_core::crypto`, i.e.
//! aws-lc-rs) and against RustCrypto `aes-gcm` 0.10, in one run.
//!
//! `cargo bench -p keyward-core --bench envelope`
//! (shorter: append `-- --measurement-time 2 --warm-up-time 1`)
//!
//! `envelope`, `raw-aws-lc-rs` and `rustcrypto-aes-gcm` build the cipher from
//! the raw key in each iteration, as Keyward does per item, and allocate the
//! output, as all three APIs do (Keyward's `open` also copies the input into
//! a buffer that is wiped on drop). `aws-lc-rs-in-place` is the bare AEAD on
//! a prepared key and buffer, comparable with `openssl speed`.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use criterion::{
    BatchSize, BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main,
};
use keyward_core::crypto;
use keyward_core::envelope::Envelope;
use keyward_core::provider::{WrapAlgorithm, WrappedDek};
use keyward_core::{Dek, Scope, ScopeContext};
use std::time::Duration;

const SIZES: [(usize, &str); 3] = [(1 << 10, "1KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];
const KEY: [u8; 32] = [0x11; 32];
const NONCE: [u8; 12] = [0x22; 12];
/// Roughly the size of a real envelope header.
const AAD: [u8; 120] = [0x33; 120];

fn context() -> ScopeContext {
    ScopeContext::new(
        Scope::Strict,
        "prod",
        "db-credentials",
        "password",
        "default",
    )
}

fn wrapped() -> WrappedDek {
    WrappedDek {
        key_id: "local-0011223344556677".into(),
        version: 3,
        algorithm: WrapAlgorithm::Symmetric,
        blob: vec![0x44; 61],
    }
}

fn bench_seal(c: &mut Criterion) {
    let dek = Dek::from_slice(&KEY).unwrap();
    let wrapped = wrapped();
    let mut group = c.benchmark_group("seal");
    for (size, label) in SIZES {
        let plaintext = vec![0x5a; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("envelope", label), &plaintext, |b, p| {
            b.iter(|| Envelope::seal_with(context(), &wrapped, &dek, NONCE, black_box(p)).unwrap())
        });
        group.bench_with_input(
            BenchmarkId::new("raw-aws-lc-rs", label),
            &plaintext,
            |b, p| b.iter(|| crypto::seal(&KEY, &NONCE, &AAD, black_box(p))),
        );
        // The AEAD alone, as `openssl speed` measures it: in place, no
        // allocation, no copy, no wipe.
        let mut buffer = plaintext.clone();
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap());
        group.bench_function(BenchmarkId::new("aws-lc-rs-in-place", label), |b| {
            b.iter(|| {
                key.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(NONCE),
                    Aad::from(&AAD),
                    black_box(&mut buffer),
                )
                .unwrap()
            })
        });
        group.bench_with_input(
            BenchmarkId::new("rustcrypto-aes-gcm", label),
            &plaintext,
            |b, p| {
                b.iter(|| {
                    Aes256Gcm::new(&KEY.into())
                        .encrypt(
                            &NONCE.into(),
                            Payload {
                                msg: black_box(p),
                                aad: &AAD,
                            },
                        )
                        .unwrap()
                })
            },
        );
    }
    group.finish();
}

fn bench_open(c: &mut Criterion) {
    let dek = Dek::from_slice(&KEY).unwrap();
    let wrapped = wrapped();
    let mut group = c.benchmark_group("open");
    for (size, label) in SIZES {
        let plaintext = vec![0x5a; size];
        let envelope = Envelope::seal_with(context(), &wrapped, &dek, NONCE, &plaintext).unwrap();
        let raw = crypto::seal(&KEY, &NONCE, &AAD, &plaintext);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("envelope", label), &envelope, |b, e| {
            b.iter(|| black_box(e).open_with(&dek).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("raw-aws-lc-rs", label), &raw, |b, ct| {
            b.iter(|| crypto::open(&KEY, &NONCE, &AAD, black_box(ct)).unwrap())
        });
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap());
        group.bench_function(BenchmarkId::new("aws-lc-rs-in-place", label), |b| {
            b.iter_batched_ref(
                || raw.clone(),
                |buffer| {
                    key.open_in_place(
                        Nonce::assume_unique_for_key(NONCE),
                        Aad::from(&AAD),
                        black_box(buffer),
                    )
                    .map(|plaintext| plaintext.len())
                    .unwrap()
                },
                BatchSize::LargeInput,
            )
        });
        group.bench_with_input(
            BenchmarkId::new("rustcrypto-aes-gcm", label),
            &raw,
            |b, ct| {
                b.iter(|| {
                    Aes256Gcm::new(&KEY.into())
                        .decrypt(
                            &NONCE.into(),
                            Payload {
                                msg: black_box(ct),
                                aad: &AAD,
                            },
                        )
                        .unwrap()
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_seal, bench_open
}
criterion_main!(benches);
