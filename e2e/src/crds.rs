//! Installing CustomResourceDefinitions from YAML files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};
use serde::Deserialize;

use crate::FIELD_MANAGER;

/// Where the `keyward-crds` crate writes the committed CRD YAML.
pub fn keyward_crds_dir() -> PathBuf {
    crate::manifest_dir().join("../crds/generated")
}

/// Install Keyward's own CRDs (`crds/generated/*.yaml`).
pub async fn install_keyward_crds(client: &Client) -> Result<Vec<String>> {
    apply_crds_from_dir(client, &keyward_crds_dir()).await
}

/// Server-side apply every CRD in `dir/*.yaml` (multi-document files
/// allowed) and wait until each is Established. Returns the CRD names.
pub async fn apply_crds_from_dir(client: &Client, dir: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("reading CRD dir {}", dir.display()))?
    {
        let path = entry?.path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        bail!("no *.yaml CRD files in {}", dir.display());
    }

    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for file in &files {
        for doc in read_yaml_docs(file)? {
            let kind = doc.get("kind").and_then(|k| k.as_str());
            if kind != Some("CustomResourceDefinition") {
                bail!(
                    "{}: expected only CustomResourceDefinitions, found kind {kind:?}",
                    file.display()
                );
            }
            let name = doc
                .pointer("/metadata/name")
                .and_then(|n| n.as_str())
                .with_context(|| format!("{}: a CRD without metadata.name", file.display()))?
                .to_owned();
            api.patch(&name, &params, &Patch::Apply(&doc))
                .await
                .with_context(|| format!("applying CRD {name} from {}", file.display()))?;
            names.push(name);
        }
    }
    for name in &names {
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), name, conditions::is_crd_established()),
        )
        .await
        .with_context(|| format!("CRD {name} not Established within 30s"))??;
    }
    Ok(names)
}

fn read_yaml_docs(file: &Path) -> Result<Vec<serde_json::Value>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_json::Value::deserialize(doc)
            .with_context(|| format!("parsing YAML in {}", file.display()))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}
