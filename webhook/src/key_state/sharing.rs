//! Key sharing ([`keyward_crds::sharing`]) for a key as one request read it.

use super::KeyOf;
pub use keyward_crds::sharing::Sharing;

pub fn sharing(key: &KeyOf) -> Sharing {
    keyward_crds::sharing::sharing(
        key.key.as_deref(),
        &key.key_namespace,
        &key.reference,
        &key.secret_namespace,
    )
}
