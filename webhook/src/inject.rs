//! The init container: prove the pod's identity with its projected token,
//! ask the unseal API for the secrets, write each item as a 0400 file in
//! the memory volume. All or nothing: a pod never starts with half its
//! secrets. Core dumps are disabled first, so no plaintext lands on disk.

use crate::unseal::{UnsealRequest, UnsealResponse};
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

pub struct InjectConfig {
    pub unseal_url: String,
    pub ca_pem: String,
    pub token_file: PathBuf,
    pub mount_path: PathBuf,
    pub namespace: String,
    pub pod: String,
    pub secrets: Vec<String>,
    pub deadline: Duration,
    /// env-exec pods: copy this binary here for the app container to run.
    pub install_exec: Option<PathBuf>,
}

/// How every message about a webhook's answer starts.
const ANSWERED: &str = "webhook answered";

/// The most of a webhook's error body quoted in a message.
const QUOTED_BYTES: usize = 300;

/// The most of a denial's reason quoted (it names a SealedSecret, an item
/// and a ManagedKey, each up to 253 characters).
const REASON_BYTES: usize = 1024;

/// Why a request did not succeed, and whether trying again may help.
enum Attempt {
    Retry(String),
    Fatal(anyhow::Error),
}

/// The injector holds the pod's plaintext: no core dumps, values locked
/// in RAM where allowed (`keyward_core::hardening`).
fn harden() -> Result<()> {
    keyward_core::hardening::harden_process(|warning| {
        eprintln!("keyward-inject: warning: {warning}");
    })?;
    Ok(())
}

pub async fn run(config: &InjectConfig) -> Result<()> {
    harden()?;
    for name in &config.secrets {
        check_file_name(name).with_context(|| format!("SealedSecret name `{name}`"))?;
    }
    let token = Zeroizing::new(
        std::fs::read_to_string(&config.token_file)
            .with_context(|| {
                format!(
                    "reading the projected token {}",
                    config.token_file.display()
                )
            })?
            .trim()
            .to_owned(),
    );
    let body = Zeroizing::new(serde_json::to_vec(&UnsealRequest {
        token: token.to_string(),
        namespace: config.namespace.clone(),
        pod: config.pod.clone(),
        secrets: config.secrets.clone(),
    })?);
    let client = Client::new(&config.unseal_url, &config.ca_pem)?;
    let started = Instant::now();
    let mut backoff = Duration::from_millis(200);
    // What the webhook last said, kept for the final error when the last
    // attempt only ran out of time (e.g. "key provider `aws` did not answer").
    let mut last_answer: Option<String> = None;
    let response = loop {
        let remaining = config.deadline.saturating_sub(started.elapsed());
        let attempt =
            tokio::time::timeout(remaining.min(Duration::from_secs(10)), client.post(&body))
                .await
                .unwrap_or_else(|_| {
                    Err(Attempt::Retry("the webhook did not answer in time".into()))
                });
        match attempt {
            Ok(response) => break response,
            Err(Attempt::Fatal(error)) => return Err(error),
            Err(Attempt::Retry(why)) if started.elapsed() + backoff < config.deadline => {
                eprintln!("keyward-inject: {why}; retrying in {backoff:?}");
                if why.starts_with(ANSWERED) {
                    last_answer = Some(why);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(Attempt::Retry(why)) => match last_answer {
                Some(answer) if !why.starts_with(ANSWERED) => {
                    bail!(
                        "gave up after {:?}: {why} (before that, {answer})",
                        config.deadline
                    )
                }
                _ => bail!("gave up after {:?}: {why}", config.deadline),
            },
        }
    };
    write_all(&config.mount_path, &config.secrets, &response)?;
    if let Some(path) = &config.install_exec {
        install_self(path)?;
    }
    Ok(())
}

/// Copies this binary to `path` (0555, atomically), so an env-exec app
/// container can run it from the shared volume.
fn install_self(path: &Path) -> Result<()> {
    let me = std::env::current_exe().context("finding this binary (/proc/self/exe)")?;
    let temp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temp);
    let mut source =
        std::fs::File::open(&me).with_context(|| format!("opening {}", me.display()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o555)
        .open(&temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    std::io::copy(&mut source, &mut file)
        .and_then(|_| file.sync_all())
        .with_context(|| format!("copying the exec wrapper to {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("renaming to {}", path.display()))?;
    eprintln!(
        "keyward-inject: installed the exec wrapper at {}",
        path.display()
    );
    Ok(())
}

fn check_file_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        bail!("not a usable file name");
    }
    Ok(())
}

/// Writes every item, each atomically (temp file, fsync, rename).
fn write_all(mount: &Path, secrets: &[String], response: &UnsealResponse) -> Result<()> {
    for name in secrets {
        let items = response
            .secrets
            .get(name)
            .ok_or_else(|| anyhow!("the webhook returned nothing for SealedSecret `{name}`"))?;
        let dir = mount.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (item, encoded) in items {
            check_file_name(item).with_context(|| format!("item `{item}` of `{name}`"))?;
            let value = Zeroizing::new(
                STANDARD
                    .decode(encoded.as_bytes())
                    .map_err(|_| anyhow!("item `{item}` of `{name}` is not base64"))?,
            );
            let path = dir.join(item);
            let temp = dir.join(format!(".{item}.tmp"));
            let _ = std::fs::remove_file(&temp);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o400)
                .open(&temp)
                .with_context(|| format!("creating {}", temp.display()))?;
            file.write_all(&value)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", temp.display()))?;
            std::fs::rename(&temp, &path)
                .with_context(|| format!("renaming to {}", path.display()))?;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500))
            .with_context(|| format!("making {} read-only", dir.display()))?;
        eprintln!(
            "keyward-inject: wrote {} item(s) of `{name}` to {}",
            items.len(),
            dir.display()
        );
    }
    Ok(())
}

/// A one-endpoint HTTPS client that trusts only the given CA.
struct Client {
    host: String,
    port: u16,
    path: String,
    server_name: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
}

impl Client {
    fn new(url: &str, ca_pem: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| anyhow!("the unseal URL must start with https://, not `{url}`"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/v1/unseal".to_owned()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => (
                host,
                port.parse().with_context(|| format!("port in `{url}`"))?,
            ),
            _ => (authority, 443),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(cert.context("reading the CA PEM")?)
                .context("adding the CA")?;
        }
        if roots.is_empty() {
            bail!("no CA certificate to trust the webhook with (set KEYWARD_CA_PEM or --ca-file)");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_name =
            ServerName::try_from(host.clone()).with_context(|| format!("host in `{url}`"))?;
        Ok(Client {
            host,
            port,
            path,
            server_name,
            connector: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        })
    }

    async fn post(&self, body: &[u8]) -> Result<UnsealResponse, Attempt> {
        let retry = |what: &str, e: &dyn std::fmt::Display| Attempt::Retry(format!("{what}: {e}"));
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                retry(
                    &format!("cannot connect to {}:{}", self.host, self.port),
                    &e,
                )
            })?;
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| Attempt::Fatal(anyhow!("TLS with the webhook failed: {e}")))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| retry("HTTP handshake", &e))?;
        tokio::spawn(connection);
        let request = hyper::Request::post(&self.path)
            .header("host", &self.host)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| Attempt::Fatal(e.into()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| retry("request", &e))?;
        let status = response.status();
        let bytes = Zeroizing::new(
            response
                .into_body()
                .collect()
                .await
                .map_err(|e| retry("reading the response", &e))?
                .to_bytes()
                .to_vec(),
        );
        match status.as_u16() {
            200 => serde_json::from_slice(&bytes).map_err(|e| {
                Attempt::Fatal(anyhow!(
                    "the webhook's answer is not an unseal response: {e}"
                ))
            }),
            // Final either way. A key-state refusal says why and what to do
            // (the pod is entitled to know); any other denial is generic.
            403 => Err(Attempt::Fatal(match quoted(&bytes, REASON_BYTES) {
                reason if reason.is_empty() || reason == crate::unseal::DENIED => anyhow!(
                    "denied: the webhook refused to unseal for this pod (the reason is in the keyward audit log)"
                ),
                reason => anyhow!("denied: {reason}"),
            })),
            429 | 500..=599 => Err(Attempt::Retry(format!(
                "{ANSWERED} {status}: {}",
                quoted(&bytes, QUOTED_BYTES)
            ))),
            _ => Err(Attempt::Fatal(anyhow!(
                "{ANSWERED} {status}: {}",
                quoted(&bytes, QUOTED_BYTES)
            ))),
        }
    }
}

/// At most `max` bytes of a webhook's answer as one line: control
/// characters (newlines included) become spaces, so the injector's
/// failure stays the single line the pod's status shows.
fn quoted(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// One unseal call without retries, for tests and tools. A denial is an
/// error whose message starts with `denied`.
pub async fn unseal_once(
    url: &str,
    ca_pem: &str,
    request: &UnsealRequest,
) -> Result<UnsealResponse> {
    let body = Zeroizing::new(serde_json::to_vec(request)?);
    Client::new(url, ca_pem)?
        .post(&body)
        .await
        .map_err(|attempt| match attempt {
            Attempt::Retry(message) => anyhow!(message),
            Attempt::Fatal(error) => error,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_answers_are_one_bounded_line() {
        assert_eq!(quoted(b"  re-seal it\nnow\r\n", 100), "re-seal it now");
        assert_eq!(quoted("é".repeat(10).as_bytes(), 5), "éé\u{fffd}");
        assert_eq!(quoted(b"", 10), "");
    }
}
