//! Fuzzes the envelope v1 parser: `Envelope::from_bytes` on arbitrary bytes,
//! `Envelope::decode` on arbitrary UTF-8, and, for anything that parses,
//! `check_context` and `open_with` with a fixed DEK. Nothing may panic;
//! whatever parses must re-encode to the same bytes.
#![no_main]

use keyward_core::envelope::Envelope;
use keyward_core::{Dek, EnvelopeError, Scope, ScopeContext};
use libfuzzer_sys::fuzz_target;

fn exercise(envelope: &Envelope, dek: &Dek) {
    let expected = ScopeContext::new(
        Scope::Strict,
        "prod",
        "db-credentials",
        "password",
        "default",
    );
    let _ = envelope.check_context(&expected);
    let _ = envelope.check_context(&envelope.context);
    // A random envelope must not open with an unrelated DEK, except with
    // negligible probability; any error must be an authentication failure.
    match envelope.open_with(dek) {
        Ok(_) | Err(EnvelopeError::AuthenticationFailed) => {}
        Err(other) => panic!("open_with gave {other:?}"),
    }
    let _ = envelope.plaintext_len();
    let _ = envelope.wrapped();
    let _ = format!("{envelope:?}");
}

fuzz_target!(|data: &[u8]| {
    let dek = Dek::from_slice(&[0x42; 32]).expect("32 bytes");
    if let Ok(envelope) = Envelope::from_bytes(data) {
        // Parsing is canonical: a parsed envelope re-encodes to its input.
        assert_eq!(envelope.to_bytes().expect("re-encode"), data);
        exercise(&envelope, &dek);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(envelope) = Envelope::decode(text) {
            let reencoded = Envelope::decode(&envelope.encode().expect("encode")).expect("decode");
            assert_eq!(reencoded, envelope);
            exercise(&envelope, &dek);
        }
    }
});
