//! `keyward validate -f file.yaml`: would this SealedSecret open in that
//! cluster, applied where its file says? Keyward answers a
//! `SealedSecretReview` with action Validate, through the API server: per
//! item, opens or the reason (moved to another namespace or name, tampered,
//! a key not shared or not serving). No value leaves the cluster. Exits 1
//! when any item would not open. `-f DIR` checks every SealedSecret
//! manifest under DIR.

use crate::args::ValidateArgs;
use crate::kube_client::{self, Cluster};
use crate::{manifest, manifest_dir, question};
use anyhow::{Result, bail};
use keyward_crds::{ReviewAction, SealedSecretReview};
use kube::Api;

pub async fn run(args: ValidateArgs) -> Result<()> {
    let cluster = kube_client::connect(&args.kube).await?;
    let namespace = args.namespace.as_deref();
    if !args.file.is_dir() {
        let text = manifest::read_input(&args.file)?;
        let source = manifest::source_name(&args.file);
        return match validate(&cluster, namespace, &source, &text).await? {
            0 => Ok(()),
            closed => bail!("{closed} item(s) of {source} would not open; see above"),
        };
    }
    let mut failed = Vec::new();
    let mut checked = 0;
    for (file, text) in manifest_dir::sealed_secrets_under(&args.file)? {
        checked += 1;
        let source = file.display().to_string();
        match validate(&cluster, namespace, &source, &text).await {
            Ok(0) => {}
            Ok(_) => failed.push(source),
            Err(error) => {
                eprintln!("error: {error:#}");
                failed.push(source);
            }
        }
    }
    println!(
        "{}: {checked} SealedSecret(s) checked, {} would not open",
        args.file.display(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!("would not open: {}", failed.join(", "));
    }
    Ok(())
}

/// Prints one line per item; returns how many would not open.
async fn validate(
    cluster: &Cluster,
    namespace: Option<&str>,
    source: &str,
    text: &str,
) -> Result<usize> {
    let sealed = manifest::parse_sealed_secret(text, source)?;
    let (namespace, review) =
        question::review_of(&sealed, namespace, source, ReviewAction::Validate)?;
    let api: Api<SealedSecretReview> = Api::namespaced(cluster.client.clone(), &namespace);
    let what = format!("a validation of {source}");
    let answered = question::ask(&api, &review, &what, &namespace).await?;
    let answer = answered
        .status
        .ok_or_else(|| question::unanswered(&what, &namespace))?;
    if answer.items.len() != sealed.spec.encrypted_data.len() {
        bail!("the answer for {source} does not cover its items");
    }
    let name = sealed.metadata.name.as_deref().unwrap_or_default();
    let mut closed = 0;
    for verdict in &answer.items {
        let version = verdict
            .key_version
            .map(|v| format!(" (key version {v})"))
            .unwrap_or_default();
        match (&verdict.reason, verdict.opens) {
            (None, true) => println!("{namespace}/{name} {}: opens{version}", verdict.item),
            (reason, _) => {
                closed += 1;
                println!(
                    "{namespace}/{name} {}: does NOT open{version}: {}",
                    verdict.item,
                    reason.as_deref().unwrap_or("no reason given")
                );
            }
        }
    }
    Ok(closed)
}
