//! Byte layout of envelope v2 (see `docs/envelope-format.md`):
//!
//! ```text
//! "KWRD" | version u8 | wrap u8 | scope u8 | key_ref str | key_version u32
//! | provider_key_id str | namespace str | secret_name str | item str
//! | access str (v2 only) | wrapped_dek bytes | nonce [12] | length u32
//! | ciphertext || tag [length]
//! ```
//! `str`/`bytes` are a big-endian u16 length then the bytes. Everything up to
//! and including `wrapped_dek` is the header, authenticated as AES-GCM AAD.
//! `access` is the sorted, distinct ServiceAccount names joined by `,`
//! (empty: any). Version 1 is the same without `access`; it is still read,
//! and written back as is by re-wrapping (its context has no access).

use super::{EnvelopeError, Scope, ScopeContext};
use crate::crypto::{self, NONCE_LEN, TAG_LEN};
use crate::provider::{WrapAlgorithm, WrappedDek};
use crate::secret::{Dek, SecretBytes};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub const MAGIC: &[u8; 4] = b"KWRD";
/// The version new seals write: it binds the ServiceAccounts.
pub const VERSION: u8 = 2;
/// The first version, without `access`; read, never written for new seals.
pub const VERSION_UNBOUND: u8 = 1;
/// Separates ServiceAccount names in the `access` field.
const ACCESS_SEPARATOR: char = ',';

/// One parsed (or freshly sealed) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub context: ScopeContext,
    pub key_version: u32,
    pub provider_key_id: String,
    pub wrap_algorithm: WrapAlgorithm,
    pub wrapped_dek: Vec<u8>,
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the 16-byte GCM tag.
    pub ciphertext: Vec<u8>,
}

impl Envelope {
    /// Encrypts `plaintext` with a caller-chosen DEK and nonce. Callers outside
    /// tests use [`super::seal_secret`], which draws both at random.
    pub fn seal_with(
        context: ScopeContext,
        wrapped: &WrappedDek,
        dek: &Dek,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
    ) -> Result<Self, EnvelopeError> {
        let mut envelope = Envelope {
            context,
            key_version: wrapped.version,
            provider_key_id: wrapped.key_id.clone(),
            wrap_algorithm: wrapped.algorithm,
            wrapped_dek: wrapped.blob.clone(),
            nonce,
            ciphertext: Vec::new(),
        };
        let aad = envelope.header_bytes()?;
        envelope.ciphertext = crypto::seal(dek.expose(), &nonce, &aad, plaintext);
        Ok(envelope)
    }

    /// Decrypts with an already unwrapped DEK. The caller checks the context
    /// first (see [`Envelope::check_context`]).
    pub fn open_with(&self, dek: &Dek) -> Result<SecretBytes, EnvelopeError> {
        let aad = self.header_bytes()?;
        crypto::open(dek.expose(), &self.nonce, &aad, &self.ciphertext)
            // Move the buffer rather than copy it: one plaintext copy, wiped once.
            .map(|mut plaintext| SecretBytes::new(std::mem::take(&mut *plaintext)))
            .map_err(|_| EnvelopeError::AuthenticationFailed)
    }

    /// Refuses a value whose header names another namespace, secret, item,
    /// scope or key than the one it is being opened as, or that is opened
    /// for ServiceAccounts its header does not grant.
    pub fn check_context(&self, expected: &ScopeContext) -> Result<(), EnvelopeError> {
        if let Some((field, sealed_for, opened_as)) = self.context.first_difference(expected) {
            return Err(EnvelopeError::ContextMismatch {
                field,
                sealed_for,
                opened_as,
            });
        }
        match self.context.widened_access(expected) {
            None => Ok(()),
            Some((sealed_for, opened_for)) => Err(EnvelopeError::AccessWidened {
                sealed_for,
                opened_for,
            }),
        }
    }

    pub fn wrapped(&self) -> WrappedDek {
        WrappedDek {
            key_id: self.provider_key_id.clone(),
            version: self.key_version,
            algorithm: self.wrap_algorithm,
            blob: self.wrapped_dek.clone(),
        }
    }

    /// Plaintext length (ciphertext minus the tag).
    pub fn plaintext_len(&self) -> usize {
        self.ciphertext.len().saturating_sub(TAG_LEN)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        let mut bytes = self.header_bytes()?;
        bytes.extend_from_slice(&self.nonce);
        let length = u32::try_from(self.ciphertext.len()).map_err(|_| {
            EnvelopeError::InvalidInput("a value must be smaller than 4 GiB".into())
        })?;
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(&self.ciphertext);
        Ok(bytes)
    }

    /// The text form stored in a SealedSecret: standard base64 with padding.
    pub fn encode(&self) -> Result<String, EnvelopeError> {
        Ok(STANDARD.encode(self.to_bytes()?))
    }

    pub fn decode(text: &str) -> Result<Self, EnvelopeError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| EnvelopeError::NotAnEnvelope)?;
        Self::from_bytes(&bytes)
    }

    /// Parses any byte string without panicking.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let mut reader = Reader { rest: bytes };
        if reader.rest.len() < MAGIC.len() || &reader.rest[..MAGIC.len()] != MAGIC {
            return Err(EnvelopeError::NotAnEnvelope);
        }
        reader.take(MAGIC.len(), "magic")?;
        let version = reader.u8("format version")?;
        if version != VERSION && version != VERSION_UNBOUND {
            return Err(EnvelopeError::UnsupportedVersion(version));
        }
        let wrap_algorithm = WrapAlgorithm::from_code(reader.u8("wrap algorithm")?)
            .ok_or(EnvelopeError::Malformed("unknown DEK wrapping algorithm"))?;
        let scope = Scope::from_code(reader.u8("scope")?)
            .ok_or(EnvelopeError::Malformed("unknown scope"))?;
        let key_ref = reader.string("key reference")?;
        let key_version = reader.u32("key version")?;
        let provider_key_id = reader.string("provider key id")?;
        let namespace = reader.string("namespace")?;
        let secret_name = reader.string("secret name")?;
        let item = reader.string("item name")?;
        let access = match version {
            VERSION_UNBOUND => None,
            _ => Some(parse_access(&reader.string("access list")?)),
        };
        let wrapped_dek = reader.bytes("wrapped data key")?.to_vec();
        let nonce: [u8; NONCE_LEN] = reader
            .take(NONCE_LEN, "nonce")?
            .try_into()
            .expect("took NONCE_LEN bytes");
        let length = reader.u32("ciphertext length")? as usize;
        if length < TAG_LEN {
            return Err(EnvelopeError::Malformed(
                "ciphertext shorter than its authentication tag",
            ));
        }
        let ciphertext = reader.take(length, "ciphertext")?.to_vec();
        if !reader.rest.is_empty() {
            return Err(EnvelopeError::Malformed("bytes after the ciphertext"));
        }
        let context = ScopeContext {
            scope,
            namespace,
            secret_name,
            item,
            key_ref,
            access,
        };
        let envelope = Envelope {
            context,
            key_version,
            provider_key_id,
            wrap_algorithm,
            wrapped_dek,
            nonce,
            ciphertext,
        };
        envelope.validate()?;
        Ok(envelope)
    }

    fn validate(&self) -> Result<(), EnvelopeError> {
        let context = &self.context;
        if context.key_ref.is_empty() {
            return Err(EnvelopeError::Malformed("empty key reference"));
        }
        if context.namespace.is_empty() {
            return Err(EnvelopeError::Malformed("empty namespace"));
        }
        if self.provider_key_id.is_empty() {
            return Err(EnvelopeError::Malformed("empty provider key id"));
        }
        if self.wrapped_dek.is_empty() {
            return Err(EnvelopeError::Malformed("empty wrapped data key"));
        }
        if let Some(access) = &context.access {
            let canonical = access.windows(2).all(|pair| pair[0] < pair[1])
                && access
                    .iter()
                    .all(|sa| !sa.is_empty() && !sa.contains(ACCESS_SEPARATOR));
            if !canonical {
                return Err(EnvelopeError::Malformed(
                    "access list is not sorted, distinct, non-empty ServiceAccount names",
                ));
            }
        }
        match context.scope {
            Scope::Strict if context.secret_name.is_empty() || context.item.is_empty() => Err(
                EnvelopeError::Malformed("strict scope without secret or item name"),
            ),
            Scope::Namespace if !context.secret_name.is_empty() || !context.item.is_empty() => Err(
                EnvelopeError::Malformed("namespace scope naming a secret or item"),
            ),
            _ => Ok(()),
        }
    }

    fn header_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        self.validate().map_err(|error| match error {
            EnvelopeError::Malformed(reason) => EnvelopeError::InvalidInput(reason.into()),
            other => other,
        })?;
        let context = &self.context;
        let mut out = Vec::with_capacity(64 + self.wrapped_dek.len());
        out.extend_from_slice(MAGIC);
        out.push(match context.access {
            Some(_) => VERSION,
            None => VERSION_UNBOUND,
        });
        out.push(self.wrap_algorithm.code());
        out.push(context.scope.code());
        put_bytes(&mut out, context.key_ref.as_bytes(), "key reference")?;
        out.extend_from_slice(&self.key_version.to_be_bytes());
        put_bytes(&mut out, self.provider_key_id.as_bytes(), "provider key id")?;
        put_bytes(&mut out, context.namespace.as_bytes(), "namespace")?;
        put_bytes(&mut out, context.secret_name.as_bytes(), "secret name")?;
        put_bytes(&mut out, context.item.as_bytes(), "item name")?;
        if let Some(access) = &context.access {
            let joined = access.join(&ACCESS_SEPARATOR.to_string());
            put_bytes(&mut out, joined.as_bytes(), "access list")?;
        }
        put_bytes(&mut out, &self.wrapped_dek, "wrapped data key")?;
        Ok(out)
    }
}

/// The `access` field's names; `validate` then insists they are canonical.
fn parse_access(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split(ACCESS_SEPARATOR).map(str::to_owned).collect()
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8], field: &str) -> Result<(), EnvelopeError> {
    let len = u16::try_from(bytes.len())
        .map_err(|_| EnvelopeError::InvalidInput(format!("{field} is longer than 65535 bytes")))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], EnvelopeError> {
        if self.rest.len() < len {
            return Err(EnvelopeError::Truncated(field));
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, EnvelopeError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, EnvelopeError> {
        let bytes = self.take(2, field)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, EnvelopeError> {
        let bytes = self.take(4, field)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], EnvelopeError> {
        let len = self.u16(field)?;
        self.take(usize::from(len), field)
    }

    fn string(&mut self, field: &'static str) -> Result<String, EnvelopeError> {
        let bytes = self.bytes(field)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| EnvelopeError::Malformed("a name is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Envelope, Dek) {
        let dek = Dek::from_slice(&[1u8; 32]).unwrap();
        let wrapped = WrappedDek {
            key_id: "local-00".into(),
            version: 3,
            algorithm: WrapAlgorithm::Symmetric,
            blob: vec![9; 40],
        };
        let context = ScopeContext::new(Scope::Strict, "prod", "db", "password", "default")
            .with_access(&["api".to_owned(), "worker".to_owned()]);
        (
            Envelope::seal_with(context, &wrapped, &dek, [2; 12], b"s3cret").unwrap(),
            dek,
        )
    }

    #[test]
    fn version_1_and_2_headers_round_trip_and_differ_only_by_access() {
        let (bound, dek) = sample();
        let bytes = bound.to_bytes().unwrap();
        assert_eq!(bytes[4], VERSION);
        let unbound = Envelope::seal_with(
            ScopeContext {
                access: None,
                ..bound.context.clone()
            },
            &bound.wrapped(),
            &dek,
            [2; 12],
            b"s3cret",
        )
        .unwrap();
        let old = unbound.to_bytes().unwrap();
        assert_eq!(old[4], VERSION_UNBOUND);
        // "api,worker" (2 + 10 bytes) is the only difference in length.
        assert_eq!(bytes.len(), old.len() + 12);
        assert_eq!(Envelope::from_bytes(&old).unwrap(), unbound);
        assert_eq!(Envelope::from_bytes(&bytes).unwrap(), bound);
    }

    #[test]
    fn an_access_list_out_of_canonical_order_is_malformed() {
        let (mut envelope, _) = sample();
        envelope.context.access = Some(vec!["worker".into(), "api".into()]);
        assert!(matches!(
            envelope.to_bytes(),
            Err(EnvelopeError::InvalidInput(_))
        ));
    }

    #[test]
    fn encode_decode_round_trip() {
        let (envelope, dek) = sample();
        let decoded = Envelope::decode(&envelope.encode().unwrap()).unwrap();
        assert_eq!(decoded, envelope);
        assert_eq!(decoded.open_with(&dek).unwrap().expose(), b"s3cret");
        assert!(envelope.encode().unwrap().starts_with("S1dSRA"));
    }

    #[test]
    fn every_prefix_is_truncated_not_a_panic() {
        let (envelope, _) = sample();
        let bytes = envelope.to_bytes().unwrap();
        for len in MAGIC.len() + 1..bytes.len() {
            match Envelope::from_bytes(&bytes[..len]) {
                Err(EnvelopeError::Truncated(_)) => {}
                other => panic!("prefix of {len} bytes gave {other:?}"),
            }
        }
    }

    #[test]
    fn distinct_errors_for_foreign_and_future_input() {
        assert_eq!(
            Envelope::decode("not base64!"),
            Err(EnvelopeError::NotAnEnvelope)
        );
        assert_eq!(
            Envelope::decode("aGVsbG8gd29ybGQ="),
            Err(EnvelopeError::NotAnEnvelope)
        );
        let (envelope, _) = sample();
        let mut bytes = envelope.to_bytes().unwrap();
        let version = bytes[4];
        bytes[4] = 3;
        assert_eq!(
            Envelope::from_bytes(&bytes),
            Err(EnvelopeError::UnsupportedVersion(3))
        );
        bytes[4] = version;
        bytes[6] = 9;
        assert_eq!(
            Envelope::from_bytes(&bytes),
            Err(EnvelopeError::Malformed("unknown scope"))
        );
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let (envelope, dek) = sample();
        let bytes = envelope.to_bytes().unwrap();
        for index in 0..bytes.len() {
            for bit in 0..8 {
                let mut tampered = bytes.clone();
                tampered[index] ^= 1 << bit;
                let opened = Envelope::from_bytes(&tampered).and_then(|parsed| {
                    parsed.check_context(&envelope.context)?;
                    parsed.open_with(&dek)
                });
                assert!(
                    opened.is_err(),
                    "flip of bit {bit} in byte {index} went unnoticed"
                );
            }
        }
    }
}
