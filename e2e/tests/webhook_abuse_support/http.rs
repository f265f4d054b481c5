//! The client side: TLS sockets from a chosen loopback source address
//! (so the server sees the attacker and the legitimate callers as
//! different peers, as it would in a cluster), trusting the webhook's CA,
//! and keep-alive HTTP/1.1 POSTs over them.

use anyhow::{Context as _, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A connector trusting only the webhook's CA.
pub fn connector(ca_pem: &str) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.context("reading the webhook's CA")?)?;
    }
    if roots.is_empty() {
        bail!("the webhook wrote no CA certificate");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A TLS connection from `from` (any 127.0.0.0/8 address) to `to`.
pub async fn connect(
    connector: &TlsConnector,
    from: IpAddr,
    to: SocketAddr,
) -> Result<TlsStream<TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let tcp = socket.connect(to).await?;
    Ok(connector
        .connect(ServerName::IpAddress(to.ip().into()), tcp)
        .await?)
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(connector: &TlsConnector, from: IpAddr, to: SocketAddr) -> Result<Conn> {
        let tls = connect(connector, from, to).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(connection);
        Ok(Conn { sender })
    }

    /// POSTs JSON; the status and the whole body.
    pub async fn post(&mut self, path: &str, body: Bytes) -> Result<(StatusCode, Bytes)> {
        self.sender.ready().await?;
        let request = hyper::Request::post(path)
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(body))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }

    /// GETs `path`; the status and the whole body.
    pub async fn get(&mut self, path: &str) -> Result<(StatusCode, Bytes)> {
        self.sender.ready().await?;
        let request = hyper::Request::get(path)
            .header("host", "127.0.0.1")
            .body(Full::new(Bytes::new()))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }

    /// Whether the server (or an error) has closed it.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}
