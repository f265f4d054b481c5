//! The local provider's keyring kept in the API server (shared with the
//! webhook through `keyward-kubeutil`), with errors in the operator's terms.

use crate::error::{Error, Result};
use keyward_core::local::{LocalProvider, RootKey};
use keyward_kubeutil::keyring_secret as shared;
use kube::Client;

pub use shared::{ROOT_KEY_ITEM, SecretBackend};

impl From<shared::Error> for Error {
    fn from(error: shared::Error) -> Self {
        match error {
            shared::Error::Kube(e) => Error::Kube(e),
            shared::Error::Provider(e) => Error::Provider(e),
            shared::Error::Keyring(message) => Error::Keyring(message),
            shared::Error::Task(message) => Error::Task(message),
        }
    }
}

/// See [`shared::load_or_create_root_key`].
pub async fn load_or_create_root_key(
    client: Client,
    namespace: &str,
    name: &str,
) -> Result<RootKey> {
    Ok(shared::load_or_create_root_key(client, namespace, name).await?)
}

/// See [`shared::local_provider`].
pub async fn local_provider(
    client: Client,
    namespace: &str,
    keyring_secret: &str,
    root_key_secret: &str,
) -> Result<LocalProvider> {
    Ok(shared::local_provider(client, namespace, keyring_secret, root_key_secret).await?)
}
