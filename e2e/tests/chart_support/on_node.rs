//! The quickstart's path on the local e2e cluster, shared by the
//! `chart_on_node` test and the README demo (`scripts/demo.sh`): the
//! project's binaries packed into an image on the node, the chart installed
//! with the loopback overlay, a ManagedKey as the chart's defaults make it
//! (local provider, AES-256), `keyward seal` through the cluster as an
//! exec-plugin user, and an opted-in pod that reads the unsealed file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use keyward_e2e::helm::Helm;
use keyward_webhook::annotations::{INJECT, INJECTION_ENABLED, INJECTION_LABEL};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::{Names, chart, keyward_api, values};

/// The value sealed and read back by the pod.
pub const SECRET_VALUE: &str = "s3cr3t";
/// Where the app container finds it (the injector's default mount path).
pub const SECRET_PATH: &str = "/run/keyward/db/password";

/// Prints one line per finished phase with its duration; the demo script
/// shows exactly the lines that start with `== `.
pub struct Steps {
    last: Instant,
}

impl Steps {
    pub fn start() -> Self {
        Steps {
            last: Instant::now(),
        }
    }

    pub fn done(&mut self, what: &str) {
        println!("== {what} ({:.1} s)", self.last.elapsed().as_secs_f64());
        self.last = Instant::now();
    }
}

/// What differs between the test and the demo.
#[derive(Clone)]
pub struct Flow {
    pub release: String,
    pub release_ns: String,
    /// Created by the caller, like the release namespace.
    pub app_ns: String,
    /// The operator watches only this namespace (None = all, the default).
    pub watch_ns: Option<String>,
    /// When set, the webhooks see only objects with label
    /// `keyward.io/e2e-chart=<value>` (so a test never admits another
    /// test's pods): for the mutating webhook Helm merges it into the
    /// chart's default `matchLabels`, so pods need the opt-in label too.
    /// None keeps the chart's default selectors.
    pub only_label: Option<String>,
    /// Where the public key and the sealed manifest are written.
    pub out_dir: PathBuf,
    /// Run the chart's CSI DaemonSet on the node and make the CSI volume
    /// the webhook's default delivery (`webhook.defaultDelivery: csi`).
    pub csi: bool,
    /// Serve `spec.provider.azure` from this Key Vault double too
    /// (`chart_support/azure_on_node.rs`).
    pub azure: Option<std::sync::Arc<keyward_azure_double::Double>>,
}

impl Flow {
    pub fn names(&self) -> Names {
        Names::for_release(&self.release, &self.release_ns)
    }

    pub fn labels(&self) -> Value {
        match &self.only_label {
            Some(value) => json!({ "keyward.io/e2e-chart": value }),
            None => json!({}),
        }
    }
}

/// Install the chart, run the operator and webhook from the project's image,
/// seal with the CLI and return what the app container read.
pub async fn install_seal_and_read(
    client: &Client,
    flow: &Flow,
    steps: &mut Steps,
) -> Result<String> {
    let cli = build_binaries().await?;
    steps.done("cargo build of the binaries (a no-op when they are up to date)");
    let image = import_project_image().await?;
    steps.done(&format!(
        "image {image} packed from the project's binaries and imported into the node"
    ));

    let helm = Helm::from_env()?;
    let mut overlay = loopback_overlay(&image, flow)?;
    super::azure_on_node::overlay(client, flow, &mut overlay).await?;
    helm.install(&flow.release, &chart(), &flow.release_ns, &values(overlay))
        .await?;
    wait_running(client, &flow.release_ns, "operator").await?;
    steps.done(&format!(
        "helm install {} charts/keyward -n {} (local-cluster overlay); operator pod running",
        flow.release, flow.release_ns
    ));

    // The operator, from the chart, reconciles a key in its namespace: the
    // default kind (AES-256, usage Wrap), shared with the application's
    // namespace, whose SealedSecret names it.
    let keys = keyward_api(client, &flow.release_ns, "ManagedKey", "managedkeys");
    keys.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": { "name": "app" },
            "spec": { "provider": { "local": {} },
                      "shareWith": { "namespaces": [flow.app_ns] } },
        }))?,
    )
    .await?;
    wait_key_ready(&keys, "app").await?;
    let secrets = Api::<Secret>::namespaced(client.clone(), &flow.release_ns);
    for s in ["keyward-local-keyring", "keyward-local-root-key"] {
        ensure!(
            secrets.get_opt(s).await?.is_some(),
            "operator did not create {s}"
        );
    }
    steps.done(&format!(
        "ManagedKey {}/app (defaults: local provider, AES256; shared with {}) Ready; keyring Secrets created",
        flow.release_ns, flow.app_ns
    ));

    // The webhook, from the chart, bootstraps its TLS into the Secret its
    // replicas share (--tls-secret; the chart creates it empty, the webhook
    // may only get and update it) and patches its CA into its own
    // configurations (RBAC limited to those names).
    wait_running(client, &flow.release_ns, "webhook").await?;
    let bundle = wait_ca_bundle(client, &flow.names().mutating()).await?;
    let tls = format!("{}-tls", flow.names().webhook);
    let stored = super::webhook_tls::stored_ca(client, &flow.release_ns, &tls)
        .await
        .with_context(|| {
            format!("the webhook did not fill Secret {tls} (created empty by the chart)")
        })?;
    ensure!(
        stored.as_bytes() == bundle,
        "caBundle is not the CA kept in Secret {tls}"
    );
    steps.done(&format!(
        "webhook pod running; its CA and certificate kept in Secret {tls}, the CA patched into both webhook configurations"
    ));

    if flow.csi {
        wait_running(client, &flow.release_ns, "csi").await?;
        let node = std::env::var("KEYWARD_E2E_NODE").context("KEYWARD_E2E_NODE")?;
        keyward_e2e::csi::wait_registered(client, &node).await?;
        steps.done("CSI DaemonSet pod running on the node; the kubelet registered csi.keyward.io");
    }

    let sealed = seal(flow, &cli).await?;
    steps.done(&format!(
        "keyward seal -n {} --name db --key {}/app --from-literal password={SECRET_VALUE} \
         (through the API server as an exec-plugin user; the value stays in the CLI)",
        flow.app_ns, flow.release_ns
    ));

    let sealed_secrets = keyward_api(client, &flow.app_ns, "SealedSecret", "sealedsecrets");
    let post = PostParams::default();
    through_webhook(|| sealed_secrets.create(&post, &sealed))
        .await
        .context("SealedSecret through the validating webhook")?;
    steps.done(&format!(
        "SealedSecret {}/db accepted by the validating webhook",
        flow.app_ns
    ));

    let read = run_reader_pod(client, flow).await?;
    let delivery = if flow.csi {
        "given the CSI volume (webhook.defaultDelivery: csi)"
    } else {
        "given the init container"
    };
    steps.done(&format!(
        "pod {}/reader (label keyward.io/injection: enabled, annotation keyward.io/inject: db) {delivery}, started on the node, Succeeded",
        flow.app_ns
    ));
    Ok(read)
}

/// The loopback cluster has no Service network: pods use the host network
/// and reach the API server and the webhook on 127.0.0.1. One webhook
/// replica: with the host network a second one would need the same port on
/// the same (only) node, so the scheduler would leave it Pending.
fn loopback_overlay(image: &str, flow: &Flow) -> Result<Value> {
    let (repository, tag) = image.split_once(':').context("image ref")?;
    let api_port = api_server_port()?;
    let webhook_port = free_port()?;
    // The injectors call the tenant API listener; the API server admission.
    let unseal_port = free_port()?;
    let api_env = json!([
        { "name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1" },
        { "name": "KUBERNETES_SERVICE_PORT", "value": api_port },
    ]);
    let mut overlay = json!({
        "image": { "repository": repository, "tag": tag, "pullPolicy": "Never" },
        "probes": false,
        "hostNetwork": true,
        "operator": { "metricsPort": free_port()?, "extraEnv": api_env },
        "webhook": {
            "replicas": 1, "port": webhook_port, "apiPort": unseal_port,
            "metricsPort": free_port()?,
            "extraEnv": api_env,
            "unsealUrl": format!("https://127.0.0.1:{unseal_port}/v1/unseal"),
            "tls": { "extraSans": ["127.0.0.1"] },
            "admission": { "urlOverride": format!("https://127.0.0.1:{webhook_port}") },
        },
    });
    if let Some(ns) = &flow.watch_ns {
        overlay["operator"]["watchNamespace"] = json!(ns);
    }
    if flow.csi {
        let state = std::env::var("KEYWARD_E2E_STATE").context("KEYWARD_E2E_STATE")?;
        overlay["csi"] = json!({
            "enabled": true,
            "kubeletRootDir": format!("{state}/kubelet/root"),
            "metricsPort": free_port()?,
            "extraEnv": api_env,
        });
        overlay["webhook"]["defaultDelivery"] = json!("csi");
    }
    if let Some(label) = &flow.only_label {
        let only = json!({ "matchLabels": { "keyward.io/e2e-chart": label } });
        overlay["webhook"]["admission"]["mutating"] = json!({ "objectSelector": only });
        overlay["webhook"]["admission"]["validating"] = json!({ "objectSelector": only });
    }
    Ok(overlay)
}

/// A port nobody listens on right now (the pods use the host network).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The API server's port, from the kubeconfig the tests use.
fn api_server_port() -> Result<String> {
    let config = kube::config::Kubeconfig::read()?;
    let server = config
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .context("no server in the kubeconfig")?;
    let port = server
        .rsplit(':')
        .next()
        .map(|p| p.trim_end_matches('/').to_owned())
        .context("server URL without a port")?;
    Ok(port)
}

/// The project's debug build directory.
fn target_debug() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("debug")
}

/// Build the operator, webhook, CSI plugin and CLI (debug, as `e2e/run.sh` builds only
/// the tests); returns the CLI's path.
pub async fn build_binaries() -> Result<PathBuf> {
    let status = tokio::process::Command::new(env!("CARGO"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(["build", "--locked", "-p", "keyward-operator"])
        .args([
            "-p",
            "keyward-webhook",
            "-p",
            "keyward",
            "-p",
            "keyward-csi",
        ])
        .status()
        .await?;
    ensure!(status.success(), "cargo build of the binaries failed");
    Ok(target_debug().join("keyward"))
}

/// Strip the operator, webhook and CSI plugin, pack them into
/// `keyward.local/keyward:e2e` and import it into the node.
async fn import_project_image() -> Result<String> {
    let dir = tempfile::tempdir()?;
    let mut files = Vec::new();
    for bin in ["keyward-operator", "keyward-webhook", "keyward-csi"] {
        let stripped = dir.path().join(bin);
        let status = tokio::process::Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(target_debug().join(bin))
            .status()
            .await?;
        ensure!(status.success(), "strip {bin}");
        files.push(format!("{}=/{bin}", stripped.display()));
    }
    let image = "keyward.local/keyward:e2e".to_owned();
    // As in the Dockerfile: the injected init container passes only
    // arguments (`inject ...`), so the entrypoint is the webhook binary.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster/image");
    let out = tokio::process::Command::new(script)
        .args(["--with-libs", "--entrypoint", "/keyward-webhook"])
        .arg(&image)
        .args(&files)
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "e2e/cluster/image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(image)
}

pub async fn wait_running(client: &Client, ns: &str, component: &str) -> Result<()> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let selector = format!("app.kubernetes.io/component={component}");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let list = pods.list(&ListParams::default().labels(&selector)).await?;
        let ready = list.items.iter().any(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| cs.iter().all(|c| c.ready))
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            let states: Vec<_> = list
                .items
                .iter()
                .map(|p| p.status.as_ref().and_then(|s| s.container_statuses.clone()))
                .collect();
            bail!(
                "{component} pod not running after 180 s (a webhook crash-looping until the operator made the keyring backs off 10, 20, 40 s): {states:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn wait_key_ready(keys: &Api<DynamicObject>, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let key = keys.get(name).await?;
        let ready = key
            .data
            .pointer("/status/conditions")
            .and_then(|c| c.as_array())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
        if ready {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "ManagedKey {name} not Ready: {:?}",
            key.data.get("status")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The caBundle (PEM) the webhook patched into its mutating configuration.
async fn wait_ca_bundle(client: &Client, mutating: &str) -> Result<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = Api::<MutatingWebhookConfiguration>::all(client.clone())
            .get(mutating)
            .await?;
        let bundle = m
            .webhooks
            .unwrap_or_default()
            .first()
            .and_then(|w| w.client_config.ca_bundle.clone());
        if let Some(bundle) = bundle.filter(|b| !b.0.is_empty()) {
            return Ok(bundle.0);
        }
        ensure!(Instant::now() < deadline, "webhook never patched caBundle");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `keyward seal` through the cluster, as a user whose kubeconfig runs an
/// exec plugin: a data key from the chart's webhook, the value encrypted in
/// the CLI. Retried while the webhook is not reachable yet (see
/// [`through_webhook`]).
async fn seal(flow: &Flow, cli: &Path) -> Result<DynamicObject> {
    seal_as(flow, cli, "db", "app").await
}

/// `keyward seal` of SealedSecret `secret` in the app namespace under
/// ManagedKey `key` of the release namespace (see [`seal`]).
pub async fn seal_as(flow: &Flow, cli: &Path, secret: &str, key: &str) -> Result<DynamicObject> {
    let kubeconfig = keyward_e2e::kubeconfig::exec_plugin(&flow.out_dir)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = tokio::process::Command::new(cli)
            .args(["seal", "-n", &flow.app_ns, "--name", secret, "--key"])
            .arg(format!("{}/{key}", flow.release_ns))
            .args(["--service-account", "default"])
            .args(["--from-literal", &format!("password={SECRET_VALUE}")])
            .args(["-o", "json"])
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("KEYWARD_KEYRING")
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains("webhook is unavailable") {
            break out;
        }
        ensure!(Instant::now() < deadline, "keyward seal: {stderr}");
        println!("retrying after: {}", stderr.trim());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    ensure!(
        out.status.success(),
        "keyward seal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        flow.out_dir.join("exec-ran").exists(),
        "the CLI did not authenticate through the exec plugin"
    );
    let mut sealed: Value = serde_json::from_slice(&out.stdout)?;
    // With only_label, the label sends it through the validating webhook.
    sealed["metadata"]["labels"] = flow.labels();
    std::fs::write(
        flow.out_dir.join(format!("{secret}.sealed.json")),
        serde_json::to_vec_pretty(&sealed)?,
    )?;
    Ok(serde_json::from_value(sealed)?)
}

/// Create namespace `name` with `labels` (or label an existing one) and
/// wait for its `default` ServiceAccount's token Secret (the local cluster
/// is 1.20, whose ServiceAccount admission plugin refuses pods until then).
pub async fn ensure_namespace(client: &Client, name: &str, labels: Value) -> Result<()> {
    let namespace = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": { "name": name, "labels": labels },
    });
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::apply("keyward-demo").force(),
            &Patch::Apply(&namespace),
        )
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    let sas = Api::<ServiceAccount>::namespaced(client.clone(), name);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = sas
            .get_opt("default")
            .await?
            .is_some_and(|sa| sa.secrets.is_some_and(|s| !s.is_empty()));
        if ready {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "ServiceAccount {name}/default has no token Secret after 60 s; is kube-controller-manager running?"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A pod in the app namespace whose app container prints `script`'s
/// output; with the test's isolation label (`Flow::only_label`), if any.
pub fn app_pod(flow: &Flow, name: &str, script: &str) -> Result<Value> {
    let (busybox, pull) = keyward_e2e::cluster::busybox_image();
    Ok(json!({
        "metadata": { "name": name, "labels": flow.labels() },
        "spec": {
            "hostNetwork": true,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "app", "image": busybox, "imagePullPolicy": pull,
                "command": ["sh", "-c", script],
            }],
        },
    }))
}

/// A pod opted in to injection of SealedSecret `db` (the label the chart's
/// webhook selects, the annotation naming the secret) that prints the
/// injected file.
pub fn reader_pod(flow: &Flow, name: &str) -> Result<Pod> {
    reader_pod_of(flow, name, "db")
}

/// The same for SealedSecret `secret`: prints its `password` item.
pub fn reader_pod_of(flow: &Flow, name: &str, secret: &str) -> Result<Pod> {
    let script = format!("cat /run/keyward/{secret}/password");
    let mut pod = app_pod(flow, name, &script)?;
    pod["metadata"]["labels"][INJECTION_LABEL] = json!(INJECTION_ENABLED);
    pod["metadata"]["annotations"] = json!({ INJECT: secret });
    Ok(serde_json::from_value(pod)?)
}

/// The opted-in pod in the app namespace: the webhook adds the injector,
/// which unseals through the webhook's API; the app container prints the
/// file. Returns what it printed.
async fn run_reader_pod(client: &Client, flow: &Flow) -> Result<String> {
    let pods = Api::<Pod>::namespaced(client.clone(), &flow.app_ns);
    let post = PostParams::default();
    let reader = reader_pod(flow, "reader")?;
    let pod = through_webhook(|| pods.create(&post, &reader)).await?;
    read_injected(client, &pods, &pod).await
}

/// Checks that `pod` was mutated (an init container, or the CSI volume),
/// waits for it to succeed and returns what its app container printed.
pub async fn read_injected(client: &Client, pods: &Api<Pod>, pod: &Pod) -> Result<String> {
    let spec = pod.spec.as_ref().context("pod spec")?;
    let init: Vec<String> = spec
        .init_containers
        .as_ref()
        .map(|c| c.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let csi_volume = spec.volumes.iter().flatten().any(|v| {
        v.csi
            .as_ref()
            .is_some_and(|c| c.driver == keyward_e2e::csi::DRIVER)
    });
    ensure!(
        init == ["keyward-inject"] || (init.is_empty() && csi_volume),
        "pod not mutated: init containers {init:?}, Keyward CSI volume: {csi_volume}"
    );
    let name = pod.metadata.name.as_deref().context("pod name")?;
    let done = keyward_e2e::pods::wait_for_completion(pods, name, Duration::from_secs(90)).await?;
    ensure!(
        keyward_e2e::pods::phase(&done) == "Succeeded",
        "pod {name} ended {}",
        keyward_e2e::pods::phase(&done)
    );
    let log = keyward_e2e::pods::container_log(client, &done, "app").await?;
    Ok(log.trim().to_owned())
}

/// Admission calls right after the webhook started can still meet the CA of
/// a previous container of it (it patches caBundle at start-up; a first
/// container may have exited while the operator was creating the keyring):
/// retry what the API server reports as a failed webhook call, for 30 s.
pub async fn through_webhook<T, F, Fut>(mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kube::Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(kube::Error::Api(status))
                if status.message.contains("failed calling webhook")
                    && Instant::now() < deadline =>
            {
                println!("retrying after: {}", status.message);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}
