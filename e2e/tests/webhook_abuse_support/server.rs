//! The real `keyward-webhook serve` binary as a child process on loopback,
//! and what the abuse test reads of it: its two addresses, its CA, its
//! memory and the size of its audit log and output.

use anyhow::{Context as _, Result, bail};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A running webhook. Killed when dropped.
pub struct Webhook {
    child: Child,
    pub pid: u32,
    /// Where the API server sends `/mutate`.
    pub admission: SocketAddr,
    /// Where injectors (and so tenants) send `/v1/unseal`.
    pub api: SocketAddr,
    pub ca_pem: String,
    /// Holds the audit log and whatever rotation makes of it.
    pub audit_dir: PathBuf,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The listen flags, and which address serves admission and which the
/// unseal API: the one place that knows the binary's listeners.
fn listeners() -> Result<(Vec<String>, SocketAddr, SocketAddr)> {
    let admission = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    Ok((
        vec![
            format!("--admission-listen={admission}"),
            format!("--api-listen={api}"),
        ],
        admission,
        api,
    ))
}

/// Starts `bin serve` with the local keyring of namespace `ns`, everything
/// it writes under `dir`, `injector_image` as the injector image (pods
/// running it may unseal), and waits until both addresses accept. The
/// per-pod rate limit is lifted so a legitimate pod can be measured
/// hundreds of times; every other limit is the binary's default.
pub async fn start(bin: &Path, ns: &str, dir: &Path, injector_image: &str) -> Result<Webhook> {
    let (listen, admission, api) = listeners()?;
    let ca_out = dir.join("webhook-ca.pem");
    let audit_dir = dir.join("audit");
    let log = dir.join("webhook.log");
    let out = std::fs::File::create(&log)?;
    let child = Command::new(bin)
        .arg("serve")
        .args(&listen)
        .args(["--tls-san", "127.0.0.1", "--namespace", ns])
        .arg("--ca-out")
        .arg(&ca_out)
        .args(["--injector-image", injector_image])
        .arg(format!("--unseal-url=https://{api}/v1/unseal"))
        .arg("--audit-log")
        .arg(audit_dir.join("unseal-audit.log"))
        .args(["--rate-burst=1000000", "--rate-per-second=1000000"])
        .env("NO_COLOR", "1")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "keyward_webhook=info".into()),
        )
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .context("starting keyward-webhook")?;
    let pid = child.id().context("the webhook exited at once")?;
    let mut webhook = Webhook {
        child,
        pid,
        admission,
        api,
        ca_pem: String::new(),
        audit_dir,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let accepts =
        |a: &SocketAddr| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok();
    while !(ca_out.exists() && accepts(&admission) && accepts(&api)) {
        webhook.check_running()?;
        if Instant::now() > deadline {
            bail!(
                "the webhook did not listen on {admission} and {api} within 30 s\n{}",
                webhook.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    webhook.ca_pem = std::fs::read_to_string(&ca_out)?;
    Ok(webhook)
}

/// Resident memory of a process, KiB: now and its peak (`VmHWM`).
#[derive(Clone, Copy, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

impl Webhook {
    /// Fails (with the log's tail) if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("keyward-webhook exited ({status}):\n{}", self.log_tail(40));
        }
        Ok(())
    }

    /// The last `lines` lines of its output, each cut to 300 characters
    /// (junk requests can put megabytes on one line).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let tail = &text[text.len().saturating_sub(256 * 1024)..];
        let text = String::from_utf8_lossy(tail);
        let all: Vec<&str> = text.lines().collect();
        let tail: Vec<String> = all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|line| line.chars().take(300).collect())
            .collect();
        format!(
            "--- keyward-webhook ({}) ---\n{}",
            self.log.display(),
            tail.join("\n")
        )
    }

    pub fn memory(&self) -> Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<u64>().ok())
                .with_context(|| format!("no {name} in /proc/{}/status", self.pid))
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }

    /// Bytes of every file in the audit directory (all rotated segments).
    pub fn audit_bytes(&self) -> u64 {
        std::fs::read_dir(&self.audit_dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Bytes the process has written to stdout and stderr.
    pub fn log_bytes(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }
}
