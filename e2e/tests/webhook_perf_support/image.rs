//! The injector image: the webhook binary built from this checkout and
//! imported into the node (once per test binary), or
//! `KEYWARD_E2E_WEBHOOK_IMAGE`. As in `webhook.rs`, but a release build:
//! start-up cost is measured, and users run release binaries.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use keyward_e2e::cluster;
use serde_json::Value;
use tokio::sync::OnceCell;

const IMAGE: &str = "keyward.local/keyward-webhook:perf";

/// (image, imagePullPolicy)
pub async fn injector_image() -> Result<(String, &'static str)> {
    static READY: OnceCell<String> = OnceCell::const_new();
    if let Ok(image) = std::env::var("KEYWARD_E2E_WEBHOOK_IMAGE") {
        return Ok((image, "IfNotPresent"));
    }
    ensure!(
        cluster::is_local(),
        "set KEYWARD_E2E_WEBHOOK_IMAGE to an injector image the cluster can pull"
    );
    let image = READY
        .get_or_try_init(|| async {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let started = Instant::now();
            let output = tokio::process::Command::new(env!("CARGO"))
                .current_dir(&root)
                .args(["build", "--release", "-p", "keyward-webhook"])
                .args(["--bin", "keyward-webhook"])
                .args(["--message-format=json-render-diagnostics"])
                .stderr(std::process::Stdio::inherit())
                .output()
                .await?;
            ensure!(
                output.status.success(),
                "cargo build --release -p keyward-webhook failed"
            );
            let binary = String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter(|m| {
                    m["reason"] == "compiler-artifact" && m["target"]["name"] == "keyward-webhook"
                })
                .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
                .next_back()
                .context("cargo reported no keyward-webhook executable")?;
            let status = tokio::process::Command::new(root.join("e2e/cluster/image"))
                .args(["--with-libs", "--entrypoint", "/keyward-webhook", IMAGE])
                // The mutation sets `command: [/keyward-webhook]` (H3).
                .arg(format!("{}=/keyward-webhook", binary.display()))
                .status()
                .await?;
            ensure!(status.success(), "e2e/cluster/image failed");
            println!(
                "injector image built and imported in {:?}",
                started.elapsed()
            );
            Ok::<_, anyhow::Error>(IMAGE.to_owned())
        })
        .await?;
    Ok((image.clone(), "Never"))
}
