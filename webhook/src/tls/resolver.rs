//! The serving certificate behind a lock, so renewal swaps it under a
//! running listener: every new TLS handshake picks up the current one.

use anyhow::{Context, Result, bail};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, RwLock};

pub struct SwappableCert {
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for SwappableCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SwappableCert")
    }
}

impl SwappableCert {
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<Arc<Self>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let current = certified(&provider, cert_pem, key_pem)?;
        Ok(Arc::new(SwappableCert {
            provider,
            current: RwLock::new(current),
        }))
    }

    /// Serve `cert_pem`/`key_pem` from the next handshake on.
    pub fn swap(&self, cert_pem: &str, key_pem: &str) -> Result<()> {
        let next = certified(&self.provider, cert_pem, key_pem)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }

    /// Serial and validity of the certificate served now.
    pub fn current_facts(&self) -> Option<super::der::CertFacts> {
        let current = Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()));
        super::der::facts(current.cert.first()?)
    }

    /// A rustls server configuration that serves whatever is current.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for SwappableCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

fn certified(
    provider: &CryptoProvider,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<CertifiedKey>> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the serving certificate PEM")?;
    if certs.is_empty() {
        bail!("the serving certificate holds no CERTIFICATE block");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .context("reading the serving key PEM (PKCS#8, PKCS#1 or SEC1)")?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .context("loading the serving key")?;
    let certified = CertifiedKey::new(certs, key);
    certified
        .keys_match()
        .context("the serving certificate and key do not match")?;
    Ok(Arc::new(certified))
}
