//! Glue for `webhook_abuse.rs`: the webhook binary as a process, the
//! client's TLS sockets, the attacker, and the legitimate traffic measured
//! around it.

pub mod attack;
pub mod http;
pub mod measure;
pub mod server;

use anyhow::{Result, ensure};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises this process's soft limit on open files to at least `needed`
/// (up to the hard limit); the webhook, a child, inherits it.
pub fn raise_open_files(needed: u64) -> Result<u64> {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let current = limit.current.unwrap_or(u64::MAX);
    if current < needed {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(needed.min(hard)),
                maximum: limit.maximum,
            },
        )?;
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    ensure!(
        now >= needed,
        "the abuse load needs {needed} open files, the hard limit is {hard}: raise it (ulimit -Hn, or prlimit)"
    );
    Ok(now)
}

/// `/proc/loadavg`'s three load averages, for the report.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" / ")
        })
        .unwrap_or_else(|_| "?".into())
}
