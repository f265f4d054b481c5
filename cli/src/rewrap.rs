//! `keyward rewrap -f file.yaml`: sends the SealedSecret to the webhook's
//! `/v1/rewrap` with the user's own Kubernetes token and replaces the
//! file's `spec.encryptedData` with the answer — atomically, so on any
//! error the file is as it was. Values never leave the cluster: only
//! envelopes travel, and the caller needs no key access.
//!
//! `-f DIR` does every SealedSecret manifest under DIR (`*.yaml`, `*.yml`,
//! `*.json`; other files and kinds are skipped), for a CI job after a
//! rotation: it goes on past a file it cannot rewrap, names each, and fails
//! at the end if any failed.

use crate::args::RewrapArgs;
use crate::{https, kube_client, manifest};
use anyhow::{Context, Result, bail};
use keyward_crds::SealedSecret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// The webhook's answer (`webhook/src/rewrap/mod.rs`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    sealed_secret: SealedSecret,
    moved: Vec<Moved>,
    primary_version: u32,
}

#[derive(Deserialize)]
struct Moved {
    item: String,
    from: u32,
    to: u32,
}

/// Tries of one request while the webhook answers 429 (too many requests).
const RATE_LIMITED_ATTEMPTS: u32 = 5;

/// What one call needs besides the file: where and as whom.
struct Session<'a> {
    server: &'a str,
    ca_pem: String,
    token: zeroize::Zeroizing<String>,
}

pub async fn run(args: RewrapArgs) -> Result<()> {
    if args.file == Path::new("-") {
        bail!("rewrap rewrites a file in place; give a file or a directory with -f, not `-`");
    }
    let ca_pem = std::fs::read_to_string(&args.ca_file)
        .with_context(|| format!("cannot read the CA file {}", args.ca_file.display()))?;
    let token =
        kube_client::bearer_token(args.kubeconfig.as_deref(), None, args.token_file.as_deref())?;
    let session = Session {
        server: &args.server,
        ca_pem,
        token,
    };
    if args.file.is_dir() {
        return rewrap_directory(&session, &args.file).await;
    }
    let text = manifest::read_input(&args.file)?;
    rewrap_file(&session, &args.file, &text).await.map(drop)
}

/// Every SealedSecret manifest under `dir`, one after the other.
async fn rewrap_directory(session: &Session<'_>, dir: &Path) -> Result<()> {
    let mut files = Vec::new();
    collect_manifests(dir, &mut files)?;
    files.sort();
    let (mut rewritten, mut current, mut failed) = (0, 0, Vec::new());
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        if !is_sealed_secret(&text) {
            continue;
        }
        match rewrap_file(session, file, &text).await {
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

fn collect_manifests(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_manifests(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// A single-document manifest of kind SealedSecret (others are skipped).
fn is_sealed_secret(text: &str) -> bool {
    serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
        .is_ok_and(|doc| doc["kind"].as_str() == Some("SealedSecret"))
}

/// Rewraps one file; `Ok(false)` when every item was already current.
async fn rewrap_file(session: &Session<'_>, file: &Path, text: &str) -> Result<bool> {
    let source = file.display().to_string();
    let sealed = manifest::parse_sealed_secret(text, &source)?;
    let namespace = sealed
        .metadata
        .namespace
        .clone()
        .with_context(|| format!("{source} has no metadata.namespace; add it"))?;
    let (ca_pem, token) = (&session.ca_pem, &session.token);
    let body = serde_json::to_vec(&sealed)?;
    let mut attempt = 1;
    let reply = loop {
        let reply = https::post_json(session.server, "/v1/rewrap", ca_pem, token, body.clone())
            .await
            .with_context(|| format!("{source} is unchanged"))?;
        if reply.status != 429 || attempt == RATE_LIMITED_ATTEMPTS {
            break reply;
        }
        // Rate-limited per user: wait as asked (bounded), then try again.
        let wait = reply.retry_after.unwrap_or(1).clamp(1, 10);
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        attempt += 1;
    };
    let (status, bytes) = (reply.status, reply.body);
    match status {
        200 => {}
        429 => bail!(
            "the webhook rate-limits rewraps per user and still refused after \
             {RATE_LIMITED_ATTEMPTS} tries; wait a little and run it again; {source} is unchanged"
        ),
        409 => bail!(
            "the webhook refused: {}; {source} is unchanged",
            String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).trim()
        ),
        401 | 403 => bail!(
            "the webhook refused (HTTP {status}): your token must be allowed to `update` \
             sealedsecrets in `{namespace}` (the reason is in the keyward audit log); {source} is unchanged"
        ),
        _ => bail!(
            "the webhook answered HTTP {status}: {}; {source} is unchanged",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).trim()
        ),
    }
    let answer: Answer = serde_json::from_slice(&bytes).with_context(|| {
        format!("the webhook's answer is not a rewrap result; {source} is unchanged")
    })?;
    if answer.moved.is_empty() {
        println!(
            "{source}: every item is already on key version {}; unchanged",
            answer.primary_version
        );
        return Ok(false);
    }
    let updated = with_encrypted_data(text, &answer.sealed_secret.spec.encrypted_data)
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

    #[test]
    fn a_directory_yields_its_sealed_secret_manifests_only() {
        let dir = tempfile::tempdir().unwrap();
        let sealed = "apiVersion: keyward.io/v1alpha1\nkind: SealedSecret\nmetadata: {name: a}\n";
        std::fs::create_dir(dir.path().join("apps")).unwrap();
        std::fs::write(dir.path().join("apps/a.yaml"), sealed).unwrap();
        std::fs::write(dir.path().join("b.yml"), "kind: Deployment\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), sealed).unwrap();
        std::fs::write(dir.path().join(".a.yaml.keyward-rewrap.1"), sealed).unwrap();
        let mut files = Vec::new();
        collect_manifests(dir.path(), &mut files).unwrap();
        files.sort();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["apps/a.yaml", "b.yml"]);
        let kinds: Vec<bool> = files
            .iter()
            .map(|f| is_sealed_secret(&std::fs::read_to_string(f).unwrap()))
            .collect();
        assert_eq!(kinds, [true, false]);
        assert!(!is_sealed_secret("{not yaml"));
    }
}
