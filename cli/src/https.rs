//! One HTTPS request (HTTP/1.1) to the webhook (`rewrap`), trusting only
//! the CA given. Cluster calls go through kube's client instead.

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// Where to send, whom to trust, and how to name the peer in errors.
pub struct Endpoint<'a> {
    /// `https://host[:port][/prefix]`; request paths go after the prefix.
    pub base: &'a str,
    pub ca_pem: &'a [u8],
    /// "the webhook", "the API server".
    pub peer: &'a str,
    /// What to check when the TLS handshake fails.
    pub ca_hint: &'a str,
}

pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Retry-After` in seconds, when the server sent one.
    pub retry_after: Option<u64>,
}

/// POSTs JSON to the webhook with a bearer token.
pub async fn post_json(
    base: &str,
    path: &str,
    ca_pem: &str,
    bearer: &str,
    body: Vec<u8>,
) -> Result<Reply> {
    let endpoint = Endpoint {
        base,
        ca_pem: ca_pem.as_bytes(),
        peer: "the webhook",
        ca_hint: "is --ca-file the webhook's CA?",
    };
    send(
        &endpoint,
        hyper::Method::POST,
        path,
        Some(bearer),
        Some(body),
    )
    .await
}

/// One request; `path` starts with `/`. Gives up after 30 s.
pub async fn send(
    endpoint: &Endpoint<'_>,
    method: hyper::Method,
    path: &str,
    bearer: Option<&str>,
    json_body: Option<Vec<u8>>,
) -> Result<Reply> {
    let base = endpoint.base.trim_end_matches('/');
    let rest = base
        .strip_prefix("https://")
        .ok_or_else(|| anyhow!("the server URL must start with https://, not `{base}`"))?;
    let (authority, prefix) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
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
    let tls = client_config(endpoint)?;
    let server_name =
        ServerName::try_from(host.clone()).with_context(|| format!("the host in `{base}`"))?;
    let peer = endpoint.peer;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .with_context(|| {
                format!("cannot connect to {peer} at {host}:{port}; is the URL right and is it up?")
            })?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(server_name, tcp)
            .await
            .with_context(|| format!("TLS with {peer} failed; {}", endpoint.ca_hint))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP handshake with {peer}"))?;
        tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{prefix}{path}"))
            .header("host", authority)
            .header("accept", "application/json");
        let authorization = bearer.map(|token| Zeroizing::new(format!("Bearer {token}")));
        if let Some(authorization) = &authorization {
            request = request.header("authorization", authorization.as_str());
        }
        if json_body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Full::new(Bytes::from(json_body.unwrap_or_default())))?;
        let response = sender
            .send_request(request)
            .await
            .with_context(|| format!("sending the request to {peer}"))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer of {peer}"))?
            .to_bytes()
            .to_vec();
        Ok::<_, anyhow::Error>(Reply {
            status,
            body,
            retry_after,
        })
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| anyhow!("{peer} did not answer within 30 s"))?
}

fn client_config(endpoint: &Endpoint<'_>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(endpoint.ca_pem) {
        roots
            .add(cert.context("reading the CA")?)
            .context("adding the CA")?;
    }
    if roots.is_empty() {
        bail!(
            "the CA of {} holds no CERTIFICATE; {}",
            endpoint.peer,
            endpoint.ca_hint
        );
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(builder.with_no_client_auth())
}
