//! Makes this thread, and the threads it starts from now on, subject to a
//! memlock limit of `bytes`: without CAP_IPC_LOCK (which root has, and which
//! ignores the limit) and with that soft limit. Capabilities are per thread;
//! the limit is the whole process's.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use rustix::thread::{CapabilitySet, capabilities, set_capabilities};

pub fn limit_locking_to(bytes: u64) {
    let mut caps = capabilities(None).unwrap();
    caps.effective -= CapabilitySet::IPC_LOCK;
    caps.permitted -= CapabilitySet::IPC_LOCK;
    set_capabilities(None, caps).unwrap();
    let hard = getrlimit(Resource::Memlock).maximum;
    let limit = Rlimit {
        current: Some(bytes),
        maximum: hard,
    };
    setrlimit(Resource::Memlock, limit).unwrap();
}
