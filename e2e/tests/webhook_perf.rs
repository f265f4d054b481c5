//! Performance of the webhook on the real cluster (issue 7's must-shows):
//! provider calls when a Deployment's pods unseal together, `/v1/unseal`
//! latency for a pod with ten items, and pod start-up cost with and without
//! injection. The webhook runs in-process on 127.0.0.1 as in `webhook.rs`.
//!
//! The heavy measurements are ignored in CI; run them all with
//! `scripts/bench-webhook.sh e2e` (figures go in docs/performance.md).

mod webhook_perf_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use futures::future::join_all;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use keyward_conformance::CountingProvider;
use keyward_core::provider::{DekCache, KeyProvider};
use keyward_e2e::{cluster, crds, pods, with_temp_ns};
use keyward_kubeutil::keyring_secret;
use keyward_webhook::annotations::{INJECTION_ENABLED, INJECTION_LABEL};
use keyward_webhook::inject;
use keyward_webhook::unseal::UnsealRequest;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use webhook_perf_support::{
    ITEMS, KEYRING, ROOT_KEY, SECRET, Webhook, create_sealed_secret, image, output_at, pct,
    pod_token, registration, summary,
};

/// The local provider of the test namespace, behind an unwrap counter.
/// `CountingProvider` borrows its inner provider while the webhook needs
/// `'static`, so the provider is leaked: it lives until this test process
/// ends, moments later.
async fn counting_provider(client: &Client, ns: &str) -> Result<CountingProvider<'static>> {
    let local = keyring_secret::open_local_provider(client.clone(), ns, KEYRING, ROOT_KEY).await?;
    let local: &'static dyn KeyProvider = Box::leak(Box::new(local));
    Ok(CountingProvider::new(local))
}

/// `replicas` pods of one Deployment shaped as admitted for the
/// SealedSecret and starting, each with an injector that sleeps
/// (`pods::starting_pod_spec`): real to the API server (uid,
/// ServiceAccount, bound tokens, a running injector), which is all the
/// unseal path looks at.
async fn starting_deployment_pods(client: &Client, ns: &str, replicas: i32) -> Result<Vec<Pod>> {
    let (busybox, pull) = cluster::busybox_image();
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "perf"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "perf"}},
            "template": {
                "metadata": {"labels": {"app": "perf"}},
                "spec": pods::starting_pod_spec(SECRET, (&busybox, pull)),
            },
        },
    }))?;
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deployment)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let listed = pods.list(&ListParams::default().labels("app=perf")).await?;
        let running = listed
            .items
            .iter()
            .filter(|p| pods::injector_running(p))
            .count();
        if running >= replicas as usize {
            return Ok(listed.items);
        }
        ensure!(
            Instant::now() < deadline,
            "{running} of {replicas} pods of the Deployment started in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Pod-bound tokens, eight TokenRequests at a time.
async fn tokens_for(client: &Client, ns: &str, pods: &[Pod]) -> Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(pods.len());
    for chunk in pods.chunks(8) {
        for token in join_all(chunk.iter().map(|pod| pod_token(client, ns, pod))).await {
            tokens.push(token?);
        }
    }
    Ok(tokens)
}

fn request(ns: &str, pod: &Pod, token: &str) -> UnsealRequest {
    UnsealRequest {
        token: token.to_owned(),
        namespace: ns.to_owned(),
        pod: pod.name_any(),
        secrets: vec![SECRET.to_owned()],
    }
}

/// One unseal through TLS, checked to return every item; its latency.
async fn timed_unseal(webhook: &Webhook, request: &UnsealRequest) -> Result<Duration> {
    let started = Instant::now();
    let opened = inject::unseal_once(&webhook.unseal_url(), &webhook.ca_pem, request).await?;
    let elapsed = started.elapsed();
    let items = opened.secrets.get(SECRET).map_or(0, |items| items.len());
    ensure!(items == ITEMS, "unseal returned {items} of {ITEMS} items");
    Ok(elapsed)
}

/// Every pod unseals at once, each over its own TLS connection, as the
/// injectors of a scaled-up Deployment do. Returns each call's latency and
/// the wall time of the burst.
async fn burst(webhook: &Webhook, requests: &[UnsealRequest]) -> Result<(Vec<Duration>, Duration)> {
    let started = Instant::now();
    let results = join_all(requests.iter().map(|r| timed_unseal(webhook, r))).await;
    let wall = started.elapsed();
    Ok((results.into_iter().collect::<Result<_>>()?, wall))
}

const PODS: usize = 100;

// Each test serves the webhook in-process and calls it from the same
// runtime: two workers, as the webhook gets in production on this machine,
// rather than one thread shared by the server and all its callers.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployments_pods_unsealing_together_cost_one_provider_call_with_the_cache() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        create_sealed_secret(&client, &ns).await?;
        let pods = starting_deployment_pods(&client, &ns, PODS as i32).await?;
        let tokens = tokens_for(&client, &ns, &pods).await?;
        let requests: Vec<_> = pods
            .iter()
            .zip(&tokens)
            .map(|(pod, token)| request(&ns, pod, token))
            .collect();
        let dir = tempfile::tempdir()?;
        // The image the pods' injectors run: theirs may unseal.
        let injector_image = (cluster::busybox_image().0, "Never");

        // Without the cache: the provider sees every pod's unwrap.
        let uncached = Arc::new(counting_provider(&client, &ns).await?);
        let webhook = Webhook::start(&client, uncached.clone(), dir.path(), injector_image.clone())
            .await?;
        let (latencies, wall) = burst(&webhook, &requests).await?;
        let calls_without = uncached.unwraps();
        println!(
            "PERF {PODS} concurrent unseals, {ITEMS} items each, no DEK cache: {calls_without} provider unwraps, burst {wall:?}; per call {}",
            summary(latencies, 99)
        );
        drop(webhook);

        // The webhook's own stack: DekCache (single flight) over the provider.
        let cached = Arc::new(DekCache::new(
            counting_provider(&client, &ns).await?,
            Duration::from_secs(30),
            1024,
        ));
        let webhook = Webhook::start(&client, cached.clone(), dir.path(), injector_image).await?;
        let (latencies, wall) = burst(&webhook, &requests).await?;
        let calls_with = cached.inner().unwraps();
        println!(
            "PERF {PODS} concurrent unseals, {ITEMS} items each, DekCache: {calls_with} provider unwraps, burst {wall:?}; per call {}",
            summary(latencies, 99)
        );

        // The ten items were sealed together under one DEK: one unwrap per
        // pod without the cache, one in all with it.
        ensure!(
            calls_without == PODS as u64,
            "expected one unwrap per pod without the cache, got {calls_without}"
        );
        ensure!(
            calls_with == 1,
            "expected the cache to collapse {PODS} pods' unwraps into one, got {calls_with}"
        );
        Ok(())
    })
    .await;
}

const SEQUENTIAL: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (about 30 s); run with scripts/bench-webhook.sh e2e"]
async fn unseal_latency_for_a_pod_with_ten_items() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        create_sealed_secret(&client, &ns).await?;
        let pods = starting_deployment_pods(&client, &ns, 1).await?;
        let token = tokens_for(&client, &ns, &pods).await?.remove(0);
        let request = request(&ns, &pods[0], &token);
        let dir = tempfile::tempdir()?;
        // The image the pods' injectors run: theirs may unseal.
        let injector_image = (cluster::busybox_image().0, "Never");

        let stacks: [(&str, Arc<dyn KeyProvider>); 2] = [
            (
                "DekCache (the webhook's default)",
                Arc::new(DekCache::new(
                    counting_provider(&client, &ns).await?,
                    Duration::from_secs(30),
                    1024,
                )),
            ),
            (
                "no DEK cache",
                Arc::new(counting_provider(&client, &ns).await?),
            ),
        ];
        for (name, provider) in stacks {
            let webhook =
                Webhook::start(&client, provider, dir.path(), injector_image.clone()).await?;
            let first = timed_unseal(&webhook, &request).await?;
            let mut times = Vec::with_capacity(SEQUENTIAL);
            for _ in 0..SEQUENTIAL {
                times.push(timed_unseal(&webhook, &request).await?);
            }
            times.sort();
            ensure!(pct(&times, 50) < Duration::from_secs(2), "unseal is far too slow");
            println!(
                "PERF /v1/unseal, 1 pod, {ITEMS} items, sequential, new TLS connection each, {name}: first call {first:?}; then {}",
                summary(times, 99)
            );
        }
        Ok(())
    })
    .await;
}

const START_UP_PODS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (about 2 min, 40 pods on the node); run with scripts/bench-webhook.sh e2e"]
async fn pod_start_up_with_and_without_injection() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        create_sealed_secret(&client, &ns).await?;
        let image = image::injector_image().await?;
        let dir = tempfile::tempdir()?;
        let local =
            keyring_secret::open_local_provider(client.clone(), &ns, KEYRING, ROOT_KEY).await?;
        let provider = Arc::new(DekCache::new(local, Duration::from_secs(30), 1024));
        let webhook = Webhook::start(&client, provider, dir.path(), image).await?;
        let config =
            registration::register(&client, &ns, &webhook, &app_pod("probe", Delivery::Init)?)
                .await?;
        let plugin = if cluster::is_local() {
            Some(
                keyward_e2e::csi::Plugin::start(
                    &client,
                    &webhook.api_url,
                    &webhook.ca_pem,
                    dir.path(),
                )
                .await?,
            )
        } else {
            None
        };
        let modes: &[Delivery] = if plugin.is_some() {
            &[Delivery::None, Delivery::Init, Delivery::Csi]
        } else {
            &[Delivery::None, Delivery::Init]
        };
        let result = start_up_rounds(&client, &ns, modes).await;
        if let Some(plugin) = plugin {
            plugin.stop().await;
        }
        registration::unregister(&client, &config).await;
        result
    })
    .await;
}

/// How a start-up pod gets its secrets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Delivery {
    /// Not at all: the baseline.
    None,
    /// The webhook's init container.
    Init,
    /// Keyward's CSI volume, added by the webhook (`keyward.io/delivery: csi`).
    Csi,
}

impl Delivery {
    fn label(self) -> &'static str {
        match self {
            Delivery::None => "without injection",
            Delivery::Init => "init container",
            Delivery::Csi => "CSI volume",
        }
    }
}

/// The same hostNetwork pod for each delivery; the app says it started
/// (stamped by containerd), reads whatever it was given, then sleeps.
fn app_pod(name: &str, delivery: Delivery) -> Result<Pod> {
    let (busybox, pull) = cluster::busybox_image();
    let mut pod = json!({
        "metadata": {"name": name},
        "spec": {
            "hostNetwork": true,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "app", "image": busybox, "imagePullPolicy": pull,
                "command": ["sh", "-c", "echo started; cat /run/keyward/*/* >/dev/null 2>&1; exec sleep 3600"],
            }],
        },
    });
    if delivery != Delivery::None {
        pod["metadata"]["labels"] = json!({INJECTION_LABEL: INJECTION_ENABLED});
        pod["metadata"]["annotations"] = json!({"keyward.io/inject": SECRET});
    }
    if delivery == Delivery::Csi {
        pod["metadata"]["annotations"]["keyward.io/delivery"] = json!("csi");
    }
    Ok(serde_json::from_value(pod)?)
}

/// When `container` logged `needle`; the log can trail the status briefly.
async fn logged_at(
    pods: &Api<Pod>,
    name: &str,
    container: &str,
    needle: &str,
) -> Result<Option<k8s_openapi::jiff::Timestamp>> {
    if std::env::var_os("KEYWARD_E2E_POD_LOG_DIR").is_none() {
        return Ok(None);
    }
    for _ in 0..50 {
        if let Some(at) = output_at(&pods.get(name).await?, container, needle) {
            return Ok(Some(at));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{name}: {container} did not log `{needle}` within 5 s")
}

fn app_started(pod: Option<&Pod>) -> bool {
    app_started_at(pod).is_some()
}

/// The app container's `startedAt` (running or terminated), when it has one.
fn app_started_at(pod: Option<&Pod>) -> Option<k8s_openapi::jiff::Timestamp> {
    let statuses = pod?.status.as_ref()?.container_statuses.as_ref()?;
    let state = statuses.iter().find(|c| c.name == "app")?.state.as_ref()?;
    let started = match (&state.running, &state.terminated) {
        (Some(running), _) => running.started_at.as_ref(),
        (None, Some(terminated)) => terminated.started_at.as_ref(),
        _ => None,
    };
    started.map(|t| t.0)
}

/// Pods created one at a time, one of each delivery in turn so all see
/// the same node load; each deleted once its app has started.
async fn start_up_rounds(client: &Client, ns: &str, modes: &[Delivery]) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    // Three clocks: our own around create and the status watch (ms, but the
    // kubelet reports status on its ~1 s relist); the pod's status
    // timestamps (1 s); and the app's first log line as stamped by
    // containerd (ns), against our clock just before the create call.
    let mut wall = vec![Vec::new(); modes.len()];
    let mut stamped = vec![Vec::new(); modes.len()];
    let mut first_output = vec![Vec::new(); modes.len()];
    // Init-container pods: create -> the injector logged its files written,
    // and from there -> the app's first output (the kubelet noticing the exit).
    let (mut injector_done, mut done_to_app) = (Vec::new(), Vec::new());
    for i in 0..START_UP_PODS {
        for (m, &delivery) in modes.iter().enumerate() {
            let name = format!("start-{}-{i}", format!("{delivery:?}").to_lowercase());
            let started = Instant::now();
            let created_wall = k8s_openapi::jiff::Timestamp::now();
            let created = pods
                .create(&PostParams::default(), &app_pod(&name, delivery)?)
                .await?;
            let spec = created.spec.as_ref();
            let has_injector = spec
                .and_then(|s| s.init_containers.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.name == "keyward-inject"));
            let has_csi = spec
                .and_then(|s| s.volumes.as_ref())
                .is_some_and(|v| v.iter().any(|v| v.csi.is_some()));
            ensure!(
                has_injector == (delivery == Delivery::Init)
                    && has_csi == (delivery == Delivery::Csi),
                "{name}: injector {has_injector}, CSI volume {has_csi}, expected {delivery:?}"
            );
            let pod = tokio::time::timeout(
                Duration::from_secs(120),
                await_condition(pods.clone(), &name, app_started),
            )
            .await
            .with_context(|| format!("{name}: the app did not start within 120 s"))??;
            wall[m].push(started.elapsed());
            let pod = pod.context("pod deleted while waiting")?;
            let created_at = pod
                .metadata
                .creation_timestamp
                .clone()
                .context("no creationTimestamp")?
                .0;
            let app_at = app_started_at(Some(&pod)).context("no startedAt")?;
            let seconds = app_at.duration_since(created_at).as_secs_f64();
            stamped[m].push(Duration::from_secs_f64(seconds.max(0.0)));
            let since = |from: k8s_openapi::jiff::Timestamp, to: k8s_openapi::jiff::Timestamp| {
                Duration::from_secs_f64(to.duration_since(from).as_secs_f64().max(0.0))
            };
            if let Some(app) = logged_at(&pods, &name, "app", "started").await? {
                first_output[m].push(since(created_wall, app));
                // Best effort: the kubelet may already have removed the
                // exited init container's log by now.
                let pod = pods.get(&name).await?;
                if delivery == Delivery::Init
                    && let Some(done) = output_at(&pod, "keyward-inject", "wrote")
                {
                    injector_done.push(since(created_wall, done));
                    done_to_app.push(since(done, app));
                }
            }
            pods.delete(&name, &DeleteParams::default().grace_period(0))
                .await?;
        }
    }
    compare("wall clock around create and the status watch", modes, wall);
    compare("status timestamps, 1 s resolution", modes, stamped);
    if first_output.iter().all(|times| !times.is_empty()) {
        compare(
            "app's first output as stamped by containerd",
            modes,
            first_output,
        );
    }
    if !injector_done.is_empty() {
        println!(
            "PERF init-container pods, containerd's stamps: create -> injector wrote the files {}; then -> app's first output {}",
            summary(injector_done, 95),
            summary(done_to_app, 95)
        );
    }
    Ok(())
}

/// Prints p50/p95 of pod create -> app started for each delivery, and each
/// one's p50 over the baseline's (the first).
fn compare(clock: &str, modes: &[Delivery], times: Vec<Vec<Duration>>) {
    let median = |times: &[Duration]| {
        let mut sorted = times.to_vec();
        sorted.sort();
        pct(&sorted, 50).as_secs_f64()
    };
    let baseline = median(&times[0]);
    println!("PERF pod create -> app started ({clock}), {START_UP_PODS} pods each, one at a time:");
    for (delivery, times) in modes.iter().zip(times) {
        let extra = (median(&times) - baseline) * 1000.0;
        println!(
            "  {} ({ITEMS} items): {}; p50 {extra:+.0} ms over no injection",
            delivery.label(),
            summary(times, 95)
        );
    }
}
