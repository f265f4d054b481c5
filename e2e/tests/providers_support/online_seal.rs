//! `keyward seal` through the API server to KMS and HSM keys: the webhook's
//! admission router, in-process over TLS with the providers `serve` builds
//! from the same flags, registered by URL for DataKeyRequests in the test
//! namespace; the real CLI asks it for a data key with the cluster's
//! kubeconfig and encrypts the value itself.

use crate::{Listener, serve_webhook};
use anyhow::{Context, Result, ensure};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use keyward_crds::SealedSecret;
use keyward_provider_select::Providers;
use keyward_webhook::tls;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SELECTOR_LABEL: &str = "keyward.io/e2e-data-keys";

/// Admission answering DataKeyRequests in one namespace until dropped.
pub struct DataKeys {
    client: Client,
    config: String,
    task: tokio::task::JoinHandle<()>,
    cli: PathBuf,
    ns: String,
}

pub async fn answer_data_keys(
    client: &Client,
    ns: &str,
    providers: &Arc<Providers>,
    dir: &Path,
) -> Result<DataKeys> {
    let cli = keyward_e2e::binaries::build_binary("keyward", "keyward", false).await?;
    let log = dir.join("datakey.log");
    let (url, ca_pem, task) = serve_webhook(client, providers, &log, Listener::Admission).await?;
    // 1.20 has no automatic name label: select the namespace by its own.
    let label = json!({"metadata": {"labels": {SELECTOR_LABEL: ns}}});
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&label))
        .await?;
    let config = format!("keyward-data-keys-{ns}");
    let registration: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": config},
        "webhooks": [{
            "name": "data-keys.keyward.io",
            "clientConfig": {"url": format!("{url}/datakey")},
            "rules": [{"apiGroups": ["keyward.io"], "apiVersions": ["v1alpha1"],
                "operations": ["CREATE"], "resources": ["datakeyrequests"]}],
            "namespaceSelector": {"matchLabels": {SELECTOR_LABEL: ns}},
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
        }],
    }))?;
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &registration)
        .await?;
    tls::patch_ca_bundle(client, Some(&config), None, &ca_pem).await?;
    Ok(DataKeys {
        client: client.clone(),
        config,
        task,
        cli,
        ns: ns.to_owned(),
    })
}

impl DataKeys {
    /// `keyward seal -n NS --name KEY --key KEY --from-literal
    /// password=VALUE`, retried while the API server has not yet picked
    /// the registration up (the CLI then says nobody answered).
    pub async fn seal(&self, key: &str, value: &str) -> Result<SealedSecret> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = tokio::process::Command::new(&self.cli)
                .args(["seal", "-n", &self.ns, "--name", key, "--key", key])
                .args(["--from-literal", &format!("password={value}"), "-o", "json"])
                .env_remove("KEYWARD_KEYRING")
                .output()
                .await?;
            if out.status.success() {
                return serde_json::from_slice(&out.stdout).context("keyward seal's output");
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            ensure!(
                (stderr.contains("nobody answered") || stderr.contains("webhook is unavailable"))
                    && Instant::now() < deadline,
                "keyward seal --key {key}: {stderr}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn stop(self) {
        self.task.abort();
        let _ = Api::<MutatingWebhookConfiguration>::all(self.client.clone())
            .delete(&self.config, &DeleteParams::default())
            .await;
    }
}
