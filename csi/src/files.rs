//! The volume's contents, replaced as a whole as Kubernetes replaces a
//! projected volume's: each generation is written into a fresh hidden
//! directory (`..<n>/<secret>/<item>`, items 0400), then the `..data`
//! symlink is renamed over to point at it, and `<secret>` links to
//! `..data/<secret>`. A reader sees the old or the new generation, never
//! a mix or a partial file. Values are wiped from memory once written, and
//! old generations are overwritten before they are removed.

use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use zeroize::Zeroizing;

/// SealedSecret name → item name → value.
pub type Values = BTreeMap<String, BTreeMap<String, Zeroizing<Vec<u8>>>>;

const DATA: &str = "..data";

/// What [`write`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// The volume already held exactly these values.
    Unchanged,
    /// A new generation replaced the previous one (or filled an empty volume).
    Replaced,
}

/// Makes `values` the volume's contents.
pub fn write(root: &Path, values: &Values) -> Result<Written> {
    for (secret, items) in values {
        check_name(secret)?;
        for item in items.keys() {
            check_name(item)?;
        }
    }
    let current = std::fs::read_link(root.join(DATA)).ok();
    if let Some(current) = &current
        && holds(&root.join(current), values)
    {
        return Ok(Written::Unchanged);
    }
    let generation = format!("..{}", next_generation(root)?);
    let dir = root.join(&generation);
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (secret, items) in values {
        let secret_dir = dir.join(secret);
        std::fs::create_dir(&secret_dir)?;
        for (item, value) in items {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o400)
                .open(secret_dir.join(item))
                .with_context(|| format!("creating {secret}/{item}"))?;
            file.write_all(value)?;
        }
        std::fs::set_permissions(&secret_dir, std::fs::Permissions::from_mode(0o555))?;
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555))?;
    // The swap: a new link renamed over `..data` in one step.
    let link = root.join("..data_tmp");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&generation, &link)?;
    std::fs::rename(&link, root.join(DATA)).context("switching ..data")?;
    for secret in values.keys() {
        let visible = root.join(secret);
        if std::fs::symlink_metadata(&visible).is_err() {
            std::os::unix::fs::symlink(format!("{DATA}/{secret}"), &visible)?;
        }
    }
    if let Some(old) = current {
        wipe(&root.join(old));
    }
    Ok(Written::Replaced)
}

/// Overwrites every item of the volume with zeros and removes them.
pub fn wipe_all(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("..") && name != DATA && name != "..data_tmp" {
            wipe(&entry.path());
        } else {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A generation directory: every item zeroed, then removed.
fn wipe(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(secrets) = std::fs::read_dir(dir) {
        for secret in secrets.flatten() {
            let path = secret.path();
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700));
            if let Ok(items) = std::fs::read_dir(&path) {
                for item in items.flatten() {
                    zero(&item.path());
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn zero(path: &Path) {
    let Ok(len) = std::fs::metadata(path).map(|m| m.len()) else {
        return;
    };
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    if let Ok(mut file) = std::fs::OpenOptions::new().write(true).open(path) {
        let _ = file.write_all(&vec![0u8; usize::try_from(len).unwrap_or(0)]);
    }
}

/// True when `dir` holds exactly `values`.
fn holds(dir: &Path, values: &Values) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    if entries.count() != values.len() {
        return false;
    }
    values.iter().all(|(secret, items)| {
        let Ok(entries) = std::fs::read_dir(dir.join(secret)) else {
            return false;
        };
        entries.count() == items.len()
            && items.iter().all(|(item, value)| {
                std::fs::read(dir.join(secret).join(item))
                    .map(Zeroizing::new)
                    .is_ok_and(|on_disk| on_disk.as_slice() == value.as_slice())
            })
    })
}

/// One more than the highest `..<n>` in `root`.
fn next_generation(root: &Path) -> Result<u64> {
    let mut highest = 0;
    for entry in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let name = entry?.file_name();
        if let Some(n) = name
            .to_string_lossy()
            .strip_prefix("..")
            .and_then(|n| n.parse::<u64>().ok())
        {
            highest = highest.max(n);
        }
    }
    Ok(highest + 1)
}

/// A SealedSecret or item name as a file name.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.starts_with('.') || name.contains('/') || name.contains('\0') {
        bail!("`{name}` cannot be a file name in the volume");
    }
    Ok(())
}

/// Values from the unseal API's answer (item → base64).
pub fn decode(answer: &BTreeMap<String, BTreeMap<String, Zeroizing<String>>>) -> Result<Values> {
    use base64::Engine;
    answer
        .iter()
        .map(|(secret, items)| {
            let items = items
                .iter()
                .map(|(item, encoded)| {
                    let value = base64::engine::general_purpose::STANDARD
                        .decode(encoded.as_bytes())
                        .map_err(|_| anyhow!("item `{item}` of `{secret}` is not base64"))?;
                    Ok((item.clone(), Zeroizing::new(value)))
                })
                .collect::<Result<_>>()?;
            Ok((secret.clone(), items))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str, &str)]) -> Values {
        let mut out = Values::new();
        for (secret, item, value) in pairs {
            out.entry((*secret).to_owned()).or_default().insert(
                (*item).to_owned(),
                Zeroizing::new(value.as_bytes().to_vec()),
            );
        }
        out
    }

    #[test]
    fn a_new_generation_replaces_the_old_one_whole() {
        let root = tempfile::tempdir().unwrap();
        let first = values(&[("db", "password", "one"), ("db", "user", "app")]);
        assert_eq!(write(root.path(), &first).unwrap(), Written::Replaced);
        let read = |item: &str| std::fs::read_to_string(root.path().join("db").join(item)).unwrap();
        assert_eq!(read("password"), "one");
        let mode = std::fs::metadata(root.path().join("db/password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
        assert_eq!(write(root.path(), &first).unwrap(), Written::Unchanged);

        let second = values(&[("db", "password", "two")]);
        assert_eq!(write(root.path(), &second).unwrap(), Written::Replaced);
        assert_eq!(read("password"), "two");
        assert!(
            !root.path().join("db/user").exists(),
            "an item gone from the secret is gone"
        );
        let generations: Vec<String> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != "..data")
            .collect();
        assert_eq!(generations, ["..2"], "the old generation is wiped");
    }

    #[test]
    fn names_that_would_escape_or_hide_are_refused() {
        let root = tempfile::tempdir().unwrap();
        for bad in [("..", "x"), ("db", "../x"), ("db", ".hidden"), ("a/b", "x")] {
            let values = values(&[(bad.0, bad.1, "v")]);
            assert!(write(root.path(), &values).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wiping_zeroes_and_removes_every_item() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), &values(&[("db", "password", "secret")])).unwrap();
        wipe_all(root.path());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
