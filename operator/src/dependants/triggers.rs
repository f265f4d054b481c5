//! The one watch of SealedSecrets that feeds the dependants index and wakes
//! the ManagedKeys whose dependants changed. A SealedSecret status write
//! (10,000 of them at cold start) changes no key versions, so it wakes no
//! ManagedKey; a re-wrap, an edit, a deletion does.

use super::index::Id;
use crate::context::Context;
use crate::sealed_view::SealedView;
use futures::{Stream, StreamExt, stream};
use keyward_crds::ManagedKey;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use kube::core::{PartialObjectMeta, PartialObjectMetaExt};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use std::sync::Arc;

/// ManagedKeys to reconcile, as metadata-only objects (the controller's
/// trigger streams carry objects, and no full ManagedKey is at hand).
pub fn key_triggers(
    ctx: &Context,
) -> impl Stream<Item = Result<PartialObjectMeta<ManagedKey>, watcher::Error>> + Send + 'static {
    let dependants = Arc::clone(&ctx.dependants);
    watcher(ctx.api::<SealedView>(), watcher::Config::default())
        .default_backoff()
        .flat_map(move |event| {
            let keys: Vec<_> = match event {
                Ok(event) => dependants
                    .apply(event)
                    .into_iter()
                    .map(|key| Ok(key_meta(key)))
                    .collect(),
                Err(error) => vec![Err(error)],
            };
            stream::iter(keys)
        })
}

/// A trigger naming ManagedKey `(namespace, name)`.
pub fn key_meta((namespace, name): Id) -> PartialObjectMeta<ManagedKey> {
    ObjectMeta {
        namespace: Some(namespace),
        name: Some(name),
        ..ObjectMeta::default()
    }
    .into_request_partial::<ManagedKey>()
}

/// The ManagedKey a trigger names.
pub fn key_ref(key: PartialObjectMeta<ManagedKey>) -> Option<ObjectRef<ManagedKey>> {
    let namespace = key.namespace()?;
    Some(ObjectRef::new(&key.name_any()).within(&namespace))
}
