//! A signing key's public halves in status: each version's, so signatures
//! made before a rotation still verify, and the primary's at the top, as
//! for a sealing key. Fetched once per version; a public key never changes.

use crate::context::Context;
use crate::error::Result;
use keyward_core::crypto::pem::spki_to_pem;
use keyward_core::provider::KeyInfo;
use keyward_crds::{KeyState, ManagedKeyStatus};

pub async fn publish(status: &mut ManagedKeyStatus, info: &KeyInfo, ctx: &Context) -> Result<()> {
    for version in &mut status.versions {
        if version.public_key.is_some() || version.state == KeyState::Destroyed {
            continue;
        }
        let key = ctx
            .provider
            .verifying_key(&info.key_id, Some(version.version))
            .await?;
        version.public_key = Some(spki_to_pem(&key.spki_der));
    }
    status.public_key = status
        .version(info.primary_version)
        .and_then(|primary| primary.public_key.clone());
    Ok(())
}
