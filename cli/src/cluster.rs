//! `keyward cluster public-key`: the public half of a ManagedKey, read
//! through the API server, in the file format `keyward seal --cert` reads
//! (the same as `keyward local public-key`).

use crate::args::{ClusterArgs, ClusterCommand, KubeArgs};
use crate::{cluster_key, keyring, kube_client};
use anyhow::Result;
use keyward_core::envelope::PublicSealingKey;

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
    let (namespace, name) = kube_client::key_reference(&cluster, namespace, key)?;
    let reference = format!("{namespace}/{name}");
    let managed = kube_client::managed_key(&cluster, &namespace, &name).await?;
    let sealing = cluster_key::sealing_key(&managed, &reference)?;
    Ok((reference, sealing))
}
