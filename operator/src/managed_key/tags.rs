//! `spec.tags` onto the provider key (AWS KMS tags, Cloud KMS labels).
//! What was put there last is in `status.tags`, so a key whose tags did
//! not change costs no provider call; an edit puts the new set there,
//! removing the user's tags no longer listed.

use super::outcome::Outcome;
use crate::context::Context;
use crate::error::Result;
use keyward_crds::{KeyState, ManagedKey, ManagedKeyStatus};

pub async fn sync(
    key: &ManagedKey,
    status: &mut ManagedKeyStatus,
    key_id: &str,
    ctx: &Context,
    out: &mut Outcome,
) -> Result<()> {
    if key.spec.tags == status.tags
        || status.state == Some(KeyState::Destroyed)
        || key.spec.state == KeyState::Destroyed
    {
        return Ok(());
    }
    ctx.metrics.provider_call();
    ctx.provider.set_tags(key_id, &key.spec.tags).await?;
    let names: Vec<&str> = key.spec.tags.keys().map(String::as_str).collect();
    out.audit("key.tags", &[("tags", names.join(","))]);
    status.tags = key.spec.tags.clone();
    Ok(())
}
