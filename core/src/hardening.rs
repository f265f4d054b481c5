//! What every Keyward process that holds key material or plaintext does
//! first (the operator, `keyward-webhook serve` and `inject`, and the CLI
//! commands that open keys or values): no core dumps, and its secrets
//! locked into RAM where the platform allows it.

use crate::locked;
use std::fmt;

/// A step that must not fail: the process should not go on without it.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub struct HardeningError {
    step: &'static str,
    #[source]
    source: std::io::Error,
}

/// Disables core dumps and turns on memory locking for key buffers.
///
/// - `RLIMIT_CORE` goes to 0, soft and hard, so nothing can raise it again;
/// - the process is marked not dumpable (`PR_SET_DUMPABLE` 0), which also
///   keeps other processes of the same user from reading its memory through
///   ptrace or `/proc/<pid>/mem`;
/// - from now on every buffer of key material or plaintext (root key,
///   keyring versions, data keys, secret values) is `mlock`ed while it
///   lives. A buffer the kernel refuses stays usable, unlocked: `warn` is
///   called once, at the first refusal, with what was not locked and how
///   to allow it. A one-buffer check runs now, so a process that may lock
///   nothing says so at start.
///
/// Not for a process that `exec`s another program: the core limit is
/// inherited across `exec` (`keyward-webhook exec-env` does not call this).
pub fn harden_process(warn: fn(&str)) -> Result<MemoryLock, HardeningError> {
    disable_core_dumps()?;
    // Elsewhere there is no mlock: `memory_lock()` says nothing is locked.
    if cfg!(unix) {
        locked::enable(Box::new(move |refusal| warn(&refusal_message(refusal))));
        drop(locked::Locked::<[u8; 32]>::zeroed(
            "key buffers at start-up",
        ));
    }
    Ok(memory_lock())
}

#[cfg(unix)]
fn disable_core_dumps() -> Result<(), HardeningError> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    setrlimit(Resource::Core, none).map_err(|e| HardeningError {
        step: "cannot disable core dumps (setrlimit RLIMIT_CORE)",
        source: e.into(),
    })?;
    #[cfg(target_os = "linux")]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| HardeningError {
            step: "cannot mark the process non-dumpable (prctl PR_SET_DUMPABLE)",
            source: e.into(),
        })?;
    Ok(())
}

#[cfg(not(unix))]
fn disable_core_dumps() -> Result<(), HardeningError> {
    Ok(())
}

/// The soft `RLIMIT_MEMLOCK` in bytes; `None`: unlimited.
#[cfg(unix)]
fn memlock_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Memlock).current
}

#[cfg(not(unix))]
fn memlock_limit() -> Option<u64> {
    Some(0)
}

fn kib(bytes: u64) -> String {
    format!("{} KiB", bytes / 1024)
}

fn limit_text(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_owned(), kib)
}

fn refusal_message(refusal: &locked::Refusal) -> String {
    let now = memory_lock();
    format!(
        "could not lock {} into RAM ({} bytes): {}; the memlock limit is {} and {} are locked. \
         Key material and secret values may be swapped to disk; everything else works. \
         To allow it, raise the memlock limit the process starts with (`ulimit -l`; in a \
         cluster, the container runtime's, e.g. LimitMEMLOCK= in containerd's systemd unit) \
         or run it with CAP_IPC_LOCK. Later refusals are not reported.",
        refusal.what,
        refusal.bytes,
        refusal.error,
        limit_text(now.limit),
        kib(now.locked_bytes)
    )
}

/// How far this process's secrets are locked into RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLock {
    /// [`harden_process`] turned locking on.
    pub enabled: bool,
    /// Buffers the kernel refused to lock since then.
    pub refused: u64,
    /// Bytes (whole pages) locked now.
    pub locked_bytes: u64,
    /// The soft memlock limit in bytes (`None`: unlimited).
    pub limit: Option<u64>,
}

impl MemoryLock {
    /// Every secret buffer made since start-up was locked: the value of the
    /// `keyward_memory_locked` gauge.
    pub fn all_locked(&self) -> bool {
        self.enabled && self.refused == 0
    }
}

impl fmt::Display for MemoryLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (locked, limit) = (kib(self.locked_bytes), limit_text(self.limit));
        match (self.enabled, self.refused) {
            (false, _) => f.write_str("key buffers not locked in RAM"),
            (true, 0) => write!(
                f,
                "key buffers locked in RAM ({locked} now, memlock limit {limit})"
            ),
            (true, refused) => write!(
                f,
                "{refused} key buffers could not be locked in RAM ({locked} now, memlock limit {limit})"
            ),
        }
    }
}

/// The current state, for metrics and logs.
pub fn memory_lock() -> MemoryLock {
    let state = locked::state();
    MemoryLock {
        enabled: state.enabled,
        refused: state.refused,
        locked_bytes: (state.pages * locked::page_size()) as u64,
        limit: memlock_limit(),
    }
}
