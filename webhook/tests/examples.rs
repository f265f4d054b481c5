//! The opt-in contract holds across the repository: the chart's default
//! objectSelector selects the label the webhook knows, and the example
//! Deployment's pod template carries both and is mutated.

use keyward_webhook::annotations as a;
use keyward_webhook::mutate::{InjectorConfig, patch_for};
use serde_json::{Value, json};

fn yaml(path: &str) -> Value {
    let path = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_chart_selects_exactly_the_opt_in_label() {
    let values = yaml("charts/keyward/values.yaml");
    let selector = &values["webhook"]["admission"]["mutating"]["objectSelector"];
    assert_eq!(
        selector,
        &json!({"matchLabels": {a::INJECTION_LABEL: a::INJECTION_ENABLED}})
    );
}

#[test]
fn the_example_deployment_opts_in_and_is_mutated() {
    let deployment = yaml("examples/workloads/deployment.yaml");
    let template = &deployment["spec"]["template"];
    assert_eq!(
        template["metadata"]["labels"][a::INJECTION_LABEL],
        a::INJECTION_ENABLED
    );
    let pod = serde_json::from_value(template.clone()).unwrap();
    let config = InjectorConfig {
        image: "img".into(),
        image_pull_policy: None,
        unseal_url: "https://127.0.0.1:1/v1/unseal".into(),
        ca_pem: None,
        default_delivery: Default::default(),
    };
    let ops = patch_for(&pod, &config).unwrap();
    assert!(
        ops.iter().any(|op| op["path"] == "/spec/initContainers"),
        "{ops:?}"
    );
}
