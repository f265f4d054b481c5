//! Rules that read YAML: Kubernetes Secrets with values, secret-looking
//! container `env` values, and secret-looking Helm values. Documents that
//! do not parse (templates) are skipped; lines are found again in the text,
//! as the YAML parser does not keep positions.

use super::names::why_secret;
use super::{Finding, Rule};
use serde_yaml_ng::{Mapping, Value};

pub fn in_yaml(path: &str, text: &str) -> Vec<Finding> {
    let helm_values = path.rsplit('/').next().is_some_and(|name| {
        name.starts_with("values") && (name.ends_with(".yaml") || name.ends_with(".yml"))
    });
    let mut out = Vec::new();
    for doc in documents(text) {
        let Ok(value) = serde_yaml_ng::from_str::<Value>(&doc.text) else {
            continue;
        };
        let Value::Mapping(map) = &value else {
            continue;
        };
        let at = Locator {
            lines: doc.text.lines().collect(),
            first: doc.first_line,
        };
        if let Some(found) = secret(path, map, &at) {
            out.push(found);
            continue;
        }
        if is_sealed_secret(map) {
            continue;
        }
        env_values(path, &value, &at, &mut Vec::new(), &mut out);
        if helm_values {
            helm(path, map, &at, &mut Vec::new(), &mut out);
        }
    }
    out
}

struct Document {
    text: String,
    /// 1-based line of the document's first line in the file.
    first_line: usize,
}

fn documents(text: &str) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut first_line = 1;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") && line.trim_end().trim_start_matches('-').trim().is_empty() {
            docs.push(Document {
                text: std::mem::take(&mut current),
                first_line,
            });
            first_line = i + 2;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push(Document {
        text: current,
        first_line,
    });
    docs
}

/// Finds a finding's line: each needle in turn, after the previous one.
struct Locator<'a> {
    lines: Vec<&'a str>,
    first: usize,
}

impl Locator<'_> {
    /// Like [`line`](Self::line), but only when the last needle is found.
    fn exact(&self, needles: &[String]) -> Option<usize> {
        let (last, before) = needles.split_last()?;
        let from = if before.is_empty() {
            0
        } else {
            self.line(before) - self.first + 1
        };
        (from..self.lines.len())
            .find(|&i| self.matches(i, last))
            .map(|i| self.first + i)
    }

    fn matches(&self, i: usize, needle: &str) -> bool {
        // JSON's quotes dropped: `"name": "X",` reads as `name: X,`.
        self.lines[i]
            .trim_start()
            .trim_start_matches("- ")
            .trim_start_matches(['{', '['])
            .trim_start()
            .replace('"', "")
            .starts_with(needle)
    }

    fn line(&self, needles: &[String]) -> usize {
        let mut from = 0;
        let mut found = 0;
        for needle in needles {
            if let Some(i) = (from..self.lines.len()).find(|&i| self.matches(i, needle)) {
                found = i;
                from = i + 1;
            }
        }
        self.first + found
    }
}

fn text<'a>(map: &'a Mapping, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

fn is_sealed_secret(map: &Mapping) -> bool {
    text(map, "kind") == Some("SealedSecret")
}

/// A `kind: Secret` with at least one value in `data` or `stringData`.
fn secret(path: &str, map: &Mapping, at: &Locator<'_>) -> Option<Finding> {
    if text(map, "kind") != Some("Secret") || text(map, "apiVersion") != Some("v1") {
        return None;
    }
    let mut items: Vec<String> = ["data", "stringData"]
        .into_iter()
        .filter_map(|field| map.get(field).and_then(Value::as_mapping))
        .flat_map(|m| m.iter())
        .filter(|(_, v)| v.as_str().is_some_and(|s| !s.is_empty()))
        .filter_map(|(k, _)| k.as_str().map(str::to_owned))
        .collect();
    if items.is_empty() {
        return None;
    }
    items.sort();
    let metadata = map.get("metadata").and_then(Value::as_mapping);
    let name = metadata.and_then(|m| text(m, "name")).unwrap_or("<name>");
    let namespace = metadata
        .and_then(|m| text(m, "namespace"))
        .unwrap_or("<namespace>");
    Some(Finding {
        path: path.to_owned(),
        line: at.line(&["kind:".to_owned()]),
        rule: Rule::PlaintextSecret,
        message: format!(
            "Secret {namespace}/{name} holds {} value(s) in plain text ({}); base64 is not encryption",
            items.len(),
            items.join(", ")
        ),
        fix: format!(
            "keyward seal -f {path} --key <ManagedKey> > {name}.sealedsecret.yaml (one Secret per file), commit that instead, and delete {path}"
        ),
    })
}

/// Container `env` entries whose `value` is a literal secret.
fn env_values(
    path: &str,
    value: &Value,
    at: &Locator<'_>,
    trail: &mut Vec<String>,
    out: &mut Vec<Finding>,
) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                let Some(key) = key.as_str() else { continue };
                trail.push(format!("{key}:"));
                if key == "env"
                    && let Some(entries) = child.as_sequence()
                {
                    for entry in entries.iter().filter_map(Value::as_mapping) {
                        env_entry(path, entry, at, trail, out);
                    }
                } else if key == "environment" {
                    compose_environment(path, child, at, trail, out);
                } else {
                    env_values(path, child, at, trail, out);
                }
                trail.pop();
            }
        }
        Value::Sequence(items) => {
            for item in items {
                env_values(path, item, at, trail, out);
            }
        }
        _ => {}
    }
}

fn env_entry(
    path: &str,
    entry: &Mapping,
    at: &Locator<'_>,
    trail: &[String],
    out: &mut Vec<Finding>,
) {
    let (Some(name), Some(value)) = (text(entry, "name"), text(entry, "value")) else {
        return;
    };
    let mut needles = trail.to_vec();
    needles.push(format!("name: {name}"));
    env_literal(path, name, value, at.line(&needles), out);
}

/// `environment:` in Docker Compose (a map, or `NAME=value` strings) and
/// ECS task definitions (`{name, value}` maps).
fn compose_environment(
    path: &str,
    value: &Value,
    at: &Locator<'_>,
    trail: &[String],
    out: &mut Vec<Finding>,
) {
    let pairs: Vec<(String, String)> = match value {
        Value::Mapping(map) => map
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
            .collect(),
        // Strings `NAME=value` (Compose), or `{name, value}` maps (ECS).
        Value::Sequence(items) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(pair) => {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.to_owned(), v.to_owned()))
                }
                Value::Mapping(entry) => Some((
                    text(entry, "name")?.to_owned(),
                    text(entry, "value")?.to_owned(),
                )),
                _ => None,
            })
            .collect(),
        _ => return,
    };
    for (name, value) in pairs {
        // `NAME: value` or `NAME=value` (Compose), `name: NAME` (ECS).
        let at_entry = |needle: String| {
            let mut needles = trail.to_vec();
            needles.push(needle);
            at.exact(&needles)
        };
        let line = at_entry(name.clone())
            .or_else(|| at_entry(format!("name: {name}")))
            .unwrap_or_else(|| at.line(trail));
        env_literal(path, &name, &value, line, out);
    }
}

fn env_literal(path: &str, name: &str, value: &str, line: usize, out: &mut Vec<Finding>) {
    let Some(why) = why_secret(name, value, false) else {
        return;
    };
    let why = why.says("name");
    out.push(Finding {
        path: path.to_owned(),
        line,
        rule: Rule::SecretInEnv,
        message: format!("env {name} is a literal value, and {why}"),
        fix: format!(
            "keyward seal --key <ManagedKey> -n <namespace> --name <workload>-env --from-literal {name}=<the value> > <workload>-env.sealedsecret.yaml, and deliver it with the pod label keyward.io/injection: enabled and annotation keyward.io/inject: <workload>-env instead of a literal"
        ),
    });
}

/// Helm values: string leaves that are secrets by key or by shape.
fn helm(
    path: &str,
    map: &Mapping,
    at: &Locator<'_>,
    trail: &mut Vec<String>,
    out: &mut Vec<Finding>,
) {
    for (key, child) in map {
        let Some(key) = key.as_str() else { continue };
        trail.push(format!("{key}:"));
        match child {
            Value::Mapping(inner) if key != "env" => helm(path, inner, at, trail, out),
            Value::String(value) => {
                if let Some(why) = why_secret(key, value, true).map(|w| w.says("key")) {
                    let dotted = trail
                        .iter()
                        .map(|t| t.trim_end_matches(':'))
                        .collect::<Vec<_>>()
                        .join(".");
                    out.push(Finding {
                        path: path.to_owned(),
                        line: at.line(trail),
                        rule: Rule::SecretInHelmValues,
                        message: format!("{dotted} is a literal value, and {why}"),
                        fix: format!(
                            "keyward seal --raw --key <ManagedKey> -n <namespace> --name <release> --from-literal {key}=<the value>, and put the sealed text in {dotted} for a chart that unseals it, or point the chart at a SealedSecret (existingSecret)"
                        ),
                    });
                }
            }
            _ => {}
        }
        trail.pop();
    }
}
