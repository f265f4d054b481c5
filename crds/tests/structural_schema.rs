//! The committed CRDs follow Kubernetes' structural schema rules (so a
//! Kubernetes 1.20 API server accepts them and prunes unknown fields), use
//! only schema keywords 1.20 understands, and document every field.

mod common;

use serde_json::Value;

const PLURALS: [&str; 3] = ["managedkeys", "keyrotationpolicies", "sealedsecrets"];

/// Keywords a v1 CRD schema may use on Kubernetes 1.20. Anything else
/// (`$ref`, `definitions`, `patternProperties`, `x-kubernetes-validations`,
/// `const`, ...) is refused or silently dropped by that API server.
const ALLOWED_KEYWORDS: [&str; 31] = [
    "description",
    "type",
    "format",
    "title",
    "default",
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "properties",
    "additionalProperties",
    "nullable",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
];

/// Where `x-kubernetes-preserve-unknown-fields` is intended. None so far:
/// every Keyward field is typed.
const PRESERVE_UNKNOWN_ALLOWED: [&str; 0] = [];

struct Walk {
    problems: Vec<String>,
}

impl Walk {
    fn node(&mut self, path: &str, node: &Value, in_junctor: bool) {
        let Some(map) = node.as_object() else {
            self.problems
                .push(format!("{path}: schema is not an object"));
            return;
        };
        for key in map.keys() {
            let allowed = ALLOWED_KEYWORDS.contains(&key.as_str())
                || key == "x-kubernetes-preserve-unknown-fields";
            if !allowed {
                self.problems.push(format!(
                    "{path}: keyword `{key}` is not allowed in a 1.20 CRD"
                ));
            }
        }
        if map.contains_key("nullable") {
            self.problems.push(format!(
                "{path}: nullable makes Kubernetes 1.20 publish the field untyped (`kubectl explain` shows <>)"
            ));
        }
        if map.get("x-kubernetes-preserve-unknown-fields").is_some()
            && !PRESERVE_UNKNOWN_ALLOWED.contains(&path)
        {
            self.problems.push(format!(
                "{path}: x-kubernetes-preserve-unknown-fields is not intended here"
            ));
        }
        if in_junctor {
            for forbidden in [
                "type",
                "description",
                "default",
                "nullable",
                "additionalProperties",
            ] {
                if map.contains_key(forbidden) {
                    self.problems.push(format!(
                        "{path}: `{forbidden}` inside allOf/anyOf/oneOf/not"
                    ));
                }
            }
        } else {
            self.typed(path, map);
        }
        if map.contains_key("properties") && map.contains_key("additionalProperties") {
            self.problems.push(format!(
                "{path}: additionalProperties together with properties"
            ));
        }
        self.children(path, map, in_junctor);
        self.list_map_keys(path, map);
        self.default_is_valid(path, map);
        if let Some(Value::String(pattern)) = map.get("pattern")
            && let Err(e) = regex::Regex::new(pattern)
        {
            self.problems
                .push(format!("{path}: pattern is not RE2 (Go regexp): {e}"));
        }
    }

    fn typed(&mut self, path: &str, map: &serde_json::Map<String, Value>) {
        let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        let preserve = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        match map.get("type").and_then(Value::as_str) {
            Some("object" | "array" | "string" | "integer" | "number" | "boolean") => {}
            Some(other) => self
                .problems
                .push(format!("{path}: unknown type `{other}`")),
            None if int_or_string || preserve => {}
            None => self.problems.push(format!("{path}: node has no type")),
        }
    }

    fn children(&mut self, path: &str, map: &serde_json::Map<String, Value>, in_junctor: bool) {
        if let Some(props) = map.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                let child_path = format!("{path}.{name}");
                let documented = child
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.trim().is_empty());
                if !documented && !in_junctor {
                    self.problems.push(format!("{child_path}: no description"));
                }
                self.node(&child_path, child, in_junctor);
            }
        }
        if let Some(items) = map.get("items") {
            self.node(&format!("{path}[]"), items, in_junctor);
        }
        if let Some(additional) = map.get("additionalProperties") {
            match additional {
                Value::Object(_) => self.node(&format!("{path}{{}}"), additional, in_junctor),
                Value::Bool(true) => {}
                _ => self.problems.push(format!(
                    "{path}: additionalProperties must be a schema or true"
                )),
            }
        }
        for junctor in ["allOf", "anyOf", "oneOf"] {
            if let Some(branches) = map.get(junctor).and_then(Value::as_array) {
                for (i, branch) in branches.iter().enumerate() {
                    self.node(&format!("{path}<{junctor}{i}>"), branch, true);
                    for needed in branch
                        .get("properties")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flat_map(|p| p.keys())
                    {
                        let outside = map
                            .get("properties")
                            .and_then(Value::as_object)
                            .is_some_and(|p| p.contains_key(needed));
                        if !outside {
                            self.problems.push(format!(
                                "{path}: `{needed}` appears in {junctor} but not in properties"
                            ));
                        }
                    }
                }
            }
        }
        if let Some(not) = map.get("not") {
            self.node(&format!("{path}<not>"), not, true);
        }
    }

    /// Keys of a map-type list must be required (or defaulted) scalars.
    fn list_map_keys(&mut self, path: &str, map: &serde_json::Map<String, Value>) {
        let Some(keys) = map
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
        else {
            return;
        };
        if map.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
            self.problems.push(format!(
                "{path}: list-map-keys without x-kubernetes-list-type: map"
            ));
        }
        let items = &map["items"];
        let required: Vec<&str> = items["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for key in keys.iter().filter_map(Value::as_str) {
            let prop = &items["properties"][key];
            let scalar = matches!(
                prop["type"].as_str(),
                Some("string" | "integer" | "boolean")
            );
            if !scalar || !(required.contains(&key) || prop.get("default").is_some()) {
                self.problems.push(format!(
                    "{path}: list map key `{key}` must be a required scalar"
                ));
            }
        }
    }

    /// The API server rejects a CRD whose defaults do not validate.
    fn default_is_valid(&mut self, path: &str, map: &serde_json::Map<String, Value>) {
        let Some(default) = map.get("default") else {
            return;
        };
        let mut schema = Value::Object(map.clone());
        schema.as_object_mut().map(|m| m.remove("default"));
        match jsonschema::draft4::new(&schema) {
            Ok(v) if v.is_valid(default) => {}
            Ok(_) => self.problems.push(format!(
                "{path}: default {default} does not match its schema"
            )),
            Err(e) => self
                .problems
                .push(format!("{path}: schema does not compile: {e}")),
        }
    }
}

#[test]
fn every_schema_is_structural_and_documented() {
    let mut walk = Walk { problems: vec![] };
    for plural in PLURALS {
        let schema = common::committed_schema(plural);
        assert!(schema.is_object(), "{plural} has an openAPIV3Schema");
        assert!(
            schema["properties"].get("metadata").is_none(),
            "{plural}: metadata must not be restricted beyond name"
        );
        walk.node(plural, &schema, false);
    }
    assert!(walk.problems.is_empty(), "\n{}", walk.problems.join("\n"));
}

#[test]
fn the_walk_catches_what_kubernetes_rejects() {
    let bad = serde_json::json!({
        "type": "object",
        "properties": {
            "a": {"description": "untyped"},
            "b": {"type": "object", "description": "both",
                  "properties": {"x": {"type": "string", "description": "x"}},
                  "additionalProperties": {"type": "string"}},
            "c": {"type": "object", "description": "free", "x-kubernetes-preserve-unknown-fields": true},
            "d": {"type": "string"},
            "e": {"type": "string", "description": "bad default", "pattern": "^a$", "default": "b"},
            "f": {"$ref": "#/definitions/x", "description": "ref"}
        }
    });
    let mut walk = Walk { problems: vec![] };
    walk.node("t", &bad, false);
    let all = walk.problems.join("\n");
    for expected in [
        "t.a: node has no type",
        "t.b: additionalProperties together with properties",
        "t.c: x-kubernetes-preserve-unknown-fields is not intended here",
        "t.d: no description",
        "t.e: default \"b\" does not match",
        "t.f: keyword `$ref`",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
}

#[test]
fn crd_metadata_matches_the_api_contract() {
    for (plural, kind, short) in [
        ("managedkeys", "ManagedKey", "mk"),
        ("keyrotationpolicies", "KeyRotationPolicy", "krp"),
        ("sealedsecrets", "SealedSecret", "kss"),
    ] {
        let crd = common::committed_crd(plural);
        let spec = &crd["spec"];
        assert_eq!(crd["metadata"]["name"], format!("{plural}.keyward.io"));
        assert_eq!(spec["group"], "keyward.io");
        assert_eq!(spec["scope"], "Namespaced");
        assert_eq!(spec["names"]["kind"], kind);
        assert_eq!(spec["names"]["shortNames"], serde_json::json!([short]));
        assert_eq!(spec["versions"][0]["name"], "v1alpha1");
        assert_eq!(spec["versions"][0]["storage"], true);
    }
}

/// Resolves a printer column's jsonPath against the schema, so a renamed
/// field cannot leave an empty column behind.
fn schema_has_path(schema: &Value, json_path: &str) -> bool {
    // Reduce filters and indices (`[?(@.type=="Ready")]`, `[0]`) to `[]`.
    let mut plain = String::new();
    let mut depth = 0;
    for c in json_path.chars() {
        match c {
            '[' => {
                if depth == 0 {
                    plain.push_str("[]");
                }
                depth += 1;
            }
            ']' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let mut node = schema;
    for part in plain.trim_start_matches('.').split('.') {
        if part == "metadata" {
            return true;
        }
        let name = part.trim_end_matches("[]");
        match node["properties"].get(name) {
            Some(next) => node = next,
            None => return false,
        }
        if part.ends_with("[]") {
            node = &node["items"];
        }
    }
    true
}

#[test]
fn printer_columns_point_at_real_fields() {
    for plural in PLURALS {
        let crd = common::committed_crd(plural);
        let schema = common::committed_schema(plural);
        let columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .expect("printer columns");
        for column in columns {
            let path = column["jsonPath"].as_str().unwrap();
            assert!(
                schema_has_path(&schema, path),
                "{plural}: column {path} points nowhere"
            );
        }
    }
    let crd = common::committed_crd("managedkeys");
    let default_columns: Vec<&str> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.get("priority").is_none())
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        default_columns,
        ["State", "Primary", "Next-Rotation", "Age"]
    );
}
