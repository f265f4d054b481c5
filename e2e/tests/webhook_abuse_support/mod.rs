//! Glue for `webhook_abuse.rs`: the webhook binary as a process, the
//! client's TLS sockets, the attacker, and the legitimate traffic measured
//! around it.

pub mod attack;
pub mod http;
pub mod measure;
pub mod server;

use anyhow::{Context as _, Result, ensure};
use rustix::process::{Resource, Rlimit, getrlimit, setpriority_process, setrlimit};

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

/// The attacker's own runtime, its threads at `niceness`. In a cluster the
/// hostile pod spends its own node's CPU on TLS and 1 MiB bodies; on this
/// two-core machine it would spend the webhook's, so the full measurement
/// runs it at nice 19 (the webhook and the legitimate callers stay at 0)
/// and reports the same-priority run beside it. Dropping it stops the
/// attack's tasks.
pub struct Attacker {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Attacker {
    pub fn new(niceness: i32) -> Result<Attacker> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("attacker")
            .enable_all()
            .on_thread_start(move || {
                // Linux: PRIO_PROCESS with a thread id renices that thread only.
                let _ = setpriority_process(Some(rustix::thread::gettid()), niceness);
            })
            .build()
            .context("starting the attacker's runtime")?;
        Ok(Attacker {
            runtime: Some(runtime),
        })
    }

    /// Runs `attack` on the attacker's threads and waits for it here.
    pub async fn run<T: Send + 'static>(
        &self,
        attack: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        let runtime = self.runtime.as_ref().context("the attacker has stopped")?;
        runtime
            .spawn(attack)
            .await
            .context("the attack task panicked")
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
