//! The SealedSecret manifests under a directory (a GitOps repository's
//! folder), for `keyward rewrap -f DIR` and `keyward validate -f DIR`:
//! `*.yaml`, `*.yml` and `*.json` files, hidden ones skipped, of kind
//! SealedSecret, in path order.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Every SealedSecret manifest under `dir`, with its text.
pub fn sealed_secrets_under(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    collect_manifests(dir, &mut files)?;
    files.sort();
    Ok(files
        .into_iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(&file).ok()?;
            is_sealed_secret(&text).then_some((file, text))
        })
        .collect())
}

fn collect_manifests(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
