//! Keyward's CSI node plugin on the real kubelet (local cluster only): the
//! `keyward-csi` binary runs as a host process (the node is this machine),
//! registers through the kubelet's plugin directory, and serves an inline
//! volume. The kubelet hands it a pod-bound token (CSIDriver tokenRequests,
//! the CSIServiceAccountToken gate of `e2e/cluster/up`), and it unseals
//! through the in-process webhook's `/v1/unseal`.
//!
//! Shown: the app reads the value from a tmpfs that exists before it
//! starts; a re-sealed value replaces the file while the pod runs, and a
//! reader in a loop never sees a partial value; a pod whose ServiceAccount
//! the SealedSecret does not allow never starts, with the reason in its
//! events; after deletion, the mount is gone.

use crate::{PASSWORD, Webhook, seal_password, seal_value};
use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Event, Pod, ServiceAccount};
use keyward_core::envelope::{Scope, SecretTarget};
use keyward_crds::SealedSecret;
use keyward_e2e::csi::Plugin;
use keyward_e2e::{cluster, pods};
use keyward_webhook::unseal::csi_entitlement::CSI_DRIVER;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const REFRESHED: &str = "a-value-sealed-while-the-pod-ran";
/// `keyward_csi::events::REFRESHED`.
const REFRESH_REASON: &str = "SecretsRefreshed";

pub async fn flow(client: &Client, ns: &str, webhook: &Webhook, dir: &Path) -> Result<()> {
    let state = PathBuf::from(std::env::var("KEYWARD_E2E_STATE").context("KEYWARD_E2E_STATE")?);
    let kubelet_root = state.join("kubelet/root");
    let plugin = Plugin::start(client, &webhook.api_url, &webhook.ca_pem, dir).await?;
    let result = async {
        reads_and_refreshes(client, ns, &kubelet_root, &plugin).await?;
        the_webhook_adds_the_volume(client, ns).await?;
        refuses_a_service_account_not_allowed(client, ns, webhook).await
    }
    .await;
    if result.is_err() {
        println!("keyward-csi log:\n{}", plugin.log());
    }
    plugin.stop().await;
    result
}

/// A pod with the inline volume; `script` runs in its app container.
fn csi_pod(name: &str, service_account: &str, secrets: &str, script: &str) -> Result<Pod> {
    let (busybox, pull) = cluster::busybox_image();
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "hostNetwork": true,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "serviceAccountName": service_account,
            "containers": [{
                "name": "app", "image": busybox, "imagePullPolicy": pull,
                "command": ["sh", "-c", script],
                "volumeMounts": [{"name": "secrets", "mountPath": "/run/keyward", "readOnly": true}],
            }],
            "volumes": [{"name": "secrets", "csi": {
                "driver": CSI_DRIVER, "readOnly": true,
                "volumeAttributes": {"secrets": secrets},
            }}],
        },
    }))?)
}

/// The app reads the value at start, then in a loop while `db` is
/// re-sealed: every line is the old or the new value, and the new one
/// arrives. After deletion the volume's tmpfs is unmounted and gone.
async fn reads_and_refreshes(
    client: &Client,
    ns: &str,
    kubelet_root: &Path,
    plugin: &Plugin,
) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let script = format!(
        "for i in $(seq 1 600); do cat /run/keyward/db/password; echo; \
         grep -q {REFRESHED} /run/keyward/db/password && exit 0; sleep 0.1; done; exit 1"
    );
    let created = Instant::now();
    let pod = pods
        .create(
            &PostParams::default(),
            &csi_pod("csi-reader", "default", "db", &script)?,
        )
        .await?;
    let uid = pod.uid().context("pod uid")?;
    wait_started(&pods, "csi-reader").await?;
    println!(
        "CSI pod: app container started {:?} after create",
        created.elapsed()
    );
    let target = kubelet_root.join(format!(
        "pods/{uid}/volumes/kubernetes.io~csi/secrets/mount"
    ));
    ensure!(
        is_tmpfs(&target)?,
        "{} is not a tmpfs mount",
        target.display()
    );

    // Re-seal `db` with a new value (under a new key) while the pod runs.
    let resealed_at = Instant::now();
    let target_for = SecretTarget {
        scope: Scope::Strict,
        namespace: ns.to_owned(),
        secret_name: "db".into(),
        key_ref: format!("{ns}/db"),
        access: Vec::new(),
    };
    let sealed_secrets = Api::<SealedSecret>::namespaced(client.clone(), ns);
    let mut sealed = sealed_secrets.get("db").await?;
    sealed.spec.encrypted_data =
        seal_value(client, ns, &format!("{ns}-db-2"), &target_for, REFRESHED).await?;
    sealed_secrets
        .replace("db", &PostParams::default(), &sealed)
        .await?;
    let done = pods::wait_for_completion(&pods, "csi-reader", Duration::from_secs(120)).await?;
    let log = pods::container_log(client, &done, "app").await?;
    ensure!(
        pods::phase(&done) == "Succeeded",
        "the refreshed value never arrived: {log}"
    );
    println!(
        "CSI refresh: the running pod read the re-sealed value {:?} after the SealedSecret changed",
        resealed_at.elapsed()
    );
    let lines: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
    ensure!(
        lines.first() == Some(&PASSWORD),
        "first read: {:?}",
        lines.first()
    );
    if let Some(torn) = lines.iter().find(|l| **l != PASSWORD && **l != REFRESHED) {
        bail!("a read saw neither value whole: {torn:?}");
    }
    println!(
        "CSI refresh: {} reads, each the old or the new value whole",
        lines.len()
    );
    refresh_was_reported(client, ns, &uid, plugin).await?;

    pods.delete("csi-reader", &DeleteParams::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while target.exists() || mounted(&uid)? {
        ensure!(
            Instant::now() < deadline,
            "{} still there 60 s after deletion",
            target.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("CSI volume unmounted and removed after the pod was deleted");
    Ok(())
}

/// The refresh shows in the pod's Events (naming the SealedSecret, never
/// the value) and in the plugin's metrics.
async fn refresh_was_reported(client: &Client, ns: &str, uid: &str, plugin: &Plugin) -> Result<()> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(15);
    let note = loop {
        let list = events.list(&ListParams::default()).await?;
        let found = list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some(REFRESH_REASON)
                && e.involved_object.uid.as_deref() == Some(uid)
        });
        if let Some(event) = found {
            break event.message.unwrap_or_default();
        }
        ensure!(
            Instant::now() < deadline,
            "no {} Event on the pod 15 s after the refresh",
            REFRESH_REASON
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    ensure!(
        note.contains("db"),
        "the Event does not name the SealedSecret: {note}"
    );
    ensure!(
        !note.contains(REFRESHED),
        "the Event carries the value: {note}"
    );
    println!("CSI refresh Event on the pod: {note}");
    let metrics = plugin.metrics().await?;
    for outcome in ["mounted", "refreshed"] {
        let series = format!("keyward_csi_publishes_total{{outcome=\"{outcome}\"}}");
        let count = keyward_e2e::csi::counter(&metrics, &series);
        ensure!(count >= 1, "{series} is {count}:\n{metrics}");
        println!("CSI metrics: {series} {count}");
    }
    Ok(())
}

/// An opted-in pod annotated `keyward.io/delivery: csi`: the webhook adds
/// the CSI volume (no init container, no token) and the app reads the value.
async fn the_webhook_adds_the_volume(client: &Client, ns: &str) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut pod = crate::app_pod("csi-mutated", "db", "cat /run/keyward/db/password")?;
    pod.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("keyward.io/delivery".into(), "csi".into());
    let created = pods.create(&PostParams::default(), &pod).await?;
    let spec = created.spec.context("spec")?;
    let csi_volume = spec
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.csi.as_ref())
        .context("the webhook added no CSI volume")?;
    ensure!(
        csi_volume.driver == CSI_DRIVER && spec.init_containers.is_none(),
        "mutated as {spec:?}"
    );
    let done = pods::wait_for_completion(&pods, "csi-mutated", Duration::from_secs(90)).await?;
    let log = pods::container_log(client, &done, "app").await?;
    ensure!(log.trim() == REFRESHED, "the mutated pod read {log:?}");
    println!("CSI by annotation: the webhook added the volume, the app read the value");
    Ok(())
}

/// A pod running as a ServiceAccount the SealedSecret's access list leaves
/// out: its app never starts, and its events say why.
async fn refuses_a_service_account_not_allowed(
    client: &Client,
    ns: &str,
    webhook: &Webhook,
) -> Result<()> {
    let target = SecretTarget {
        scope: Scope::Strict,
        namespace: ns.to_owned(),
        secret_name: "api-only".into(),
        key_ref: format!("{ns}/db"),
        access: vec!["api".into()],
    };
    let encrypted = seal_password(client, ns, &format!("{ns}-api-only"), &target).await?;
    let sealed: SealedSecret = serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "api-only"},
        "spec": {"keyRef": {"name": "db"}, "access": {"serviceAccounts": ["api"]},
                 "encryptedData": encrypted},
    }))?;
    Api::<SealedSecret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sealed)
        .await?;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "web"}}))?,
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    // 1.20's ServiceAccount admission wants the account's token Secret.
    let pod = csi_pod(
        "csi-denied",
        "web",
        "api-only",
        "cat /run/keyward/api-only/password",
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match pods.create(&PostParams::default(), &pod).await {
            Ok(_) => break,
            Err(kube::Error::Api(s))
                if s.message.contains("service account") && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    let reason = loop {
        let found = events
            .list(&ListParams::default().fields("involvedObject.name=csi-denied"))
            .await?
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("FailedMount"))
            .filter_map(|e| e.message)
            .find(|m| m.contains("keyward: denied"));
        if let Some(message) = found {
            break message;
        }
        ensure!(
            Instant::now() < deadline,
            "no event says why csi-denied waits"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    ensure!(
        webhook
            .audit_log()
            .contains("ServiceAccount `web` is not in spec.access.serviceAccounts"),
        "the audit log lacks the access-list denial"
    );
    let now = pods.get("csi-denied").await?;
    ensure!(
        !crate::container_started(&now, "app"),
        "the app of a pod refused its secrets started"
    );
    println!("CSI refusal in the pod's events: {reason}");
    pods.delete("csi-denied", &DeleteParams::default()).await?;
    Ok(())
}

async fn wait_started(pods: &Api<Pod>, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let pod = pods.get(name).await?;
        if crate::container_started(&pod, "app") {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{name}'s app did not start in 90 s: {:?}",
            pod.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_tmpfs(target: &Path) -> Result<bool> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    let target = target.display().to_string();
    Ok(mounts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (_, at, kind) = (fields.next(), fields.next(), fields.next());
        at == Some(target.as_str()) && kind == Some("tmpfs")
    }))
}

fn mounted(uid: &str) -> Result<bool> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    Ok(mounts
        .lines()
        .any(|line| line.contains(uid) && line.contains("kubernetes.io~csi")))
}
