//! The chart's PrometheusRule through a real evaluator: the rules as the
//! API server stored them are written out as a rule file, `promtool check
//! rules` checks them and `promtool test rules` runs
//! `fixtures/alerts/keyward_test.yaml`, where every alert is shown firing
//! and not firing (Debian's `prometheus` package, installed by
//! `e2e/cluster/up`).

use std::path::Path;

use anyhow::{Context, Result, ensure};
use kube::api::DynamicObject;
use serde_json::json;

/// The fixture's placeholder for the release namespace.
const NAMESPACE: &str = "NAMESPACE";

pub async fn evaluate(rule: &DynamicObject, ns: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let groups = rule
        .data
        .pointer("/spec/groups")
        .context("the PrometheusRule has no spec.groups")?;
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml_ng::to_string(&json!({ "groups": groups }))?,
    )?;
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alerts/keyward_test.yaml");
    let tests = std::fs::read_to_string(&fixture)?.replace(NAMESPACE, ns);
    std::fs::write(dir.path().join("keyward_test.yaml"), tests)?;
    for args in [
        ["check", "rules", "rules.yaml"],
        ["test", "rules", "keyward_test.yaml"],
    ] {
        let out = tokio::process::Command::new("promtool")
            .args(args)
            .current_dir(dir.path())
            .output()
            .await
            .context(
                "running promtool (Debian package `prometheus`, installed by e2e/cluster/up)",
            )?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(out.status.success(), "promtool {}: {said}", args.join(" "));
        println!(
            "promtool {}: {}",
            args.join(" "),
            said.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    Ok(())
}
