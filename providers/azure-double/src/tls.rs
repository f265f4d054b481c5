//! The double's TLS: a fresh CA and a `localhost`/`127.0.0.1` serving
//! certificate per start. The Azure SDK refuses to send a bearer token
//! over plain HTTP (`BearerTokenAuthorizationPolicy` checks the scheme),
//! so the double cannot be reached over `http://` at all.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;

/// The serving side, and the CA a client must trust.
pub(crate) struct Tls {
    pub(crate) ca_pem: String,
    pub(crate) config: Arc<rustls::ServerConfig>,
}

/// Names the serving certificate covers; the vault URL uses the IP.
const SANS: [&str; 2] = ["localhost", "127.0.0.1"];

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names to parse");
    params
        .distinguished_name
        .push(DnType::CommonName, "keyward Key Vault double CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

pub(crate) fn generate() -> Tls {
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca_params().self_signed(&ca_key).expect("self-signed CA");
    let issuer = Issuer::new(ca_params(), ca_key);

    let sans: Vec<String> = SANS.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("valid names");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let leaf_key = KeyPair::generate().expect("serving key");
    let leaf = params
        .signed_by(&leaf_key, &issuer)
        .expect("serving certificate");

    let chain = vec![
        CertificateDer::from(leaf.der().to_vec()),
        CertificateDer::from(ca_cert.der().to_vec()),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    // An explicit provider: the process may hold several rustls providers
    // (reqwest's, kube's), and then no default is installed.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate matches its key");
    // HTTP/1.1 only: the server side is hyper's http1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Tls {
        ca_pem: ca_cert.pem(),
        config: Arc::new(config),
    }
}
