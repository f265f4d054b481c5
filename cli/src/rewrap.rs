//! `keyward rewrap -f file.yaml`: asks Keyward, through the API server, to
//! re-seal the file's items under their key's primary version (a
//! `SealedSecretReview` with action Rewrap, never stored) and replaces the
//! file's `spec.encryptedData` with the answer — atomically, so on any
//! error the file is as it was. Values never leave the cluster: only
//! envelopes travel. The user needs `update` on that SealedSecret, as
//! writing it back would; Keyward receives no token.
//!
//! `-f DIR` does every SealedSecret manifest under DIR (`*.yaml`, `*.yml`,
//! `*.json`; other files and kinds are skipped), for a CI job after a
//! rotation: it goes on past a file it cannot rewrap, names each, and fails
//! at the end if any failed.

use crate::args::RewrapArgs;
use crate::kube_client::{self, Cluster};
use crate::{manifest, manifest_dir, question};
use anyhow::{Context, Result, bail};
use keyward_crds::{ReviewAction, SealedSecretReview};
use kube::Api;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Tries of one request while Keyward rate-limits the user.
const RATE_LIMITED_ATTEMPTS: u32 = 5;

/// What one call needs besides the file: the cluster, and the namespace
/// for files that leave it to the applier.
struct Session {
    cluster: Cluster,
    namespace: Option<String>,
}

pub async fn run(args: RewrapArgs) -> Result<()> {
    if args.file == Path::new("-") {
        bail!("rewrap rewrites a file in place; give a file or a directory with -f, not `-`");
    }
    let session = Session {
        cluster: kube_client::connect(&args.kube).await?,
        namespace: args.namespace,
    };
    if args.file.is_dir() {
        return rewrap_directory(&session, &args.file).await;
    }
    let text = manifest::read_input(&args.file)?;
    rewrap_file(&session, &args.file, &text).await.map(drop)
}

/// Every SealedSecret manifest under `dir`, one after the other.
async fn rewrap_directory(session: &Session, dir: &Path) -> Result<()> {
    let (mut rewritten, mut current, mut failed) = (0, 0, Vec::new());
    for (file, text) in manifest_dir::sealed_secrets_under(dir)? {
        match rewrap_file(session, &file, &text).await {
            Ok(true) => rewritten += 1,
            Ok(false) => current += 1,
            Err(error) => {
                eprintln!("error: {error:#}");
                failed.push(file.display().to_string());
            }
        }
    }
    println!(
        "{}: {rewritten} rewritten, {current} already current, {} failed",
        dir.display(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!(
            "could not rewrap {} (each left as it was)",
            failed.join(", ")
        );
    }
    Ok(())
}

/// Rewraps one file; `Ok(false)` when every item was already current.
async fn rewrap_file(session: &Session, file: &Path, text: &str) -> Result<bool> {
    let source = file.display().to_string();
    let sealed = manifest::parse_sealed_secret(text, &source)?;
    let (namespace, review) = question::review_of(
        &sealed,
        session.namespace.as_deref(),
        &source,
        ReviewAction::Rewrap,
    )?;
    let api: Api<SealedSecretReview> = Api::namespaced(session.cluster.client.clone(), &namespace);
    let what = format!("a rewrap of {source}");
    let mut attempt = 1;
    let answered = loop {
        match question::ask(&api, &review, &what, &namespace).await {
            Ok(answered) => break answered,
            // Rate-limited per user: wait a little, then try again.
            Err(error)
                if error.to_string().contains("too many") && attempt < RATE_LIMITED_ATTEMPTS =>
            {
                tokio::time::sleep(std::time::Duration::from_secs(u64::from(attempt))).await;
                attempt += 1;
            }
            Err(error) => return Err(error.context(format!("{source} is unchanged"))),
        }
    };
    let answer = answered
        .status
        .ok_or_else(|| question::unanswered(&what, &namespace))
        .with_context(|| format!("{source} is unchanged"))?;
    let primary = answer.primary_version.unwrap_or_default();
    if answer.moved.is_empty() {
        println!("{source}: every item is already on key version {primary}; unchanged");
        return Ok(false);
    }
    if answer
        .encrypted_data
        .keys()
        .ne(sealed.spec.encrypted_data.keys())
    {
        bail!("the answer does not have the file's items; {source} is unchanged");
    }
    let updated = with_encrypted_data(text, &answer.encrypted_data)
        .with_context(|| format!("{source} is unchanged"))?;
    replace_atomically(file, updated.as_bytes())
        .with_context(|| format!("{source} is unchanged"))?;
    for moved in &answer.moved {
        println!("{}: key version {} -> {}", moved.item, moved.from, moved.to);
    }
    println!("rewrote {source}");
    Ok(true)
}

/// The manifest with only `spec.encryptedData` replaced: everything else
/// (labels, annotations, key order) stays; JSON stays JSON.
fn with_encrypted_data(text: &str, data: &BTreeMap<String, String>) -> Result<String> {
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)?;
    doc["spec"]["encryptedData"] = serde_yaml_ng::to_value(data)?;
    Ok(if text.trim_start().starts_with('{') {
        serde_json::to_string_pretty(&doc)? + "\n"
    } else {
        serde_yaml_ng::to_string(&doc)?
    })
}

/// Writes a temp file beside `path` (same permissions), syncs it and
/// renames it over `path`; on failure `path` is untouched.
fn replace_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.keyward-rewrap.{}", std::process::id()));
    let permissions = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .permissions();
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(contents)?;
        file.set_permissions(permissions)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(error).with_context(|| format!("cannot replace {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_encrypted_data_changes() {
        let yaml = "apiVersion: keyward.io/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db\n  namespace: team\n  labels:\n    app: api\nspec:\n  keyRef:\n    name: db\n  encryptedData:\n    password: OLD\n";
        let data: BTreeMap<String, String> = [("password".to_owned(), "NEW".to_owned())].into();
        let out = with_encrypted_data(yaml, &data).unwrap();
        assert_eq!(out, yaml.replace("OLD", "NEW"));
        let json = r#"{"apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret", "spec": {"encryptedData": {"password": "OLD"}}}"#;
        let out = with_encrypted_data(json, &data).unwrap();
        assert!(out.starts_with('{') && out.contains("\"NEW\""), "{out}");
    }

    #[test]
    fn replacing_keeps_permissions_and_leaves_no_temp_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.yaml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        replace_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(replace_atomically(&dir.path().join("missing.yaml"), b"x").is_err());
    }
}
