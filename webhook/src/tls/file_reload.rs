//! A certificate and key read from files (e.g. a cert-manager Secret
//! mounted in the pod) are renewed by their issuer, and the kubelet updates
//! the mounted files in place. Reading them once would serve the old
//! certificate until it expires; this polls the files and swaps a changed
//! pair in under the running listener.

use super::resolver::SwappableCert;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// How often the files are checked: cert-manager renews weeks before
/// expiry, so a minute costs nothing and is quick enough.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// The pair as last read; the key zeroized when dropped.
struct Pair {
    cert: String,
    key: Zeroizing<String>,
}

fn read_pair(cert: &Path, key: &Path) -> Result<Pair> {
    Ok(Pair {
        cert: std::fs::read_to_string(cert)
            .with_context(|| format!("reading {}", cert.display()))?,
        key: Zeroizing::new(
            std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?,
        ),
    })
}

/// Serves `cert`/`key` and keeps serving their newest valid contents,
/// checked every `interval`. Must be called inside a Tokio runtime.
pub fn serve_from_files(
    cert: &Path,
    key: &Path,
    interval: Duration,
) -> Result<(Arc<SwappableCert>, Arc<rustls::ServerConfig>)> {
    let pair = read_pair(cert, key)?;
    let serving = SwappableCert::new(&pair.cert, &pair.key)?;
    let config = serving.server_config()?;
    tokio::spawn(watch(
        Arc::clone(&serving),
        cert.to_owned(),
        key.to_owned(),
        pair,
        interval,
    ));
    Ok((serving, config))
}

async fn watch(
    serving: Arc<SwappableCert>,
    cert: PathBuf,
    key: PathBuf,
    mut current: Pair,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let next = match read_pair(&cert, &key) {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "serving certificate files unreadable; keeping the current one");
                continue;
            }
        };
        if next.cert == current.cert && *next.key == *current.key {
            continue;
        }
        // A read between the two files' updates can pair a new certificate
        // with the old key: keep serving the current pair and retry.
        match serving.swap(&next.cert, &next.key) {
            Ok(()) => {
                tracing::info!(cert = %cert.display(), "serving certificate reloaded from its files");
                current = next;
            }
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "new serving certificate files not usable yet; keeping the current one");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, cert: &str, key: &str) {
        // Like the kubelet: each file replaced whole, never half-written.
        for (name, text) in [("tls.crt", cert), ("tls.key", key)] {
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, dir.join(name)).unwrap();
        }
    }

    async fn wait_for_serial(serving: &SwappableCert, cert_pem: &str) {
        let want = super::super::rotation::pem_facts(cert_pem).unwrap().serial;
        for _ in 0..200 {
            if serving.current_facts().map(|f| f.serial) == Some(want.clone()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the renewed certificate was not picked up");
    }

    #[tokio::test]
    async fn a_renewed_pair_is_served_and_a_mismatched_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let sans = ["localhost".to_owned()];
        let first = crate::tls::bootstrap(&sans).unwrap();
        write(dir.path(), &first.cert_pem, &first.key_pem);
        let (serving, _config) = serve_from_files(
            &dir.path().join("tls.crt"),
            &dir.path().join("tls.key"),
            Duration::from_millis(20),
        )
        .unwrap();
        wait_for_serial(&serving, &first.cert_pem).await;

        // Half an update (new certificate, old key) is refused, the old pair served.
        let second = crate::tls::bootstrap(&sans).unwrap();
        std::fs::write(dir.path().join("tls.crt"), &second.cert_pem).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        wait_for_serial(&serving, &first.cert_pem).await;

        // The whole update is picked up without a restart.
        write(dir.path(), &second.cert_pem, &second.key_pem);
        wait_for_serial(&serving, &second.cert_pem).await;
    }
}
