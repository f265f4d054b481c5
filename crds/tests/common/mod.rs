//! Test helpers: the committed CRD files, and an emulation of what the API
//! server does with an object (prune unknown fields, then validate against
//! the OpenAPI schema) using a real JSON-schema validator.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use keyward_crds::pruning::prune;
use serde_json::Value;

/// `crds/generated/`.
pub fn generated_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("generated")
}

/// `examples/` at the repository root.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The committed CRD of `plural` as JSON.
pub fn committed_crd(plural: &str) -> Value {
    let path = generated_dir().join(format!("keyward.io_{plural}.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).expect("committed CRD is YAML")
}

/// The `openAPIV3Schema` of a committed CRD.
pub fn committed_schema(plural: &str) -> Value {
    committed_crd(plural)["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn plural_of(kind: &str) -> &'static str {
    match kind {
        "ManagedKey" => "managedkeys",
        "KeyRotationPolicy" => "keyrotationpolicies",
        "SealedSecret" => "sealedsecrets",
        other => panic!("not a Keyward kind: {other}"),
    }
}

/// OpenAPI's `nullable: true` becomes JSON Schema's `type: [T, "null"]`.
fn openapi_to_json_schema(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.remove("nullable") == Some(Value::Bool(true))
                && let Some(Value::String(t)) = map.get("type").cloned()
            {
                map.insert("type".into(), serde_json::json!([t, "null"]));
            }
            for value in map.values_mut() {
                openapi_to_json_schema(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(openapi_to_json_schema),
        _ => {}
    }
}

/// What the API server would answer for `object`: `Ok` when accepted,
/// else each schema violation as `<path>: <message>`.
pub fn api_server_verdict(object: &Value) -> Result<(), Vec<String>> {
    let kind = object["kind"].as_str().expect("object has a kind");
    let mut schema = committed_schema(plural_of(kind));
    let mut pruned = object.clone();
    prune(&schema, &mut pruned);
    openapi_to_json_schema(&mut schema);
    let validator = jsonschema::draft4::new(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&pruned)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Every YAML document in `text` as JSON.
pub fn yaml_documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}
