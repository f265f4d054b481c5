//! No key material or opened value is left in heap blocks once they are
//! freed. A global allocator wraps the system one and, while armed, scans
//! every block it frees (and the block a `realloc` leaves) for marker
//! bytes: a root key, a key version's material (raw, and in base64 as the
//! keyring document holds it), a data key and a secret value. The flow is
//! what the webhook, the operator and the CLI do with a local keyring: read
//! the root key file, decrypt and decode the keyring (cached, as in the
//! cluster), unwrap a data key (also through the DEK cache), open a value,
//! wrap a data key, rotate the key (the keyring is encoded and written
//! back), save a root key; then everything is dropped.
//!
//! Not covered: copies on the stack (never freed), and the C heap of
//! AWS-LC (key schedules), which is not the Rust allocator's and which
//! AWS-LC cleanses on free.

use keyward_core::crypto;
use keyward_core::envelope::{Scope, SecretTarget, Wrapping, open_secret, seal_secret};
use keyward_core::local::{KEYRING_FILE, LocalProvider, ROOT_KEY_FILE, RootKey};
use keyward_core::provider::{DekCache, KeyProvider, WrapContext};
use keyward_core::{Dek, SecretBytes};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

// No 16 bytes of one marker occur in another (checked first in the test).
const ROOT: &[u8; 32] = b"ROOT-KEY-MARKER-rootkey+ROOTKEY!";
const ROOT_BASE64: &[u8; 44] = b"Uk9PVC1LRVktTUFSS0VSLXJvb3RrZXkrUk9PVEtFWSE=";
const KEK: &[u8; 32] = b"KEK-MATERIAL-MARKER-kek+material";
const KEK_BASE64: &[u8; 44] = b"S0VLLU1BVEVSSUFMLU1BUktFUi1rZWsrbWF0ZXJpYWw=";
const DEK: &[u8; 32] = b"DEK-MARKER-dek+marker+DEKMARKER!";
const VALUE: &[u8; 32] = b"VALUE-MARKER-value+VALUEMARKER!!";

/// Any 16 bytes of a marker in a freed block is a hit: halves are enough to
/// catch a partial copy without matching anything by chance.
const PATTERNS: [(&str, &[u8]); 12] = [
    ("root key", first_half(ROOT)),
    ("root key", second_half(ROOT)),
    ("root key, base64", first_half(ROOT_BASE64)),
    ("root key, base64", second_half(ROOT_BASE64)),
    ("key material", first_half(KEK)),
    ("key material", second_half(KEK)),
    ("key material, base64", first_half(KEK_BASE64)),
    ("key material, base64", second_half(KEK_BASE64)),
    ("data key", first_half(DEK)),
    ("data key", second_half(DEK)),
    ("secret value", first_half(VALUE)),
    ("secret value", second_half(VALUE)),
];

const fn first_half(marker: &'static [u8]) -> &'static [u8] {
    marker.split_at(16).0
}

const fn second_half(marker: &'static [u8]) -> &'static [u8] {
    marker.split_at(16).1.split_at(16).0
}

static ARMED: AtomicBool = AtomicBool::new(false);
static HITS: [AtomicUsize; PATTERNS.len()] = [const { AtomicUsize::new(0) }; PATTERNS.len()];
/// Size of the last freed block that held each pattern, for the message.
static HIT_SIZES: [AtomicUsize; PATTERNS.len()] = [const { AtomicUsize::new(0) }; PATTERNS.len()];

struct Scanning;

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

fn scan(block: &[u8]) {
    for (index, (_, pattern)) in PATTERNS.iter().enumerate() {
        if block
            .windows(pattern.len())
            .any(|window| window == *pattern)
        {
            HITS[index].fetch_add(1, Ordering::SeqCst);
            HIT_SIZES[index].store(block.len(), Ordering::SeqCst);
        }
    }
}

// SAFETY (the whole impl): every call is forwarded to the system allocator
// with the caller's own layout. Blocks are handed out zeroed, so every byte
// of a block is initialised by the time `dealloc` reads it; `scan` only
// reads, and allocates nothing (no re-entry).
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::SeqCst) {
            scan(unsafe { std::slice::from_raw_parts(ptr, layout.size()) });
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    /// Always a new block, so the old one goes through `dealloc` (the
    /// system `realloc` would free it unseen).
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

fn take_hits() -> Vec<String> {
    let mut found = Vec::new();
    for (index, (name, _)) in PATTERNS.iter().enumerate() {
        let hits = HITS[index].swap(0, Ordering::SeqCst);
        if hits > 0 {
            let size = HIT_SIZES[index].load(Ordering::SeqCst);
            found.push(format!(
                "{name}: {hits} freed blocks (the last {size} bytes)"
            ));
        }
    }
    found
}

/// A keyring file holding an AES key, `marker`, whose version 1 is `KEK`,
/// and after it a key with a long description, so that writing the document
/// outgrows a buffer that already holds the marker; encrypted under `ROOT`
/// in the store's format.
fn write_keyring(dir: &std::path::Path) {
    let kek = std::str::from_utf8(KEK_BASE64).unwrap();
    let json = format!(
        concat!(
            r#"{{"format":1,"keys":[{{"id":"local-00112233445566aa","name":"marker","#,
            r#""algorithm":"AES256","owner":null,"description":null,"primary":1,"#,
            r#""deletion_at":null,"versions":[{{"version":1,"state":"enabled","#,
            r#""created_at":100,"deletion_at":null,"material":"{}"}}]}},"#,
            r#"{{"id":"local-00112233445566bb","name":"filler","#,
            r#""algorithm":"AES256","owner":null,"description":"{}","primary":1,"#,
            r#""deletion_at":null,"versions":[{{"version":1,"state":"enabled","#,
            r#""created_at":100,"deletion_at":null,"#,
            r#""material":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}]}}]}}"#
        ),
        kek,
        "x".repeat(8192)
    );
    let header = b"KWKR\x01";
    let nonce = crypto::random_nonce();
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&crypto::seal(ROOT, &nonce, header, json.as_bytes()));
    std::fs::write(dir.join(KEYRING_FILE), bytes).unwrap();
    let mut root_file = ROOT_BASE64.to_vec();
    root_file.push(b'\n');
    std::fs::write(dir.join(ROOT_KEY_FILE), root_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join(ROOT_KEY_FILE),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

fn target() -> SecretTarget {
    SecretTarget {
        scope: Scope::Strict,
        namespace: "shop".into(),
        secret_name: "db".into(),
        key_ref: "marker".into(),
        access: Vec::new(),
    }
}

fn context() -> WrapContext {
    [("keyward.io/namespace".to_owned(), "shop".to_owned())].into()
}

#[test]
fn freed_blocks_hold_no_key_material_or_values() {
    use base64::Engine;
    let base64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(base64.encode(ROOT).as_bytes(), ROOT_BASE64);
    assert_eq!(base64.encode(KEK).as_bytes(), KEK_BASE64);
    let markers: [&[u8]; 6] = [ROOT, ROOT_BASE64, KEK, KEK_BASE64, DEK, VALUE];
    for (name, pattern) in PATTERNS {
        let found = markers
            .iter()
            .filter(|m| m.windows(16).any(|w| w == pattern))
            .count();
        assert_eq!(found, 1, "{name}: a pattern must match one marker only");
    }

    // The scanner sees a copy freed by `dealloc` and by `realloc`.
    ARMED.store(true, Ordering::SeqCst);
    let mut copy = Vec::with_capacity(32);
    copy.extend_from_slice(ROOT);
    copy.reserve(4096);
    drop(std::hint::black_box(copy));
    ARMED.store(false, Ordering::SeqCst);
    let control = take_hits();
    assert!(
        control.iter().any(|hit| hit.starts_with("root key: 2 ")),
        "{control:?}"
    );

    // Set up, unarmed: the files, and a value sealed under the marker key.
    let dir = tempfile::tempdir().unwrap();
    write_keyring(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sealed = runtime.block_on(async {
        let provider = LocalProvider::open_dir(dir.path()).unwrap();
        let values: BTreeMap<String, SecretBytes> =
            [("password".to_owned(), SecretBytes::from(&VALUE[..]))].into();
        let wrapping = Wrapping::Provider {
            provider: &provider,
            key_id: "marker",
        };
        seal_secret(&target(), wrapping, &values).await.unwrap()
    });
    let other_dir = tempfile::tempdir().unwrap();
    take_hits();

    ARMED.store(true, Ordering::SeqCst);
    runtime.block_on(async {
        let provider = LocalProvider::open_dir(dir.path()).unwrap();
        provider.store().set_cache_ttl(Duration::from_secs(5));
        let cache = DekCache::new(provider, Duration::from_secs(30), 16);
        for _ in 0..2 {
            let opened = open_secret(&target(), &cache, &sealed).await.unwrap();
            assert_eq!(opened["password"].expose(), VALUE);
        }
        let dek = Dek::from_slice(DEK).unwrap();
        let wrapped = cache.wrap_dek("marker", &dek, &context()).await.unwrap();
        let unwrapped = cache.unwrap_dek(&wrapped, &context()).await.unwrap();
        assert_eq!(unwrapped.expose(), DEK);
        // Encodes the keyring, with the marker version in it, and writes it.
        cache.rotate_key("marker").await.unwrap();
        cache
            .inner()
            .store()
            .read(|ring| Ok(ring.keys[0].versions.len()))
            .unwrap();
        let root = RootKey::from_bytes(ROOT).unwrap();
        root.save_new(&other_dir.path().join(ROOT_KEY_FILE))
            .unwrap();
        let reloaded = RootKey::load(&other_dir.path().join(ROOT_KEY_FILE)).unwrap();
        drop((root, reloaded));
    });
    drop(runtime);
    ARMED.store(false, Ordering::SeqCst);
    let leaks = take_hits();
    assert!(leaks.is_empty(), "secrets left in freed memory: {leaks:#?}");
}
