//! Finds the fields the API server would silently drop ("prune") from an
//! object because its CRD schema does not declare them.
//!
//! A typo such as `rotationPeriode`, or an unsupported provider such as
//! `vault: {...}`, is otherwise lost without a word. The webhook and
//! `keyward` report these instead.

use serde_json::{Map, Value};

/// Top-level fields every object has but CRD schemas leave out.
const IMPLICIT_ROOT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// One field the schema does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    /// Path of the object holding the field, e.g. `spec.provider`.
    pub parent: String,
    /// The unknown field's name, e.g. `vault`.
    pub name: String,
    /// The names the schema accepts at that place, sorted.
    pub known: Vec<String>,
}

impl UnknownField {
    /// Full path of the unknown field.
    pub fn path(&self) -> String {
        if self.parent.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.parent, self.name)
        }
    }
}

/// Every field of `object` that `schema` (a CRD's `openAPIV3Schema` as
/// JSON) does not declare.
pub fn unknown_fields(schema: &Value, object: &Value) -> Vec<UnknownField> {
    let mut found = Vec::new();
    let mut copy = object.clone();
    walk(schema, &mut copy, "", true, &mut found);
    found
}

/// Removes every undeclared field, as the API server does before it
/// validates an object.
pub fn prune(schema: &Value, object: &mut Value) {
    walk(schema, object, "", true, &mut Vec::new());
}

fn walk(schema: &Value, value: &mut Value, path: &str, root: bool, found: &mut Vec<UnknownField>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(fields) => walk_object(schema, fields, path, root, found),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), false, found);
                }
            }
        }
        _ => {}
    }
}

fn walk_object(
    schema: &Value,
    fields: &mut Map<String, Value>,
    path: &str,
    root: bool,
    found: &mut Vec<UnknownField>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    if properties.is_none()
        && let Some(value_schema) = additional
    {
        for (key, value) in fields.iter_mut() {
            walk(value_schema, value, &format!("{path}[{key}]"), false, found);
        }
        return;
    }
    let empty = Map::new();
    let properties = properties.unwrap_or(&empty);
    let unknown: Vec<String> = fields
        .keys()
        .filter(|k| !properties.contains_key(*k))
        .filter(|k| !(root && IMPLICIT_ROOT_FIELDS.contains(&k.as_str())))
        .cloned()
        .collect();
    for name in unknown {
        fields.remove(&name);
        found.push(UnknownField {
            parent: path.to_owned(),
            name,
            known: properties.keys().cloned().collect(),
        });
    }
    for (key, value) in fields.iter_mut() {
        if let Some(field_schema) = properties.get(key) {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            walk(field_schema, value, &child, false, found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "provider": {"type": "object", "properties": {"local": {"type": "object"}}},
                        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                        "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }
                }
            }
        })
    }

    #[test]
    fn reports_and_prunes_only_undeclared_fields() {
        let mut object = json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "X", "metadata": {"name": "x"},
            "spec": {
                "provider": {"vault": {}, "local": {"extra": 1}},
                "tags": {"any": "thing"},
                "list": [{"a": "1", "b": 2}],
                "free": {"whatever": true},
                "typo": 1
            }
        });
        let mut paths: Vec<String> = unknown_fields(&schema(), &object)
            .iter()
            .map(UnknownField::path)
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "spec.list[0].b",
                "spec.provider.local.extra",
                "spec.provider.vault",
                "spec.typo"
            ]
        );
        prune(&schema(), &mut object);
        assert_eq!(object["spec"]["provider"], json!({"local": {}}));
        assert_eq!(object["spec"]["free"], json!({"whatever": true}));
        assert_eq!(object["metadata"], json!({"name": "x"}));
    }
}
