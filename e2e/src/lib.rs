//! Helpers for Keyward's end-to-end tests against a real cluster.
//!
//! `e2e/run.sh` starts a throwaway cluster (see `e2e/cluster/`), exports
//! `KUBECONFIG` and runs `cargo test -p keyward-e2e`. The same tests run
//! against any cluster given `KEYWARD_E2E_KUBECONFIG`. Without a cluster
//! every test fails: an e2e run that tests nothing must not look green.
#![forbid(unsafe_code)]

pub mod binaries;
pub mod cluster;
pub mod crds;
pub mod csi;
pub mod federation;
pub mod helm;
pub mod keys;
pub mod kstatus;
pub mod kubeconfig;
pub mod namespace;
pub mod pods;

pub use namespace::with_temp_ns;

/// Field manager for everything the tests apply server-side.
pub const FIELD_MANAGER: &str = "keyward-e2e";

/// This crate's directory in the checkout being tested. Cargo sets
/// `CARGO_MANIFEST_DIR` when it runs a test; the compile-time value is only
/// the fallback, because a build shared between checkouts (one target dir
/// for every clone, as CI uses) may come from another path.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
