//! Serde for key material inside the (encrypted) keyring document: base64 in
//! buffers that are wiped after use.

use crate::secret::SecretBytes;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serializer};
use zeroize::Zeroizing;

pub fn serialize<S: Serializer>(material: &SecretBytes, serializer: S) -> Result<S::Ok, S::Error> {
    let text = Zeroizing::new(STANDARD.encode(material.expose()));
    serializer.serialize_str(&text)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretBytes, D::Error> {
    let text: Zeroizing<String> = Zeroizing::new(String::deserialize(deserializer)?);
    STANDARD
        .decode(text.as_bytes())
        .map(SecretBytes::new)
        .map_err(|_| serde::de::Error::custom("key material is not base64"))
}
