//! How Keyward lays its objects out on the token, and the in-token crypto.
//!
//! Per key:
//! - one private CKO_DATA object: CKA_APPLICATION `keyward/<key id>`,
//!   CKA_LABEL `keyward/<name>/meta`, CKA_VALUE the JSON [`KeyMeta`];
//! - per version, CKA_LABEL `keyward/<name>/v<n>` and CKA_ID
//!   `<key id>/v<n>`: an AES-256 CKO_SECRET_KEY, or a key pair
//!   (CKO_PUBLIC_KEY + CKO_PRIVATE_KEY sharing label and id): RSA for
//!   sealing, or a signing pair (see `signing.rs`).
//!
//! Secret and private keys are generated on the token with CKA_SENSITIVE
//! true and CKA_EXTRACTABLE false, so their values can never be read out.

use crate::meta::KeyMeta;
use crate::pool::{OpError, OpResult};
use crate::spki::rsa_spki_der;
use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use keyward_core::crypto::RsaPublicKey;
use keyward_core::provider::{KeyAlgorithm, ProviderError, WrapContext, wrap_context_aad};
use keyward_core::secret::Dek;
use std::sync::atomic::{AtomicBool, Ordering};
use zeroize::Zeroizing;

const APPLICATION_PREFIX: &str = "keyward/";
/// Symmetric blob: `BLOB_VERSION | iv[12] | AES-256-GCM(dek) || tag[16]`.
pub const BLOB_VERSION: u8 = 1;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const BLOB_LEN: usize = 1 + IV_LEN + Dek::LEN + TAG_LEN;

fn application(key_id: &str) -> Vec<u8> {
    format!("{APPLICATION_PREFIX}{key_id}").into_bytes()
}

pub fn version_id(key_id: &str, version: u32) -> Vec<u8> {
    format!("{key_id}/v{version}").into_bytes()
}

fn version_label(name: &str, version: u32) -> Vec<u8> {
    format!("keyward/{name}/v{version}").into_bytes()
}

/// A key's metadata as found on the token, with the objects that hold it.
pub struct StoredMeta {
    pub meta: KeyMeta,
    handles: Vec<ObjectHandle>,
}

fn read_value(session: &Session, handle: ObjectHandle) -> OpResult<Option<Vec<u8>>> {
    let attributes = session.get_attributes(handle, &[AttributeType::Value])?;
    Ok(attributes.into_iter().find_map(|a| match a {
        Attribute::Value(v) => Some(v),
        _ => None,
    }))
}

/// Picks the newest document when a crash left more than one for a key.
fn newest(session: &Session, handles: Vec<ObjectHandle>) -> OpResult<Option<StoredMeta>> {
    let mut best: Option<KeyMeta> = None;
    for handle in &handles {
        if let Some(value) = read_value(session, *handle)? {
            let meta = KeyMeta::from_json(&value)?;
            if best.as_ref().is_none_or(|b| meta.generation > b.generation) {
                best = Some(meta);
            }
        }
    }
    Ok(best.map(|meta| StoredMeta { meta, handles }))
}

pub fn find_meta(session: &Session, key_id: &str) -> OpResult<Option<StoredMeta>> {
    let handles = session.find_objects(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Application(application(key_id)),
    ])?;
    newest(session, handles)
}

/// Every Keyward key on the token (for lookups by name or owner, and the
/// deletion sweep).
pub fn all_meta(session: &Session) -> OpResult<Vec<StoredMeta>> {
    let handles =
        session.find_objects(&[Attribute::Class(ObjectClass::DATA), Attribute::Token(true)])?;
    let mut by_key: std::collections::BTreeMap<Vec<u8>, Vec<ObjectHandle>> = Default::default();
    for handle in handles {
        let attributes = session.get_attributes(handle, &[AttributeType::Application])?;
        for attribute in attributes {
            if let Attribute::Application(app) = attribute
                && app.starts_with(APPLICATION_PREFIX.as_bytes())
            {
                by_key.entry(app).or_default().push(handle);
            }
        }
    }
    let mut keys = Vec::with_capacity(by_key.len());
    for handles in by_key.into_values() {
        keys.extend(newest(session, handles)?);
    }
    Ok(keys)
}

/// Writes a new generation of the document, then removes the old objects.
/// Replacing rather than C_SetAttributeValue on CKA_VALUE works on every
/// token (some refuse to modify data objects); a crash in between leaves two
/// documents, and the newer one wins on the next read.
pub fn write_meta(
    session: &Session,
    stored: Option<StoredMeta>,
    meta: &mut KeyMeta,
) -> OpResult<()> {
    meta.generation = stored
        .as_ref()
        .map_or(meta.generation, |s| s.meta.generation.max(meta.generation))
        + 1;
    session.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Modifiable(true),
        Attribute::Label(format!("keyward/{}/meta", meta.key.name).into_bytes()),
        Attribute::Application(application(&meta.key.id)),
        Attribute::Value(meta.to_json()),
    ])?;
    if let Some(stored) = stored {
        for handle in stored.handles {
            session.destroy_object(handle)?;
        }
    }
    Ok(())
}

pub fn delete_meta(session: &Session, stored: StoredMeta) -> OpResult<()> {
    for handle in stored.handles {
        session.destroy_object(handle)?;
    }
    Ok(())
}

/// Generates version `version` of the key inside the token.
pub fn generate_version(session: &Session, meta: &KeyMeta, version: u32) -> OpResult<()> {
    let label = version_label(&meta.key.name, version);
    let id = version_id(&meta.key.id, version);
    match meta.key.algorithm {
        KeyAlgorithm::Aes256 => {
            session.generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Wrap(false),
                    Attribute::Unwrap(false),
                    Attribute::Sign(false),
                    Attribute::Verify(false),
                    Attribute::Derive(false),
                    Attribute::Label(label),
                    Attribute::Id(id),
                ],
            )?;
        }
        KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            let bits: u64 = if meta.key.algorithm == KeyAlgorithm::Rsa3072 {
                3072
            } else {
                4096
            };
            session.generate_key_pair(
                &Mechanism::RsaPkcsKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::Private(false),
                    Attribute::Encrypt(true),
                    Attribute::Verify(false),
                    Attribute::Wrap(false),
                    Attribute::ModulusBits(bits.into()),
                    Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                    Attribute::Label(label.clone()),
                    Attribute::Id(id.clone()),
                ],
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Decrypt(true),
                    Attribute::Sign(false),
                    Attribute::Unwrap(false),
                    Attribute::Derive(false),
                    Attribute::Label(label),
                    Attribute::Id(id),
                ],
            )?;
        }
        signing => {
            // Every algorithm left is a signing one; should a new kind of
            // key reach here, it is refused rather than made wrongly.
            let scheme = signing.signing().ok_or_else(|| {
                ProviderError::InvalidRequest(format!(
                    "the pkcs11 provider does not make {}",
                    signing.describe()
                ))
            })?;
            crate::signing::generate(session, scheme, label, id)?;
        }
    }
    Ok(())
}

/// All objects of one version (secret key, or both halves of a pair).
pub fn version_objects(
    session: &Session,
    key_id: &str,
    version: u32,
) -> OpResult<Vec<ObjectHandle>> {
    Ok(session.find_objects(&[
        Attribute::Token(true),
        Attribute::Id(version_id(key_id, version)),
    ])?)
}

pub fn destroy_version(session: &Session, key_id: &str, version: u32) -> OpResult<()> {
    for handle in version_objects(session, key_id, version)? {
        session.destroy_object(handle)?;
    }
    Ok(())
}

pub fn version_object(
    session: &Session,
    key_id: &str,
    version: u32,
    class: ObjectClass,
) -> OpResult<ObjectHandle> {
    let found = session.find_objects(&[
        Attribute::Class(class),
        Attribute::Token(true),
        Attribute::Id(version_id(key_id, version)),
    ])?;
    found.first().copied().ok_or_else(|| {
        ProviderError::Storage(format!(
            "the token has no {class} object for version {version} of key `{key_id}` although its metadata lists it; it was deleted outside Keyward"
        ))
        .into()
    })
}

/// The wrap context bound as GCM additional data, with the key id and version.
pub fn context_aad(key_id: &str, version: u32, context: &WrapContext) -> Vec<u8> {
    let version = version.to_be_bytes();
    wrap_context_aad(
        b"keyward/pkcs11-wrap/v1",
        &[key_id.as_bytes(), &version],
        context,
    )
}

/// CKM_AES_GCM inside the token: the DEK goes in, the blob comes out.
pub fn wrap_symmetric(
    session: &Session,
    key_id: &str,
    version: u32,
    dek: &Dek,
    context: &WrapContext,
    token_generates_iv: bool,
) -> OpResult<Vec<u8>> {
    let key = version_object(session, key_id, version, ObjectClass::SECRET_KEY)?;
    let aad = context_aad(key_id, version, context);
    let mut iv = [0u8; IV_LEN];
    if !token_generates_iv {
        keyward_core::crypto::fill_random(&mut iv);
    }
    let sealed = {
        let params = GcmParams::new(&mut iv, &aad, (TAG_LEN as u64 * 8).into())?;
        session.encrypt(&Mechanism::AesGcm(params), key, dek.expose())?
    };
    // A token that generates the IV writes it back into the parameter buffer.
    if token_generates_iv && iv == [0u8; IV_LEN] {
        return Err(ProviderError::Storage(
            "tokenGeneratesIv is set but the token returned no IV; unset it for this HSM".into(),
        )
        .into());
    }
    if sealed.len() != Dek::LEN + TAG_LEN {
        return Err(ProviderError::Storage(format!(
            "the token returned {} bytes of AES-GCM output for a 32-byte key",
            sealed.len()
        ))
        .into());
    }
    let mut blob = Vec::with_capacity(BLOB_LEN);
    blob.push(BLOB_VERSION);
    blob.extend_from_slice(&iv);
    blob.extend_from_slice(&sealed);
    Ok(blob)
}

/// Decryption failures that mean "wrong key, context or data", as opposed
/// to a token that is not working. SoftHSM2 2.6.1 reports a failed AES-GCM
/// tag check from C_Decrypt as CKR_GENERAL_ERROR, so that counts too.
fn is_bad_ciphertext(error: &CkError) -> bool {
    matches!(
        error,
        CkError::Pkcs11(
            RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::DataInvalid
                | RvError::DataLenRange,
            _
        ) | CkError::Pkcs11(RvError::GeneralError, Function::Decrypt)
    )
}

fn dek_from(plaintext: Result<Vec<u8>, CkError>) -> OpResult<Dek> {
    let plaintext = Zeroizing::new(plaintext.map_err(|e| {
        if is_bad_ciphertext(&e) {
            OpError::Provider(ProviderError::UnwrapFailed)
        } else {
            OpError::Token(e)
        }
    })?);
    Ok(Dek::from_slice(&plaintext).ok_or(ProviderError::UnwrapFailed)?)
}

pub fn unwrap_symmetric(
    session: &Session,
    key_id: &str,
    version: u32,
    blob: &[u8],
    context: &WrapContext,
) -> OpResult<Dek> {
    if blob.len() != BLOB_LEN || blob[0] != BLOB_VERSION {
        return Err(ProviderError::UnwrapFailed.into());
    }
    let key = version_object(session, key_id, version, ObjectClass::SECRET_KEY)?;
    let aad = context_aad(key_id, version, context);
    let mut iv: [u8; IV_LEN] = blob[1..1 + IV_LEN].try_into().expect("length checked");
    let params = GcmParams::new(&mut iv, &aad, (TAG_LEN as u64 * 8).into())?;
    dek_from(session.decrypt(&Mechanism::AesGcm(params), key, &blob[1 + IV_LEN..]))
}

fn oaep_sha256() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ))
}

/// How this token answers a mechanism it does not support with these
/// parameters (SoftHSM2 2.6.1: OAEP with SHA-256 gives CKR_ARGUMENTS_BAD).
fn unsupported(error: &CkError) -> bool {
    matches!(
        error,
        CkError::Pkcs11(
            RvError::ArgumentsBad | RvError::MechanismInvalid | RvError::MechanismParamInvalid,
            Function::DecryptInit
        )
    )
}

/// RSA-OAEP-SHA256 decryption of what an offline sealer produced. Uses the
/// token's CKM_RSA_PKCS_OAEP; a token that only does OAEP with SHA-1 gets
/// CKM_RSA_X_509 (the private-key operation, still in the token) and the
/// padding is checked here. `raw_rsa` remembers which one this token needs.
pub fn unwrap_rsa(
    session: &Session,
    key_id: &str,
    version: u32,
    blob: &[u8],
    modulus_len: usize,
    raw_rsa: &AtomicBool,
) -> OpResult<Dek> {
    if blob.len() != modulus_len {
        return Err(ProviderError::UnwrapFailed.into());
    }
    let key = version_object(session, key_id, version, ObjectClass::PRIVATE_KEY)?;
    if !raw_rsa.load(Ordering::Relaxed) {
        match session.decrypt(&oaep_sha256(), key, blob) {
            Err(error) if unsupported(&error) => {
                tracing::info!(
                    "the token has no RSA-OAEP with SHA-256; using CKM_RSA_X_509 in the token and OAEP decoding in Keyward"
                );
                raw_rsa.store(true, Ordering::Relaxed);
            }
            result => return dek_from(result),
        }
    }
    let em = Zeroizing::new(
        session
            .decrypt(&Mechanism::RsaX509, key, blob)
            .map_err(|e| {
                if is_bad_ciphertext(&e) {
                    OpError::Provider(ProviderError::UnwrapFailed)
                } else {
                    OpError::Token(e)
                }
            })?,
    );
    Ok(crate::oaep::decode_dek(&em, modulus_len).ok_or(ProviderError::UnwrapFailed)?)
}

/// RSA-OAEP-SHA256 encryption with the version's public key, done here as an
/// offline sealer would (a public-key operation; nothing secret involved).
pub fn wrap_rsa(session: &Session, key_id: &str, version: u32, dek: &Dek) -> OpResult<Vec<u8>> {
    Ok(public_key(session, key_id, version)?.encrypt(dek.expose()))
}

/// The version's public key as SPKI DER, validated by the same parser
/// offline sealers use.
pub fn public_key(session: &Session, key_id: &str, version: u32) -> OpResult<RsaPublicKey> {
    let der = rsa_spki_der_of(session, key_id, version)?;
    Ok(RsaPublicKey::from_spki_der(&der).map_err(|e| {
        ProviderError::Storage(format!("the token's RSA public key is unusable: {e}"))
    })?)
}

/// The SPKI DER of an RSA version's public key (sealing or signing), from
/// its modulus and exponent.
pub fn rsa_spki_der_of(session: &Session, key_id: &str, version: u32) -> OpResult<Vec<u8>> {
    let key = version_object(session, key_id, version, ObjectClass::PUBLIC_KEY)?;
    let (mut modulus, mut exponent) = (None, None);
    for attribute in session.get_attributes(
        key,
        &[AttributeType::Modulus, AttributeType::PublicExponent],
    )? {
        match attribute {
            Attribute::Modulus(n) => modulus = Some(n),
            Attribute::PublicExponent(e) => exponent = Some(e),
            _ => {}
        }
    }
    let (Some(modulus), Some(exponent)) = (modulus, exponent) else {
        return Err(ProviderError::Storage(format!(
            "the token did not return the modulus and exponent of version {version} of `{key_id}`"
        ))
        .into());
    };
    Ok(rsa_spki_der(&modulus, &exponent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_binds_key_version_and_context_unambiguously() {
        let a: WrapContext = [("ns".to_owned(), "ab".to_owned())].into();
        let b: WrapContext = [("nsa".to_owned(), "b".to_owned())].into();
        assert_ne!(context_aad("k", 1, &a), context_aad("k", 1, &b));
        assert_ne!(context_aad("k", 1, &a), context_aad("k", 2, &a));
        assert_ne!(context_aad("k", 1, &a), context_aad("j", 1, &a));
        assert_eq!(context_aad("k", 1, &a), context_aad("k", 1, &a.clone()));
    }
}
