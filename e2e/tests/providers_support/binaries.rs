//! The real `keyward-operator` and `keyward-webhook serve` binaries as
//! child processes on loopback, reaching their provider through the flags
//! (or the variables) the chart would set. Each writes one log file, whose
//! tail a failing test prints. Killed when dropped.

use anyhow::{Context as _, Result, bail};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A running binary and its log.
pub struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(name: &'static str, command: &mut Command, log: PathBuf) -> Result<Process> {
        let out = std::fs::File::create(&log)?;
        let child = command
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Process { name, child, log })
    }

    /// Fails (with the log's tail) if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}):\n{}", self.name, self.log_tail(40));
        }
        Ok(())
    }

    /// The last `lines` lines of the process's output.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!("--- {} ({}) ---\n{tail}", self.name, self.log.display())
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `keyward-operator` on namespace `ns` (keyring, Lease, watch), audit log
/// `dir/audit.log`, with extra arguments and environment variables.
pub fn operator(
    bin: &Path,
    ns: &str,
    dir: &Path,
    args: &[String],
    env: &[(&str, &str)],
) -> Result<Process> {
    let mut command = Command::new(bin);
    command
        .args(["--namespace", ns, "--watch-namespace", ns])
        .args(["--metrics-addr=127.0.0.1:0", "--identity=providers-e2e"])
        .arg("--audit-log")
        .arg(dir.join("audit.log"))
        .args(args)
        .envs(env.iter().copied())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "keyward_operator=info".into()),
        );
    Process::spawn("keyward-operator", &mut command, dir.join("operator.log"))
}

/// `keyward-webhook serve` on a loopback port, its TLS self-bootstrapped
/// for 127.0.0.1.
pub struct Webhook {
    pub process: Process,
    /// `https://127.0.0.1:PORT` of the tenant API (unseal, rewrap).
    pub url: String,
    /// The CA its serving certificate chains to.
    pub ca_pem: String,
}

/// Starts the webhook with the local keyring of namespace `ns` and the
/// given provider arguments and variables, and waits until it listens.
pub async fn webhook(
    bin: &Path,
    ns: &str,
    dir: &Path,
    args: &[String],
    env: &[(&str, &str)],
) -> Result<Webhook> {
    let port = free_port()?;
    let url = format!("https://127.0.0.1:{port}");
    // Admission is not registered here, but it listens: any free port.
    let admission_port = free_port()?;
    let ca_out = dir.join("webhook-ca.pem");
    let mut command = Command::new(bin);
    command
        .arg("serve")
        .arg(format!("--api-listen=127.0.0.1:{port}"))
        .arg(format!("--admission-listen=127.0.0.1:{admission_port}"))
        .args(["--tls-san", "127.0.0.1", "--namespace", ns])
        .arg("--ca-out")
        .arg(&ca_out)
        // The image of the tests' starting pods' injectors.
        .args(["--injector-image", &keyward_e2e::cluster::busybox_image().0])
        .arg(format!("--unseal-url={url}/v1/unseal"))
        .arg("--audit-log")
        .arg(dir.join("unseal.log"))
        .args(args)
        .envs(env.iter().copied())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "keyward_webhook=info".into()),
        );
    let mut process = Process::spawn("keyward-webhook", &mut command, dir.join("webhook.log"))?;
    // It writes the CA, connects its providers, then binds the port.
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(ca_out.exists()
        && TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok())
    {
        process.check_running()?;
        if Instant::now() > deadline {
            bail!(
                "the webhook did not listen on {address} within 30 s\n{}",
                process.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ca_pem = std::fs::read_to_string(&ca_out)?;
    Ok(Webhook {
        process,
        url,
        ca_pem,
    })
}
