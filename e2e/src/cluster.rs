//! The cluster under test: a client, and what we know about its node.

use anyhow::{Context, Result, bail};
use kube::Client;

/// A client for the cluster in `$KUBECONFIG`, checked to answer.
///
/// Fails (never skips) when there is no cluster, saying how to get one.
pub async fn client() -> Result<Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        bail!(
            "KUBECONFIG is not set, so there is no cluster to test against. Run `e2e/run.sh`, \
             or `e2e/cluster/up` then `eval \"$(e2e/cluster/env)\"`, or point \
             KEYWARD_E2E_KUBECONFIG at an existing cluster for `e2e/run.sh`"
        );
    }
    let client = Client::try_default()
        .await
        .context("building a Kubernetes client from $KUBECONFIG")?;
    client
        .apiserver_version()
        .await
        .context("the API server named in $KUBECONFIG does not answer; is the cluster up?")?;
    Ok(client)
}

/// True when the cluster is the one `e2e/cluster/up` started on this machine,
/// whose node runs only images imported locally.
pub fn is_local() -> bool {
    std::env::var("KEYWARD_E2E_LOCAL_CLUSTER").is_ok_and(|v| v == "1")
}

/// A small image with a shell for test pods, and the pull policy it needs.
pub fn busybox_image() -> (String, &'static str) {
    match std::env::var("KEYWARD_E2E_BUSYBOX_IMAGE") {
        Ok(image) if is_local() => (image, "Never"),
        Ok(image) => (image, "IfNotPresent"),
        Err(_) => ("busybox:1.36".to_owned(), "IfNotPresent"),
    }
}

/// The API server's audit log of Keyward's request kinds (`e2e/cluster/up`
/// records them at RequestResponse level), on the local cluster only.
pub fn apiserver_audit_log() -> Option<std::path::PathBuf> {
    let state = std::env::var_os("KEYWARD_E2E_STATE")?;
    is_local().then(|| std::path::Path::new(&state).join("apiserver/audit.log"))
}
