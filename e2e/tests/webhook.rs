//! The webhook against a real API server and node: it runs in-process on
//! 127.0.0.1 with a self-generated certificate, url-based webhook
//! configurations point the API server at it, and pods on the node run the
//! real `keyward-webhook inject` binary as their init container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use keyward_core::SecretBytes;
use keyward_core::envelope::{Scope, SecretTarget, Wrapping, seal_secret};
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec};
use keyward_crds::{ManagedKey, SealedSecret};
use keyward_e2e::{cluster, crds, pods, with_temp_ns};
use keyward_kubeutil::keyring_secret;
use keyward_webhook::annotations::{INJECTION_ENABLED, INJECTION_LABEL};
use keyward_webhook::mutate::InjectorConfig;
use keyward_webhook::server::ServerLimits;
use keyward_webhook::unseal::{DecryptOnly, RateLimiter, UnsealRequest, Unsealer};
use keyward_webhook::{AppState, admission_router, api_router, inject, server, tls};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

#[path = "webhook_support/access.rs"]
mod access;
#[path = "webhook_support/applier.rs"]
mod applier;
#[path = "webhook_support/compromise.rs"]
mod compromise;
#[path = "webhook_support/csi.rs"]
mod csi;
#[path = "support/in_process.rs"]
mod in_process;
#[path = "webhook_support/sharing.rs"]
mod sharing;
#[path = "webhook_support/two_person.rs"]
mod two_person;

const KEYRING: &str = "keyward-local-keyring";
const ROOT_KEY: &str = "keyward-local-root-key";
const IMAGE: &str = "keyward.local/keyward-webhook:e2e";
const SELECTOR_LABEL: &str = "keyward.io/webhook-e2e";
const PASSWORD: &str = "correct-horse-battery-staple";

/// The injector image: built from this checkout and imported into the node
/// once per test binary, or given by `KEYWARD_E2E_WEBHOOK_IMAGE`.
async fn injector_image() -> Result<(String, &'static str)> {
    static IMAGE_READY: OnceCell<String> = OnceCell::const_new();
    if let Ok(image) = std::env::var("KEYWARD_E2E_WEBHOOK_IMAGE") {
        return Ok((image, "IfNotPresent"));
    }
    ensure!(
        cluster::is_local(),
        "set KEYWARD_E2E_WEBHOOK_IMAGE to an injector image the cluster can pull"
    );
    let image = IMAGE_READY
        .get_or_try_init(|| async {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let started = Instant::now();
            let binary =
                keyward_e2e::binaries::build_binary("keyward-webhook", "keyward-webhook", false)
                    .await?;
            // Stripped: env-exec pods copy it into their memory volume.
            let dir = tempfile::tempdir()?;
            let stripped = dir.path().join("keyward-webhook");
            let status = tokio::process::Command::new("strip")
                .arg("-o")
                .arg(&stripped)
                .arg(&binary)
                .status()
                .await?;
            ensure!(status.success(), "strip keyward-webhook");
            // At /keyward-webhook, where the Dockerfile puts it: the
            // mutation names it as `command`. A busybox `sh` too, so the
            // env-exec pod can use this image (which holds the glibc the
            // copied wrapper needs; the release image's binary is static).
            let status = tokio::process::Command::new(root.join("e2e/cluster/image"))
                .args(["--with-libs", "--entrypoint", "/keyward-webhook"])
                .args(["--link", "/bin/sh=busybox", IMAGE])
                .arg(format!("{}=/keyward-webhook", stripped.display()))
                .arg("/bin/busybox=/bin/busybox")
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

/// The webhook served in-process, and the configurations pointing at it.
struct Webhook {
    tasks: [JoinHandle<()>; 2],
    /// The injector image and pull policy it gives pods.
    injector: (String, &'static str),
    /// The admission listener (the configurations' clientConfig).
    url: String,
    /// The tenant API listener (unseal, rewrap).
    api_url: String,
    ca_pem: String,
    audit: PathBuf,
    config_name: String,
}

impl Webhook {
    async fn start(
        client: &Client,
        ns: &str,
        dir: &Path,
        image: (String, &'static str),
    ) -> Result<Self> {
        let made = tls::bootstrap(&["127.0.0.1".to_owned()])?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://{}", listener.local_addr()?);
        let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api_url = format!("https://{}", api_listener.local_addr()?);
        let provider =
            keyring_secret::open_local_provider(client.clone(), ns, KEYRING, ROOT_KEY).await?;
        let audit = dir.join("unseal-audit.log");
        let state = AppState {
            injector: Arc::new(InjectorConfig {
                image: image.0.clone(),
                image_pull_policy: Some(image.1.to_owned()),
                unseal_url: format!("{api_url}/v1/unseal"),
                ca_pem: Some(made.ca_pem.clone()),
                default_delivery: Default::default(),
            }),
            unsealer: Some(Arc::new(Unsealer {
                client: client.clone(),
                provider: Arc::new(DecryptOnly::cached(provider, Duration::from_secs(30), 64)),
                audit: Arc::new(keyward_core::audit::AuditLog::new(&audit)),
                limiter: RateLimiter::new(20, 5.0),
                audience: "keyward".into(),
                injector_image: image.0.clone(),
            })),
        };
        let tls_config = tls::server_config(&made.cert_pem, &made.key_pem)?;
        let tasks = [
            tokio::spawn(server::serve_tls(
                listener,
                tls_config.clone(),
                admission_router(state.clone()),
                ServerLimits::admission(),
            )),
            tokio::spawn(server::serve_tls(
                api_listener,
                tls_config,
                api_router(state),
                ServerLimits::api(),
            )),
        ];
        let webhook = Webhook {
            tasks,
            injector: image,
            url,
            api_url,
            ca_pem: made.ca_pem,
            audit,
            config_name: format!("keyward-e2e-{ns}"),
        };
        webhook.register(client, ns).await?;
        Ok(webhook)
    }

    /// Url-based configurations scoped to the test namespace by a label
    /// (1.20 has no automatic `kubernetes.io/metadata.name` label).
    async fn register(&self, client: &Client, ns: &str) -> Result<()> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let label = json!({"metadata": {"labels": {SELECTOR_LABEL: ns}}});
        namespaces
            .patch(ns, &PatchParams::default(), &Patch::Merge(&label))
            .await?;
        let common = |path: &str, rules: Value| {
            json!({
                "name": format!("{}.keyward.io", path.trim_start_matches('/')),
                // No caBundle yet: patched in below, as `serve` does when it bootstraps.
                "clientConfig": {"url": format!("{}{path}", self.url)},
                "rules": rules,
                "namespaceSelector": {"matchLabels": {SELECTOR_LABEL: ns}},
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
            })
        };
        // Only opted-in pods, as the chart selects them.
        let mut mutate = common(
            "/mutate",
            json!([{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["pods"]},
                {"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["UPDATE"], "resources": ["pods/ephemeralcontainers"]}]),
        );
        mutate["objectSelector"] = json!({"matchLabels": {INJECTION_LABEL: INJECTION_ENABLED}});
        // `keyward rewrap` and `keyward validate`, through the API server.
        let review = common(
            "/review",
            json!([{"apiGroups": ["keyward.io"], "apiVersions": ["v1alpha1"],
                "operations": ["CREATE"], "resources": ["sealedsecretreviews"]}]),
        );
        // Two-person destruction's stamp, as the chart registers it.
        let stamp = common(
            "/stamp",
            json!([{"apiGroups": ["keyward.io"], "apiVersions": ["v1alpha1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["managedkeys"]}]),
        );
        let mutating: MutatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": {"name": self.config_name},
            "webhooks": [mutate, review, stamp],
        }))?;
        let validating: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": {"name": self.config_name},
            "webhooks": [common("/validate", json!([{"apiGroups": ["keyward.io"], "apiVersions": ["v1alpha1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["managedkeys", "sealedsecrets"]},
                {"apiGroups": ["keyward.io"], "apiVersions": ["v1alpha1"],
                "operations": ["DELETE"], "resources": ["managedkeys"]}]))],
        }))?;
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .create(&PostParams::default(), &mutating)
            .await?;
        Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .create(&PostParams::default(), &validating)
            .await?;
        tls::patch_ca_bundle(
            client,
            Some(&self.config_name),
            Some(&self.config_name),
            &self.ca_pem,
        )
        .await?;
        let patched = Api::<MutatingWebhookConfiguration>::all(client.clone())
            .get(&self.config_name)
            .await?;
        let bundle = patched.webhooks.unwrap_or_default()[0]
            .client_config
            .ca_bundle
            .clone()
            .context("caBundle was not patched in")?;
        ensure!(bundle.0 == self.ca_pem.as_bytes(), "caBundle is not the CA");
        // The API server picks configurations up from a watch: wait until a
        // dry-run pod comes back mutated.
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let probe = app_pod("probe", "db", "true")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let created = pods
                .create(
                    &PostParams {
                        dry_run: true,
                        ..PostParams::default()
                    },
                    &probe,
                )
                .await?;
            let init = created
                .spec
                .and_then(|s| s.init_containers)
                .unwrap_or_default();
            if init.iter().any(|c| c.name == "keyward-inject") {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the API server never called the mutating webhook"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn stop(self, client: &Client) {
        let _ = Api::<MutatingWebhookConfiguration>::all(client.clone())
            .delete(&self.config_name, &DeleteParams::default())
            .await;
        let _ = Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .delete(&self.config_name, &DeleteParams::default())
            .await;
        for task in &self.tasks {
            task.abort();
        }
    }

    /// Points the validating configuration's namespace selector at
    /// `value`: another value stands for a webhook that is down (or a
    /// failurePolicy of Ignore), the test namespace brings it back. The
    /// API server sees the change a moment later.
    async fn select_validation(&self, client: &Client, value: &str) -> Result<()> {
        let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        let mut config = configs.get(&self.config_name).await?;
        for hook in config.webhooks.iter_mut().flatten() {
            hook.namespace_selector = Some(serde_json::from_value(
                json!({"matchLabels": {SELECTOR_LABEL: value}}),
            )?);
        }
        configs
            .replace(&self.config_name, &PostParams::default(), &config)
            .await?;
        Ok(())
    }

    fn audit_log(&self) -> String {
        std::fs::read_to_string(&self.audit).unwrap_or_default()
    }
}

/// A hostNetwork pod, opted in for `inject`, whose app container prints
/// what it was given.
fn app_pod(name: &str, inject: &str, script: &str) -> Result<Pod> {
    let (busybox, pull) = cluster::busybox_image();
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {INJECTION_LABEL: INJECTION_ENABLED},
                     "annotations": {"keyward.io/inject": inject}},
        "spec": {
            "hostNetwork": true,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "app", "image": busybox, "imagePullPolicy": pull,
                "command": ["sh", "-c", script],
            }],
        },
    }))?)
}

/// Creates the keyring (as the operator does on start), a key in it, and
/// a SealedSecret `name` in `ns` sealed for `sealed_for_ns`.
async fn sealed_secret(
    client: &Client,
    ns: &str,
    name: &str,
    sealed_for_ns: &str,
) -> Result<SealedSecret> {
    let target = SecretTarget {
        scope: Scope::Strict,
        namespace: sealed_for_ns.to_owned(),
        secret_name: name.to_owned(),
        key_ref: format!("{sealed_for_ns}/db"),
        access: Vec::new(),
    };
    let encrypted = seal_password(client, ns, &format!("{ns}-db"), &target).await?;
    Ok(serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"keyRef": {"name": "db"}, "encryptedData": encrypted},
    }))?)
}

/// [`PASSWORD`] as item `password`, sealed for `target` under a new key
/// `key_name` of the local keyring in `keyring_ns` (the keyring is created
/// first if missing, as the operator does on start).
async fn seal_password(
    client: &Client,
    keyring_ns: &str,
    key_name: &str,
    target: &SecretTarget,
) -> Result<BTreeMap<String, String>> {
    seal_value(client, keyring_ns, key_name, target, PASSWORD).await
}

/// [`seal_password`] with another value.
async fn seal_value(
    client: &Client,
    keyring_ns: &str,
    key_name: &str,
    target: &SecretTarget,
    value: &str,
) -> Result<BTreeMap<String, String>> {
    let provider =
        keyring_secret::local_provider(client.clone(), keyring_ns, KEYRING, ROOT_KEY).await?;
    let key = provider
        .create_key(&KeySpec {
            name: key_name.to_owned(),
            algorithm: KeyAlgorithm::Aes256,
            owner: Some(format!("e2e-{keyring_ns}")),
            description: None,
        })
        .await?;
    let items: BTreeMap<String, SecretBytes> = [(
        "password".to_owned(),
        SecretBytes::new(value.as_bytes().to_vec()),
    )]
    .into();
    let wrapping = Wrapping::Provider {
        provider: &provider,
        key_id: &key.key_id,
    };
    Ok(seal_secret(target, wrapping, &items).await?)
}

fn container_started(pod: &Pod, name: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.name == name)
        .any(|c| {
            c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        })
}

async fn token_for(client: &Client, ns: &str, pod: &Pod, audience: &str) -> Result<String> {
    keyward_e2e::pods::pod_bound_token(client, ns, pod, audience).await
}

/// Keyward's CSI node plugin on the real kubelet (`webhook_support/csi.rs`).
#[tokio::test]
async fn a_csi_volume_is_filled_before_the_app_starts_refreshed_and_wiped() {
    if !cluster::is_local() {
        println!(
            "skipped: the CSI plugin runs as a host process beside the local cluster's kubelet"
        );
        return;
    }
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let sealed = sealed_secret(&client, &ns, "db", &ns).await?;
        let webhook =
            Webhook::start(&client, &ns, dir.path(), ("unused:e2e".into(), "Never")).await?;
        Api::<SealedSecret>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &sealed)
            .await?;
        let result = csi::flow(&client, &ns, &webhook, dir.path()).await;
        if result.is_err() {
            println!("audit log:\n{}", webhook.audit_log());
        }
        webhook.stop(&client).await;
        result
    })
    .await;
}

#[tokio::test]
async fn annotated_pod_reads_its_secret_and_everything_else_is_denied() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let image = injector_image().await?;
        let dir = tempfile::tempdir()?;
        let sealed = sealed_secret(&client, &ns, "db", &ns).await?;
        let webhook = Webhook::start(&client, &ns, dir.path(), image).await?;
        let result = injection_flow(&client, &ns, &webhook, sealed).await;
        if result.is_err() {
            println!("audit log:\n{}", webhook.audit_log());
        }
        webhook.stop(&client).await;
        result
    })
    .await;
}

async fn injection_flow(
    client: &Client,
    ns: &str,
    webhook: &Webhook,
    sealed: SealedSecret,
) -> Result<()> {
    Api::<SealedSecret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sealed)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);

    // /mutate through the API server: a dry run round trip.
    let probe = app_pod("latency", "db", "true")?;
    let mut dry_runs = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        pods.create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &probe,
        )
        .await?;
        dry_runs.push(started.elapsed());
    }
    dry_runs.sort();
    println!(
        "pod create (dry run, through /mutate): p50 {:?}, max {:?}",
        dry_runs[10], dry_runs[19]
    );

    // The happy path: the real injector writes the file, the app reads it.
    let script = "cat /run/keyward/db/password; echo; ls -ln /run/keyward/db";
    let created = Instant::now();
    let pod = pods
        .create(&PostParams::default(), &app_pod("reader", "db", script)?)
        .await?;
    let spec = pod.spec.clone().context("spec")?;
    ensure!(
        spec.init_containers
            .as_ref()
            .is_some_and(|c| c[0].name == "keyward-inject"),
        "the pod was not mutated: {:?}",
        spec.init_containers
    );
    let done = pods::wait_for_completion(&pods, "reader", Duration::from_secs(120)).await?;
    let to_done = created.elapsed();
    let app_log = pods::container_log(client, &done, "app")
        .await
        .unwrap_or_default();
    let inject_log = pods::container_log(client, &done, "keyward-inject")
        .await
        .unwrap_or_default();
    ensure!(
        pods::phase(&done) == "Succeeded",
        "reader ended {}; injector said: {inject_log}; app said: {app_log}",
        pods::phase(&done)
    );
    ensure!(
        app_log.contains(PASSWORD),
        "app log lacks the value: {app_log}"
    );
    ensure!(
        app_log.contains("-r--------"),
        "file is not 0400: {app_log}"
    );
    println!("pod create -> Succeeded with injection: {to_done:?}");

    env_exec_flow(client, &pods).await?;
    refused_shapes(&pods).await?;

    // The audit log names the pod, secret and key version, never the value.
    let audit = webhook.audit_log();
    ensure!(
        audit.contains("\"outcome\":\"ok\"") && audit.contains("password=1"),
        "{audit}"
    );
    ensure!(!audit.contains(PASSWORD), "the audit log holds the value");

    // Directly, with tokens. Secrets are handed out only while a pod
    // starts: `holder` stands for one, its injector (the configured image)
    // sleeping instead of unsealing, so its token may open what its
    // arguments name for as long as the test needs. Audience keyward
    // works, another audience is refused.
    let url = format!("{}/v1/unseal", webhook.api_url);
    let (image, pull) = (&webhook.injector.0, webhook.injector.1);
    pods::starting_pod(client, ns, "holder", "db", (image, pull)).await?;
    let holder = pods.get("holder").await?;
    let request = |token: String| UnsealRequest {
        token,
        namespace: ns.to_owned(),
        pod: "holder".into(),
        secrets: vec!["db".into()],
    };
    let good = token_for(client, ns, &holder, "keyward").await?;
    let mut latencies = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let opened = inject::unseal_once(&url, &webhook.ca_pem, &request(good.clone())).await?;
        latencies.push(started.elapsed());
        ensure!(opened.secrets["db"].contains_key("password"));
    }
    latencies.sort();
    println!(
        "unseal (TokenReview + pod + SealedSecret reads, cached DEK): p50 {:?}, max {:?}",
        latencies[5], latencies[9]
    );
    let again = request(good.clone());
    let (url_ref, ca_pem, again) = (&url, &webhook.ca_pem, &again);
    torn_audit_tail(webhook, move || async move {
        inject::unseal_once(url_ref, ca_pem, again).await
    })
    .await?;
    let other = token_for(client, ns, &holder, "other").await?;
    match inject::unseal_once(&url, &webhook.ca_pem, &request(other)).await {
        Err(e) if e.to_string().starts_with("denied") => {}
        Err(e) => bail!("wrong audience: expected a denial, got {e}"),
        Ok(_) => bail!("a token for another audience was accepted"),
    }
    ensure!(
        webhook
            .audit_log()
            .contains("TokenReview rejected the token")
            || webhook.audit_log().contains("audience"),
        "no audience denial in the audit log"
    );

    // An expired token: the API server will not mint one (TokenRequest
    // wants >= 600 s), so the holder's real token is re-signed with the
    // cluster's service-account key with every time claim moved into the
    // past; binding, audience and issuer stay as minted.
    match expired_copy(&good).await? {
        Some(expired) => {
            match inject::unseal_once(&url, &webhook.ca_pem, &request(expired)).await {
                Err(e) if e.to_string().starts_with("denied") => {}
                other => bail!(
                    "expired token: expected a denial, got {:?}",
                    other.map(|_| "values")
                ),
            }
            let audit = webhook.audit_log();
            let line = audit
                .lines()
                .rev()
                .find(|l| l.contains("TokenReview rejected the token"))
                .context("no TokenReview denial in the audit log")?;
            ensure!(line.contains("expired"), "not an expiry denial: {line}");
            println!("expired token refused by TokenReview");
        }
        None => println!("expired token: skipped (not the local cluster: no signing key)"),
    }

    entitlement_is_fixed_at_admission(client, ns, webhook, &done, &holder).await?;

    // A hand-written injector that would also write elsewhere (a disk
    // volume): through the webhook, admission refuses the pod.
    let mut sneaky =
        serde_json::to_value(app_pod("sneaky", "db", "cat /run/keyward/db/password")?)?;
    let patch = keyward_webhook::mutate::patch_for(
        &serde_json::from_value(sneaky.clone())?,
        &webhook_injector(webhook)?,
    )
    .map_err(anyhow::Error::msg)?;
    json_patch_apply(&mut sneaky, patch)?;
    sneaky["spec"]["volumes"]
        .as_array_mut()
        .context("volumes")?
        .push(json!({"name": "loot", "emptyDir": {}}));
    sneaky["spec"]["initContainers"][0]["volumeMounts"]
        .as_array_mut()
        .context("injector mounts")?
        .push(json!({"name": "loot", "mountPath": "/loot"}));
    let error = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(sneaky.clone())?,
        )
        .await
        .err()
        .context("a pod whose injector mounts a disk volume was admitted")?;
    ensure!(
        error.to_string().contains("mounts volume `loot`"),
        "the look-alike injector was refused for another reason: {error}"
    );
    // Without the opt-in label the webhook never sees it; unseal refuses.
    sneaky["metadata"]["labels"] = json!({});
    let sneaky: Pod = serde_json::from_value(sneaky)?;
    pods.create(&PostParams::default(), &sneaky).await?;
    let denied = pods::wait_for_completion(&pods, "sneaky", Duration::from_secs(120)).await?;
    let log = pods::container_log(client, &denied, "keyward-inject")
        .await
        .unwrap_or_default();
    ensure!(
        pods::phase(&denied) == "Failed",
        "sneaky pod ended {}",
        pods::phase(&denied)
    );
    ensure!(log.contains("denied"), "injector log: {log}");
    ensure!(
        !container_started(&denied, "app"),
        "the app container started without its secrets"
    );
    ensure!(
        webhook.audit_log().contains("mounts volume `loot`"),
        "no denial of the look-alike injector in the audit log"
    );

    // Real pods, each denied: a tampered ciphertext, and a ServiceAccount
    // that spec.access does not list.
    let sealed_api = Api::<SealedSecret>::namespaced(client.clone(), ns);
    let mut tampered = sealed_secret(client, ns, "tampered", ns).await?;
    for text in tampered.spec.encrypted_data.values_mut() {
        let mut bytes = base64::engine::general_purpose::STANDARD.decode(&*text)?;
        let last = bytes.len() - 1;
        bytes[last] ^= 1; // the GCM tag: the header still matches, so admission allows it
        *text = base64::engine::general_purpose::STANDARD.encode(bytes);
    }
    sealed_api.create(&PostParams::default(), &tampered).await?;
    let mut restricted = sealed_secret(client, ns, "restricted", ns).await?;
    restricted.spec.access = Some(keyward_crds::Access {
        service_accounts: vec!["payments-api".into()],
    });
    sealed_api
        .create(&PostParams::default(), &restricted)
        .await?;
    for name in ["tampered", "restricted"] {
        pods.create(
            &PostParams::default(),
            &app_pod(name, name, "cat /run/keyward/*/*")?,
        )
        .await?;
    }
    for (name, reason) in [
        ("tampered", "authentication failed"),
        ("restricted", "not in spec.access.serviceAccounts"),
    ] {
        let done = pods::wait_for_completion(&pods, name, Duration::from_secs(120)).await?;
        let log = pods::container_log(client, &done, "keyward-inject")
            .await
            .unwrap_or_default();
        ensure!(
            pods::phase(&done) == "Failed" && log.contains("denied"),
            "{name}: ended {}; injector said: {log}",
            pods::phase(&done)
        );
        ensure!(!container_started(&done, "app"), "{name}: the app started");
        ensure!(
            webhook.audit_log().contains(reason),
            "{name}: the audit log lacks `{reason}`"
        );
    }

    // Directly: a token bound to one pod naming another, another
    // namespace, and a token whose pod has been deleted.
    let sneaky_token = token_for(client, ns, &denied, "keyward").await?;
    let denials = [
        ("another pod", request(sneaky_token)),
        (
            "another namespace",
            UnsealRequest {
                namespace: "default".into(),
                ..request(good.clone())
            },
        ),
    ];
    for (case, body) in denials {
        match inject::unseal_once(&url, &webhook.ca_pem, &body).await {
            Err(e) if e.to_string().starts_with("denied") => {}
            other => bail!(
                "{case}: expected a denial, got {:?}",
                other.map(|_| "values")
            ),
        }
    }
    pods.delete("holder", &DeleteParams::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while pods.get_opt("holder").await?.is_some() {
        ensure!(Instant::now() < deadline, "holder was not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    match inject::unseal_once(&url, &webhook.ca_pem, &request(good)).await {
        Err(e) if e.to_string().starts_with("denied") => {}
        other => bail!(
            "deleted pod: expected a denial, got {:?}",
            other.map(|_| "values")
        ),
    }
    // (The API server itself rejects a token whose bound pod is gone, so the
    // audit reason is TokenReview's, not the webhook's own pod lookup.)
    let audit = webhook.audit_log();
    ensure!(
        audit.contains("request names"),
        "the audit log lacks the mismatch denials"
    );
    ensure!(!audit.contains(PASSWORD), "the audit log holds the value");
    let summary = keyward_core::audit::verify(&webhook.audit)?;
    println!("audit log: {summary:?}");
    // The webhook runs in this process: its counters saw every case above.
    let metrics = keyward_webhook::metrics::metrics();
    for reason in [
        "unauthenticated",
        "not_starting",
        "not_running_yet",
        "not_entitled",
        "not_injected",
        "access_list",
        "cannot_open",
        "request_mismatch",
    ] {
        ensure!(
            metrics.denials_with(reason) >= 1,
            "no `{reason}` denial counted"
        );
    }
    ensure!(metrics.decrypts() >= 11 && metrics.unseal_requests_with("ok") >= 11);
    ensure!(
        metrics.dek_cache_hits() >= 1,
        "the holder's repeated unseals never hit the DEK cache"
    );
    let text = metrics.render();
    ensure!(text.contains("keyward_admission_duration_seconds_count{route=\"mutate\"}"));
    println!(
        "metrics: {} decrypts, {} provider unwraps, {} DEK cache hits",
        metrics.decrypts(),
        metrics.provider_unwraps(),
        metrics.dek_cache_hits()
    );

    start_up_cost(&pods).await
}

/// Issue 14's entitlement must-shows: a token bound to a pod past its
/// start (`done`, Succeeded), to a Pending pod whose injector never ran,
/// and to a starting pod (`holder`) asking for a secret its annotation
/// names only since an edit after admission: each denied, with its reason
/// in the audit log.
async fn entitlement_is_fixed_at_admission(
    client: &Client,
    ns: &str,
    webhook: &Webhook,
    done: &Pod,
    holder: &Pod,
) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let url = format!("{}/v1/unseal", webhook.api_url);
    let mut unscheduled = serde_json::to_value(app_pod("unscheduled", "db", "true")?)?;
    unscheduled["spec"]["nodeSelector"] = json!({"keyward.io/e2e-no-such-node": "true"});
    let unscheduled = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(unscheduled)?,
        )
        .await?;
    pods.patch(
        "holder",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"keyward.io/inject": "db,tampered"}}})),
    )
    .await?;
    let cases = [
        (
            done,
            "db",
            "this pod's injector has finished (pod phase Succeeded)",
        ),
        (
            &unscheduled,
            "db",
            "this pod's injector has not started (pod phase Pending)",
        ),
        (
            holder,
            "tampered",
            "SealedSecret `tampered` is not among those the pod was admitted for (db)",
        ),
    ];
    for (pod, secret, reason) in cases {
        let request = UnsealRequest {
            token: token_for(client, ns, pod, "keyward").await?,
            namespace: ns.to_owned(),
            pod: pod.name_any(),
            secrets: vec![secret.to_owned()],
        };
        // A pod that has not started yet gets a retryable 503 (its
        // injector's running status may just be late); the others 403.
        match inject::unseal_once(&url, &webhook.ca_pem, &request).await {
            Err(e) if e.to_string().starts_with("denied") => {}
            Err(e) if pod.name_any() == "unscheduled" && e.to_string().contains("503") => {}
            other => bail!(
                "{}: expected a denial, got {:?}",
                pod.name_any(),
                other.map(|_| "values")
            ),
        }
        ensure!(
            webhook.audit_log().contains(reason),
            "{}: the audit log lacks `{reason}`",
            pod.name_any()
        );
    }
    println!(
        "entitlement: Succeeded, never-started and re-annotated pods denied with their reasons"
    );
    Ok(())
}

/// The audit log's last line is cut mid-record while the webhook runs (a
/// torn write): the next unseals still succeed, the broken file is kept as
/// it is, the new segment starts with an `audit.break` record, and verify
/// names the file, line and byte offset.
async fn torn_audit_tail<F, Fut, T>(webhook: &Webhook, unseal: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let text = std::fs::read(&webhook.audit)?;
    let last_line = text[..text.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    let line_no = text[..last_line].iter().filter(|&&b| b == b'\n').count() + 1;
    let cut_to = last_line + 25;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&webhook.audit)?
        .set_len(cut_to as u64)?;
    for _ in 0..2 {
        unseal()
            .await
            .context("an unseal after the torn audit line")?;
    }
    let broken = webhook.audit.with_file_name("unseal-audit.log.000001");
    ensure!(
        std::fs::metadata(&broken)?.len() == cut_to as u64,
        "the torn segment was not kept as it was"
    );
    let summary = keyward_core::audit::verify(&webhook.audit)?;
    let at = &summary.breaks.first().context("no recorded break")?.at;
    ensure!(
        (&at.file, at.line, at.offset) == (&broken, line_no as u64, last_line as u64),
        "break recorded at {at}, expected line {line_no} (byte {last_line}) of {}",
        broken.display()
    );
    // What `keyward audit verify` prints for it (cli/tests/audit.rs runs
    // the binary; here the shared target directory may hold another
    // checkout's build of it).
    println!(
        "audit log after a torn line: {} records, recorded break at {}: {}",
        summary.records, at, summary.breaks[0].reason
    );
    ensure!(
        summary.breaks[0].reason.starts_with("torn"),
        "{:?}",
        summary.breaks
    );
    Ok(())
}

/// `keyward.io/env-exec`: the app's main process gets the value as
/// $PASSWORD from the wrapper; the pod spec never holds it. The app runs
/// from the injector image, which has a shell and the glibc the copied
/// (debug, dynamically linked) wrapper needs.
async fn env_exec_flow(client: &Client, pods: &Api<Pod>) -> Result<()> {
    let (image, pull) = match std::env::var("KEYWARD_E2E_WEBHOOK_IMAGE") {
        Ok(image) => (image, "IfNotPresent"),
        Err(_) => (IMAGE.to_owned(), "Never"),
    };
    let env_pod = |name: &str, command: Value| -> Result<Pod> {
        Ok(serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {INJECTION_LABEL: INJECTION_ENABLED},
                "annotations": {"keyward.io/inject": "db", "keyward.io/env-exec": "true"}},
            "spec": {
                "hostNetwork": true, "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "app", "image": image, "imagePullPolicy": pull,
                    "command": command, "args": ["-c", "echo \"password=$PASSWORD\""]}],
            },
        }))?)
    };
    let created = pods
        .create(
            &PostParams::default(),
            &env_pod("env-reader", json!(["/bin/sh"]))?,
        )
        .await?;
    let command = created.spec.as_ref().context("spec")?.containers[0]
        .command
        .clone()
        .unwrap_or_default();
    ensure!(
        command
            .first()
            .is_some_and(|c| c.ends_with("/.keyward-exec"))
            && command.ends_with(&["/bin/sh".to_owned()]),
        "the app command was not wrapped: {command:?}"
    );
    let done = pods::wait_for_completion(pods, "env-reader", Duration::from_secs(120)).await?;
    let app_log = pods::container_log(client, &done, "app")
        .await
        .unwrap_or_default();
    let inject_log = pods::container_log(client, &done, "keyward-inject")
        .await
        .unwrap_or_default();
    ensure!(
        pods::phase(&done) == "Succeeded" && app_log.contains(&format!("password={PASSWORD}")),
        "env-reader ended {}; injector said: {inject_log}; app said: {app_log}",
        pods::phase(&done)
    );
    let stored = serde_json::to_string(&pods.get("env-reader").await?)?;
    ensure!(!stored.contains(PASSWORD), "the value is in the stored pod");
    println!("env-exec: the app printed $PASSWORD; the stored pod does not hold it");

    // No `command`: the webhook cannot know the image's ENTRYPOINT.
    match pods
        .create(
            &PostParams::default(),
            &env_pod("env-no-command", Value::Null)?,
        )
        .await
    {
        Err(kube::Error::Api(status)) => ensure!(
            status.message.contains("ENTRYPOINT") && status.message.contains("command"),
            "the refusal does not say what to do: {}",
            status.message
        ),
        other => bail!(
            "an env-exec pod without command was admitted: {:?}",
            other.map(|p| p.name_any())
        ),
    }
    Ok(())
}

/// Pod creation -> Succeeded, the same pod with and without injection.
/// Pods that would put plaintext on a disk or the unseal token in the
/// app's hands are refused by the API server, with the webhook's reason.
/// (Debug containers are covered in-process, `webhook/tests/admission.rs`:
/// this cluster, 1.20, has ephemeral containers behind an alpha gate.)
async fn refused_shapes(pods: &Api<Pod>) -> Result<()> {
    let refusals = [
        (
            "hostpath",
            json!({"name": "keyward-secrets", "hostPath": {"path": "/var/tmp/keyward-e2e"}}),
            None,
            "must be an emptyDir with medium: Memory",
        ),
        (
            "token-in-app",
            json!({"name": "keyward-token", "projected": {"sources": [{"serviceAccountToken":
                {"audience": "keyward", "expirationSeconds": 600, "path": "token"}}]}}),
            Some("keyward-token"),
            "app container `app` mounts volume `keyward-token`",
        ),
    ];
    for (name, volume, mount, expected) in refusals {
        let mut pod = serde_json::to_value(app_pod(name, "db", "true")?)?;
        pod["spec"]["volumes"] = json!([volume]);
        if let Some(volume) = mount {
            pod["spec"]["containers"][0]["volumeMounts"] =
                json!([{"name": volume, "mountPath": "/mnt/x"}]);
        }
        let pod: Pod = serde_json::from_value(pod)?;
        let error = pods
            .create(&PostParams::default(), &pod)
            .await
            .err()
            .with_context(|| format!("pod {name} was admitted"))?;
        ensure!(
            error.to_string().contains(expected),
            "pod {name} refused for another reason: {error}"
        );
        println!("refused at admission: {name}: {error}");
    }

    Ok(())
}

async fn start_up_cost(pods: &Api<Pod>) -> Result<()> {
    let mut figures = Vec::new();
    for inject in [false, true] {
        let mut times = Vec::new();
        for i in 0..5 {
            let name = format!("start-{}-{i}", if inject { "injected" } else { "plain" });
            let mut pod = app_pod(
                &name,
                "db",
                "cat /run/keyward/db/password >/dev/null || true",
            )?;
            if !inject {
                // Not opted in: neither the label nor the annotation.
                pod.metadata.annotations = None;
                pod.metadata.labels = None;
            }
            let started = Instant::now();
            pods.create(&PostParams::default(), &pod).await?;
            let done = pods::wait_for_completion(pods, &name, Duration::from_secs(120)).await?;
            ensure!(
                pods::phase(&done) == "Succeeded",
                "{name} ended {}",
                pods::phase(&done)
            );
            times.push(started.elapsed());
        }
        times.sort();
        figures.push((inject, times[2], times[4]));
    }
    for (inject, p50, max) in figures {
        println!("pod create -> Succeeded, injection {inject}: p50 {p50:?}, max {max:?} (5 pods)");
    }
    Ok(())
}

fn webhook_injector(webhook: &Webhook) -> Result<InjectorConfig> {
    let (image, pull) = match std::env::var("KEYWARD_E2E_WEBHOOK_IMAGE") {
        Ok(image) => (image, "IfNotPresent"),
        Err(_) => (IMAGE.to_owned(), "Never"),
    };
    Ok(InjectorConfig {
        image,
        image_pull_policy: Some(pull.into()),
        unseal_url: format!("{}/v1/unseal", webhook.api_url),
        ca_pem: Some(webhook.ca_pem.clone()),
        default_delivery: Default::default(),
    })
}

fn json_patch_apply(doc: &mut Value, ops: Vec<Value>) -> Result<()> {
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))?;
    json_patch::patch(doc, &patch)?;
    Ok(())
}

#[tokio::test]
async fn admission_rejects_illegal_transitions_and_foreign_envelopes() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        // Sealed for another namespace, built before the webhook is up.
        let foreign = sealed_secret(&client, &ns, "copied", "elsewhere").await?;
        let webhook =
            Webhook::start(&client, &ns, dir.path(), ("unused:e2e".into(), "Never")).await?;
        let mut result = admission_flow(&client, &ns, foreign).await;
        if result.is_ok() {
            result = rewrap_flow(&client, &ns, &webhook, dir.path()).await;
        }
        if result.is_ok() {
            result = renewal_flow(&client, &ns).await;
        }
        if result.is_err() {
            println!("audit log:\n{}", webhook.audit_log());
        }
        webhook.stop(&client).await;
        result
    })
    .await;
}

async fn admission_flow(client: &Client, ns: &str, foreign: SealedSecret) -> Result<()> {
    // Replicas (and restarts) that bootstrap through one Secret share a CA.
    let sans = ["127.0.0.1".to_owned()];
    let first = tls::shared_bootstrap(client, ns, "keyward-webhook-tls", &sans).await?;
    let second = tls::shared_bootstrap(client, ns, "keyward-webhook-tls", &sans).await?;
    ensure!(first.ca_pem == second.ca_pem && first.cert_pem == second.cert_pem);
    tls::server_config(&second.cert_pem, &second.key_pem)?;

    let keys: Api<ManagedKey> = Api::namespaced(client.clone(), ns);
    let key: ManagedKey = serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
        "metadata": {"name": "db"}, "spec": {"provider": {"local": {}}},
    }))?;
    keys.create(&PostParams::default(), &key).await?;
    // No operator runs, so the reported state is PreActivation.
    let illegal = json!({"spec": {"state": "Suspended"}});
    match keys
        .patch("db", &PatchParams::default(), &Patch::Merge(&illegal))
        .await
    {
        Err(kube::Error::Api(status)) => {
            ensure!(
                status.message.contains("spec.state") && status.message.contains("Active"),
                "the denial does not name the legal next state: {}",
                status.message
            );
            println!("illegal transition refused: {}", status.message);
        }
        other => bail!("an illegal transition was admitted: {other:?}"),
    }

    let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
    match sealed.create(&PostParams::default(), &foreign).await {
        Err(kube::Error::Api(status)) => {
            ensure!(
                status.message.contains("namespace") && status.message.contains("elsewhere"),
                "the denial does not name the namespace: {}",
                status.message
            );
            println!("foreign envelope refused: {}", status.message);
        }
        other => bail!("a SealedSecret sealed for another namespace was admitted: {other:?}"),
    }
    Ok(())
}

/// The `keyward` CLI binary of this checkout.
async fn keyward_cli() -> Result<PathBuf> {
    keyward_e2e::binaries::build_binary("keyward", "keyward", false).await
}

/// GitOps after a rotation: `keyward rewrap` asks the real webhook through
/// the API server (a dry-run SealedSecretReview) as an exec-plugin user;
/// the file moves to the new key version and still opens. A user without
/// `create sealedsecretreviews`, and one with it but without `update
/// sealedsecrets`, are refused and the file is left as it was. Then
/// `keyward validate`: yes for the file, and the reason for a moved and a
/// tampered copy.
async fn rewrap_flow(client: &Client, ns: &str, webhook: &Webhook, dir: &Path) -> Result<()> {
    let cli = keyward_cli().await?;
    let mut sealed = sealed_secret(client, ns, "rotating", ns).await?;
    sealed.metadata.labels = Some([("app".to_owned(), "api".to_owned())].into());
    let key_id = keyward_core::envelope::Envelope::decode(&sealed.spec.encrypted_data["password"])?
        .provider_key_id;
    // No operator runs here: report the ManagedKey Active, as it would
    // (the webhook re-wraps only under an Active key).
    let keys = Api::<ManagedKey>::namespaced(client.clone(), ns);
    let report = |state: &str| json!({"status": {"providerKeyId": key_id, "state": state}});
    keys.patch_status(
        "db",
        &PatchParams::default(),
        &Patch::Merge(&report("Active")),
    )
    .await?;
    let file = dir.join("rotating.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&sealed)?)?;
    let provider = keyring_secret::local_provider(client.clone(), ns, KEYRING, ROOT_KEY).await?;
    let rotated = provider.rotate_key(&key_id).await?;
    ensure!(
        rotated.primary_version == 2,
        "rotation gave {}",
        rotated.primary_version
    );
    let exec_kubeconfig = keyward_e2e::kubeconfig::exec_plugin(dir)?;

    // tokio's Command: the webhook serves from this test's runtime.
    let keyward = |args: Vec<std::ffi::OsString>, token_file: Option<&Path>| {
        let mut command = tokio::process::Command::new(&cli);
        command.args(args).env("KUBECONFIG", &exec_kubeconfig);
        if let Some(token_file) = token_file {
            command.arg("--token-file").arg(token_file);
        }
        async move { command.output().await }
    };
    let rewrap_args = || vec!["rewrap".into(), "-f".into(), file.clone().into_os_string()];

    // ServiceAccount tokens: `nobody` without RBAC, `asker` allowed to ask
    // but not to update SealedSecrets.
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    let mut token_files = Vec::new();
    for name in ["nobody", "asker"] {
        accounts
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}}))?,
            )
            .await?;
        let token = accounts
            .create_token_request(name, &PostParams::default(), &TokenRequest::default())
            .await?
            .status
            .context("TokenRequest returned no token")?
            .token;
        let token_file = dir.join(format!("{name}-token"));
        std::fs::write(&token_file, &token)?;
        token_files.push(token_file);
    }
    grant_reviews(client, ns, "asker").await?;
    let before = std::fs::read(&file)?;
    let out = keyward(rewrap_args(), Some(&token_files[0])).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success()
            && stderr.contains("no permission")
            && stderr.contains("sealedsecretreviews.keyward.io")
            && stderr.contains("unchanged"),
        "a user without create sealedsecretreviews: {stderr}"
    );
    // The RBAC authorizer sees the new binding from its informer, soon after.
    let deadline = Instant::now() + Duration::from_secs(10);
    let stderr = loop {
        let out = keyward(rewrap_args(), Some(&token_files[1])).await?;
        ensure!(!out.status.success(), "asker rewrapped");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !stderr.contains("no permission") || Instant::now() > deadline {
            break stderr;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ensure!(
        stderr.contains("Keyward refused")
            && stderr.contains("may not update sealedsecrets")
            && stderr.contains("unchanged"),
        "a user without update sealedsecrets: {stderr}"
    );
    ensure!(
        std::fs::read(&file)? == before,
        "the refused rewrap changed the file"
    );
    ensure!(
        webhook.audit_log().contains("may not update sealedsecrets"),
        "the audit log lacks the SubjectAccessReview denial"
    );
    println!("rewrap refusals: {}", stderr.trim());

    // The kubeconfig's admin user, through its exec plugin.
    let started = Instant::now();
    let out = keyward(rewrap_args(), None).await?;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "keyward rewrap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(stdout.contains("password: key version 1 -> 2"), "{stdout}");
    println!("keyward rewrap ({elapsed:?}): {}", stdout.trim());
    let rewritten: SealedSecret = serde_yaml_ng::from_str(&std::fs::read_to_string(&file)?)?;
    let envelope =
        keyward_core::envelope::Envelope::decode(&rewritten.spec.encrypted_data["password"])?;
    ensure!(
        envelope.key_version == 2,
        "the file is on version {}",
        envelope.key_version
    );
    ensure!(
        rewritten.metadata.labels == sealed.metadata.labels,
        "labels were lost"
    );
    let target = SecretTarget {
        scope: Scope::Strict,
        namespace: ns.to_owned(),
        secret_name: "rotating".into(),
        key_ref: format!("{ns}/db"),
        access: Vec::new(),
    };
    let opened =
        keyward_core::envelope::open_secret(&target, &provider, &rewritten.spec.encrypted_data)
            .await?;
    ensure!(
        opened["password"].expose() == PASSWORD.as_bytes(),
        "the re-wrapped value differs"
    );
    // And the cluster takes it (admission checks every header).
    Api::<SealedSecret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &rewritten)
        .await?;
    let audit = webhook.audit_log();
    ensure!(
        audit.contains("password=1->2") && !audit.contains(PASSWORD),
        "{audit}"
    );

    // Again: nothing to move, the file is left alone.
    let before = std::fs::read(&file)?;
    let out = keyward(rewrap_args(), None).await?;
    ensure!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("already on key version 2")
    );
    ensure!(std::fs::read(&file)? == before);

    validate_flow(&keyward, &file, dir).await?;

    // A Suspended key takes nothing: refused with the reason, file unchanged.
    keys.patch_status(
        "db",
        &PatchParams::default(),
        &Patch::Merge(&report("Suspended")),
    )
    .await?;
    let out = keyward(rewrap_args(), None).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && stderr.contains(&format!("ManagedKey {ns}/db is Suspended")),
        "rewrap under a Suspended key: {stderr}"
    );
    ensure!(std::fs::read(&file)? == before);
    println!("rewrap under a Suspended key refused: {}", stderr.trim());
    Ok(())
}

/// `keyward validate`: the file opens; a copy renamed and one with a
/// changed byte each do not, and the output says why.
async fn validate_flow<F, Fut>(keyward: &F, file: &Path, dir: &Path) -> Result<()>
where
    F: Fn(Vec<std::ffi::OsString>, Option<&Path>) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<std::process::Output>>,
{
    let validate = |path: &Path| vec!["validate".into(), "-f".into(), path.as_os_str().to_owned()];
    let out = keyward(validate(file), None).await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout.contains("password: opens (key version 2)"),
        "validate of a good file: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(file)?;
    let renamed = dir.join("renamed.yaml");
    std::fs::write(&renamed, text.replace("name: rotating", "name: renamed"))?;
    let mut tampered: SealedSecret = serde_yaml_ng::from_str(&text)?;
    let password = tampered.spec.encrypted_data.get_mut("password").unwrap();
    let mut bytes = base64::engine::general_purpose::STANDARD.decode(password.as_bytes())?;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    *password = base64::engine::general_purpose::STANDARD.encode(bytes);
    let tampered_file = dir.join("tampered.yaml");
    std::fs::write(&tampered_file, serde_yaml_ng::to_string(&tampered)?)?;
    for (path, reason) in [
        (&renamed, "secret name `rotating`"),
        (&tampered_file, "authentication failed"),
    ] {
        let out = keyward(validate(path), None).await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            !out.status.success()
                && stdout.contains("password: does NOT open")
                && stdout.contains(reason),
            "validate of {}: {stdout}",
            path.display()
        );
        println!("keyward validate {}: {}", path.display(), stdout.trim());
    }
    Ok(())
}

/// Lets ServiceAccount `account` create SealedSecretReviews in `ns`, and
/// nothing else.
async fn grant_reviews(client: &Client, ns: &str, account: &str) -> Result<()> {
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(json!({
        "metadata": {"name": account},
        "rules": [{"apiGroups": ["keyward.io"], "resources": ["sealedsecretreviews"],
                   "verbs": ["create"]}],
    }))?;
    Api::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await?;
    let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": account},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
    }))?;
    Api::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}

/// `token` with `iat`/`nbf`/`exp` an hour or two in the past, re-signed
/// (RS256) with the local cluster's service-account signing key through
/// `openssl dgst`. `None` when that key is not at hand.
async fn expired_copy(token: &str) -> Result<Option<String>> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Ok(state) = std::env::var("KEYWARD_E2E_STATE") else {
        return Ok(None);
    };
    let key = Path::new(&state).join("pki/sa.key");
    if !cluster::is_local() || !key.exists() {
        return Ok(None);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        bail!("the minted token is not a JWT");
    };
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    claims["iat"] = json!(now - 7200);
    claims["nbf"] = json!(now - 7200);
    claims["exp"] = json!(now - 3600); // beyond the validator's one-minute leeway
    let signing_input = format!(
        "{header}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?)
    );
    // Blocking, briefly: a few hundred bytes through openssl.
    let mut openssl = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running openssl to sign the expired token")?;
    {
        use std::io::Write;
        let mut stdin = openssl.stdin.take().context("openssl stdin")?;
        stdin.write_all(signing_input.as_bytes())?;
    }
    let out = openssl.wait_with_output()?;
    ensure!(out.status.success(), "openssl dgst -sign failed");
    Ok(Some(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(out.stdout)
    )))
}

/// Two "replicas" serving from one `--tls-secret` with a 10 s serving
/// certificate: before it expires one renews it under the same CA and
/// stores it, the other adopts it, and both hand the new certificate to
/// new handshakes without a restart.
async fn renewal_flow(client: &Client, ns: &str) -> Result<()> {
    use keyward_webhook::tls::der::{CertFacts, facts};
    use keyward_webhook::tls::probe::serving_certificate;
    use keyward_webhook::tls::resolver::SwappableCert;
    use keyward_webhook::tls::rotation::{Renewal, pem_facts};
    let lifetimes = tls::Lifetimes {
        ca: Duration::from_secs(3600),
        leaf: Duration::from_secs(10),
    };
    let sans = vec!["127.0.0.1".to_owned()];
    let secret = "keyward-webhook-renewing";
    let mut replicas = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let made = tls::shared_bootstrap_with(client, ns, secret, &sans, &lifetimes).await?;
        let cert = SwappableCert::new(&made.cert_pem, &made.key_pem)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        // Renewal needs only handshakes: admission without an unseal API.
        let app = admission_router(AppState {
            injector: Arc::new(InjectorConfig {
                image: "unused".into(),
                image_pull_policy: None,
                unseal_url: "https://127.0.0.1:1/v1/unseal".into(),
                ca_pem: None,
                default_delivery: Default::default(),
            }),
            unsealer: None,
        });
        tasks.push(tokio::spawn(server::serve_tls(
            listener,
            cert.server_config()?,
            app,
            ServerLimits::admission(),
        )));
        let renewal = Renewal {
            sans: sans.clone(),
            lifetimes,
            client: Some(client.clone()),
            secret: Some((ns.to_owned(), secret.to_owned())),
            mutating_webhook_config: None,
            validating_webhook_config: None,
            ca_out: None,
            on_new_ca: None,
        };
        tasks.push(tokio::spawn(renewal.run(cert, made)));
        replicas.push(address);
    }
    let ca_pem = tls::shared_bootstrap(client, ns, secret, &sans)
        .await?
        .ca_pem;
    let seen = |address: String| {
        let ca_pem = ca_pem.clone();
        async move {
            let der = serving_certificate(&address, "127.0.0.1", &ca_pem).await?;
            facts(&der).context("unreadable certificate")
        }
    };
    let first: CertFacts = seen(replicas[0].clone()).await?;
    ensure!(
        first == seen(replicas[1].clone()).await?,
        "replicas start apart"
    );
    let started = Instant::now();
    let result = async {
        loop {
            let (a, b) = (
                seen(replicas[0].clone()).await?,
                seen(replicas[1].clone()).await?,
            );
            if a != first && a == b {
                return Ok::<_, anyhow::Error>(a);
            }
            ensure!(
                started.elapsed() < Duration::from_secs(30),
                "no shared renewal within 30 s: {a:?} / {b:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    .await;
    for task in tasks {
        task.abort();
    }
    let renewed = result?;
    ensure!(renewed.serial != first.serial && renewed.not_after > first.not_after);
    // Still the first CA (the clients above trust only it), and stored.
    let stored = tls::shared_bootstrap(client, ns, secret, &sans).await?;
    ensure!(stored.ca_pem == ca_pem, "the CA changed");
    ensure!(
        pem_facts(&stored.cert_pem) == Some(renewed.clone()),
        "the Secret holds another certificate"
    );
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    println!(
        "renewed after {:?} on both replicas: serial {} -> {}, notAfter {} -> {}",
        started.elapsed(),
        hex(&first.serial),
        hex(&renewed.serial),
        first.not_after,
        renewed.not_after
    );
    Ok(())
}
