//! A Kubernetes client built as kubectl builds one: kube's own kubeconfig
//! reader (merged $KUBECONFIG, contexts, exec plugins such as EKS, GKE and
//! AKS use, proxies, `insecure-skip-tls-verify`), and API refusals turned
//! into advice.

use crate::args::KubeArgs;
use anyhow::{Context, Result, anyhow, bail};
use keyward_crds::ManagedKey;
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};

/// A client, and the namespace the context names (else `default`).
pub struct Cluster {
    pub client: kube::Client,
    pub namespace: String,
}

pub async fn connect(args: &KubeArgs) -> Result<Cluster> {
    let kubeconfig = match &args.kubeconfig {
        Some(path) => Kubeconfig::read_from(path)
            .with_context(|| format!("reading kubeconfig {}", path.display()))?,
        None => Kubeconfig::read().map_err(|e| {
            anyhow!("{e}; set KUBECONFIG, give --kubeconfig, or create ~/.kube/config")
        })?,
    };
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| anyhow!("kubeconfig: {e}"))?;
    if let Some(file) = &args.token_file {
        config.auth_info = AuthInfo {
            token_file: Some(file.display().to_string()),
            ..AuthInfo::default()
        };
    }
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|e| anyhow!("Kubernetes client: {e}"))?;
    Ok(Cluster { client, namespace })
}

/// `key` as NAME or NAMESPACE/NAME; the namespace defaults to `namespace`,
/// then the context's. Both parts are checked to be Kubernetes names.
pub fn key_reference(
    cluster: &Cluster,
    namespace: Option<&str>,
    key: &str,
) -> Result<(String, String)> {
    let (namespace, name) = match key.split_once('/') {
        Some((namespace, name)) => (namespace.to_owned(), name.to_owned()),
        None => (
            namespace.map_or_else(|| cluster.namespace.clone(), str::to_owned),
            key.to_owned(),
        ),
    };
    for part in [&namespace, &name] {
        if !is_object_name(part) {
            bail!("`{part}` is not a Kubernetes name (lower-case letters, digits, `-` and `.`)");
        }
    }
    Ok((namespace, name))
}

/// A DNS subdomain, as namespaces and ManagedKey names are: safe in a URL path.
fn is_object_name(text: &str) -> bool {
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = text.as_bytes();
    matches!((bytes.first(), bytes.last()), (Some(&first), Some(&last)) if alphanumeric(first) && alphanumeric(last))
        && bytes.len() <= 253
        && bytes
            .iter()
            .all(|&b| alphanumeric(b) || b == b'-' || b == b'.')
}

/// ManagedKey `namespace/name`, or what to do when it cannot be read.
pub async fn managed_key(cluster: &Cluster, namespace: &str, name: &str) -> Result<ManagedKey> {
    let reference = format!("{namespace}/{name}");
    let api: kube::Api<ManagedKey> = kube::Api::namespaced(cluster.client.clone(), namespace);
    api.get(name).await.map_err(|error| match &error {
        kube::Error::Api(status)
            if status.code == 404
                && status
                    .message
                    .contains("could not find the requested resource") =>
        {
            anyhow!(
                "the API server knows no ManagedKeys (keyward.io/v1alpha1); is Keyward installed \
                 in this cluster (`kubectl get crd managedkeys.keyward.io`)?"
            )
        }
        kube::Error::Api(status) if status.code == 404 => anyhow!(
            "ManagedKey {reference} does not exist; list the keys with `kubectl get managedkeys -A`"
        ),
        _ => explain(
            error,
            &format!("ManagedKey {reference}"),
            "get",
            "managedkeys.keyward.io",
            namespace,
        ),
    })
}

/// What to tell the user when the API server refuses `what` (e.g.
/// "ManagedKey shop/db"); `verb` and `resource` name the RBAC they need.
pub fn explain(
    error: kube::Error,
    what: &str,
    verb: &str,
    resource: &str,
    namespace: &str,
) -> anyhow::Error {
    match &error {
        kube::Error::Api(status) if status.code == 401 => anyhow!(
            "the API server did not accept your credentials for {what} (expired token or certificate?); log in again"
        ),
        kube::Error::Api(status) if status.code == 403 => anyhow!(
            "no permission to {} {what}: {}; ask for `{verb}` on {resource} in `{namespace}`",
            if verb == "get" { "read" } else { verb },
            status.message.trim()
        ),
        kube::Error::Api(status) if status.code == 404 => anyhow!("{what} does not exist"),
        _ => anyhow!("{what}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_object_names_reach_the_url() {
        assert!(is_object_name("app.v2-keys"));
        for bad in ["", "App", "a/b", "a?b", "..", "-a", "%2e", &"x".repeat(254)] {
            assert!(!is_object_name(bad), "{bad}");
        }
    }
}
