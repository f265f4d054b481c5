use crate::args::{LocalArgs, LocalCommand};
use crate::{audit, backup, keyring};
use anyhow::{Context, Result};
use keyward_core::envelope::PublicSealingKey;
use keyward_core::local::{KeyringStore, LocalProvider, ROOT_KEY_FILE, RootKey};
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec};
use std::path::Path;

pub async fn run(args: LocalArgs) -> Result<()> {
    let dir = keyring::keyring_dir(args.keyring.keyring.as_deref())?;
    match args.command {
        LocalCommand::Init { key, algorithm } => init(&dir, &key, algorithm).await,
        LocalCommand::CreateKey { name, algorithm } => {
            let provider = LocalProvider::open_dir(&dir)?;
            let info = provider.create_key(&spec(&name, algorithm)).await?;
            key_event(&dir, "key.create", &info.name, 1)?;
            println!(
                "created key `{}` ({}, {}), version 1",
                info.name, info.key_id, info.algorithm
            );
            Ok(())
        }
        LocalCommand::Backup { cluster, kube } => backup::backup(&kube, &cluster, &dir).await,
        LocalCommand::Restore {
            cluster,
            kube,
            replace,
        } => backup::restore(&kube, &cluster, &dir, replace).await,
        LocalCommand::Rotate { key } => {
            let provider = LocalProvider::open_dir(&dir)?;
            let info = provider.rotate_key(&key).await?;
            key_event(&dir, "key.rotate", &info.name, info.primary_version)?;
            println!(
                "key `{}` rotated: version {} is now primary; older versions still unseal",
                info.name, info.primary_version
            );
            Ok(())
        }
        LocalCommand::List => {
            let provider = LocalProvider::open_dir(&dir)?;
            let names = provider
                .store()
                .read(|ring| Ok(ring.keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>()))?;
            println!(
                "{:<16} {:<24} {:<8} {:>7} {:>8}",
                "NAME", "ID", "ALG", "PRIMARY", "VERSIONS"
            );
            for id in names {
                let info = provider.describe_key(&id).await?;
                println!(
                    "{:<16} {:<24} {:<8} {:>7} {:>8}",
                    info.name,
                    info.key_id,
                    info.algorithm.to_string(),
                    info.primary_version,
                    info.versions.len()
                );
            }
            Ok(())
        }
        LocalCommand::PublicKey { key, version } => {
            let provider = LocalProvider::open_dir(&dir)?;
            let info = provider.describe_key(&key).await?;
            let public = provider.public_key(&info.key_id, version).await?;
            let sealing = PublicSealingKey {
                key: public.public_key,
                key_version: public.version,
                provider_key_id: public.key_id,
            };
            print!("{}", keyring::public_key_file(&info.name, &sealing));
            Ok(())
        }
    }
}

fn key_event(dir: &Path, action: &str, key: &str, version: u32) -> Result<()> {
    let detail = [("version".to_owned(), version.to_string())].into();
    audit::record(dir, action, key, "ok", detail)
}

fn spec(name: &str, algorithm: KeyAlgorithm) -> KeySpec {
    KeySpec {
        name: name.into(),
        algorithm,
        owner: None,
        description: None,
    }
}

async fn init(dir: &Path, key: &str, algorithm: KeyAlgorithm) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let root_path = dir.join(ROOT_KEY_FILE);
    let store_probe = KeyringStore::new(dir, RootKey::generate());
    if store_probe.exists() || root_path.exists() {
        anyhow::bail!(
            "a keyring already exists in {}; use it, or pass --keyring for a new one",
            dir.display()
        );
    }
    let root = RootKey::generate();
    root.save_new(&root_path)?;
    let store = KeyringStore::new(dir, root);
    store.initialise()?;
    let provider = LocalProvider::new(store);
    let info = provider.create_key(&spec(key, algorithm)).await?;
    key_event(dir, "key.create", &info.name, 1)?;
    println!(
        "created keyring in {} with key `{}` ({})",
        dir.display(),
        info.name,
        info.algorithm
    );
    println!(
        "back up {}: without it this keyring cannot be opened",
        root_path.display()
    );
    Ok(())
}
