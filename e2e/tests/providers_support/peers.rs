//! The real provider peers on loopback: a private `moto_server` (AWS KMS)
//! and a fresh SoftHSM2 token (PKCS#11), set up the way the provider
//! crates' own tests do (`providers/aws/tests/moto.sh`, the Debian
//! `softhsm2` package). Nothing skips: a missing peer fails the test.

use anyhow::{Context as _, Result, bail, ensure};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const TOKEN: &str = "keyward-e2e";
const PIN: &str = "2718-user";
const SO_PIN: &str = "2718-so";

/// A running `moto_server`, stopped on drop (and with this process: it
/// watches its stdin, which closes when we die).
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Result<Moto> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../providers/aws/tests/moto.sh");
        let installed = Command::new("bash").arg(&script).output()?;
        ensure!(
            installed.status.success(),
            "installing moto failed; needs python3 with venv and PyPI access once:\n{}",
            String::from_utf8_lossy(&installed.stderr)
        );
        let server = String::from_utf8_lossy(&installed.stdout).trim().to_owned();
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::env::temp_dir().join(format!("keyward-e2e-moto-{port}.log"));
        let child = Command::new("bash")
            .args([
                "-c",
                r#"exec 3<&0; "$0" -H 127.0.0.1 -p "$1" & m=$!; (cat <&3 >/dev/null; kill $m 2>/dev/null) & wait $m"#,
            ])
            .arg(&server)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {server}"))?;
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            if let Some(status) = moto.child.try_wait()? {
                bail!(
                    "moto_server exited ({status}):\n{}",
                    std::fs::read_to_string(&log)?
                );
            }
            ensure!(
                Instant::now() < deadline,
                "moto_server did not listen within 60 s; log: {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// A SoftHSM2 token directory with one initialised token and its PIN file.
pub struct SoftHsm {
    /// Removed with the token when dropped.
    _dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub pin_file: PathBuf,
}

fn run(command: &mut Command) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

impl SoftHsm {
    /// Installs `softhsm2` if missing (CI is a fresh Debian machine running
    /// as root) and initialises token [`TOKEN`].
    pub fn start() -> Result<SoftHsm> {
        if !Path::new(SOFTHSM_MODULE).exists() {
            eprintln!("SoftHSM2 is missing; installing the Debian package softhsm2");
            run(Command::new("apt-get")
                .arg("update")
                .env("DEBIAN_FRONTEND", "noninteractive"))?;
            run(Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends", "softhsm2"])
                .env("DEBIAN_FRONTEND", "noninteractive"))?;
        }
        let dir = tempfile::Builder::new()
            .prefix("keyward-e2e-softhsm-")
            .tempdir()?;
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens)?;
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )?;
        run(Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", TOKEN])
            .args(["--pin", PIN, "--so-pin", SO_PIN]))?;
        let pin_file = dir.path().join("user.pin");
        std::fs::write(&pin_file, format!("{PIN}\n"))?;
        Ok(SoftHsm {
            _dir: dir,
            conf,
            pin_file,
        })
    }
}

/// A "KMS" on loopback that accepts every connection and never answers nor
/// closes it: the hung provider a deadline must cut off. Stops when dropped.
pub struct HungServer {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HungServer {
    pub async fn start() -> Result<HungServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let accepted = std::sync::Arc::<std::sync::atomic::AtomicUsize>::default();
        let counter = std::sync::Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            // Held open, never read or written.
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        });
        Ok(HungServer {
            endpoint,
            accepted,
            task,
        })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for HungServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
