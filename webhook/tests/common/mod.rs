//! Test client for the webhook's TLS listener: one keep-alive HTTP/1.1
//! connection to 127.0.0.1 that trusts only the given CA.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

#[allow(dead_code)]
pub async fn connect(port: u16, ca_pem: &str) -> Sender {
    connect_from(std::net::Ipv4Addr::LOCALHOST, port, ca_pem).await
}

/// The same from another loopback address.
#[allow(dead_code)]
pub async fn connect_from(from: std::net::Ipv4Addr, port: u16, ca_pem: &str) -> Sender {
    let tls = tls_stream_from(from, port, ca_pem).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// A TLS connection to 127.0.0.1:`port`, before any HTTP.
#[allow(dead_code)]
pub async fn tls_stream(
    port: u16,
    ca_pem: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    tls_stream_from(std::net::Ipv4Addr::LOCALHOST, port, ca_pem).await
}

/// The same from another loopback address, so the server sees another
/// peer.
#[allow(dead_code)]
pub async fn tls_stream_from(
    from: std::net::Ipv4Addr,
    port: u16,
    ca_pem: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((from, 0).into())?;
    let tcp = socket.connect(([127, 0, 0, 1], port).into()).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
}
