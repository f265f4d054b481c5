//! `keyward cluster public-key`: the public half of a ManagedKey, read
//! through the API server, in the file format `keyward seal --cert` reads
//! (the same as `keyward local public-key`).

use crate::args::{ClusterArgs, ClusterCommand, KubeArgs};
use crate::{cluster_key, keyring, kube_client};
use anyhow::{Result, bail};
use keyward_core::envelope::PublicSealingKey;
use keyward_crds::ManagedKey;

pub async fn run(args: ClusterArgs) -> Result<()> {
    match args.command {
        ClusterCommand::PublicKey { name, namespace } => {
            let (reference, sealing) =
                fetch_public_key(&args.kube, namespace.as_deref(), &name).await?;
            print!("{}", keyring::public_key_file(&reference, &sealing));
            Ok(())
        }
    }
}

/// `key` is NAME or NAMESPACE/NAME; the namespace defaults to `namespace`,
/// then the context's, then `default`. Returns `namespace/name` and the key.
pub async fn fetch_public_key(
    kube: &KubeArgs,
    namespace: Option<&str>,
    key: &str,
) -> Result<(String, PublicSealingKey)> {
    let cluster = kube_client::connect(kube).await?;
    let (namespace, name) = match key.split_once('/') {
        Some((namespace, name)) => (namespace.to_owned(), name.to_owned()),
        None => (
            namespace
                .map(str::to_owned)
                .unwrap_or_else(|| cluster.namespace.clone()),
            key.to_owned(),
        ),
    };
    for part in [&namespace, &name] {
        if !is_object_name(part) {
            bail!("`{part}` is not a Kubernetes name (lower-case letters, digits, `-` and `.`)");
        }
    }
    let reference = format!("{namespace}/{name}");
    let api: kube::Api<ManagedKey> = kube::Api::namespaced(cluster.client, &namespace);
    let managed = api.get(&name).await.map_err(|error| match &error {
        kube::Error::Api(status)
            if status.code == 404
                && status
                    .message
                    .contains("could not find the requested resource") =>
        {
            anyhow::anyhow!(
                "the API server knows no ManagedKeys (keyward.io/v1alpha1); is Keyward installed \
                 in this cluster (`kubectl get crd managedkeys.keyward.io`)?"
            )
        }
        kube::Error::Api(status) if status.code == 404 => anyhow::anyhow!(
            "ManagedKey {reference} does not exist; list the keys with `kubectl get managedkeys -A`"
        ),
        _ => kube_client::explain(
            error,
            &format!("ManagedKey {reference}"),
            "get",
            "managedkeys.keyward.io",
            &namespace,
        ),
    })?;
    let sealing = cluster_key::sealing_key(&managed, &reference)?;
    Ok((reference, sealing))
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
