//! The bearer token of the current kubeconfig user: enough for `rewrap`
//! without a Kubernetes client library. Client certificates and exec
//! plugins carry no token to forward; those users pass --token-file.

use anyhow::{Context, Result, anyhow};
use serde_yaml_ng::Value;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The kubeconfig to read: the flag, else the first of $KUBECONFIG, else ~/.kube/config.
pub fn path(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path.to_owned());
    }
    if let Some(list) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow!("no kubeconfig: set KUBECONFIG or give --token-file"))?;
    Ok(PathBuf::from(home).join(".kube/config"))
}

/// The current context's user token (`token`, or `tokenFile`).
pub fn token(path: &Path) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read kubeconfig {}; give --token-file",
            path.display()
        )
    })?);
    let config: Value = serde_yaml_ng::from_str(&text)
        .map_err(|_| anyhow!("{} is not a kubeconfig (YAML)", path.display()))?;
    let current = config["current-context"]
        .as_str()
        .ok_or_else(|| anyhow!("{} has no current-context", path.display()))?;
    let named = |list: &str, name: &str| -> Option<Value> {
        config[list]
            .as_sequence()?
            .iter()
            .find(|entry| entry["name"].as_str() == Some(name))
            .cloned()
    };
    let user_name = named("contexts", current)
        .and_then(|c| c["context"]["user"].as_str().map(str::to_owned))
        .ok_or_else(|| anyhow!("context `{current}` in {} names no user", path.display()))?;
    let user = named("users", &user_name)
        .ok_or_else(|| anyhow!("user `{user_name}` is missing from {}", path.display()))?;
    if let Some(token) = user["user"]["token"].as_str() {
        return Ok(Zeroizing::new(token.trim().to_owned()));
    }
    if let Some(file) = user["user"]["tokenFile"].as_str() {
        return read_token_file(Path::new(file));
    }
    Err(anyhow!(
        "kubeconfig user `{user_name}` has no token (client certificates and exec plugins \
         cannot be forwarded); give --token-file with a bearer token"
    ))
}

pub fn read_token_file(path: &Path) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?,
    );
    let token = Zeroizing::new(text.trim().to_owned());
    if token.is_empty() {
        return Err(anyhow!("the token file {} is empty", path.display()));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_current_users_token() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "apiVersion: v1\nkind: Config\ncurrent-context: b\n\
             contexts:\n- name: a\n  context: {user: alice}\n- name: b\n  context: {user: bob}\n\
             users:\n- name: alice\n  user: {token: alice-token}\n- name: bob\n  user: {token: ' bob-token '}\n",
        )
        .unwrap();
        assert_eq!(token(&config).unwrap().as_str(), "bob-token");
        std::fs::write(
            &config,
            "current-context: a\ncontexts:\n- name: a\n  context: {user: alice}\n\
             users:\n- name: alice\n  user: {client-certificate: /x}\n",
        )
        .unwrap();
        let error = token(&config).unwrap_err().to_string();
        assert!(error.contains("--token-file"), "{error}");
    }
}
