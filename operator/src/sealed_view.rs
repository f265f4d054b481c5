//! A SealedSecret as the operator's watches keep it: metadata, key
//! reference, scope, access, template and status, and of each item only
//! its envelope header (the key version and provider key that wrapped it),
//! never the ciphertext. At 10,000 secrets the items were a third of the
//! operator's heap (docs/scale.md). The two reconcile steps that need
//! ciphertext, a re-wrap and a materialised Secret, read the object from
//! the API server ([`full`]); the type makes it impossible to write a
//! header-only copy back.
//!
//! It is read with the same API path as [`SealedSecret`]; serde skips what
//! the view does not name, so the ciphertext is parsed once for its header
//! and dropped during the list or watch, not stored.

use keyward_core::envelope::Envelope;
use keyward_crds::{Access, KeyReference, Scope, SealedSecret, SealedSecretStatus, SecretTemplate};
use kube::api::ObjectMeta;
use kube::core::NamespaceResourceScope;
use kube::{Api, Resource};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug, Deserialize)]
pub struct SealedView {
    pub metadata: ObjectMeta,
    pub spec: ViewSpec,
    #[serde(default)]
    status: Option<StoredStatus>,
}

/// `status` as the API server sent it: one allocation of compact JSON
/// instead of five conditions' worth of small strings and a map (about
/// 1 KB per secret less). Read with [`SealedView::status`].
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
struct StoredStatus(Box<RawValue>);

impl StoredStatus {
    fn of(status: &SealedSecretStatus) -> Option<Self> {
        let text = serde_json::to_string(status).ok()?;
        RawValue::from_string(text).ok().map(StoredStatus)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewSpec {
    pub key_ref: KeyReference,
    #[serde(default)]
    pub scope: Scope,
    /// Boxed, as `template`: most secrets have neither, and every byte of
    /// the view is paid 10,000 times.
    #[serde(default)]
    pub access: Option<Box<Access>>,
    /// `spec.encryptedData`, headers only.
    #[serde(rename = "encryptedData", default, deserialize_with = "headers")]
    pub items: Items,
    #[serde(default)]
    pub template: Option<Box<SecretTemplate>>,
}

/// Each item's header, in item-name order, and why the first item (in that
/// order) that does not parse does not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Items {
    readable: Box<[Item]>,
    first_error: Option<Box<str>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub name: Box<str>,
    pub version: u32,
    /// Shared by the items of one secret under the same provider key.
    pub key_id: Arc<str>,
}

impl Items {
    /// Reads each envelope's header; the texts are not kept.
    pub fn parse(texts: &BTreeMap<String, String>) -> Self {
        let mut readable: Vec<Item> = Vec::new();
        let mut first_error = None;
        for (name, text) in texts {
            match Envelope::decode(text) {
                Ok(envelope) => {
                    let key_id = match readable.last() {
                        Some(last) if *last.key_id == *envelope.provider_key_id => {
                            Arc::clone(&last.key_id)
                        }
                        _ => Arc::from(envelope.provider_key_id),
                    };
                    readable.push(Item {
                        name: name.as_str().into(),
                        version: envelope.key_version,
                        key_id,
                    });
                }
                Err(error) => {
                    first_error.get_or_insert_with(|| format!("item `{name}`: {error}").into());
                }
            }
        }
        Items {
            readable: readable.into_boxed_slice(),
            first_error,
        }
    }

    /// Every header, or why one item does not parse.
    pub fn get(&self) -> Result<&[Item], &str> {
        match &self.first_error {
            Some(error) => Err(error),
            None => Ok(&self.readable),
        }
    }

    /// The headers that parse, whatever the others: a version one of them
    /// needs is still needed.
    pub fn readable(&self) -> &[Item] {
        &self.readable
    }
}

fn headers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Items, D::Error> {
    Ok(Items::parse(&BTreeMap::deserialize(deserializer)?))
}

impl SealedView {
    /// The view of a whole object (one just written, or read for a test).
    pub fn of(secret: &SealedSecret) -> Self {
        SealedView {
            metadata: secret.metadata.clone(),
            spec: ViewSpec {
                key_ref: secret.spec.key_ref.clone(),
                scope: secret.spec.scope,
                access: secret.spec.access.clone().map(Box::new),
                items: Items::parse(&secret.spec.encrypted_data),
                template: secret.spec.template.clone().map(Box::new),
            },
            status: secret.status.as_ref().and_then(StoredStatus::of),
        }
    }

    /// The status the operator last wrote. One it cannot read (written by
    /// something else) counts as none: the next reconcile writes it anew.
    pub fn status(&self) -> Option<SealedSecretStatus> {
        let stored = self.status.as_ref()?;
        serde_json::from_str(stored.0.get())
            .inspect_err(|error| {
                tracing::warn!(secret = ?self.metadata.name, %error, "unreadable status; rewriting it");
            })
            .ok()
    }

    #[cfg(test)]
    pub fn set_status(&mut self, status: Option<SealedSecretStatus>) {
        self.status = status.as_ref().and_then(StoredStatus::of);
    }

    /// Namespace of the referenced ManagedKey: `keyRef.namespace`, or the
    /// secret's own.
    pub fn key_namespace(&self) -> Option<&str> {
        self.spec
            .key_ref
            .namespace_or(self.metadata.namespace.as_deref())
    }

    pub fn service_accounts(&self) -> Vec<String> {
        Access::service_accounts_of(self.spec.access.as_deref())
    }
}

/// The whole object behind `view` as the API server has it now, if its
/// spec is still the one `view` saw (same generation). `None`: deleted, or
/// changed since; the watch brings that change and wakes the reconcile.
pub async fn full(view: &SealedView, client: &kube::Client) -> kube::Result<Option<SealedSecret>> {
    let (Some(namespace), Some(name)) = (&view.metadata.namespace, &view.metadata.name) else {
        return Ok(None);
    };
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .get_opt(name)
        .await?
        .filter(|secret| secret.metadata.generation == view.metadata.generation))
}

/// What the watch stores keep of each view (see also `crate::slim`).
pub fn slim(view: &mut SealedView) {
    crate::slim::slim(view);
}

impl Resource for SealedView {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        SealedSecret::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        SealedSecret::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        SealedSecret::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        SealedSecret::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dependants::fixtures::{envelope, secret};

    /// Paid once per SealedSecret in the store; ObjectMeta alone is ~400.
    /// With the `Arc`'s two counters it fits jemalloc's 512-byte class.
    #[test]
    fn the_view_stays_small() {
        let size = std::mem::size_of::<SealedView>();
        assert!(size + 16 <= 512, "SealedView grew to {size} bytes");
    }

    #[test]
    fn the_view_keeps_headers_not_ciphertext_and_reads_like_the_object() {
        let full = secret(
            "apps",
            "s",
            "db",
            &[("b", envelope("k1", 2)), ("a", envelope("k1", 1))],
        );
        let mut full = full;
        full.status = Some(keyward_crds::SealedSecretStatus {
            observed_generation: Some(3),
            key_versions: [("a".to_owned(), 1), ("b".to_owned(), 2)].into(),
            ..Default::default()
        });
        // As kube reads it: from text (a `RawValue` needs that).
        let json = serde_json::to_string(&full).unwrap();
        let read: SealedView = serde_json::from_str(&json).unwrap();
        let made = SealedView::of(&full);
        for view in [&read, &made] {
            let items = view.spec.items.get().unwrap();
            let summary: Vec<_> = items
                .iter()
                .map(|i| (&*i.name, i.version, &*i.key_id))
                .collect();
            assert_eq!(summary, [("a", 1, "k1"), ("b", 2, "k1")]);
            assert!(Arc::ptr_eq(&items[0].key_id, &items[1].key_id));
            assert_eq!(view.metadata, full.metadata);
            assert_eq!(view.status(), full.status);
            assert_eq!(view.key_namespace(), full.key_namespace());
        }
        assert_eq!(read.spec.items, made.spec.items);
        assert!(!format!("{read:?}").contains(&envelope("k1", 1)));
    }

    #[test]
    fn an_item_that_is_not_an_envelope_is_named() {
        let full = secret(
            "apps",
            "s",
            "db",
            &[("ok", envelope("k1", 1)), ("bad", "QUJD".into())],
        );
        let read: SealedView =
            serde_json::from_str(&serde_json::to_string(&full).unwrap()).unwrap();
        let error = read.spec.items.get().unwrap_err();
        assert!(error.starts_with("item `bad`:"), "{error}");
        assert_eq!(
            read.spec.items.readable().len(),
            1,
            "the readable item still counts"
        );
        assert_eq!(SealedView::of(&full).spec.items, read.spec.items);
    }
}
