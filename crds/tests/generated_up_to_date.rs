//! The CRD YAML committed under `crds/generated/` must be exactly what the
//! Rust types generate, so the Helm chart and `kubectl apply` never ship a
//! stale schema.

mod common;

use keyward_crds::generate::render_all;

const REGENERATE: &str = "regenerate with `cargo run -p keyward-crds --bin crdgen -- --out-dir crds/generated` and commit the result";

#[test]
fn committed_crds_match_the_types() {
    let dir = common::generated_dir();
    for (name, expected) in render_all().expect("CRDs render") {
        let path = dir.join(&name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == expected,
            "{} is missing or stale; {REGENERATE}",
            path.display()
        );
    }
}

#[test]
fn no_leftover_crd_files() {
    let expected: Vec<String> = render_all()
        .expect("CRDs render")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let mut found: Vec<String> = std::fs::read_dir(common::generated_dir())
        .expect("crds/generated exists")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    found.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(
        found, expected_sorted,
        "crds/generated holds files no type generates; delete them, then {REGENERATE}"
    );
}

#[test]
fn one_file_per_crd_named_group_plural() {
    let names: Vec<String> = render_all().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "keyward.io_managedkeys.yaml",
            "keyward.io_keyrotationpolicies.yaml",
            "keyward.io_sealedsecrets.yaml",
            "keyward.io_datakeyrequests.yaml",
            "keyward.io_sealedsecretreviews.yaml",
            "keyward.io_signaturerequests.yaml",
        ]
    );
}
