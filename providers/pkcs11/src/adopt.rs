//! Adopting an AES-256 secret key made on the token outside Keyward (by
//! `pkcs11-tool --keygen`, an HSM console) as version 1 of a Keyward key,
//! found by its CKA_LABEL. Its CKA_ID becomes Keyward's version id, which
//! is how Keyward finds version objects; the label is left for the tools
//! that made it. Only keys whose value can never leave the token
//! (CKA_SENSITIVE true, CKA_EXTRACTABLE false) are adopted: custody in the
//! HSM is the point of using one.

use crate::pool::OpResult;
use crate::token;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use keyward_core::provider::ProviderError;

fn refuse(label: &str, why: &str) -> ProviderError {
    ProviderError::InvalidRequest(format!(
        "cannot adopt the token key labelled `{label}`: {why}"
    ))
}

/// The one AES secret key labelled `label`, checked to be adoptable, and
/// its CKA_ID now.
pub fn find(session: &Session, label: &str) -> OpResult<(ObjectHandle, Vec<u8>)> {
    let found = session.find_objects(&[
        Attribute::Token(true),
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Label(label.as_bytes().to_vec()),
    ])?;
    let handle = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(refuse(
                label,
                "no secret key on the token has that label; check spec.existingKey and the token",
            )
            .into());
        }
        more => {
            return Err(refuse(
                label,
                &format!(
                    "{} secret keys share that label; give the key a unique one",
                    more.len()
                ),
            )
            .into());
        }
    };
    let attributes = session.get_attributes(
        handle,
        &[
            AttributeType::KeyType,
            AttributeType::ValueLen,
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::Encrypt,
            AttributeType::Decrypt,
            AttributeType::Id,
        ],
    )?;
    let mut id = Vec::new();
    let (mut aes256, mut sensitive, mut extractable, mut encrypts, mut decrypts) =
        (false, false, true, false, false);
    let mut key_type_aes = false;
    for attribute in attributes {
        match attribute {
            Attribute::KeyType(kind) => key_type_aes = kind == KeyType::AES,
            Attribute::ValueLen(len) => aes256 = u64::from(len) == 32,
            Attribute::Sensitive(v) => sensitive = v,
            Attribute::Extractable(v) => extractable = v,
            Attribute::Encrypt(v) => encrypts = v,
            Attribute::Decrypt(v) => decrypts = v,
            Attribute::Id(v) => id = v,
            _ => {}
        }
    }
    if !(key_type_aes && aes256) {
        return Err(refuse(label, "it is not an AES-256 key").into());
    }
    if !sensitive || extractable {
        return Err(refuse(
            label,
            "its value can leave the token (CKA_SENSITIVE false or CKA_EXTRACTABLE true); make it with both set the safe way",
        )
        .into());
    }
    if !(encrypts && decrypts) {
        return Err(refuse(
            label,
            "it may not encrypt and decrypt (CKA_ENCRYPT, CKA_DECRYPT)",
        )
        .into());
    }
    Ok((handle, id))
}

/// Makes `handle` version 1 of `key_id`.
pub fn take(session: &Session, handle: ObjectHandle, key_id: &str) -> OpResult<()> {
    session.update_attributes(handle, &[Attribute::Id(token::version_id(key_id, 1))])?;
    Ok(())
}
