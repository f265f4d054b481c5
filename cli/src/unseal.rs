use crate::args::{UnsealArgs, UnsealFormat};
use crate::{audit, keyring, manifest};
use anyhow::{Result, anyhow};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use keyward_core::envelope::{Scope, SecretTarget, open_secret};
use keyward_crds::SealedSecret;
use std::collections::BTreeMap;
use std::io::Write;

pub async fn run(args: UnsealArgs) -> Result<()> {
    let source = manifest::source_name(&args.file);
    let mut sealed = manifest::parse_sealed_secret(&manifest::read_input(&args.file)?, &source)?;
    match (&sealed.metadata.namespace, &args.namespace) {
        (Some(said), Some(given)) if said != given => {
            return Err(anyhow!(
                "{source} says namespace `{said}`, not `{given}`; drop --namespace"
            ));
        }
        (None, Some(given)) => sealed.metadata.namespace = Some(given.clone()),
        _ => {}
    }
    let target = target_of(&sealed, &source)?;
    let (provider, dir) = keyring::open(args.keyring.keyring.as_deref())?;

    let mut encrypted = sealed.spec.encrypted_data.clone();
    if let Some(item) = &args.item {
        let value = encrypted
            .remove(item)
            .ok_or_else(|| anyhow!("{source} has no item `{item}`"))?;
        encrypted = [(item.clone(), value)].into();
    }
    let opened = open_secret(&target, &provider, &encrypted).await;
    let subject = format!("{}/{}", target.namespace, target.secret_name);
    let mut detail: BTreeMap<String, String> = [(
        "items".to_owned(),
        encrypted.keys().cloned().collect::<Vec<_>>().join(","),
    )]
    .into();
    if let Err(error) = &opened {
        detail.insert("reason".into(), error.to_string());
    }
    let outcome = if opened.is_ok() { "ok" } else { "failed" };
    audit::record(&dir, "secret.unseal", &subject, outcome, detail)?;
    let values = opened?;

    if let Some(item) = &args.item {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(values[item].expose())?;
        return Ok(stdout.flush()?);
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: sealed.metadata.name.clone(),
            namespace: sealed.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            values
                .iter()
                .map(|(item, value)| (item.clone(), ByteString(value.expose().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    };
    manifest::print(&secret, args.output == UnsealFormat::Json)
}

/// The context a SealedSecret is opened as: where its manifest says it lives.
pub fn target_of(sealed: &SealedSecret, source: &str) -> Result<SecretTarget> {
    let namespace = sealed
        .metadata
        .namespace
        .clone()
        .ok_or_else(|| {
            anyhow!(
                "{source} has no metadata.namespace (values are bound to it); pass the namespace it is applied in with --namespace"
            )
        })?;
    let secret_name = sealed
        .metadata
        .name
        .clone()
        .ok_or_else(|| anyhow!("{source} has no metadata.name"))?;
    let key_namespace = sealed
        .spec
        .key_ref
        .namespace
        .as_deref()
        .unwrap_or(&namespace);
    Ok(SecretTarget {
        scope: match sealed.spec.scope {
            keyward_crds::Scope::Strict => Scope::Strict,
            keyward_crds::Scope::Namespace => Scope::Namespace,
        },
        key_ref: format!("{key_namespace}/{}", sealed.spec.key_ref.name),
        namespace,
        secret_name,
        access: sealed.service_accounts(),
    })
}
