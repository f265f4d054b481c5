//! One canonical byte encoding of a wrap context, for providers that bind it
//! as AES-GCM additional data (local, PKCS#11, Cloud KMS).

use super::WrapContext;

/// `domain`, then each of `bound` (e.g. key id, version) and each context
/// key and value in sorted order, every one prefixed by its length as a
/// big-endian u64. Prefixing every part means no two different inputs
/// encode alike; the domain keeps one provider's blobs from another's.
pub fn wrap_context_aad(domain: &[u8], bound: &[&[u8]], context: &WrapContext) -> Vec<u8> {
    let mut aad = domain.to_vec();
    let mut put = |bytes: &[u8]| {
        aad.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        aad.extend_from_slice(bytes);
    };
    bound.iter().for_each(|part| put(part));
    for (name, value) in context {
        put(name.as_bytes());
        put(value.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_inputs_never_encode_alike() {
        let context = |pairs: &[(&str, &str)]| -> WrapContext {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let a = wrap_context_aad(b"d", &[b"k"], &context(&[("ab", "c")]));
        let b = wrap_context_aad(b"d", &[b"k"], &context(&[("a", "bc")]));
        let c = wrap_context_aad(b"d", &[b"k", b""], &context(&[("ab", "c")]));
        let d = wrap_context_aad(b"e", &[b"k"], &context(&[("ab", "c")]));
        assert!(a != b && a != c && a != d && b != c);
        assert_eq!(a, wrap_context_aad(b"d", &[b"k"], &context(&[("ab", "c")])));
    }
}
