//! One HTTPS POST to the webhook, trusting only the CA given.

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// `base` is `https://host[:port]`; `path` starts with `/`. Returns the
/// status and body.
pub async fn post_json(
    base: &str,
    path: &str,
    ca_pem: &str,
    bearer: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>)> {
    let rest = base
        .trim_end_matches('/')
        .strip_prefix("https://")
        .ok_or_else(|| anyhow!("--server must start with https://, not `{base}`"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (
            host,
            port.parse::<u16>()
                .with_context(|| format!("the port in `{base}`"))?,
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
            .add(cert.context("reading the CA file")?)
            .context("adding the CA")?;
    }
    if roots.is_empty() {
        bail!("the CA file holds no CERTIFICATE; give the webhook's CA with --ca-file");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name =
        ServerName::try_from(host.clone()).with_context(|| format!("the host in `{base}`"))?;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .with_context(|| format!("cannot connect to {host}:{port}; is --server right?"))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(server_name, tcp)
            .await
            .context("TLS with the webhook failed; is --ca-file the webhook's CA?")?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake with the webhook")?;
        tokio::spawn(connection);
        let authorization = Zeroizing::new(format!("Bearer {bearer}"));
        let request = hyper::Request::post(path)
            .header("host", &host)
            .header("content-type", "application/json")
            .header("authorization", authorization.as_str())
            .body(Full::new(Bytes::from(body)))?;
        let response = sender
            .send_request(request)
            .await
            .context("sending the request to the webhook")?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .context("reading the webhook's answer")?
            .to_bytes()
            .to_vec();
        Ok::<_, anyhow::Error>((status, bytes))
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| anyhow!("the webhook did not answer within 30 s"))?
}
