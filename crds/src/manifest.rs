//! Reads Keyward manifests (YAML or JSON) into typed resources and checks
//! them the way a user needs: unknown fields, type errors with their path,
//! then each spec's `validate()`. Used by the examples test, `keyward`'s
//! lint, and the admission webhook.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::pruning::unknown_fields;
use crate::validation::{Collector, Invalid};
use crate::{API_VERSION, KeyRotationPolicy, ManagedKey, SealedSecret};

/// A parsed and validated Keyward object.
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    /// A `ManagedKey`.
    ManagedKey(Box<ManagedKey>),
    /// A `KeyRotationPolicy`.
    KeyRotationPolicy(Box<KeyRotationPolicy>),
    /// A `SealedSecret`.
    SealedSecret(Box<SealedSecret>),
}

const KINDS: [&str; 3] = ["ManagedKey", "KeyRotationPolicy", "SealedSecret"];

/// The `openAPIV3Schema` of a CRD as plain JSON.
pub fn schema_of(crd: &CustomResourceDefinition) -> Value {
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

/// Parses every document of a YAML stream (`---` separated). Empty
/// documents are skipped; the first invalid one stops the parse, and its
/// error names the document's position.
pub fn parse_yaml_stream(text: &str) -> Result<Vec<Manifest>, Invalid> {
    let mut manifests = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| {
            let mut errors = Collector::default();
            errors.push(
                format!("document {}", i + 1),
                format!("is not valid YAML: {e}"),
            );
            errors.into_invalid()
        })?;
        if value.is_null() {
            continue;
        }
        manifests.push(check(value)?);
    }
    Ok(manifests)
}

/// Checks one object (already decoded from YAML or JSON).
pub fn check(value: Value) -> Result<Manifest, Invalid> {
    let mut errors = Collector::default();
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version != API_VERSION {
        errors.push(
            "apiVersion",
            format!("is `{api_version}`; Keyward resources use `{API_VERSION}`"),
        );
        return Err(errors.into_invalid());
    }
    let manifest = match kind {
        "ManagedKey" => typed::<ManagedKey>(&value, &mut errors)
            .map(|k| (k.spec.validate(), Manifest::ManagedKey(Box::new(k)))),
        "KeyRotationPolicy" => typed::<KeyRotationPolicy>(&value, &mut errors)
            .map(|p| (p.spec.validate(), Manifest::KeyRotationPolicy(Box::new(p)))),
        "SealedSecret" => typed::<SealedSecret>(&value, &mut errors)
            .map(|s| (s.spec.validate(), Manifest::SealedSecret(Box::new(s)))),
        _ => {
            errors.push(
                "kind",
                format!("is `{kind}`; use one of {}", KINDS.join(", ")),
            );
            None
        }
    };
    match manifest {
        Some((Ok(()), manifest)) => errors.finish().map(|()| manifest),
        Some((Err(invalid), _)) => {
            errors.extend(invalid);
            Err(errors.into_invalid())
        }
        None => Err(errors.into_invalid()),
    }
}

/// Reports unknown fields, then deserializes with the failing path.
fn typed<K>(value: &Value, errors: &mut Collector) -> Option<K>
where
    K: CustomResourceExt + DeserializeOwned,
{
    let schema = schema_of(&K::crd());
    for field in unknown_fields(&schema, value) {
        let at = if field.parent.is_empty() {
            "the top level".to_owned()
        } else {
            format!("`{}`", field.parent)
        };
        errors.push(
            field.path(),
            format!(
                "unknown field `{}`: the API server would silently drop it; fields allowed at {at}: {}",
                field.name,
                field.known.join(", ")
            ),
        );
    }
    match serde_path_to_error::deserialize::<_, K>(value) {
        Ok(object) => Some(object),
        Err(err) => {
            let path = err.path().to_string();
            errors.push(
                if path == "." {
                    String::from("(object)")
                } else {
                    path
                },
                err.into_inner().to_string(),
            );
            None
        }
    }
}
