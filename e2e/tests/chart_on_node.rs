//! The chart's operator and webhook Deployments running on the node from
//! the project's own binaries (local e2e cluster only): the binaries are
//! packed into an image and imported into the node (there is no Docker
//! engine here, so the Dockerfile itself is not built), the chart is
//! installed with the loopback overlay (host network, API server and webhook
//! on 127.0.0.1, no HTTP probes), and the quickstart's path runs: a
//! ManagedKey with the defaults (local, AES-256), `keyward seal` through
//! the cluster as an exec-plugin user, an opted-in pod that reads the
//! unsealed file (`chart_support/on_node.rs`). With the webhook
//! scaled to 0, a pod that did not opt in still runs and an opted-in pod is
//! refused until it is back (`webhook_outage_blocks_only_opted_in_pods`).
//!
//! `readme_demo` is the same path in fixed namespaces with the chart's
//! default webhook selectors, run by `scripts/demo.sh` (ignored here).

mod chart_support;

use std::path::PathBuf;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use chart_support::on_node::{self, Flow, SECRET_PATH, SECRET_VALUE, Steps};
use chart_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use keyward_e2e::{helm::Helm, with_temp_ns};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// One release at a time: each runs its webhook on a host port and the
/// image import writes one image name into the node.
static ONE_RELEASE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// With a real Prometheus scraping both pods: every query of the chart's
/// Grafana dashboard has data (`chart_support/prometheus.rs`).
#[tokio::test]
async fn chart_runs_operator_and_webhook_on_the_node() {
    with_release(|client, flow| async move {
        chart_support::prometheus::answers_every_dashboard_query(&client, &flow).await
    })
    .await;
}

/// The blast radius of a Keyward outage: with the webhook Deployment at 0
/// replicas a pod that did not opt in is created and runs in an
/// application namespace, an opted-in pod is refused with a message that
/// names Keyward's webhook; back at 1 replica the same pod is admitted and
/// reads its injected file.
#[tokio::test]
async fn webhook_outage_blocks_only_opted_in_pods() {
    with_release(|client, flow| async move { outage(&client, &flow).await }).await;
}

/// Keyward's questions off the happy path on the chart's webhook: the
/// API server's audit log of the flow's seal holds no value, a user
/// without `create datakeyrequests` or without `create sealedsecrets` is
/// refused with what to ask for, a DataKeyRequest that would be stored is
/// denied (`chart_support/online_seal.rs`); signing keys sign through
/// `keyward sign`, OpenSSL verifies, `sign` is a right of its own, and a
/// compromise makes old signatures refused (`chart_support/signing.rs`).
#[tokio::test]
async fn questions_show_the_api_server_no_value_sign_and_refuse_the_unentitled() {
    with_release(|client, flow| async move {
        let cli = on_node::build_binaries().await?;
        chart_support::online_seal::refusals_and_what_the_api_server_saw(&client, &flow, &cli)
            .await?;
        chart_support::signing::sign_verify_and_refuse(&client, &flow, &cli).await
    })
    .await;
}

/// The chart's CSI DaemonSet as a pod on the node, with
/// `webhook.defaultDelivery: csi`: the plugin registers through the
/// kubelet root (a shared mount, so the tmpfs it mounts with Bidirectional
/// propagation reaches the kubelet), the opted-in reader gets the CSI volume
/// instead of the init container and reads the value; deleting the pod
/// unmounts and removes the volume, and the plugin's metrics count both
/// (`chart_support/csi_pod.rs`).
#[tokio::test]
async fn csi_daemonset_delivers_by_default_on_the_node() {
    with_release_delivering(true, |client, flow| async move {
        chart_support::csi_pod::unmounted_and_counted(&client, &flow).await
    })
    .await;
}

/// Azure Key Vault through the chart's own pods: the chart projects each
/// ServiceAccount's token for Entra's token exchange (its non-AKS mode),
/// the Key Vault double on 127.0.0.1 accepts them as federated credentials
/// (signature checked against the cluster's JWKS), a sealing key becomes
/// Ready in the vault, `keyward seal` goes through the cluster and an
/// opted-in pod reads the value Key Vault unwrapped
/// (`chart_support/azure_on_node.rs`).
#[tokio::test]
async fn azure_key_vault_through_the_chart_on_the_node() {
    let vault = std::sync::Arc::new(keyward_azure_double::Double::start().await);
    with_release_serving(false, Some(vault), |client, flow| async move {
        let cli = on_node::build_binaries().await?;
        chart_support::azure_on_node::seal_and_read(&client, &flow, &cli).await
    })
    .await;
}

/// Installs the chart (as `install_seal_and_read`), runs `more`, then
/// deletes the key and uninstalls.
async fn with_release<F, Fut>(more: F)
where
    F: FnOnce(Client, Flow) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    with_release_delivering(false, more).await;
}

/// The same with the chart's CSI DaemonSet on the node (`csi` true).
async fn with_release_delivering<F, Fut>(csi: bool, more: F)
where
    F: FnOnce(Client, Flow) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    with_release_serving(csi, None, more).await;
}

/// The same with Azure Key Vault served from `azure` as well.
async fn with_release_serving<F, Fut>(
    csi: bool,
    azure: Option<std::sync::Arc<keyward_azure_double::Double>>,
    more: F,
) where
    F: FnOnce(Client, Flow) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    if !keyward_e2e::cluster::is_local() {
        println!("skipped: needs the local e2e cluster to import the project's image");
        return;
    }
    let _one = ONE_RELEASE.lock().await;
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
            csi,
            azure: azure.clone(),
        };
        let result = run_and_clean_up(&client, &flow, more).await;
        if result.is_err() {
            keyward_e2e::namespace::dump_namespace(&client, &app_ns).await;
            keyward_e2e::namespace::dump_namespace(&client, &ns).await;
        }
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&app_ns, &DeleteParams::background())
            .await;
        remove_cluster_scoped(&client, &flow.names()).await;
        result
    })
    .await;
}

async fn run_and_clean_up<F, Fut>(client: &Client, flow: &Flow, more: F) -> Result<()>
where
    F: FnOnce(Client, Flow) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let read = on_node::install_seal_and_read(client, flow, &mut Steps::start()).await?;
    ensure!(read == SECRET_VALUE, "app read {read:?}");
    println!("app container read {SECRET_PATH}: {read}");
    more(client.clone(), flow.clone()).await?;

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
        csi: false,
        azure: None,
    };
    let read = on_node::install_seal_and_read(&client, &flow, &mut steps).await?;
    ensure!(read == SECRET_VALUE, "the app container read {read:?}");
    println!("app container read {SECRET_PATH}: {read}");
    Ok(())
}

async fn outage(client: &Client, flow: &Flow) -> Result<()> {
    let deployments = Api::<Deployment>::namespaced(client.clone(), &flow.release_ns);
    let webhook = flow.names().webhook;
    let pods = Api::<Pod>::namespaced(client.clone(), &flow.app_ns);
    let post = PostParams::default();

    scale(&deployments, &webhook, 0).await?;
    let started = Instant::now();
    wait_no_webhook_pod(client, &flow.release_ns).await?;
    println!(
        "MEASURE webhook Deployment {webhook} scaled to 0, its pod gone: {} ms",
        started.elapsed().as_millis()
    );

    // A pod that did not opt in (it even carries the test's isolation
    // label, so only the missing opt-in label keeps it from the webhook).
    let plain: Pod = serde_json::from_value(on_node::app_pod(flow, "plain", "echo plain ran")?)?;
    let started = Instant::now();
    pods.create(&post, &plain)
        .await
        .context("a pod that did not opt in, with Keyward's webhook down")?;
    println!(
        "MEASURE pod without the opt-in label created with the webhook down: {} ms",
        started.elapsed().as_millis()
    );
    let done =
        keyward_e2e::pods::wait_for_completion(&pods, "plain", Duration::from_secs(90)).await?;
    ensure!(
        keyward_e2e::pods::phase(&done) == "Succeeded",
        "plain pod ended {}",
        keyward_e2e::pods::phase(&done)
    );
    let log = keyward_e2e::pods::container_log(client, &done, "app").await?;
    ensure!(log.trim() == "plain ran", "plain pod printed {log:?}");
    ensure!(
        done.spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .is_none(),
        "the plain pod was mutated"
    );
    println!(
        "pod {}/plain (not opted in) ran and Succeeded with the webhook down",
        flow.app_ns
    );

    // An opted-in pod is refused, never started without its secrets.
    let opted_in = on_node::reader_pod(flow, "opted-in")?;
    let started = Instant::now();
    let refused = pods.create(&post, &opted_in).await;
    let elapsed = started.elapsed();
    let message = match refused {
        Ok(_) => bail!("an opted-in pod was created while Keyward's webhook was down"),
        Err(kube::Error::Api(status)) => status.message,
        Err(other) => return Err(other.into()),
    };
    println!(
        "opted-in pod refused after {} ms: {message}",
        elapsed.as_millis()
    );
    ensure!(
        message.contains(r#"failed calling webhook "secret-injection.keyward.io""#),
        "the refusal does not name Keyward's webhook: {message}"
    );
    ensure!(
        pods.get_opt("opted-in").await?.is_none(),
        "the refused pod exists"
    );

    // Back to one replica: the pod is admitted as soon as the webhook
    // serves again (the same CA, kept in the chart's TLS Secret).
    scale(&deployments, &webhook, 1).await?;
    let started = Instant::now();
    let mut ready_at = None;
    let mut refusals = 0;
    let admitted = loop {
        match pods.create(&post, &opted_in).await {
            Ok(pod) => break pod,
            Err(kube::Error::Api(status))
                if status.message.contains("failed calling webhook")
                    && started.elapsed() < Duration::from_secs(180) =>
            {
                refusals += 1;
            }
            Err(error) => return Err(error).context("opted-in pod after scale-up"),
        }
        if ready_at.is_none() && webhook_ready(client, &flow.release_ns).await? {
            ready_at = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let admitted_after = started.elapsed();
    println!(
        "MEASURE after scale-up to 1: webhook pod Ready seen at {} ms, opted-in pod admitted at {} ms ({refusals} refused attempts before, 100 ms apart)",
        ready_at.map_or("-".to_owned(), |d| d.as_millis().to_string()),
        admitted_after.as_millis()
    );
    let read = on_node::read_injected(client, &pods, &admitted).await?;
    ensure!(read == SECRET_VALUE, "opted-in pod read {read:?}");
    println!("opted-in pod admitted after scale-up read {SECRET_PATH}: {read}");
    Ok(())
}

async fn scale(deployments: &Api<Deployment>, name: &str, replicas: i32) -> Result<()> {
    deployments
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": replicas } })),
        )
        .await
        .with_context(|| format!("scaling {name} to {replicas}"))?;
    Ok(())
}

fn webhook_pods(client: &Client, ns: &str) -> (Api<Pod>, ListParams) {
    (
        Api::namespaced(client.clone(), ns),
        ListParams::default().labels("app.kubernetes.io/component=webhook"),
    )
}

async fn wait_no_webhook_pod(client: &Client, ns: &str) -> Result<()> {
    let (api, list) = webhook_pods(client, ns);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !api.list(&list).await?.items.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "webhook pod still there after 90 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn webhook_ready(client: &Client, ns: &str) -> Result<bool> {
    let (api, list) = webhook_pods(client, ns);
    Ok(api.list(&list).await?.items.iter().any(|p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c.ready))
    }))
}
