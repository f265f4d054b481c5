//! `PUBLIC KEY` PEM blocks (RFC 7468) around SubjectPublicKeyInfo DER,
//! shared by sealing (RSA-OAEP) and signing keys.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const END: &str = "-----END PUBLIC KEY-----";

/// `der` (SubjectPublicKeyInfo) as a PEM block with 64-column lines.
pub fn spki_to_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::from(BEGIN);
    pem.push('\n');
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(END);
    pem.push('\n');
    pem
}

/// Why a PEM text gave no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemError {
    NoBlock,
    NotBase64,
}

/// The DER of the first `PUBLIC KEY` block; text around it (such as
/// Keyward's `keyward-*:` header lines) is ignored, as RFC 7468 allows.
pub fn spki_from_pem(pem: &str) -> Result<Vec<u8>, PemError> {
    let start = pem.find(BEGIN).ok_or(PemError::NoBlock)? + BEGIN.len();
    let end = pem[start..].find(END).ok_or(PemError::NoBlock)? + start;
    let body: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).map_err(|_| PemError::NotBase64)
}
