//! The few DER pieces Keyward builds from token attributes and outputs
//! (public keys, ECDSA signatures): a TLV writer, non-negative INTEGERs and
//! an OCTET STRING reader. Only definite, shortest-form lengths, as DER wants.

pub const SEQUENCE: u8 = 0x30;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;

pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER: minimal big-endian, with a 0x00 pad when the top
/// bit is set (so it is not read as negative).
pub fn unsigned_integer(big_endian: &[u8]) -> Vec<u8> {
    let skip = big_endian.iter().take_while(|b| **b == 0).count();
    let digits = &big_endian[skip..];
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    tlv(INTEGER, &content)
}

/// A BIT STRING holding whole bytes (no unused bits).
pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    content.push(0);
    content.extend_from_slice(bytes);
    tlv(BIT_STRING, &content)
}

/// The content of `der` when it is exactly one OCTET STRING, else `None`.
pub fn octet_string_content(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    if tag != OCTET_STRING {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, content) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > std::mem::size_of::<usize>() || rest.len() < count {
            return None;
        }
        let (digits, content) = rest.split_at(count);
        let len = digits
            .iter()
            .fold(0usize, |len, digit| (len << 8) | usize::from(*digit));
        (len, content)
    };
    (content.len() == len).then_some(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        assert_eq!(tlv(0x04, &[1; 3]), [0x04, 3, 1, 1, 1]);
        assert_eq!(&tlv(0x04, &[0; 0x80])[..3], &[0x04, 0x81, 0x80]);
        assert_eq!(&tlv(0x04, &[0; 0x1234])[..4], &[0x04, 0x82, 0x12, 0x34]);
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(unsigned_integer(&[0x01, 0x00, 0x01]), [2, 3, 1, 0, 1]);
        assert_eq!(unsigned_integer(&[0, 0, 0x80]), [2, 2, 0, 0x80]);
        assert_eq!(unsigned_integer(&[0]), [2, 1, 0]);
    }

    #[test]
    fn octet_strings_read_back_what_tlv_wrote() {
        for len in [0, 1, 32, 65, 0x7f, 0x80, 0x1234] {
            let content: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let der = tlv(OCTET_STRING, &content);
            assert_eq!(octet_string_content(&der), Some(&content[..]), "{len}");
        }
        // Another tag, a short or long body, no length: not one OCTET STRING.
        assert_eq!(octet_string_content(&[0x03, 1, 0]), None);
        assert_eq!(octet_string_content(&[0x04, 2, 0]), None);
        assert_eq!(octet_string_content(&[0x04, 1, 0, 0]), None);
        assert_eq!(octet_string_content(&[0x04]), None);
        assert_eq!(octet_string_content(&[0x04, 0x80]), None);
        assert_eq!(octet_string_content(&[0x04, 0x82, 0x01]), None);
    }
}
