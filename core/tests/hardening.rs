//! `harden_process` in a process of its own (it changes process-wide
//! state): core dumps off, not dumpable, secret buffers locked with their
//! pages counted, and a refused lock reported once while everything keeps
//! working. One test, so its steps run in order on one thread (capabilities
//! are per thread).
#![cfg(target_os = "linux")]

mod memlock_limit;

use keyward_core::hardening::{harden_process, memory_lock};
use keyward_core::{Dek, SecretBytes};
use rustix::process::{DumpableBehavior, Resource, dumpable_behavior, getrlimit};
use std::sync::Mutex;

static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn warn(message: &str) {
    WARNINGS.lock().unwrap().push(message.to_owned());
}

/// `VmLck` of /proc/self/status, in KiB.
fn locked_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmLck:"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn page_of(bytes: &SecretBytes) -> usize {
    bytes.expose().as_ptr() as usize / rustix::param::page_size()
}

#[test]
fn hardening_disables_core_dumps_and_locks_secrets_or_says_why_not() {
    let unlocked = SecretBytes::from(&b"made before hardening"[..]);
    assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::Dumpable);

    let status = harden_process(warn).unwrap();
    let core = getrlimit(Resource::Core);
    assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
    assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
    assert!(status.all_locked(), "{status}: {:?}", WARNINGS.lock());
    assert_eq!(locked_kib(), 0, "the start-up check is unlocked again");

    // Two values on one page: the page stays locked until both are gone.
    let page_kib = rustix::param::page_size() as u64 / 1024;
    let mut values: Vec<SecretBytes> = (0..64)
        .map(|i| SecretBytes::from(format!("value {i}").as_bytes()))
        .collect();
    let shared = (1..values.len())
        .find(|&i| page_of(&values[i]) == page_of(&values[0]))
        .expect("small values share pages");
    let second = values.remove(shared);
    let first = values.remove(0);
    let pages: std::collections::BTreeSet<usize> = values
        .iter()
        .chain([&first, &second])
        .map(page_of)
        .collect();
    assert_eq!(locked_kib(), pages.len() as u64 * page_kib);
    drop(values);
    assert_eq!(locked_kib(), page_kib);
    drop(first);
    assert_eq!(locked_kib(), page_kib, "the page still holds `second`");
    assert_eq!(second.expose(), format!("value {shared}").as_bytes());
    drop(second);
    let key = Dek::generate();
    assert_eq!(locked_kib(), page_kib);
    drop(key);
    assert_eq!(locked_kib(), 0);
    drop(unlocked);
    assert_eq!(locked_kib(), 0, "a value from before was never locked");
    assert!(WARNINGS.lock().unwrap().is_empty());

    // Now the kernel refuses: no CAP_IPC_LOCK (root has it) and no
    // allowance. The values still work; one warning says what to do.
    memlock_limit::limit_locking_to(0);
    let refused = SecretBytes::from(&b"not lockable"[..]);
    let also = Dek::from_slice(&[7; 32]).unwrap();
    assert_eq!(refused.expose(), b"not lockable");
    assert_eq!(also.expose(), &[7; 32]);
    assert_eq!(locked_kib(), 0);
    let warnings = WARNINGS.lock().unwrap().clone();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("could not lock key material or a secret value")
            && warnings[0].contains("the memlock limit is 0 KiB")
            && warnings[0].contains("CAP_IPC_LOCK"),
        "{}",
        warnings[0]
    );
    let status = memory_lock();
    assert!(!status.all_locked());
    assert_eq!(status.refused, 2);
    assert_eq!(
        status.to_string(),
        "2 key buffers could not be locked in RAM (0 KiB now, memlock limit 0 KiB)"
    );
}
