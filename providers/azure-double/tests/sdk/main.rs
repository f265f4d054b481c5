//! The double driven by the official Azure SDK for Rust
//! (`azure_security_keyvault_keys`), so its wire format is the one the
//! SDK reads and writes. One test binary (the SDK is large to link).

mod assertion;
mod client;
mod crypto;
mod entra_wire;
mod faults;
mod keys;
mod lifecycle;
mod tls_auth;
mod workload;

use azure_security_keyvault_keys::KeyClient;
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, CurveName, Key, KeyAttributes, KeyType,
};
use std::collections::HashMap;

/// An RSA 3072 key `name` with `tags`.
pub async fn create_rsa(client: &KeyClient, name: &str, tags: &[(&str, &str)]) -> Key {
    let parameters = CreateKeyParameters {
        kty: Some(KeyType::Rsa),
        key_size: Some(3072),
        tags: Some(
            tags.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        ),
        key_attributes: Some(KeyAttributes {
            enabled: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    client
        .create_key(name, parameters.try_into().unwrap(), None)
        .await
        .expect("create an RSA key")
        .into_model()
        .expect("a key")
}

/// A P-256 key `name`.
pub async fn create_ec(client: &KeyClient, name: &str) -> Key {
    let parameters = CreateKeyParameters {
        kty: Some(KeyType::Ec),
        curve: Some(CurveName::P256),
        ..Default::default()
    };
    client
        .create_key(name, parameters.try_into().unwrap(), None)
        .await
        .expect("create an EC key")
        .into_model()
        .expect("a key")
}

/// The version id of a key bundle (last segment of its `kid`).
pub fn version_of(key: &Key) -> String {
    let kid = key.key.as_ref().unwrap().kid.as_ref().unwrap();
    kid.rsplit('/').next().unwrap().to_owned()
}
