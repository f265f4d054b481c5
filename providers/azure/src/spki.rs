//! SubjectPublicKeyInfo DER from a JWK's parts (RSA `n`/`e`, P-256
//! `x`/`y`), and ECDSA signatures from JWS raw `r || s` to DER.

/// A DER length.
fn length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        let mut out = vec![0x80 | bytes.len() as u8];
        out.extend(bytes);
        out
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(length(content.len()));
    out.extend_from_slice(content);
    out
}

/// A positive DER INTEGER from big-endian unsigned bytes.
fn unsigned_integer(bytes: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match bytes.iter().position(|b| *b != 0) {
        Some(first) => &bytes[first..],
        None => &[0],
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(0x02, &content)
}

fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = vec![0u8];
    content.extend_from_slice(bytes);
    tlv(0x03, &content)
}

/// rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters.
const RSA_ALGORITHM: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// id-ecPublicKey (1.2.840.10045.2.1) on prime256v1 (1.2.840.10045.3.1.7).
const P256_ALGORITHM: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];

/// The SPKI DER of an RSA public key.
pub fn rsa(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut key = unsigned_integer(n);
    key.extend(unsigned_integer(e));
    let key = tlv(0x30, &key);
    let mut body = RSA_ALGORITHM.to_vec();
    body.extend(bit_string(&key));
    tlv(0x30, &body)
}

/// The SPKI DER of a P-256 public key (uncompressed point), or `None`
/// when a coordinate is not 32 bytes.
pub fn p256(x: &[u8], y: &[u8]) -> Option<Vec<u8>> {
    if x.len() != 32 || y.len() != 32 {
        return None;
    }
    let mut point = vec![0x04];
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    let mut body = P256_ALGORITHM.to_vec();
    body.extend(bit_string(&point));
    Some(tlv(0x30, &body))
}

/// A P-256 ECDSA signature as Key Vault (JWS) gives it, 32-byte `r`
/// then 32-byte `s`, in the DER form (`SEQUENCE { r, s }`) verifiers take.
pub fn ecdsa_p256_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() != 64 {
        return None;
    }
    let mut body = unsigned_integer(&raw[..32]);
    body.extend(unsigned_integer(&raw[32..]));
    Some(tlv(0x30, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_integers_are_minimal() {
        assert_eq!(length(5), [5]);
        assert_eq!(length(384), [0x82, 0x01, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0, 1]), [2, 1, 1]);
        assert_eq!(unsigned_integer(&[0x80]), [2, 2, 0, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0]), [2, 1, 0]);
    }

    #[test]
    fn a_raw_signature_becomes_der() {
        let mut raw = [0u8; 64];
        raw[31] = 1;
        raw[32] = 0xff;
        let der = ecdsa_p256_raw_to_der(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x01, 0x01]);
        assert_eq!(&der[5..8], &[0x02, 0x21, 0x00]);
        assert!(ecdsa_p256_raw_to_der(&raw[..63]).is_none());
    }
}
