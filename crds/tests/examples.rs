//! Every manifest under `examples/` parses into the Rust types, has no
//! unknown fields, passes `validate()` and the API server's schema, and
//! together they cover every provider.

mod common;

use std::collections::BTreeSet;

use keyward_crds::manifest::{Manifest, parse_yaml_stream};
use keyward_crds::{KeyRotationPolicy, ManagedKey};

fn all_examples() -> Vec<(String, Vec<Manifest>)> {
    let mut files: Vec<_> = std::fs::read_dir(common::examples_dir())
        .expect("examples/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples found");
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let manifests = parse_yaml_stream(&text)
                .unwrap_or_else(|invalid| panic!("examples/{name} is invalid: {invalid}"));
            for object in common::yaml_documents(&text) {
                if let Err(errors) = common::api_server_verdict(&object) {
                    panic!("examples/{name} fails the CRD schema: {errors:#?}");
                }
            }
            (name, manifests)
        })
        .collect()
}

#[test]
fn every_example_is_valid() {
    let examples = all_examples();
    let count: usize = examples.iter().map(|(_, m)| m.len()).sum();
    assert!(
        count >= 8,
        "expected at least 8 example objects, found {count}"
    );
}

#[test]
fn examples_cover_every_provider_and_kind() {
    let mut providers = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for (_, manifests) in all_examples() {
        for manifest in manifests {
            kinds.insert(match &manifest {
                Manifest::ManagedKey(key) => {
                    providers.insert(key.spec.provider_kind().expect("one provider").name());
                    "ManagedKey"
                }
                Manifest::KeyRotationPolicy(_) => "KeyRotationPolicy",
                Manifest::SealedSecret(_) => "SealedSecret",
            });
        }
    }
    assert_eq!(
        providers,
        BTreeSet::from(["aws", "azure", "gcp", "local", "pkcs11"])
    );
    assert_eq!(
        kinds,
        BTreeSet::from(["KeyRotationPolicy", "ManagedKey", "SealedSecret"])
    );
}

#[test]
fn referenced_policies_exist_and_fit_their_keys() {
    let mut keys: Vec<ManagedKey> = vec![];
    let mut policies: Vec<KeyRotationPolicy> = vec![];
    for (_, manifests) in all_examples() {
        for manifest in manifests {
            match manifest {
                Manifest::ManagedKey(k) => keys.push(*k),
                Manifest::KeyRotationPolicy(p) => policies.push(*p),
                Manifest::SealedSecret(_) => {}
            }
        }
    }
    for key in &keys {
        let Some(reference) = &key.spec.rotation_policy_ref else {
            continue;
        };
        let policy = policies
            .iter()
            .find(|p| {
                p.metadata.name.as_deref() == Some(reference.name.as_str())
                    && p.metadata.namespace == key.metadata.namespace
            })
            .unwrap_or_else(|| {
                panic!(
                    "{:?} references missing policy {}",
                    key.metadata.name, reference.name
                )
            });
        policy
            .spec
            .validate_for(&key.spec)
            .unwrap_or_else(|e| panic!("{:?}: {e}", key.metadata.name));
    }
}
