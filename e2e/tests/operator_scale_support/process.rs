//! The real `keyward-operator` binary as a child process: its peak RSS from
//! /proc and its counters from /metrics.

use anyhow::{Context as _, Result, bail, ensure};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub struct OperatorProcess {
    child: Child,
    metrics_addr: String,
    pub log: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl OperatorProcess {
    /// Starts the operator on namespace `ns` (keyring, Lease and watch).
    pub fn start(bin: &Path, ns: &str, dir: &Path) -> Result<Self> {
        let metrics_addr = format!("127.0.0.1:{}", free_port()?);
        let log = dir.join("operator.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .args(["--namespace", ns, "--watch-namespace", ns])
            .args(["--metrics-addr", &metrics_addr, "--identity", "scale-run"])
            .arg("--audit-log")
            .arg(dir.join("audit.log"))
            .env(
                "RUST_LOG",
                std::env::var("KEYWARD_SCALE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(OperatorProcess {
            child,
            metrics_addr,
            log,
        })
    }

    pub fn pid(&self) -> Result<u32> {
        self.child.id().context("the operator exited")
    }

    /// `VmHWM` (peak resident set) and `VmRSS`, in MiB.
    pub fn memory_mib(&self) -> Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?))?;
        let field = |name: &str| -> Result<f64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name} in /proc/<pid>/status"))?;
            let kib: f64 = line
                .split_whitespace()
                .nth(1)
                .context("malformed line")?
                .parse()?;
            Ok(kib / 1024.0)
        };
        Ok((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// CPU seconds the operator used so far (user + system, from
    /// `/proc/<pid>/stat`; Linux counts them in USER_HZ = 100 ticks/s).
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?))?;
        // After the command name in parentheses: state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .context("malformed /proc/<pid>/stat")?
            .1
            .split_whitespace()
            .collect();
        let ticks = |i: usize| -> Result<f64> {
            Ok(fields.get(i).context("short /proc/<pid>/stat")?.parse()?)
        };
        Ok((ticks(11)? + ticks(12)?) / 100.0)
    }

    /// The /metrics text (blocking, loopback, small).
    pub fn metrics(&self) -> Result<String> {
        let mut stream = TcpStream::connect(&self.metrics_addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        // One write: the operator answers after its first read.
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.metrics_addr
        );
        stream.write_all(request.as_bytes())?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        ensure!(
            text.starts_with("HTTP/1.1 200"),
            "GET /metrics: {}",
            text.lines().next().unwrap_or("")
        );
        Ok(text)
    }

    /// Waits until /metrics answers (the process is up).
    pub async fn wait_serving(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the operator exited ({status}); see {}", self.log.display());
            }
            if self.metrics().is_ok() {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the operator did not serve /metrics within 30s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the reconcile counters stood still for `quiet`; returns
    /// the counters then.
    pub async fn wait_settled(&self, quiet: Duration, limit: Duration) -> Result<Counters> {
        let deadline = Instant::now() + limit;
        let mut last = Counters::parse(&self.metrics()?);
        let mut still_since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = Counters::parse(&self.metrics()?);
            if now.reconciles != last.reconciles {
                still_since = Instant::now();
                last = now;
            } else if still_since.elapsed() >= quiet {
                return Ok(now);
            }
            ensure!(
                Instant::now() < deadline,
                "the operator kept reconciling for {limit:?}: {:?}",
                last.reconciles
            );
        }
    }

    /// Keeps a copy of the log outside the test's temporary directory.
    pub fn keep_log(&self, name: &str) -> PathBuf {
        let kept = std::env::temp_dir().join(format!("keyward-scale-{name}.log"));
        let _ = std::fs::copy(&self.log, &kept);
        kept
    }

    pub async fn stop(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// Counters read from /metrics.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// op -> calls
    pub provider: std::collections::BTreeMap<String, u64>,
    /// verb -> requests
    pub api: std::collections::BTreeMap<String, u64>,
    pub reconciles: std::collections::BTreeMap<String, u64>,
}

impl Counters {
    pub fn parse(text: &str) -> Counters {
        let mut counters = Counters::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<u64>() else {
                continue;
            };
            let label = || {
                series
                    .split_once("=\"")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map(|(label, _)| label.to_owned())
                    .unwrap_or_default()
            };
            if series.starts_with("keyward_provider_calls_total{") {
                counters.provider.insert(label(), value);
            } else if series.starts_with("keyward_api_requests_total{") {
                counters.api.insert(label(), value);
            } else if series.starts_with("keyward_reconciles_total{") {
                counters.reconciles.insert(label(), value);
            }
        }
        counters
    }

    pub fn provider_total(&self) -> u64 {
        self.provider.values().sum()
    }

    pub fn api_total(&self) -> u64 {
        self.api.values().sum()
    }

    /// What happened between `before` and `self`, per label.
    pub fn since(&self, before: &Counters) -> Counters {
        let diff = |now: &std::collections::BTreeMap<String, u64>,
                    then: &std::collections::BTreeMap<String, u64>| {
            now.iter()
                .map(|(k, v)| (k.clone(), v - then.get(k).copied().unwrap_or(0)))
                .filter(|(_, v)| *v > 0)
                .collect()
        };
        Counters {
            provider: diff(&self.provider, &before.provider),
            api: diff(&self.api, &before.api),
            reconciles: diff(&self.reconciles, &before.reconciles),
        }
    }
}

/// Where the operator's time went, from the /metrics summaries: mean
/// reconcile wall time per controller, and per provider operation the mean
/// latency and the total time calls waited for their turn.
pub fn timings(text: &str) -> String {
    use std::collections::BTreeMap;
    let mut sums = BTreeMap::<(String, String), f64>::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (Some((name, labels)), Ok(value)) = (series.split_once('{'), value.parse::<f64>())
        else {
            continue;
        };
        let label = labels
            .split_once("=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(label, _)| label.to_owned())
            .unwrap_or_default();
        sums.insert((name.to_owned(), label), value);
    }
    let mean = |name: &str, label: &str| {
        let get = |suffix: &str| sums.get(&(format!("{name}_{suffix}"), label.to_owned()));
        match (get("sum"), get("count")) {
            (Some(sum), Some(count)) if *count > 0.0 => format!("{:.3}s", sum / count),
            _ => "-".into(),
        }
    };
    let mut out = Vec::new();
    for controller in ["managedkey", "sealedsecret"] {
        out.push(format!(
            "{controller} reconcile {}",
            mean("keyward_reconcile_duration_seconds", controller)
        ));
    }
    for ((name, op), waited) in &sums {
        if name == "keyward_provider_call_wait_seconds" {
            out.push(format!(
                "{op} {} (waited {waited:.1}s in all)",
                mean("keyward_provider_call_duration_seconds", op)
            ));
        }
    }
    out.join("; ")
}

/// Warning/error lines of the operator log, counted by their message.
pub fn summarise_log(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for line in text
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
    {
        // Drop the timestamp and object names; keep level, target, message.
        let message: String = line
            .split_whitespace()
            .skip(1)
            .filter(|w| {
                !w.starts_with("key=") && !w.starts_with("secret=") && !w.starts_with("namespace=")
            })
            .collect::<Vec<_>>()
            .join(" ");
        *counts.entry(message).or_default() += 1;
    }
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(m, n)| format!("\n  {n} x {m}"))
        .collect()
}
