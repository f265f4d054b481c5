//! SARIF 2.1.0, as GitHub code scanning and other tools read it: one run,
//! the five rules, one result per finding located by file and line.

use super::Finding;
use super::rules::RULES;
use serde_json::{Value, json};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

pub fn render(findings: &[Finding]) -> anyhow::Result<String> {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id(),
                "name": rule.name(),
                "shortDescription": {"text": rule.summary()},
                "help": {"text": "Seal the value with `keyward seal` and commit the SealedSecret; then remove the plaintext from Git history and rotate it."},
                "defaultConfiguration": {"level": "error"},
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.rule.id(),
                "ruleIndex": RULES.iter().position(|r| *r == f.rule).unwrap_or(0),
                "level": "error",
                "message": {"text": format!("{}. Fix: {}", f.message, f.fix)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.path, "uriBaseId": "%SRCROOT%"},
                        "region": {"startLine": f.line},
                    },
                }],
            })
        })
        .collect();
    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "keyward-lint",
                "informationUri": "https://github.com/keyward/keyward",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    Ok(serde_json::to_string_pretty(&log)? + "\n")
}
