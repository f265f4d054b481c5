//! `keyward sign`: a signature by a signing ManagedKey, asked of the
//! cluster with a dry-run `SignatureRequest` (the private key stays in its
//! provider). Files up to 4 KiB are sent whole, larger ones as their
//! SHA-256; the raw signature is written where OpenSSL reads one.

use crate::args::SignArgs;
use crate::{kube_client, question};
use anyhow::{Context, Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_core::crypto::signing::{self, ToSign};
use keyward_crds::sealed_secret::KeyReference;
use keyward_crds::{SignatureAnswer, SignatureRequest, SignatureRequestSpec};
use kube::Api;
use std::io::Write;
use std::path::{Path, PathBuf};

pub async fn run(args: SignArgs) -> Result<()> {
    let input = read_input(&args.file)?;
    let cluster = kube_client::connect(&args.kube).await?;
    let (key_namespace, name) =
        kube_client::key_reference(&cluster, args.namespace.as_deref(), &args.key)?;
    // Asked where the user works (the key's namespace may be one Keyward's
    // webhook does not serve, such as its own); the right to sign is
    // checked in the key's.
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.namespace.clone());
    let mut spec = SignatureRequestSpec {
        key_ref: KeyReference {
            name: name.clone(),
            namespace: Some(key_namespace.clone()),
        },
        sha256: None,
        message: None,
        reason: args.reason.clone(),
    };
    match &input {
        ToSign::Sha256(digest) => spec.sha256 = Some(STANDARD.encode(digest)),
        ToSign::Message(message) => spec.message = Some(STANDARD.encode(message)),
    }
    let api: Api<SignatureRequest> = Api::namespaced(cluster.client.clone(), &namespace);
    let what = format!("a signature by ManagedKey {key_namespace}/{name}");
    let asked = question::ask(
        &api,
        &SignatureRequest::new("keyward-cli", spec),
        &what,
        &namespace,
    )
    .await?;
    let answer = asked
        .status
        .ok_or_else(|| question::unanswered(&what, &namespace))?;
    let signature = check(&answer, &input)?;

    let output = args
        .output
        .clone()
        .unwrap_or_else(|| default_output(&args.file));
    write(&output, &signature)?;
    if let Some(path) = &args.public_key_out {
        std::fs::write(path, &answer.public_key)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "signed {} with ManagedKey {key_namespace}/{name} version {} ({}){}",
        args.file.display(),
        answer.key_version,
        answer.algorithm,
        if output.as_os_str() == "-" {
            String::new()
        } else {
            format!("; signature in {}", output.display())
        }
    );
    Ok(())
}

/// The answer's signature, checked against the public key that came with
/// it, so a wrong or corrupted answer is never written out.
fn check(answer: &SignatureAnswer, input: &ToSign) -> Result<Vec<u8>> {
    let signature = STANDARD
        .decode(&answer.signature)
        .map_err(|_| anyhow!("the cluster's signature is not base64; is Keyward up to date?"))?;
    let public = keyward_core::crypto::pem::spki_from_pem(&answer.public_key)
        .map_err(|_| anyhow!("the cluster's answer holds no PEM public key"))?;
    let scheme = signing::scheme_of(&public)
        .ok_or_else(|| anyhow!("the cluster's public key is not a signing key Keyward makes"))?;
    signing::verify(scheme, &public, input, &signature).map_err(|e| {
        anyhow!(
            "the cluster's signature does not verify with the public key it sent ({e}); \
             nothing was written"
        )
    })?;
    Ok(signature)
}

/// What to send for `path`: see [`signing::read_to_sign`].
pub fn read_input(path: &Path) -> Result<ToSign> {
    if path.as_os_str() == "-" {
        return signing::read_to_sign(std::io::stdin().lock()).context("reading standard input");
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    signing::read_to_sign(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))
}

fn default_output(file: &Path) -> PathBuf {
    if file.as_os_str() == "-" {
        return PathBuf::from("-");
    }
    let mut name = file.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

fn write(path: &Path, signature: &[u8]) -> Result<()> {
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(signature)?;
        return Ok(out.flush()?);
    }
    std::fs::write(path, signature).with_context(|| format!("writing {}", path.display()))
}
