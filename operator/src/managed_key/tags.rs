//! `spec.tags` onto the provider key (AWS KMS tags, Cloud KMS labels).
//! What was put there last is in `status.tags`, so a key whose tags did
//! not change costs no provider call; an edit puts the new set there,
//! removing the user's tags no longer listed. A failure degrades the key
//! (`TagsNotSynced`) and is retried; it never stops the rest of the
//! reconcile (a key stored with tags on a provider that keeps none, from
//! before admission refused that, keeps rotating).

use super::outcome::Outcome;
use crate::context::Context;
use crate::error::Result;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use keyward_crds::{KeyState, ManagedKey, ManagedKeyStatus};

/// Degraded reason while the provider refuses or fails the tags.
pub const TAGS_NOT_SYNCED: &str = "TagsNotSynced";
const RETRY: SignedDuration = SignedDuration::from_mins(1);

pub async fn sync(
    key: &ManagedKey,
    status: &mut ManagedKeyStatus,
    key_id: &str,
    ctx: &Context,
    out: &mut Outcome,
    now: Timestamp,
) -> Result<()> {
    if key.spec.tags == status.tags
        || status.state == Some(KeyState::Destroyed)
        || key.spec.state == KeyState::Destroyed
    {
        return Ok(());
    }
    ctx.metrics.provider_call();
    match ctx.provider.set_tags(key_id, &key.spec.tags).await {
        Ok(()) => {
            let names: Vec<&str> = key.spec.tags.keys().map(String::as_str).collect();
            out.audit("key.tags", &[("tags", names.join(","))]);
            status.tags = key.spec.tags.clone();
        }
        // Tags never hold up rotation or retirement: say so and try again.
        Err(error) => {
            out.degrade(
                TAGS_NOT_SYNCED,
                format!("spec.tags could not be put on the provider key: {error}"),
            );
            out.deadlines.push(now + RETRY);
        }
    }
    Ok(())
}
