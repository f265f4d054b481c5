//! Keyward's CSI node plugin beside the local cluster's kubelet: the
//! `keyward-csi` binary as a host process (the node is this machine), the
//! CSIDriver object as the chart ships it, and the wait for the kubelet to
//! register the plugin. Local cluster only.

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::storage::v1::{CSIDriver, CSINode};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Keyward's CSI driver name (`keyward_webhook::unseal::csi_entitlement`).
pub const DRIVER: &str = "csi.keyward.io";

/// A running plugin; [`Plugin::stop`] kills it and removes the CSIDriver.
pub struct Plugin {
    child: tokio::process::Child,
    log: PathBuf,
    client: Client,
    metrics_port: u16,
}

impl Plugin {
    /// Starts the plugin against the webhook at `api_url` (its tenant API)
    /// trusting `ca_pem`, and waits until the kubelet has registered it.
    pub async fn start(client: &Client, api_url: &str, ca_pem: &str, dir: &Path) -> Result<Self> {
        let state = PathBuf::from(std::env::var("KEYWARD_E2E_STATE").context("KEYWARD_E2E_STATE")?);
        let node = std::env::var("KEYWARD_E2E_NODE").context("KEYWARD_E2E_NODE")?;
        install_driver_object(client).await?;
        let ca = dir.join("webhook-ca.pem");
        std::fs::write(&ca, ca_pem)?;
        let binary = crate::binaries::build_binary("keyward-csi", "keyward-csi", false).await?;
        let log = dir.join("csi.log");
        let file = std::fs::File::create(&log)?;
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        // KUBECONFIG is inherited: refresh Events go to the test's cluster.
        let child = tokio::process::Command::new(binary)
            .arg("--kubelet-root")
            .arg(state.join("kubelet/root"))
            .args(["--node-id", &node])
            .args(["--unseal-url", &format!("{api_url}/v1/unseal")])
            .arg("--ca-file")
            .arg(&ca)
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()?;
        let plugin = Plugin {
            child,
            log,
            client: client.clone(),
            metrics_port,
        };
        let started = Instant::now();
        wait_registered(client, &node).await?;
        println!("kubelet registered {DRIVER} after {:?}", started.elapsed());
        Ok(plugin)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The plugin's `/metrics` text.
    pub async fn metrics(&self) -> Result<String> {
        scrape(self.metrics_port).await
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        // Cluster-scoped: a chart installed later must be able to own it.
        let _ = Api::<CSIDriver>::all(self.client.clone())
            .delete(DRIVER, &DeleteParams::default())
            .await;
    }
}

/// `GET /metrics` from a plugin listening on 127.0.0.1:`port`.
pub async fn scrape(port: u16) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await?;
    let (head, body) = answer.split_once("\r\n\r\n").context("no HTTP answer")?;
    ensure!(head.starts_with("HTTP/1.0 200"), "GET /metrics: {head}");
    Ok(body.to_owned())
}

/// The value of the series `name` (labels included) in `metrics`, 0 if absent.
pub fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The CSIDriver as the chart ships it: inline only, pod info and a token
/// of Keyward's audience on every (re)publish.
async fn install_driver_object(client: &Client) -> Result<()> {
    let driver: CSIDriver = serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
        "metadata": {"name": DRIVER},
        "spec": {
            "attachRequired": false,
            "podInfoOnMount": true,
            "volumeLifecycleModes": ["Ephemeral"],
            "tokenRequests": [{"audience": "keyward", "expirationSeconds": 600}],
            "requiresRepublish": true,
            "fsGroupPolicy": "File",
        },
    }))?;
    let drivers = Api::<CSIDriver>::all(client.clone());
    drivers
        .patch(
            DRIVER,
            &PatchParams::apply(crate::FIELD_MANAGER).force(),
            &Patch::Apply(&driver),
        )
        .await?;
    let stored = drivers.get(DRIVER).await?;
    ensure!(
        stored.spec.token_requests.is_some_and(|t| !t.is_empty()),
        "the API server dropped tokenRequests: is the CSIServiceAccountToken gate on?"
    );
    Ok(())
}

/// Waits until the kubelet of `node` lists the driver in its CSINode.
pub async fn wait_registered(client: &Client, node: &str) -> Result<()> {
    let nodes = Api::<CSINode>::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let registered = nodes
            .get_opt(node)
            .await?
            .is_some_and(|n| n.spec.drivers.iter().any(|d| d.name == DRIVER));
        if registered {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the kubelet did not register {DRIVER} in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
