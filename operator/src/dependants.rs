//! Which key versions SealedSecrets still need, read from their envelope
//! headers (nothing is decrypted).

use keyward_core::envelope::Envelope;
use keyward_crds::SealedSecret;
use std::collections::{BTreeMap, BTreeSet};

/// Item name -> key version, for the items whose header parses; the first
/// unparsable item's error otherwise.
pub fn item_versions(secret: &SealedSecret) -> Result<BTreeMap<String, (u32, String)>, String> {
    secret
        .spec
        .encrypted_data
        .iter()
        .map(|(item, text)| match Envelope::decode(text) {
            Ok(envelope) => Ok((
                item.clone(),
                (envelope.key_version, envelope.provider_key_id),
            )),
            Err(e) => Err(format!("item `{item}`: {e}")),
        })
        .collect()
}

/// Version -> number of SealedSecrets with at least one item under it, for
/// the ManagedKey `key_namespace/key_name` whose provider key is
/// `provider_key_id`. A secret is counted once per version it uses.
pub fn count<'a>(
    secrets: impl IntoIterator<Item = &'a SealedSecret>,
    key_namespace: &str,
    key_name: &str,
    provider_key_id: &str,
) -> BTreeMap<u32, u32> {
    let mut counts = BTreeMap::new();
    for secret in secrets {
        if secret.spec.key_ref.name != key_name || secret.key_namespace() != Some(key_namespace) {
            continue;
        }
        let versions: BTreeSet<u32> = secret
            .spec
            .encrypted_data
            .values()
            .filter_map(|text| Envelope::decode(text).ok())
            .filter(|envelope| envelope.provider_key_id == provider_key_id)
            .map(|envelope| envelope.key_version)
            .collect();
        for version in versions {
            *counts.entry(version).or_insert(0) += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::Dek;
    use keyward_core::envelope::{Scope, ScopeContext};
    use keyward_core::provider::{WrapAlgorithm, WrappedDek};
    use keyward_crds::{KeyReference, SealedSecretSpec};

    fn envelope(key_id: &str, version: u32) -> String {
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

    fn secret(ns: &str, key: &str, items: &[(&str, String)]) -> SealedSecret {
        let mut s = SealedSecret::new(
            "s",
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

    #[test]
    fn each_secret_counts_once_per_version_of_the_right_key() {
        let secrets = [
            secret(
                "apps",
                "db",
                &[("a", envelope("k1", 1)), ("b", envelope("k1", 1))],
            ),
            secret(
                "apps",
                "db",
                &[("a", envelope("k1", 1)), ("b", envelope("k1", 2))],
            ),
            // Another key name, another namespace, another provider key, garbage.
            secret("apps", "other", &[("a", envelope("k1", 1))]),
            secret("ops", "db", &[("a", envelope("k1", 1))]),
            secret("apps", "db", &[("a", envelope("old-key", 1))]),
            secret("apps", "db", &[("a", "AAAA".into())]),
        ];
        let counts = count(&secrets, "apps", "db", "k1");
        assert_eq!(counts, [(1, 2), (2, 1)].into());
    }

    #[test]
    fn item_versions_names_the_broken_item() {
        let good = secret("apps", "db", &[("a", envelope("k1", 3))]);
        assert_eq!(item_versions(&good).unwrap()["a"], (3, "k1".to_owned()));
        let bad = secret(
            "apps",
            "db",
            &[("a", envelope("k1", 3)), ("b", "AAAA".into())],
        );
        assert!(item_versions(&bad).unwrap_err().starts_with("item `b`"));
    }
}
