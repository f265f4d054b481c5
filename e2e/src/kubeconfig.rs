//! Kubeconfigs for the CLI under test, derived from `$KUBECONFIG`: the same
//! API server and CA with another way to authenticate.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The cluster's kubeconfig with its user's token handed out by an exec
/// plugin (a script printing an ExecCredential, as EKS, GKE and AKS
/// install), not written in the file. Each run of the plugin appends a
/// line to `dir/exec-ran`.
pub fn exec_plugin(dir: &Path) -> Result<PathBuf> {
    let (mut config, token) = current()?;
    let plugin = dir.join("exec-plugin.sh");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\necho ran >> {}\n\
             echo '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'\n",
            dir.join("exec-ran").display()
        ),
    )?;
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    config["users"][0]["user"] = serde_yaml_ng::from_str(&format!(
        "exec: {{apiVersion: client.authentication.k8s.io/v1beta1, command: {}, interactiveMode: Never}}",
        plugin.display()
    ))?;
    write(dir, "exec-kubeconfig", &config)
}

/// The cluster's kubeconfig acting as `user` (`as:`, impersonation by
/// the tests' admin), so the API server's `userInfo` names `user`.
pub fn impersonating(dir: &Path, user: &str) -> Result<PathBuf> {
    let (mut config, _) = current()?;
    config["users"][0]["user"]["as"] = serde_yaml_ng::Value::String(user.to_owned());
    write(dir, &format!("kubeconfig-as-{user}"), &config)
}

/// `$KUBECONFIG` parsed, and its first user's token.
fn current() -> Result<(serde_yaml_ng::Value, String)> {
    let path = std::env::var_os("KUBECONFIG").context("KUBECONFIG")?;
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path)?)?;
    let token = config["users"][0]["user"]["token"]
        .as_str()
        .context("the e2e kubeconfig user has a token")?
        .to_owned();
    Ok((config, token))
}

fn write(dir: &Path, name: &str, config: &serde_yaml_ng::Value) -> Result<PathBuf> {
    let out = dir.join(name);
    std::fs::write(&out, serde_yaml_ng::to_string(config)?)?;
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(out)
}
