//! The chart's CSI DaemonSet running as a pod on the node, after the
//! reader pod read its value through the CSI volume: deleting the pod
//! unpublishes the volume (the tmpfs the plugin's container mounted is gone
//! from the host), and the plugin's `/metrics` counts the mount and the
//! unpublish.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use kube::{Api, Client, ResourceExt};

use super::on_node::Flow;

pub async fn unmounted_and_counted(client: &Client, flow: &Flow) -> Result<()> {
    let pods = Api::<Pod>::namespaced(client.clone(), &flow.app_ns);
    let reader = pods.get("reader").await?;
    let uid = reader.uid().context("reader uid")?;
    let state = std::env::var("KEYWARD_E2E_STATE").context("KEYWARD_E2E_STATE")?;
    let volume_dir = format!("{state}/kubelet/root/pods/{uid}/volumes/kubernetes.io~csi");
    let port = metrics_port(client, flow).await?;

    pods.delete("reader", &DeleteParams::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
        let mounted = mounts.lines().any(|l| l.contains(uid.as_str()));
        let unpublishes = keyward_e2e::csi::counter(
            &keyward_e2e::csi::scrape(port).await?,
            "keyward_csi_unpublishes_total",
        );
        if !mounted && unpublishes >= 1 && !std::path::Path::new(&volume_dir).exists() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "90 s after deleting the reader: still mounted {mounted}, unpublishes {unpublishes}, {volume_dir} exists"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "CSI (DaemonSet pod): the reader's volume unpublished, nothing of it left on the host"
    );

    let metrics = keyward_e2e::csi::scrape(port).await?;
    let mounted = keyward_e2e::csi::counter(
        &metrics,
        r#"keyward_csi_publishes_total{outcome="mounted"}"#,
    );
    ensure!(mounted >= 1, "no mount counted:\n{metrics}");
    println!("CSI (DaemonSet pod) metrics: mounted {mounted}, unpublished >= 1");
    Ok(())
}

/// The metrics port of the chart's CSI container (host network here).
async fn metrics_port(client: &Client, flow: &Flow) -> Result<u16> {
    let name = flow.names().csi;
    let daemon_set = Api::<DaemonSet>::namespaced(client.clone(), &flow.release_ns)
        .get(&name)
        .await?;
    let port = daemon_set
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.ports)
        .and_then(|p| p.into_iter().find(|p| p.name.as_deref() == Some("metrics")))
        .context("the CSI container has no metrics port")?;
    Ok(u16::try_from(port.container_port)?)
}
