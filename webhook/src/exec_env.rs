//! `keyward-webhook exec-env`: the wrapper of `keyward.io/env-exec` pods.
//! It runs as the app container's command, reads the files the injector
//! wrote (`<dir>/<secret>/<item>`), exports each as an environment variable
//! and execs the app's own command. The values never pass through the pod
//! spec or etcd: only the wrapper's path and the original command do.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Name of the wrapper binary the injector copies into the memory volume.
/// SealedSecret names cannot start with `.`, so it never meets a secret.
pub const WRAPPER_FILE: &str = ".keyward-exec";

/// The environment variable an item becomes: upper case, every character
/// that is not an ASCII letter or digit turned into `_`, and a leading `_`
/// when it would start with a digit.
pub fn env_name(item: &str) -> Result<String> {
    if item.is_empty() {
        bail!("an empty item name has no environment variable name");
    }
    let mut name: String = item
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    Ok(name)
}

/// One value to export, and where it came from (`secret/item`).
pub struct Variable {
    pub name: String,
    pub source: String,
    pub value: Zeroizing<Vec<u8>>,
}

/// Reads every `<dir>/<secret>/<item>` file (skipping dot-names: the
/// wrapper itself and temp files) into variables, refusing two items that
/// map to the same name.
pub fn read_variables(dir: &Path) -> Result<Vec<Variable>> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut variables = Vec::new();
    for secret in sorted_entries(dir)? {
        if !secret.is_dir() {
            continue;
        }
        let secret_name = file_name(&secret);
        for item in sorted_entries(&secret)? {
            let item_name = file_name(&item);
            let source = format!("{secret_name}/{item_name}");
            let name = env_name(&item_name)?;
            if let Some(first) = seen.insert(name.clone(), source.clone()) {
                bail!(
                    "items `{first}` and `{source}` both become ${name}; rename one item, or \
                     read the secrets as files (drop keyward.io/env-exec)"
                );
            }
            let value = Zeroizing::new(
                std::fs::read(&item).with_context(|| format!("reading {}", item.display()))?,
            );
            if value.contains(&0) {
                bail!(
                    "item `{source}` holds a NUL byte, which an environment variable cannot; \
                     read it as a file (drop keyward.io/env-exec)"
                );
            }
            variables.push(Variable {
                name,
                source,
                value,
            });
        }
    }
    if variables.is_empty() {
        bail!(
            "no secrets under {}; did the keyward-inject init container run?",
            dir.display()
        );
    }
    Ok(variables)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    entries.retain(|path| !file_name(path).starts_with('.'));
    entries.sort();
    Ok(entries)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Exports the variables and replaces this process with `command`. Only
/// returns on failure. With `remove`, the files are deleted first (the
/// volume must then be writable, and a restarted container finds nothing).
pub fn exec(dir: &Path, remove: bool, command: &[OsString]) -> Result<()> {
    let Some((program, args)) = command.split_first() else {
        bail!("no command to run: give it after `--`, e.g. `exec-env --dir /run/keyward -- /app`");
    };
    let variables = read_variables(dir)?;
    if remove {
        for variable in &variables {
            let path = dir.join(&variable.source);
            std::fs::remove_file(&path).with_context(|| {
                format!("removing {} (is the volume writable?)", path.display())
            })?;
        }
    }
    let mut child = std::process::Command::new(program);
    child.args(args);
    for variable in &variables {
        child.env(&variable.name, OsStr::from_bytes(&variable.value));
    }
    // Our copies are wiped here; exec replaces the image that holds
    // Command's own copy.
    drop(variables);
    let error = child.exec();
    Err(error).with_context(|| format!("cannot run {}", Path::new(program).display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn item_names_become_shell_friendly_variables() {
        assert_eq!(env_name("password").unwrap(), "PASSWORD");
        assert_eq!(env_name("db-url").unwrap(), "DB_URL");
        assert_eq!(env_name("tls.crt").unwrap(), "TLS_CRT");
        assert_eq!(env_name("2fa_seed").unwrap(), "_2FA_SEED");
        assert_eq!(env_name("ümlaut").unwrap(), "_MLAUT");
        assert!(env_name("").is_err());
    }

    fn write(dir: &Path, secret: &str, item: &str, value: &[u8]) {
        fs::create_dir_all(dir.join(secret)).unwrap();
        fs::write(dir.join(secret).join(item), value).unwrap();
    }

    #[test]
    fn reads_every_item_and_skips_dot_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "db", "password", b"hunter2");
        write(dir.path(), "db", ".password.tmp", b"partial");
        write(dir.path(), "api", "token", b"t0k");
        fs::write(dir.path().join(WRAPPER_FILE), b"\x7fELF").unwrap();
        let variables = read_variables(dir.path()).unwrap();
        let names: Vec<_> = variables
            .iter()
            .map(|v| (v.name.as_str(), v.source.as_str(), v.value.as_slice()))
            .collect();
        assert_eq!(
            names,
            [
                ("TOKEN", "api/token", &b"t0k"[..]),
                ("PASSWORD", "db/password", &b"hunter2"[..])
            ]
        );
    }

    #[test]
    fn collisions_are_refused_naming_both_items() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "db", "db-url", b"a");
        write(dir.path(), "db", "db_url", b"b");
        let error = read_variables(dir.path()).err().unwrap().to_string();
        assert!(
            error.contains("db/db-url") && error.contains("db/db_url") && error.contains("DB_URL"),
            "{error}"
        );
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "db", "password", b"a");
        write(dir.path(), "api", "password", b"b");
        let error = read_variables(dir.path()).err().unwrap().to_string();
        assert!(
            error.contains("api/password") && error.contains("db/password"),
            "{error}"
        );
    }

    #[test]
    fn nul_bytes_and_empty_volumes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_variables(dir.path()).is_err());
        write(dir.path(), "db", "blob", b"a\0b");
        let error = read_variables(dir.path()).err().unwrap().to_string();
        assert!(error.contains("NUL"), "{error}");
    }

    #[test]
    fn a_failed_exec_says_what_it_could_not_run() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "db", "password", b"x");
        let missing = OsString::from("/nonexistent/app");
        let error = exec(dir.path(), true, &[missing]).unwrap_err();
        assert!(format!("{error:#}").contains("/nonexistent/app"));
        assert!(
            !dir.path().join("db/password").exists(),
            "--remove removed it"
        );
        assert!(exec(dir.path(), false, &[]).is_err());
    }
}
