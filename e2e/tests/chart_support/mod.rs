//! Shared by the chart tests (`chart.rs`, `chart_on_node.rs`): the chart's
//! path, values for the e2e cluster, the names it gives objects, cleanup of
//! its cluster-scoped objects.
#![allow(dead_code)] // each test binary uses a subset

pub mod alerts;
pub mod azure_on_node;
pub mod csi_pod;
pub mod on_node;
pub mod online_seal;
pub mod prometheus;
pub mod provider_values;
pub mod signing;
pub mod webhook_tls;

use std::path::{Path, PathBuf};

use anyhow::Result;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use serde_json::{Value, json};

pub const RELEASE: &str = "kw";
pub const CRDS: [&str; 5] = [
    "datakeyrequests.keyward.io",
    "keyrotationpolicies.keyward.io",
    "managedkeys.keyward.io",
    "sealedsecretreviews.keyward.io",
    "sealedsecrets.keyward.io",
];

pub fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/keyward")
}

/// Values for this cluster: an image that is not pulled, no HTTP probes
/// (the kubelet cannot reach pod addresses on the loopback cluster).
pub fn base_values() -> Value {
    json!({
        "image": { "repository": "keyward.local/keyward", "tag": "absent", "pullPolicy": "Never" },
        "probes": false,
    })
}

pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, overlay) => *base = overlay,
    }
}

pub fn values(overlay: Value) -> Value {
    let mut values = base_values();
    merge(&mut values, overlay);
    values
}

/// Names the chart gives its objects for release `kw` in `ns`.
pub struct Names {
    pub operator: String,
    pub webhook: String,
    pub csi: String,
    pub cluster: String,
}

impl Names {
    pub fn new(ns: &str) -> Self {
        Self::for_release(RELEASE, ns)
    }

    /// As the chart's `keyward.fullname`: a release whose name contains
    /// `keyward` is not prefixed again.
    pub fn for_release(release: &str, ns: &str) -> Self {
        let full = if release.contains("keyward") {
            release.to_owned()
        } else {
            format!("{release}-keyward")
        };
        Names {
            operator: format!("{full}-operator"),
            webhook: format!("{full}-webhook"),
            csi: format!("{full}-csi"),
            cluster: format!("{ns}-{full}"),
        }
    }
    pub fn mutating(&self) -> String {
        format!("{}-mutate", self.cluster)
    }
    pub fn validating(&self) -> String {
        format!("{}-validate", self.cluster)
    }
}

pub fn keyward_api(client: &Client, ns: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("keyward.io", "v1alpha1", kind);
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

pub async fn remove_cluster_scoped(client: &Client, names: &Names) {
    let dp = DeleteParams::default();
    let _ = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .delete(&names.mutating(), &dp)
        .await;
    let _ = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .delete(&names.validating(), &dp)
        .await;
    for role in ["operator", "webhook", "sealer", "signer", "csi"] {
        let name = format!("{}-{role}", names.cluster);
        let _ = Api::<ClusterRole>::all(client.clone())
            .delete(&name, &dp)
            .await;
        let _ = Api::<ClusterRoleBinding>::all(client.clone())
            .delete(&name, &dp)
            .await;
    }
    let _ = Api::<k8s_openapi::api::storage::v1::CSIDriver>::all(client.clone())
        .delete("csi.keyward.io", &dp)
        .await;
}

/// Label the namespace so the chart's webhooks skip it: on 1.20 namespaces
/// carry no `kubernetes.io/metadata.name` label, so the chart's automatic
/// exclusion of the release namespace and kube-system does not apply there.
pub async fn ignore_namespace(client: &Client, ns: &str) -> Result<()> {
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "keyward.io/ignore": "true" } } })),
        )
        .await?;
    Ok(())
}
