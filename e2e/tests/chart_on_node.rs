//! The chart's operator and webhook Deployments running on the node from
//! the project's own binaries (local e2e cluster only): the binaries are
//! packed into an image and imported into the node (there is no Docker
//! engine here, so the Dockerfile itself is not built), the chart is
//! installed with the loopback overlay (host network, API server and webhook
//! on 127.0.0.1, no HTTP probes), and the quickstart's path runs: a
//! ManagedKey, `keyward seal` from its public key, an annotated pod that
//! reads the unsealed file.

mod chart_support;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use chart_support::*;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use keyward_e2e::{helm::Helm, with_temp_ns};
use kube::api::{DeleteParams, DynamicObject, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

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

/// Build the operator and webhook (debug), strip them, pack them into
/// `keyward.local/keyward:e2e` and import it into the node.
async fn import_project_image() -> Result<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let started = Instant::now();
    let status = tokio::process::Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "build",
            "--locked",
            "-p",
            "keyward-operator",
            "-p",
            "keyward-webhook",
            "-p",
            "keyward",
        ])
        .status()
        .await?;
    ensure!(status.success(), "cargo build of the binaries failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = tempfile::tempdir()?;
    let mut files = Vec::new();
    for bin in ["keyward-operator", "keyward-webhook"] {
        let stripped = dir.path().join(bin);
        let status = tokio::process::Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(target.join("debug").join(bin))
            .status()
            .await?;
        ensure!(status.success(), "strip {bin}");
        files.push(format!("{}=/{bin}", stripped.display()));
    }
    let image = "keyward.local/keyward:e2e".to_owned();
    // As in the Dockerfile: the injected init container passes only
    // arguments (`inject ...`), so the entrypoint is the webhook binary.
    let out = tokio::process::Command::new(root.join("e2e/cluster/image"))
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
    println!(
        "MEASURE build + pack + import of the project image: {} ms",
        started.elapsed().as_millis()
    );
    Ok((image, target.join("debug/keyward")))
}

async fn wait_running(client: &Client, ns: &str, component: &str) -> Result<()> {
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), ns);
    let selector = format!("app.kubernetes.io/component={component}");
    let deadline = Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let list = pods
            .list(&kube::api::ListParams::default().labels(&selector))
            .await?;
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
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn chart_runs_operator_and_webhook_on_the_node() {
    if !keyward_e2e::cluster::is_local() {
        println!("skipped: needs the local e2e cluster to import the project's image");
        return;
    }
    with_temp_ns(|client, ns| async move {
        ignore_namespace(&client, &ns).await?;
        let (image, cli) = import_project_image().await?;
        let (repository, tag) = image.split_once(':').context("image ref")?;
        let api_port = api_server_port()?;
        let webhook_port = free_port()?;
        // The loopback cluster has no Service network: pods use the host
        // network and reach the API server and the webhook on 127.0.0.1.
        let api_env = json!([
            { "name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1" },
            { "name": "KUBERNETES_SERVICE_PORT", "value": api_port },
        ]);
        let only_this_test = json!({ "matchLabels": { "keyward.io/e2e-chart": ns } });
        let overlay = json!({
            "image": { "repository": repository, "tag": tag, "pullPolicy": "Never" },
            "probes": false,
            "hostNetwork": true,
            "operator": { "watchNamespace": ns, "metricsPort": free_port()?, "extraEnv": api_env },
            "webhook": {
                "replicas": 1, "port": webhook_port, "extraEnv": api_env,
                "unsealUrl": format!("https://127.0.0.1:{webhook_port}/v1/unseal"),
                "tls": { "extraSans": ["127.0.0.1"] },
                "admission": {
                    "urlOverride": format!("https://127.0.0.1:{webhook_port}"),
                    "mutating": { "objectSelector": only_this_test },
                    "validating": { "objectSelector": only_this_test },
                },
            },
        });
        let names = Names::new(&ns);
        let result = async {
            let helm = Helm::from_env()?;
            let started = Instant::now();
            helm.install(RELEASE, &chart(), &ns, &values(overlay))
                .await?;
            wait_running(&client, &ns, "operator").await?;
            println!(
                "MEASURE helm install -> operator pod ready: {} ms",
                started.elapsed().as_millis()
            );

            // The operator, from the chart, reconciles a key in its namespace:
            // RSA, so anyone can seal offline from its public key.
            let keys = keyward_api(&client, &ns, "ManagedKey", "managedkeys");
            keys.create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
                    "metadata": { "name": "app" },
                    "spec": { "provider": { "local": {} }, "algorithm": "RSA4096", "usage": "Seal" },
                }))?,
            )
            .await?;
            let deadline = Instant::now() + std::time::Duration::from_secs(60);
            loop {
                let key = keys.get("app").await?;
                let ready = key
                    .data
                    .pointer("/status/conditions")
                    .and_then(|c| c.as_array())
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    });
                if ready {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "ManagedKey not Ready: {:?}",
                    key.data.get("status")
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            println!(
                "MEASURE helm install -> ManagedKey Ready: {} ms",
                started.elapsed().as_millis()
            );
            let secrets =
                Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns);
            for s in ["keyward-local-keyring", "keyward-local-root-key"] {
                ensure!(
                    secrets.get_opt(s).await?.is_some(),
                    "operator did not create {s}"
                );
            }

            // The webhook, from the chart, bootstraps its TLS and patches its
            // CA into its own configurations (RBAC limited to those names).
            wait_running(&client, &ns, "webhook").await?;
            let deadline = Instant::now() + std::time::Duration::from_secs(60);
            loop {
                let m = Api::<MutatingWebhookConfiguration>::all(client.clone())
                    .get(&names.mutating())
                    .await?;
                let bundle = m
                    .webhooks
                    .unwrap_or_default()
                    .first()
                    .and_then(|w| w.client_config.ca_bundle.clone());
                if bundle.is_some_and(|b| !b.0.is_empty()) {
                    break;
                }
                ensure!(Instant::now() < deadline, "webhook never patched caBundle");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            println!(
                "MEASURE helm install -> webhook caBundle patched: {} ms",
                started.elapsed().as_millis()
            );

            read_sealed_secret_in_a_pod(&client, &ns, &keys, &cli).await?;

            // Delete the key while the operator runs (it owns the finalizer).
            keys.delete("app", &DeleteParams::default()).await?;
            let deadline = Instant::now() + std::time::Duration::from_secs(30);
            while keys.get_opt("app").await?.is_some() {
                ensure!(
                    Instant::now() < deadline,
                    "ManagedKey finalizer not released"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            helm.uninstall(RELEASE, &ns).await?;
            anyhow::Ok(())
        }
        .await;
        remove_cluster_scoped(&client, &names).await;
        result
    })
    .await;
}

/// The quickstart's path: export the key's public half from its status, seal
/// with the CLI, and let an annotated pod in another namespace read the value
/// through the chart's webhook (mutation, then the injector's unseal).
async fn read_sealed_secret_in_a_pod(
    client: &Client,
    ns: &str,
    keys: &Api<DynamicObject>,
    cli: &Path,
) -> Result<()> {
    let key = keys.get("app").await?;
    let field = |name: &str| {
        key.data
            .pointer(&format!("/status/{name}"))
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            })
            .with_context(|| format!("ManagedKey status.{name}"))
    };
    let dir = tempfile::tempdir()?;
    let public = dir.path().join("app.pub");
    std::fs::write(
        &public,
        format!(
            "keyward-key: app\nkeyward-key-version: {}\nkeyward-provider-key-id: {}\n{}",
            field("primaryVersion")?,
            field("providerKeyId")?,
            field("publicKey")?,
        ),
    )?;

    let app_ns = keyward_e2e::namespace::create_temp_ns(client).await?;
    let result = async {
        let out = tokio::process::Command::new(cli)
            .args(["seal", "-n", &app_ns, "--name", "db", "--key"])
            .arg(format!("{ns}/app"))
            .arg("--cert")
            .arg(&public)
            .args([
                "--service-account",
                "default",
                "--from-literal",
                "password=s3cr3t",
                "-o",
                "json",
            ])
            .output()
            .await?;
        ensure!(
            out.status.success(),
            "keyward seal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut sealed: Value = serde_json::from_slice(&out.stdout)?;
        // The label sends it through the chart's validating webhook too.
        sealed["metadata"]["labels"] = json!({ "keyward.io/e2e-chart": ns });
        let sealed_secrets = keyward_api(client, &app_ns, "SealedSecret", "sealedsecrets");
        let sealed: DynamicObject = serde_json::from_value(sealed)?;
        let post = PostParams::default();
        through_webhook(|| sealed_secrets.create(&post, &sealed))
            .await
            .context("SealedSecret through the validating webhook")?;

        let (busybox, pull) = keyward_e2e::cluster::busybox_image();
        let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), &app_ns);
        let started = Instant::now();
        let reader: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {
                "name": "reader",
                "labels": { "keyward.io/e2e-chart": ns },
                "annotations": { "keyward.io/inject": "db" },
            },
            "spec": {
                "hostNetwork": true,
                "restartPolicy": "Never",
                "containers": [{
                    "name": "app", "image": busybox, "imagePullPolicy": pull,
                    "command": ["sh", "-c", "cat /run/keyward/db/password"],
                }],
            },
        }))?;
        let pod = through_webhook(|| pods.create(&post, &reader)).await?;
        let init: Vec<String> = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .map(|c| c.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        ensure!(
            init == ["keyward-inject"],
            "pod not mutated: init containers {init:?}"
        );
        let done = keyward_e2e::pods::wait_for_completion(
            &pods,
            "reader",
            std::time::Duration::from_secs(90),
        )
        .await?;
        ensure!(
            keyward_e2e::pods::phase(&done) == "Succeeded",
            "reader pod ended {}",
            keyward_e2e::pods::phase(&done)
        );
        let log = keyward_e2e::pods::container_log(client, &done, "app").await?;
        ensure!(log.trim() == "s3cr3t", "app read {log:?}");
        println!(
            "MEASURE annotated pod created -> Succeeded with the unsealed file: {} ms",
            started.elapsed().as_millis()
        );
        println!(
            "app container read /run/keyward/db/password: {}",
            log.trim()
        );
        anyhow::Ok(())
    }
    .await;
    if result.is_err() {
        keyward_e2e::namespace::dump_namespace(client, &app_ns).await;
    }
    let _ = Api::<Namespace>::all(client.clone())
        .delete(&app_ns, &DeleteParams::background())
        .await;
    result
}

/// Admission calls right after the webhook started can still meet the CA of
/// a previous container of it (it patches caBundle at start-up; a first
/// container may have exited while the operator was creating the keyring):
/// retry what the API server reports as a failed webhook call, for 30 s.
async fn through_webhook<T, F, Fut>(mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kube::Result<T>>,
{
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(kube::Error::Api(status))
                if status.message.contains("failed calling webhook")
                    && Instant::now() < deadline =>
            {
                println!("retrying after: {}", status.message);
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}
