//! A url-based MutatingWebhookConfiguration for pods in one namespace,
//! pointing at the in-process webhook, as in `webhook.rs`.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use keyward_webhook::tls;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::Webhook;

const SELECTOR_LABEL: &str = "keyward.io/webhook-perf";

/// Registers `/mutate` for pods in `ns` (label-selected: 1.20 has no
/// automatic name label) and waits until a dry-run `probe` comes back
/// mutated. Returns the configuration's name for [`unregister`].
pub async fn register(client: &Client, ns: &str, webhook: &Webhook, probe: &Pod) -> Result<String> {
    let name = format!("keyward-perf-{ns}");
    let label = json!({"metadata": {"labels": {SELECTOR_LABEL: ns}}});
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&label))
        .await?;
    let config: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "mutate.keyward.io",
            "clientConfig": {"url": format!("{}/mutate", webhook.url)},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["pods"]}],
            "namespaceSelector": {"matchLabels": {SELECTOR_LABEL: ns}},
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
        }],
    }))?;
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &config)
        .await?;
    tls::patch_ca_bundle(client, Some(&name), None, &webhook.ca_pem).await?;
    // The API server picks configurations up from a watch.
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let created = pods.create(&dry_run, probe).await?;
        let mutated = created
            .spec
            .and_then(|s| s.init_containers)
            .is_some_and(|c| c.iter().any(|c| c.name == "keyward-inject"));
        if mutated {
            return Ok(name);
        }
        ensure!(
            Instant::now() < deadline,
            "the API server never called the mutating webhook"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn unregister(client: &Client, name: &str) {
    let _ = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}
