//! The project's binaries, built by cargo for the tests that run them as
//! real processes or pack them into images.

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use std::path::PathBuf;

/// Builds `bin` of `package` in this checkout (`--release` if asked) and
/// returns the executable cargo reports, so a shared or relocated target
/// dir is followed rather than guessed.
pub async fn build_binary(package: &str, bin: &str, release: bool) -> Result<PathBuf> {
    let root = crate::manifest_dir().join("..");
    let mut build = tokio::process::Command::new(env!("CARGO"));
    build
        .current_dir(&root)
        .args(["build", "-p", package, "--bin", bin]);
    if release {
        build.arg("--release");
    }
    let output = build
        .arg("--message-format=json")
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    let messages: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect();
    // Diagnostics come as JSON (`rendered`): the failure itself says why.
    let errors: Vec<&str> = messages
        .iter()
        .filter(|m| m["reason"] == "compiler-message" && m["message"]["level"] == "error")
        .filter_map(|m| m["message"]["rendered"].as_str())
        .collect();
    ensure!(
        output.status.success(),
        "cargo build -p {package} --bin {bin} failed ({}): {}",
        output.status,
        if errors.is_empty() {
            "see cargo's stderr above".to_owned()
        } else {
            errors.join("\n")
        }
    );
    messages
        .iter()
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
        .with_context(|| format!("cargo reported no {bin} executable"))
}

/// The operator binary: `KEYWARD_OPERATOR_BIN` (a copy set aside, so a
/// build from another checkout sharing the target dir cannot swap it during
/// a long run), else built from this checkout.
pub async fn operator_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("KEYWARD_OPERATOR_BIN") {
        return Ok(PathBuf::from(bin));
    }
    build_binary("keyward-operator", "keyward-operator", false).await
}
