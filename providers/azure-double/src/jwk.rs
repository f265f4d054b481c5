//! Public keys as Key Vault shows them (JWK, RFC 7517/7518), and the
//! ECDSA signature format it uses: JWS's raw `r || s`, not the DER
//! `SEQUENCE { r, s }` that `keyward_core::crypto::signing` produces.

/// One DER TLV: `(tag, contents, rest)`. Short and long lengths only as
/// far as SPKI and ECDSA signatures need them.
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| acc << 8 | *b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// An unsigned big-endian integer without DER's sign padding.
fn unsigned(int: &[u8]) -> &[u8] {
    let start = int
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(int.len().saturating_sub(1));
    &int[start..]
}

/// The subjectPublicKey BIT STRING contents (unused-bits byte dropped).
fn spki_key_bits(spki: &[u8]) -> Option<&[u8]> {
    let (0x30, body, _) = tlv(spki)? else {
        return None;
    };
    let (0x30, _algorithm, rest) = tlv(body)? else {
        return None;
    };
    let (0x03, bits, _) = tlv(rest)? else {
        return None;
    };
    bits.strip_prefix(&[0])
}

/// RSA `(n, e)` from a SubjectPublicKeyInfo.
pub(crate) fn rsa_components(spki: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (0x30, key, _) = tlv(spki_key_bits(spki)?)? else {
        return None;
    };
    let (0x02, n, rest) = tlv(key)? else {
        return None;
    };
    let (0x02, e, _) = tlv(rest)? else {
        return None;
    };
    Some((unsigned(n).to_vec(), unsigned(e).to_vec()))
}

/// P-256 `(x, y)` from a SubjectPublicKeyInfo (uncompressed point).
pub(crate) fn ec_components(spki: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let point = spki_key_bits(spki)?.strip_prefix(&[4])?;
    (point.len() == 64).then(|| (point[..32].to_vec(), point[32..].to_vec()))
}

/// DER ECDSA P-256 signature to JWS `r || s` (64 bytes).
pub(crate) fn ecdsa_der_to_raw(der: &[u8]) -> Option<[u8; 64]> {
    let (0x30, body, _) = tlv(der)? else {
        return None;
    };
    let (0x02, r, rest) = tlv(body)? else {
        return None;
    };
    let (0x02, s, _) = tlv(rest)? else {
        return None;
    };
    let mut raw = [0u8; 64];
    for (int, half) in [(unsigned(r), 0), (unsigned(s), 32)] {
        if int.len() > 32 {
            return None;
        }
        raw[half + 32 - int.len()..half + 32].copy_from_slice(int);
    }
    Some(raw)
}

/// JWS `r || s` to a DER ECDSA signature (for verifying with
/// `keyward_core::crypto::signing`).
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() != 64 {
        return None;
    }
    let mut body = Vec::with_capacity(72);
    for half in [&raw[..32], &raw[32..]] {
        let int = unsigned(half);
        // A leading 1 bit would read as negative: pad with a zero byte.
        let pad = int[0] & 0x80 != 0;
        body.push(0x02);
        body.push((int.len() + usize::from(pad)) as u8);
        if pad {
            body.push(0);
        }
        body.extend_from_slice(int);
    }
    let mut der = vec![0x30, body.len() as u8];
    der.extend_from_slice(&body);
    Some(der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::crypto::signing::{self, SigningAlgorithm, ToSign};

    #[test]
    fn ecdsa_signatures_convert_both_ways_and_still_verify() {
        let scheme = SigningAlgorithm::EcdsaP256Sha256;
        let pkcs8 = signing::generate(scheme);
        let spki = signing::public_key(scheme, &pkcs8).unwrap();
        assert!(ec_components(&spki).is_some());
        for i in 0..20u8 {
            let input = ToSign::Sha256([i; 32]);
            let der = signing::sign(scheme, &pkcs8, &input).unwrap();
            let raw = ecdsa_der_to_raw(&der).unwrap();
            let back = ecdsa_raw_to_der(&raw).unwrap();
            assert_eq!(back, der);
            signing::verify(scheme, &spki, &input, &back).unwrap();
        }
    }

    #[test]
    fn rsa_modulus_and_exponent_are_read_from_spki() {
        let key = keyward_core::crypto::RsaPrivateKey::generate(
            keyward_core::crypto::RsaKeySize::Bits3072,
        );
        let (n, e) = rsa_components(key.public_key().spki_der()).unwrap();
        assert_eq!(n.len(), 384);
        assert_eq!(e, vec![1, 0, 1]);
    }
}
