//! Which key versions SealedSecrets still need, read from their envelope
//! headers (nothing is decrypted). The index of them is in `index.rs`; the
//! other direction (which secrets to wake when their key changes) in
//! `key_changes.rs`, and which of a secret's own changes wake it in
//! `secret_changes.rs`.

mod index;
mod key_changes;
mod secret_changes;
mod triggers;

pub use index::{Dependants, Id, NotSynced};
pub use key_changes::{KeyChanges, Reads, key_changes};
pub use secret_changes::secret_changes;
pub use triggers::{key_meta, key_ref, key_triggers};

use crate::sealed_view::SealedView;
use std::collections::BTreeMap;

/// Item name -> (key version, provider key id), from the headers the
/// view kept; the first unparsable item's error otherwise.
pub fn item_versions(secret: &SealedView) -> Result<BTreeMap<String, (u32, String)>, String> {
    let items = secret.spec.items.get().map_err(str::to_owned)?;
    Ok(items
        .iter()
        .map(|item| {
            (
                item.name.to_string(),
                (item.version, item.key_id.to_string()),
            )
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::sealed_view::SealedView;
    use keyward_core::Dek;
    use keyward_core::envelope::{Envelope, Scope, ScopeContext};
    use keyward_core::provider::{WrapAlgorithm, WrappedDek};
    use keyward_crds::{KeyReference, SealedSecret, SealedSecretSpec};

    pub fn envelope(key_id: &str, version: u32) -> String {
        let wrapped = WrappedDek {
            key_id: key_id.into(),
            version,
            algorithm: WrapAlgorithm::Symmetric,
            blob: vec![7; 40],
        };
        let context = ScopeContext::new(Scope::Namespace, "apps", "", "", "db");
        Envelope::seal_with(context, &wrapped, &Dek::generate(), [1; 12], b"v")
            .unwrap()
            .encode()
            .unwrap()
    }

    /// SealedSecret `ns/name` under ManagedKey `ns/key`.
    pub fn secret(ns: &str, name: &str, key: &str, items: &[(&str, String)]) -> SealedSecret {
        let mut s = SealedSecret::new(
            name,
            SealedSecretSpec {
                key_ref: KeyReference {
                    name: key.into(),
                    namespace: None,
                },
                scope: Default::default(),
                access: None,
                encrypted_data: items
                    .iter()
                    .map(|(k, v)| ((*k).into(), v.clone()))
                    .collect(),
                template: None,
            },
        );
        s.metadata.namespace = Some(ns.into());
        s
    }

    /// The operator's view of [`secret`].
    pub fn view(ns: &str, name: &str, key: &str, items: &[(&str, String)]) -> SealedView {
        SealedView::of(&secret(ns, name, key, items))
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{envelope, view as secret};
    use super::*;

    #[test]
    fn item_versions_names_the_broken_item() {
        let good = secret("apps", "s", "db", &[("a", envelope("k1", 3))]);
        assert_eq!(item_versions(&good).unwrap()["a"], (3, "k1".to_owned()));
        let bad = secret(
            "apps",
            "s",
            "db",
            &[("a", envelope("k1", 3)), ("b", "AAAA".into())],
        );
        assert!(item_versions(&bad).unwrap_err().starts_with("item `b`"));
    }
}
