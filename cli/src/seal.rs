use crate::args::{Format, ScopeArg, SealArgs};
use crate::{audit, cluster, keyring, manifest, merge, online_seal};
use anyhow::{Context, Result, anyhow, bail};
use keyward_core::SecretBytes;
use keyward_core::envelope::{Scope, SecretTarget, Wrapping, seal_secret};
use keyward_core::provider::KeyProvider;
use keyward_crds::{Access, KeyReference, SealedSecret, SealedSecretSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub async fn run(args: SealArgs) -> Result<()> {
    let from_manifest = match (
        &args.secret_manifest,
        args.literals.is_empty() && args.files.is_empty(),
    ) {
        (Some(path), _) => Some(read_secret_manifest(path)?),
        (None, true) => Some(read_secret_manifest(Path::new("-"))?),
        (None, false) => None,
    };
    let (mut values, manifest_name, manifest_namespace) = match from_manifest {
        Some(input) => (input.values, input.name, input.namespace),
        None => (BTreeMap::new(), None, None),
    };
    for literal in &args.literals {
        let (item, value) = literal
            .split_once('=')
            .ok_or_else(|| anyhow!("a --from-literal argument is not KEY=VALUE (it has no `=`)"))?;
        insert_once(&mut values, item, SecretBytes::from(value.as_bytes()))?;
    }
    for spec in &args.files {
        let (item, path) = file_item(spec)?;
        let bytes = std::fs::read(&path)
            .with_context(|| format!("--from-file: cannot read {}", path.display()))?;
        insert_once(&mut values, &item, SecretBytes::new(bytes))?;
    }
    if values.is_empty() {
        bail!("nothing to seal: give --from-literal, --from-file or a Secret with data");
    }
    if args.raw && values.len() != 1 {
        bail!(
            "--raw prints one value, but {} items were given; seal them one at a time",
            values.len()
        );
    }
    let merging = match &args.merge_into {
        Some(path) => Some(merge::Target::read(path)?),
        None => None,
    };
    if let Some(target) = &merging {
        target.check_flags(&args)?;
    }
    let (manifest_namespace, manifest_name) = match &merging {
        Some(target) => (target.namespace(), target.name()),
        None => (manifest_namespace, manifest_name),
    };
    let args = SealArgs {
        key: args
            .key
            .clone()
            .or_else(|| merging.as_ref().map(merge::Target::key)),
        scope: args
            .scope
            .or_else(|| merging.as_ref().map(merge::Target::scope)),
        service_accounts: match &merging {
            Some(target) => target.service_accounts(),
            None => args.service_accounts.clone(),
        },
        ..args
    };

    let namespace = args.namespace.or(manifest_namespace).ok_or_else(|| {
        anyhow!("no namespace: pass -n/--namespace or set metadata.namespace in the Secret")
    })?;
    let name = args
        .name
        .or(manifest_name)
        .ok_or_else(|| anyhow!("no name: pass --name or set metadata.name in the Secret"))?;

    let public = match (&args.cert, &args.key) {
        (Some(path), _) => Some(keyring::read_public_key_file(path)?),
        (None, Some(key)) if args.from_cluster => {
            let (reference, sealing) =
                cluster::fetch_public_key(&args.kube, Some(&namespace), key).await?;
            Some((sealing, Some(reference)))
        }
        _ => None,
    };
    let key = args
        .key
        .or_else(|| public.as_ref().and_then(|(_, named)| named.clone()))
        .ok_or_else(|| anyhow!("no key: pass --key NAME (a ManagedKey)"))?;
    let key_ref = keyring::canonical_key_ref(&key, &namespace)?;
    let scope = match args.scope.unwrap_or_default() {
        ScopeArg::Strict => Scope::Strict,
        ScopeArg::Namespace => Scope::Namespace,
    };
    let target = SecretTarget {
        scope,
        namespace: namespace.clone(),
        secret_name: name.clone(),
        key_ref: key_ref.clone(),
        // Bound into each value: editing spec.access to let more
        // ServiceAccounts in breaks opening.
        access: args.service_accounts.clone(),
    };

    let encrypted_data = match &public {
        Some((public, _)) => seal_secret(&target, Wrapping::PublicKey(public), &values).await?,
        None if args.keyring.keyring.is_none() => {
            let (dek, wrapped) = online_seal::data_key(&args.kube, &target).await?;
            seal_secret(
                &target,
                Wrapping::DataKey {
                    dek: &dek,
                    wrapped: &wrapped,
                },
                &values,
            )
            .await?
        }
        None => {
            let (provider, dir) = keyring::open(args.keyring.keyring.as_deref())?;
            let info = keyring::find_key(&provider, &key_ref).await?;
            let wrapping = Wrapping::Provider {
                provider: &provider as &dyn KeyProvider,
                key_id: &info.key_id,
            };
            let sealed = seal_secret(&target, wrapping, &values).await?;
            let detail = [
                ("key".to_owned(), key_ref.clone()),
                ("version".to_owned(), info.primary_version.to_string()),
                (
                    "items".to_owned(),
                    values.keys().cloned().collect::<Vec<_>>().join(","),
                ),
            ];
            let subject = format!("{namespace}/{name}");
            audit::record(&dir, "secret.seal", &subject, "ok", detail.into())?;
            sealed
        }
    };

    if let Some(target) = merging {
        return target.merge(encrypted_data);
    }
    if args.raw {
        let value = encrypted_data.into_values().next().expect("one value");
        print!("{value}");
        return Ok(());
    }
    let (key_namespace, key_name) = key_ref.split_once('/').expect("canonical reference");
    let spec = SealedSecretSpec {
        key_ref: KeyReference {
            name: key_name.to_owned(),
            namespace: (key_namespace != namespace).then(|| key_namespace.to_owned()),
        },
        scope: match scope {
            Scope::Strict => keyward_crds::Scope::Strict,
            Scope::Namespace => keyward_crds::Scope::Namespace,
        },
        access: (!args.service_accounts.is_empty()).then(|| Access {
            service_accounts: args.service_accounts.clone(),
        }),
        encrypted_data,
        template: None,
    };
    let mut sealed = SealedSecret::new(&name, spec);
    sealed.metadata.namespace = Some(namespace);
    manifest::print(&sealed, args.output == Format::Json)
}

fn read_secret_manifest(path: &Path) -> Result<manifest::SecretInput> {
    let text = manifest::read_input(path)?;
    manifest::parse_secret(&text, &manifest::source_name(path))
}

fn insert_once(
    values: &mut BTreeMap<String, SecretBytes>,
    item: &str,
    value: SecretBytes,
) -> Result<()> {
    if values.insert(item.to_owned(), value).is_some() {
        bail!("item `{item}` is given twice");
    }
    Ok(())
}

/// `KEY=PATH` or `PATH` (the key is then the file name).
fn file_item(spec: &str) -> Result<(String, PathBuf)> {
    if let Some((item, path)) = spec.split_once('=') {
        return Ok((item.to_owned(), PathBuf::from(path)));
    }
    let path = PathBuf::from(spec);
    let item = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| anyhow!("--from-file {spec}: cannot derive an item name; use KEY=PATH"))?
        .to_owned();
    Ok((item, path))
}
