//! The project's binaries, built by cargo for the tests that run them as
//! real processes or pack them into images.

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Builds `bin` of `package` in this checkout (`--release` if asked) and
/// returns the executable cargo reports, so a shared or relocated target
/// dir is followed rather than guessed.
pub async fn build_binary(package: &str, bin: &str, release: bool) -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut build = tokio::process::Command::new(env!("CARGO"));
    build
        .current_dir(&root)
        .args(["build", "-p", package, "--bin", bin]);
    if release {
        build.arg("--release");
    }
    let output = build
        .arg("--message-format=json-render-diagnostics")
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    ensure!(
        output.status.success(),
        "cargo build -p {package} --bin {bin} failed"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
        .with_context(|| format!("cargo reported no {bin} executable"))
}
