//! The local provider's keyring kept in the API server (shared with the
//! webhook through `keyward-kubeutil`), with errors in the operator's terms.

use crate::error::{Error, Result};
use keyward_core::KeyProvider;
use keyward_core::local::{LocalProvider, RootKey};
use keyward_kubeutil::keyring_secret::{self as shared, Location};
use kube::Client;

pub use keyward_kubeutil::root_key_secret::ROOT_KEY_ITEM;
pub use shared::SecretBackend;

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
    keyring_secret: &str,
) -> Result<RootKey> {
    Ok(shared::load_or_create_root_key(client, namespace, name, keyring_secret).await?)
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

/// The keyring as `config` places it, its root key wrapped by
/// `--root-key-wrapping-key` at `external` when that is set.
pub async fn configured_local_provider(
    client: Client,
    config: &crate::Config,
    external: &dyn KeyProvider,
) -> Result<LocalProvider> {
    let at = Location::clear(
        &config.namespace,
        &config.keyring_secret,
        &config.root_key_secret,
    )
    .wrapped_by(config.providers.root_key_wrapping_key.as_deref(), external);
    Ok(shared::local_provider_at(client, at).await?)
}
