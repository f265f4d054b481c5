//! `keyward local backup` and `keyward local restore`: the in-cluster
//! local keyring (its Secrets and generation record) to and from a keyring
//! directory. The directory is an ordinary local keyring — `root.key`,
//! `keyring.kwk`, `keyring.generation` — so `keyward unseal --keyring DIR`
//! opens SealedSecrets from it with no cluster at all (as kubeseal's
//! recovery mode does). A root key wrapped by a KMS is kept wrapped
//! (`root.key.wrapped`); restoring that needs the KMS, and so does opening.

use crate::args::{ClusterKeyringArgs, KubeArgs};
use crate::kube_client;
use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use keyward_core::local::{GENERATION_FILE, KEYRING_FILE, LocalProvider, ROOT_KEY_FILE, RootKey};
use keyward_core::provider::KeyProvider;
use keyward_kubeutil::keyring_secret::{
    COMPONENT_LABEL as LABEL, GENERATION_ITEM, generation_config_map,
};
use keyward_kubeutil::root_key_secret::{
    ROOT_KEY_ITEM, WRAPPED_ROOT_KEY_ITEM, wrapped_secret_name,
};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};
use std::path::Path;
use zeroize::Zeroizing;

/// The wrapped root key's file in a backup directory.
pub const WRAPPED_ROOT_KEY_FILE: &str = "root.key.wrapped";

/// The objects that make up the in-cluster keyring.
struct Names {
    namespace: String,
    keyring: String,
    root_key: String,
    wrapped_root_key: String,
    generation: String,
}

impl Names {
    fn of(args: &ClusterKeyringArgs) -> Self {
        Names {
            namespace: args.namespace.clone(),
            keyring: args.keyring_secret.clone(),
            root_key: args.root_key_secret.clone(),
            wrapped_root_key: wrapped_secret_name(&args.root_key_secret),
            generation: generation_config_map(&args.keyring_secret),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Secret,
    ConfigMap,
}

/// One object of a backup, as the API server stores it.
struct Object {
    kind: Kind,
    name: String,
    value: Value,
}

/// The namespace's Secrets and ConfigMaps, read as JSON.
struct Store {
    secrets: Api<Secret>,
    config_maps: Api<ConfigMap>,
    namespace: String,
}

impl Store {
    fn new(client: &kube::Client, namespace: &str) -> Self {
        Store {
            secrets: Api::namespaced(client.clone(), namespace),
            config_maps: Api::namespaced(client.clone(), namespace),
            namespace: namespace.to_owned(),
        }
    }

    fn refused(&self, error: kube::Error, kind: Kind, name: &str, verb: &str) -> anyhow::Error {
        let resource = match kind {
            Kind::Secret => "secrets",
            Kind::ConfigMap => "configmaps",
        };
        kube_client::explain(
            error,
            &format!("{kind:?} {}/{name}", self.namespace),
            verb,
            resource,
            &self.namespace,
        )
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Option<Value>> {
        let found = match kind {
            Kind::Secret => self
                .secrets
                .get_opt(name)
                .await
                .map(|o| o.map(serde_json::to_value)),
            Kind::ConfigMap => self
                .config_maps
                .get_opt(name)
                .await
                .map(|o| o.map(serde_json::to_value)),
        };
        match found {
            Ok(found) => Ok(found.transpose()?),
            Err(error) => Err(self.refused(error, kind, name, "get")),
        }
    }

    async fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let params = DeleteParams::default();
        let deleted = match kind {
            Kind::Secret => self.secrets.delete(name, &params).await.map(|_| ()),
            Kind::ConfigMap => self.config_maps.delete(name, &params).await.map(|_| ()),
        };
        match deleted {
            Ok(()) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(self.refused(error, kind, name, "delete")),
        }
    }

    async fn create(&self, object: &Object) -> Result<()> {
        let params = PostParams::default();
        let made = match object.kind {
            Kind::Secret => {
                let secret: Secret = serde_json::from_value(object.value.clone())?;
                self.secrets.create(&params, &secret).await.map(|_| ())
            }
            Kind::ConfigMap => {
                let map: ConfigMap = serde_json::from_value(object.value.clone())?;
                self.config_maps.create(&params, &map).await.map(|_| ())
            }
        };
        made.map_err(|error| self.refused(error, object.kind, &object.name, "create"))
    }
}

/// One data item of a Secret, decoded.
fn secret_item(secret: &Value, item: &str) -> Result<Zeroizing<Vec<u8>>> {
    let text = secret["data"][item]
        .as_str()
        .with_context(|| format!("the Secret has no `{item}` item"))?;
    Ok(Zeroizing::new(STANDARD.decode(text)?))
}

fn write_new(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

pub async fn backup(kube: &KubeArgs, at: &ClusterKeyringArgs, dir: &Path) -> Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty; back up into a new directory (a backup never overwrites a root key)",
            dir.display()
        );
    }
    let names = Names::of(at);
    let cluster = kube_client::connect(kube).await?;
    let store = Store::new(&cluster.client, &names.namespace);
    let keyring = store
        .get(Kind::Secret, &names.keyring)
        .await?
        .with_context(|| {
            format!(
                "Secret {}/{} does not exist: is the local provider in use there (check --namespace and --keyring-secret)?",
                names.namespace, names.keyring
            )
        })?;
    let clear = store.get(Kind::Secret, &names.root_key).await?;
    let wrapped = store.get(Kind::Secret, &names.wrapped_root_key).await?;
    if clear.is_none() && wrapped.is_none() {
        bail!(
            "neither Secret {ns}/{} nor {ns}/{} exists: the keyring cannot be opened without its root key",
            names.root_key,
            names.wrapped_root_key,
            ns = names.namespace
        );
    }
    let generation = store.get(Kind::ConfigMap, &names.generation).await?;

    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    write_new(dir, KEYRING_FILE, &secret_item(&keyring, KEYRING_FILE)?)?;
    if let Some(secret) = &clear {
        RootKey::from_bytes(&secret_item(secret, ROOT_KEY_ITEM)?)?
            .save_new(&dir.join(ROOT_KEY_FILE))?;
    }
    if let Some(secret) = &wrapped {
        write_new(
            dir,
            WRAPPED_ROOT_KEY_FILE,
            &secret_item(secret, WRAPPED_ROOT_KEY_ITEM)?,
        )?;
    }
    if let Some(number) = generation
        .as_ref()
        .and_then(|map| map["data"][GENERATION_ITEM].as_str())
    {
        write_new(
            dir,
            GENERATION_FILE,
            format!("{}\n", number.trim()).as_bytes(),
        )?;
    }
    if clear.is_some() {
        let keys = describe(dir).await?;
        println!("backed up {keys} to {}", dir.display());
        println!(
            "it holds the root key in the clear: keep it as you keep the cluster's own secrets; \
             `keyward unseal --keyring {}` opens SealedSecrets from it",
            dir.display()
        );
    } else {
        println!(
            "backed up the keyring with its root key wrapped by a KMS to {}; restoring it needs that KMS key",
            dir.display()
        );
    }
    Ok(())
}

/// Opens the keyring in `dir` (a check that it is whole) and says what it holds.
async fn describe(dir: &Path) -> Result<String> {
    let provider = LocalProvider::open_dir(dir)
        .with_context(|| format!("the keyring in {} does not open", dir.display()))?;
    let ids = provider
        .store()
        .read(|ring| Ok(ring.keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>()))?;
    let mut names = Vec::new();
    for id in &ids {
        names.push(provider.describe_key(id).await?.name);
    }
    Ok(format!("{} keys ({})", ids.len(), names.join(", ")))
}

/// The objects to write for the backup in `dir`, by API path and kind.
fn objects(names: &Names, dir: &Path) -> Result<Vec<Object>> {
    let read = |file: &str| -> Result<Option<Zeroizing<Vec<u8>>>> {
        match std::fs::read(dir.join(file)) {
            Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", dir.join(file).display())),
        }
    };
    let metadata = |name: &str| json!({"name": name, "namespace": names.namespace, "labels": {LABEL.0: LABEL.1}});
    let secret = |name: &str, item: &str, bytes: &[u8], immutable: bool| {
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": metadata(name),
            "immutable": immutable,
            "data": {item: STANDARD.encode(bytes)},
        })
    };
    let keyring = read(KEYRING_FILE)?.with_context(|| {
        format!(
            "{} has no {KEYRING_FILE}: not a keyring backup",
            dir.display()
        )
    })?;
    let mut out = vec![Object {
        kind: Kind::Secret,
        name: names.keyring.clone(),
        value: secret(&names.keyring, KEYRING_FILE, &keyring, false),
    }];
    let mut has_root = false;
    if dir.join(ROOT_KEY_FILE).exists() {
        let root = RootKey::load(&dir.join(ROOT_KEY_FILE))?;
        out.push(Object {
            kind: Kind::Secret,
            name: names.root_key.clone(),
            value: secret(&names.root_key, ROOT_KEY_ITEM, root.to_dek().expose(), true),
        });
        has_root = true;
    }
    if let Some(wrapped) = read(WRAPPED_ROOT_KEY_FILE)? {
        out.push(Object {
            kind: Kind::Secret,
            name: names.wrapped_root_key.clone(),
            value: secret(
                &names.wrapped_root_key,
                WRAPPED_ROOT_KEY_ITEM,
                &wrapped,
                true,
            ),
        });
        has_root = true;
    }
    if !has_root {
        bail!(
            "{} has neither {ROOT_KEY_FILE} nor {WRAPPED_ROOT_KEY_FILE}: the keyring cannot be opened without its root key",
            dir.display()
        );
    }
    if let Some(generation) = read(GENERATION_FILE)? {
        let number = String::from_utf8_lossy(&generation).trim().to_owned();
        out.push(Object {
            kind: Kind::ConfigMap,
            name: names.generation.clone(),
            value: json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": metadata(&names.generation),
                "data": {GENERATION_ITEM: number},
            }),
        });
    }
    Ok(out)
}

/// Whether `existing` holds what `wanted` would write.
fn same_data(existing: &Value, wanted: &Value) -> bool {
    existing["data"] == wanted["data"]
}

pub async fn restore(
    kube: &KubeArgs,
    at: &ClusterKeyringArgs,
    dir: &Path,
    replace: bool,
) -> Result<()> {
    let names = Names::of(at);
    let what = if dir.join(ROOT_KEY_FILE).exists() {
        describe(dir).await?
    } else {
        "the keyring (root key wrapped by a KMS)".to_owned()
    };
    let objects = objects(&names, dir)?;
    let cluster = kube_client::connect(kube).await?;
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let exists = namespaces.get_opt(&names.namespace).await.map_err(|e| {
        kube_client::explain(
            e,
            &format!("namespace {}", names.namespace),
            "get",
            "namespaces",
            "",
        )
    })?;
    if exists.is_none() {
        bail!(
            "namespace {} does not exist; create it (the namespace Keyward is installed into), then restore",
            names.namespace
        );
    }
    let store = Store::new(&cluster.client, &names.namespace);
    let mut existing = Vec::new();
    for object in &objects {
        existing.push(
            store
                .get(object.kind, &object.name)
                .await?
                .map(|found| same_data(&found, &object.value)),
        );
    }
    let differing: Vec<&str> = objects
        .iter()
        .zip(&existing)
        .filter(|(_, found)| **found == Some(false))
        .map(|(object, _)| object.name.as_str())
        .collect();
    if !differing.is_empty() && !replace {
        bail!(
            "{} already exist in {} with other contents (the empty keyring of a fresh install?); \
             scale the Keyward operator and webhook to 0, run again with --replace, then start them again",
            differing.join(", "),
            names.namespace
        );
    }
    for (object, found) in objects.iter().zip(&existing) {
        if *found == Some(true) {
            println!("{}: already as in the backup", object.name);
            continue;
        }
        if found.is_some() {
            // Root-key Secrets are immutable: replaced by delete and create.
            store.delete(object.kind, &object.name).await?;
        }
        store.create(object).await?;
        println!("{}: restored", object.name);
    }
    println!(
        "restored {what} into {}; start (or restart) the Keyward operator and webhook so they read it, \
         then apply your ManagedKeys and SealedSecrets",
        names.namespace
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::local::KeyringStore;
    use keyward_core::provider::{KeyAlgorithm, KeySpec};

    fn names() -> Names {
        Names::of(&ClusterKeyringArgs {
            namespace: "keyward-system".into(),
            keyring_secret: "kr".into(),
            root_key_secret: "rk".into(),
        })
    }

    async fn keyring(dir: &Path) -> RootKey {
        let root = RootKey::generate();
        root.save_new(&dir.join(ROOT_KEY_FILE)).unwrap();
        let store = KeyringStore::new(dir, RootKey::load(&dir.join(ROOT_KEY_FILE)).unwrap());
        store.initialise().unwrap();
        let spec = KeySpec {
            name: "apps/db".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: Some("apps/db".into()),
            description: None,
        };
        LocalProvider::new(store).create_key(&spec).await.unwrap();
        root
    }

    #[tokio::test]
    async fn a_backup_directory_becomes_the_cluster_objects_it_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let root = keyring(dir.path()).await;
        std::fs::write(dir.path().join(GENERATION_FILE), "2\n").unwrap();
        assert_eq!(describe(dir.path()).await.unwrap(), "1 keys (apps/db)");
        let objects = objects(&names(), dir.path()).unwrap();
        let names: Vec<(Kind, &str)> = objects.iter().map(|o| (o.kind, o.name.as_str())).collect();
        assert_eq!(
            names,
            [
                (Kind::Secret, "kr"),
                (Kind::Secret, "rk"),
                (Kind::ConfigMap, "kr-generation"),
            ]
        );
        let root_secret = &objects[1].value;
        assert_eq!(root_secret["immutable"], true);
        let stored = STANDARD
            .decode(root_secret["data"][ROOT_KEY_ITEM].as_str().unwrap())
            .unwrap();
        assert!(RootKey::from_bytes(&stored).unwrap().same_as(&root));
        assert_eq!(objects[2].value["data"][GENERATION_ITEM], "2");
        assert_eq!(objects[0].value["immutable"], false);
        // What the API server returns reads the same as what was written.
        let secret: Secret = serde_json::from_value(objects[1].value.clone()).unwrap();
        assert!(same_data(
            &serde_json::to_value(secret).unwrap(),
            &objects[1].value
        ));
    }

    #[tokio::test]
    async fn a_directory_without_a_root_key_or_keyring_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let message = objects(&names(), dir.path()).err().unwrap().to_string();
        assert!(message.contains("has no keyring.kwk"), "{message}");
        keyring(dir.path()).await;
        std::fs::remove_file(dir.path().join(ROOT_KEY_FILE)).unwrap();
        let message = objects(&names(), dir.path()).err().unwrap().to_string();
        assert!(
            message.contains("neither root.key nor root.key.wrapped"),
            "{message}"
        );
    }
}
