//! How much a webhook-like process locks: a keyring of 20 AES keys and 2
//! RSA-3072 keys, decoded and cached, and a DEK cache filled with 100, then
//! 1000 data keys. Prints `VmLck`, `VmRSS` and the pages Keyward counts,
//! then repeats under a 64 KiB memlock limit without CAP_IPC_LOCK.
//! A measurement, not a check:
//! `cargo test -p keyward-core --test memlock_footprint -- --ignored --nocapture`
#![cfg(target_os = "linux")]

mod memlock_limit;

use keyward_core::Dek;
use keyward_core::hardening::{harden_process, memory_lock};
use keyward_core::local::{KeyringStore, LocalProvider, RootKey};
use keyward_core::provider::{DekCache, KeyAlgorithm, KeyProvider, KeySpec, WrapContext};
use rustix::process::{Resource, getrlimit};
use std::time::Duration;

fn status(field: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

fn report(step: &str) {
    let lock = memory_lock();
    println!(
        "{step:<44} VmLck {:>8}  VmRSS {:>10}  VmSize {:>10}  refused {:>4}",
        status("VmLck:"),
        status("VmRSS:"),
        status("VmSize:"),
        lock.refused
    );
}

fn spec(name: String, algorithm: KeyAlgorithm) -> KeySpec {
    KeySpec {
        name,
        algorithm,
        owner: None,
        description: None,
    }
}

/// Reports as the cache fills; everything is dropped on return.
async fn fill(dir: &std::path::Path, deks: usize) {
    let provider = LocalProvider::new(KeyringStore::new(
        dir,
        RootKey::load(&dir.join("root.key")).unwrap(),
    ));
    provider.store().set_cache_ttl(Duration::from_secs(60));
    let cache = DekCache::new(provider, Duration::from_secs(60), deks.max(1));
    let context: WrapContext = [("keyward.io/namespace".to_owned(), "shop".to_owned())].into();
    report("keyring opened, nothing decoded yet");
    let mut wrapped = Vec::new();
    for i in 0..deks {
        let key = format!("aes-{}", i % 20);
        wrapped.push(
            cache
                .wrap_dek(&key, &Dek::generate(), &context)
                .await
                .unwrap(),
        );
    }
    report("keyring decoded and cached");
    for (i, blob) in wrapped.iter().enumerate() {
        // The caller's copy goes at once, as in an unseal; the cache keeps one.
        cache.unwrap_dek(blob, &context).await.unwrap();
        if i + 1 == 100 {
            report("DEK cache: 100 data keys");
        }
    }
    report(&format!("DEK cache: {deks} data keys"));
}

fn new_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn what_a_webhook_like_process_locks() {
    println!(
        "memlock limit: {:?} bytes",
        getrlimit(Resource::Memlock).current
    );
    report("before hardening");
    println!("{}", harden_process(|w| println!("WARNING: {w}")).unwrap());
    report("hardened");
    let dir = tempfile::tempdir().unwrap();
    RootKey::generate()
        .save_new(&dir.path().join("root.key"))
        .unwrap();
    let runtime = new_runtime();
    runtime.block_on(async {
        let root = RootKey::load(&dir.path().join("root.key")).unwrap();
        let store = KeyringStore::new(dir.path(), root);
        store.initialise().unwrap();
        let provider = LocalProvider::new(store);
        for i in 0..20 {
            provider
                .create_key(&spec(format!("aes-{i}"), KeyAlgorithm::Aes256))
                .await
                .unwrap();
        }
        for i in 0..2 {
            provider
                .create_key(&spec(format!("rsa-{i}"), KeyAlgorithm::Rsa3072))
                .await
                .unwrap();
        }
    });
    report("keyring written, provider dropped");
    runtime.block_on(fill(dir.path(), 1000));
    drop(runtime);
    report("all dropped");

    println!("--- 64 KiB memlock limit, no CAP_IPC_LOCK (an older systemd's default)");
    // Before the runtime, whose threads inherit it.
    memlock_limit::limit_locking_to(64 * 1024);
    let runtime = new_runtime();
    runtime.block_on(fill(dir.path(), 1000));
    drop(runtime);
    report("all dropped");
    println!("{}", memory_lock());
}
