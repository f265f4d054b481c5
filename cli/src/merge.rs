//! `keyward seal --merge-into FILE`: new or replaced items sealed into an
//! existing SealedSecret file, as kubeseal's `--merge-into` does. The
//! file decides where the values are bound (namespace, name, key, scope,
//! access), since every item must open in the same place; the other items'
//! ciphertexts are kept byte for byte.

use crate::args::{ScopeArg, SealArgs};
use crate::{keyring, manifest};
use anyhow::{Context, Result, bail};
use keyward_crds::SealedSecret;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Target {
    path: PathBuf,
    sealed: SealedSecret,
    json: bool,
}

impl Target {
    pub fn read(path: &Path) -> Result<Self> {
        if path == Path::new("-") {
            bail!("--merge-into rewrites a file in place; give a file, not `-`");
        }
        let text = manifest::read_input(path)?;
        let sealed = manifest::parse_sealed_secret(&text, &manifest::source_name(path))?;
        Ok(Target {
            path: path.to_owned(),
            json: text.trim_start().starts_with('{'),
            sealed,
        })
    }

    pub fn namespace(&self) -> Option<String> {
        self.sealed.metadata.namespace.clone()
    }

    pub fn name(&self) -> Option<String> {
        self.sealed.metadata.name.clone()
    }

    /// The key as the file names it: `NAME` or `NAMESPACE/NAME`.
    pub fn key(&self) -> String {
        let key = &self.sealed.spec.key_ref;
        match &key.namespace {
            Some(namespace) => format!("{namespace}/{}", key.name),
            None => key.name.clone(),
        }
    }

    pub fn scope(&self) -> ScopeArg {
        match self.sealed.spec.scope {
            keyward_crds::Scope::Strict => ScopeArg::Strict,
            keyward_crds::Scope::Namespace => ScopeArg::Namespace,
        }
    }

    pub fn service_accounts(&self) -> Vec<String> {
        self.sealed.service_accounts()
    }

    /// Flags that would bind the new values elsewhere than the file's.
    pub fn check_flags(&self, args: &SealArgs) -> Result<()> {
        let file = self.path.display();
        let differs = |flag: &str, given: &str, has: &str| -> Result<()> {
            bail!(
                "{flag} `{given}` differs from {file}, which has `{has}`; every item of a SealedSecret is bound to the same place, so drop {flag}"
            )
        };
        if let (Some(given), Some(has)) = (&args.namespace, self.namespace())
            && *given != has
        {
            differs("--namespace", given, &has)?;
        }
        if let (Some(given), Some(has)) = (&args.name, self.name())
            && *given != has
        {
            differs("--name", given, &has)?;
        }
        if let (Some(given), Some(namespace)) = (
            &args.key,
            args.namespace.clone().or_else(|| self.namespace()),
        ) {
            let given_ref = keyring::canonical_key_ref(given, &namespace)?;
            let has_ref = keyring::canonical_key_ref(&self.key(), &namespace)?;
            if given_ref != has_ref {
                differs("--key", given, &self.key())?;
            }
        }
        if let Some(scope) = args.scope
            && scope != self.scope()
        {
            bail!(
                "--scope differs from {file}'s; every item of a SealedSecret has the same scope, so drop --scope"
            );
        }
        if !args.service_accounts.is_empty() && args.service_accounts != self.service_accounts() {
            bail!(
                "--service-account differs from {file}'s spec.access ({:?}); access is bound into every value, so reseal all items to change it",
                self.service_accounts()
            );
        }
        Ok(())
    }

    /// Puts `items` into the file (replacing those of the same name) and
    /// writes it back through a temporary file.
    pub fn merge(mut self, items: BTreeMap<String, String>) -> Result<()> {
        let names: Vec<String> = items.keys().cloned().collect();
        let replaced: Vec<&String> = names
            .iter()
            .filter(|n| self.sealed.spec.encrypted_data.contains_key(*n))
            .collect();
        let replaced = replaced
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        self.sealed.spec.encrypted_data.extend(items);
        let text = if self.json {
            serde_json::to_string_pretty(&self.sealed)? + "\n"
        } else {
            serde_yaml_ng::to_string(&self.sealed)?
        };
        let temp = self.path.with_extension("keyward-merge.tmp");
        std::fs::write(&temp, text).with_context(|| format!("writing {}", temp.display()))?;
        std::fs::rename(&temp, &self.path)
            .with_context(|| format!("replacing {}", self.path.display()))?;
        eprintln!(
            "sealed {} into {}{}",
            names.join(", "),
            self.path.display(),
            if replaced.is_empty() {
                String::new()
            } else {
                format!(" (replaced: {replaced})")
            }
        );
        Ok(())
    }
}
