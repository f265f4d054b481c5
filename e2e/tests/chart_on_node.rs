//! The chart's operator and webhook Deployments running on the node from
//! the project's own binaries (local e2e cluster only): the binaries are
//! packed into an image and imported into the node (there is no Docker
//! engine here, so the Dockerfile itself is not built), the chart is
//! installed with the loopback overlay (host network, API server and webhook
//! on 127.0.0.1, no HTTP probes), and the quickstart's path runs: a
//! ManagedKey, `keyward seal` from its public key, an annotated pod that
//! reads the unsealed file (`chart_support/on_node.rs`).
//!
//! `readme_demo` is the same path in fixed namespaces with the chart's
//! default webhook selectors, run by `scripts/demo.sh` (ignored here).

mod chart_support;

use std::path::PathBuf;

use anyhow::{Result, ensure};
use chart_support::on_node::{self, Flow, SECRET_PATH, SECRET_VALUE, Steps};
use chart_support::*;
use k8s_openapi::api::core::v1::Namespace;
use keyward_e2e::{helm::Helm, with_temp_ns};
use kube::api::DeleteParams;
use kube::{Api, Client};
use serde_json::json;

#[tokio::test]
async fn chart_runs_operator_and_webhook_on_the_node() {
    if !keyward_e2e::cluster::is_local() {
        println!("skipped: needs the local e2e cluster to import the project's image");
        return;
    }
    with_temp_ns(|client, ns| async move {
        ignore_namespace(&client, &ns).await?;
        let app_ns = keyward_e2e::namespace::create_temp_ns(&client).await?;
        let out = tempfile::tempdir()?;
        let flow = Flow {
            release: RELEASE.to_owned(),
            release_ns: ns.clone(),
            app_ns: app_ns.clone(),
            watch_ns: Some(ns.clone()),
            only_label: Some(ns.clone()),
            out_dir: out.path().to_owned(),
        };
        let result = run_and_clean_up(&client, &flow).await;
        if result.is_err() {
            keyward_e2e::namespace::dump_namespace(&client, &app_ns).await;
        }
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&app_ns, &DeleteParams::background())
            .await;
        remove_cluster_scoped(&client, &flow.names()).await;
        result
    })
    .await;
}

async fn run_and_clean_up(client: &Client, flow: &Flow) -> Result<()> {
    let read = on_node::install_seal_and_read(client, flow, &mut Steps::start()).await?;
    ensure!(read == SECRET_VALUE, "app read {read:?}");
    println!("app container read {SECRET_PATH}: {read}");

    // Delete the key while the operator runs (it owns the finalizer).
    let keys = keyward_api(client, &flow.release_ns, "ManagedKey", "managedkeys");
    keys.delete("app", &DeleteParams::default()).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while keys.get_opt("app").await?.is_some() {
        ensure!(
            std::time::Instant::now() < deadline,
            "ManagedKey finalizer not released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Helm::from_env()?
        .uninstall(&flow.release, &flow.release_ns)
        .await?;
    Ok(())
}

/// The README's main command: release `keyward` in `keyward-system`, the
/// app in `shop`, the operator watching every namespace, the webhooks on
/// the chart's default selectors. Nothing is cleaned up: the script tears
/// the cluster down, or keeps it for a look with `--keep`.
#[tokio::test]
#[ignore = "the README demo on a cluster of its own; run with ./scripts/demo.sh"]
async fn readme_demo() -> Result<()> {
    ensure!(
        keyward_e2e::cluster::is_local(),
        "the demo needs the local cluster of e2e/cluster/up (it imports the project's image into the node)"
    );
    let client = keyward_e2e::cluster::client().await?;
    let mut steps = Steps::start();
    // 1.20 has no kubernetes.io/metadata.name label, so the chart's
    // automatic exclusion of these two namespaces needs the label here.
    let ignore = json!({ "keyward.io/ignore": "true" });
    for ns in ["keyward-system", "kube-system"] {
        on_node::ensure_namespace(&client, ns, ignore.clone()).await?;
    }
    on_node::ensure_namespace(&client, "shop", json!({})).await?;
    steps.done("namespaces keyward-system and kube-system labelled keyward.io/ignore=true (needed on 1.20), shop created");

    let out_dir = std::env::var_os("KEYWARD_DEMO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let flow = Flow {
        release: "keyward".to_owned(),
        release_ns: "keyward-system".to_owned(),
        app_ns: "shop".to_owned(),
        watch_ns: None,
        only_label: None,
        out_dir,
    };
    let read = on_node::install_seal_and_read(&client, &flow, &mut steps).await?;
    ensure!(read == SECRET_VALUE, "the app container read {read:?}");
    println!("app container read {SECRET_PATH}: {read}");
    Ok(())
}
