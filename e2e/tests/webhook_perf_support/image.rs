//! The injector image: the webhook binary built from this checkout and
//! imported into the node (once per test binary), or
//! `KEYWARD_E2E_WEBHOOK_IMAGE`. As in `webhook.rs`, but a release build:
//! start-up cost is measured, and users run release binaries.

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, ensure};
use keyward_e2e::cluster;
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
            let binary =
                keyward_e2e::binaries::build_binary("keyward-webhook", "keyward-webhook", true)
                    .await?;
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
