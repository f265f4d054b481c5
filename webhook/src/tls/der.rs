//! Just enough DER to read a certificate's serial number and validity,
//! so renewal can be timed from whatever certificate is in use (ours, or
//! one another replica stored) without an X.509 parsing dependency.

/// One TLV: (tag, contents, the rest after it).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, b| (len << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// What renewal needs to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub serial: Vec<u8>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// Reads serial and validity from a DER certificate.
pub fn facts(der: &[u8]) -> Option<CertFacts> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, certificate, _) = tlv(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = tlv(certificate)? else {
        return None;
    };
    let (tag, mut contents, mut rest) = tlv(tbs)?;
    if tag == 0xa0 {
        // [0] version, then the serial.
        (_, contents, rest) = tlv(rest)?;
    }
    let serial = contents.to_vec();
    let (_, _signature, rest) = tlv(rest)?;
    let (_, _issuer, rest) = tlv(rest)?;
    let (SEQUENCE, validity, _) = tlv(rest)? else {
        return None;
    };
    let (tag, not_before, rest) = tlv(validity)?;
    let not_before = time_of(tag, not_before)?;
    let (tag, not_after, _) = tlv(rest)?;
    Some(CertFacts {
        serial,
        not_before,
        not_after: time_of(tag, not_after)?,
    })
}

/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`, tag 0x18) as Unix seconds.
fn time_of(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match (tag, text.len()) {
        (0x17, 12) => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (0x18, 14) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    let date = time::Date::from_calendar_date(
        i32::try_from(year).ok()?,
        time::Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let at = date
        .with_hms(
            u8::try_from(hour).ok()?,
            u8::try_from(minute).ok()?,
            u8::try_from(second).ok()?,
        )
        .ok()?
        .assume_utc();
    Some(at.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_rcgen_wrote() {
        let mut params = rcgen::CertificateParams::new(vec!["a.svc".to_owned()]).unwrap();
        let not_before = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        params.not_before = not_before;
        params.not_after = not_before + time::Duration::days(20_000); // past 2049: GeneralizedTime
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x01, 0x02, 0x03]));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let facts = facts(cert.der()).unwrap();
        assert_eq!(facts.serial, [0x01, 0x02, 0x03]);
        assert_eq!(facts.not_before, 1_700_000_000);
        assert_eq!(facts.not_after, 1_700_000_000 + 20_000 * 86_400);
        assert!(super::facts(b"\x30\x03\x02\x01").is_none());
    }
}
