//! EME-OAEP decoding (RFC 8017 §7.1.2) with SHA-256 and MGF1-SHA-256 and an
//! empty label, for tokens whose CKM_RSA_PKCS_OAEP only takes SHA-1
//! (SoftHSM2 2.6.1 answers `CKR_ARGUMENTS_BAD`, "hashAlg must be
//! CKM_SHA_1"). The private-key operation still happens in the token
//! (CKM_RSA_X_509); only the padding is removed here.
//!
//! Keyward only ever wraps 32-byte DEKs, so the decoder accepts exactly that
//! message length: the 0x01 separator then sits at a fixed position and every
//! check runs over all bytes with no early exit, giving one failure for all
//! causes (no padding oracle in the style of Manger's attack).

use keyward_core::crypto::sha256;
use keyward_core::secret::Dek;
use zeroize::Zeroizing;

const HASH_LEN: usize = 32;
/// SHA-256 of the empty label.
const EMPTY_LABEL_HASH: [u8; HASH_LEN] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// XORs MGF1-SHA-256(seed) into `out`.
fn xor_mgf1(seed: &[u8], out: &mut [u8]) {
    for (counter, chunk) in out.chunks_mut(HASH_LEN).enumerate() {
        let mut input = Zeroizing::new(Vec::with_capacity(seed.len() + 4));
        input.extend_from_slice(seed);
        input.extend_from_slice(&(counter as u32).to_be_bytes());
        let mask = Zeroizing::new(sha256(&input));
        for (byte, m) in chunk.iter_mut().zip(mask.iter()) {
            *byte ^= m;
        }
    }
}

/// Decodes the raw RSA output `em` (the token may drop leading zero bytes)
/// for a modulus of `k` bytes. `None` for any malformed input.
pub fn decode_dek(em: &[u8], k: usize) -> Option<Dek> {
    if em.len() > k || k < 2 * HASH_LEN + 2 + Dek::LEN {
        return None;
    }
    let mut block = Zeroizing::new(vec![0u8; k]);
    block[k - em.len()..].copy_from_slice(em);
    let (y, rest) = block.split_at_mut(1);
    let (seed, db) = rest.split_at_mut(HASH_LEN);
    xor_mgf1(db, seed);
    xor_mgf1(seed, db);

    // Accumulate every difference; nothing branches on secret data.
    let mut bad = y[0];
    for (a, b) in db[..HASH_LEN].iter().zip(EMPTY_LABEL_HASH.iter()) {
        bad |= a ^ b;
    }
    let separator = db.len() - Dek::LEN - 1;
    for byte in &db[HASH_LEN..separator] {
        bad |= byte;
    }
    bad |= db[separator] ^ 0x01;
    let dek = Dek::from_slice(&db[separator + 1..]);
    if bad == 0 { dek } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EME-OAEP encoding by hand (the SoftHSM2 tests check interoperability
    /// with aws-lc's encryption end to end).
    fn encode(message: &[u8], k: usize, seed: [u8; HASH_LEN]) -> Vec<u8> {
        let mut db = vec![0u8; k - HASH_LEN - 1];
        db[..HASH_LEN].copy_from_slice(&EMPTY_LABEL_HASH);
        let sep = db.len() - message.len() - 1;
        db[sep] = 1;
        db[sep + 1..].copy_from_slice(message);
        let mut seed = seed.to_vec();
        xor_mgf1(&seed, &mut db);
        xor_mgf1(&db, &mut seed);
        let mut em = vec![0u8];
        em.extend_from_slice(&seed);
        em.extend_from_slice(&db);
        em
    }

    #[test]
    fn empty_label_hash_is_sha256_of_nothing() {
        assert_eq!(sha256(b""), EMPTY_LABEL_HASH);
    }

    #[test]
    fn decodes_what_it_encodes_and_refuses_any_change() {
        let dek = [7u8; 32];
        let em = encode(&dek, 384, [9; 32]);
        assert_eq!(decode_dek(&em, 384).unwrap().expose(), &dek);
        // The token may return the block without its leading zero.
        assert_eq!(decode_dek(&em[1..], 384).unwrap().expose(), &dek);
        for position in [0, 5, 40, 100, 383] {
            let mut changed = em.clone();
            changed[position] ^= 0x10;
            assert!(decode_dek(&changed, 384).is_none(), "flip at {position}");
        }
        assert!(decode_dek(&encode(&[7u8; 31], 384, [9; 32]), 384).is_none());
        assert!(decode_dek(&[0u8; 385], 384).is_none());
    }

    #[test]
    fn rsa_4096_blocks_decode_too() {
        assert!(decode_dek(&encode(&[1; 32], 512, [2; 32]), 512).is_some());
    }
}
