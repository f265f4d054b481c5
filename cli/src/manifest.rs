//! Reading Secret / SealedSecret manifests and printing objects.

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Secret;
use keyward_core::SecretBytes;
use keyward_crds::SealedSecret;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use zeroize::Zeroizing;

/// Reads a file, or stdin for `-`. The text may hold plaintext: wiped on drop.
pub fn read_input(path: &Path) -> Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
    } else {
        let bytes = Zeroizing::new(
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        );
        text.push_str(
            std::str::from_utf8(&bytes)
                .map_err(|_| anyhow!("{} is not UTF-8 text", path.display()))?,
        );
    }
    Ok(text)
}

fn kind_of(text: &str) -> Option<(String, String)> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).ok()?;
    let get = |field: &str| {
        value
            .get(field)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    Some((get("apiVersion"), get("kind")))
}

/// A Secret's values (`data` and `stringData`), plus its name and namespace.
pub struct SecretInput {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub values: BTreeMap<String, SecretBytes>,
}

pub fn parse_secret(text: &str, source: &str) -> Result<SecretInput> {
    match kind_of(text) {
        None => bail!("{source} is not valid YAML or JSON"),
        Some((_, kind)) if kind != "Secret" => {
            bail!("{source} is a `{kind}`, not a Kubernetes Secret; give a `kind: Secret` manifest")
        }
        Some(_) => {}
    }
    // Serde messages can quote the offending value; for a Secret that may be
    // plaintext, so only the position is reported.
    let secret: Secret = serde_yaml_ng::from_str(text).map_err(|error| match error.location() {
        Some(at) => anyhow!(
            "{source}: invalid Secret manifest at line {} column {} (check `data` values are base64)",
            at.line(),
            at.column()
        ),
        None => anyhow!("{source}: invalid Secret manifest"),
    })?;
    let mut values = BTreeMap::new();
    for (item, bytes) in secret.data.unwrap_or_default() {
        values.insert(item, SecretBytes::new(bytes.0));
    }
    for (item, text) in secret.string_data.unwrap_or_default() {
        values.insert(item, SecretBytes::new(text.into_bytes()));
    }
    Ok(SecretInput {
        name: secret.metadata.name,
        namespace: secret.metadata.namespace,
        values,
    })
}

pub fn parse_sealed_secret(text: &str, source: &str) -> Result<SealedSecret> {
    match kind_of(text) {
        None => bail!("{source} is not valid YAML or JSON"),
        Some((api_version, _)) if api_version.starts_with("bitnami.com/") => bail!(
            "{source} is a Bitnami sealed-secrets manifest; unseal it with kubeseal and re-seal with `keyward seal`"
        ),
        Some((_, kind)) if kind != "SealedSecret" => {
            bail!("{source} is a `{kind}`, not a Keyward SealedSecret")
        }
        Some((api_version, _)) if api_version != "keyward.io/v1alpha1" => {
            bail!("{source} has apiVersion `{api_version}`; this keyward reads keyward.io/v1alpha1")
        }
        Some(_) => {}
    }
    serde_yaml_ng::from_str(text).with_context(|| format!("{source} is not a valid SealedSecret"))
}

pub fn print<T: Serialize>(object: &T, json: bool) -> Result<()> {
    let text = if json {
        serde_json::to_string_pretty(object)? + "\n"
    } else {
        serde_yaml_ng::to_string(object)?
    };
    print!("{text}");
    Ok(())
}

pub fn source_name(path: &Path) -> String {
    if path == Path::new("-") {
        "standard input".into()
    } else {
        path.display().to_string()
    }
}
