//! Helm 4 from the tests, through `e2e/helm/keyward_helm.py` (the
//! helm-sdkpy library in a virtualenv that `e2e/cluster/up` installs).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Runs Helm actions against the cluster in `$KUBECONFIG`.
#[derive(Debug, Clone)]
pub struct Helm {
    python: PathBuf,
    script: PathBuf,
}

impl Helm {
    /// Find the helm-sdkpy virtualenv: `$KEYWARD_E2E_HELM_PYTHON`, else the
    /// one under `${KEYWARD_CACHE:-$HOME/.cache/keyward}`.
    pub fn from_env() -> Result<Self> {
        let python = match std::env::var_os("KEYWARD_E2E_HELM_PYTHON") {
            Some(p) => PathBuf::from(p),
            None => {
                let cache = std::env::var_os("KEYWARD_CACHE")
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/keyward"))
                    });
                cache
                    .context("neither KEYWARD_CACHE nor HOME is set")?
                    .join("helm-venv/bin/python")
            }
        };
        if !python.exists() {
            bail!(
                "no helm-sdkpy virtualenv at {}; `e2e/cluster/up` (or `e2e/run.sh`) installs it",
                python.display()
            );
        }
        let script = crate::manifest_dir().join("helm/keyward_helm.py");
        Ok(Self { python, script })
    }

    /// `helm lint`; fails when the chart has errors.
    pub async fn lint(&self, chart: &Path) -> Result<Value> {
        self.run(&["lint".as_ref(), chart.as_os_str()]).await
    }

    /// `helm install` (without waiting for readiness).
    pub async fn install(
        &self,
        release: &str,
        chart: &Path,
        ns: &str,
        values: &Value,
    ) -> Result<Value> {
        let values = values.to_string();
        self.run(&[
            "install".as_ref(),
            release.as_ref(),
            chart.as_os_str(),
            "-n".as_ref(),
            ns.as_ref(),
            "--values-json".as_ref(),
            values.as_ref(),
        ])
        .await
    }

    /// `helm upgrade` of an installed release.
    pub async fn upgrade(
        &self,
        release: &str,
        chart: &Path,
        ns: &str,
        values: &Value,
    ) -> Result<Value> {
        let values = values.to_string();
        self.run(&[
            "upgrade".as_ref(),
            release.as_ref(),
            chart.as_os_str(),
            "-n".as_ref(),
            ns.as_ref(),
            "--values-json".as_ref(),
            values.as_ref(),
        ])
        .await
    }

    /// `helm uninstall`, waiting until the release's resources are gone.
    pub async fn uninstall(&self, release: &str, ns: &str) -> Result<Value> {
        self.run(&[
            "uninstall".as_ref(),
            release.as_ref(),
            "-n".as_ref(),
            ns.as_ref(),
            "--wait".as_ref(),
        ])
        .await
    }

    /// `helm status`; fails when there is no such release.
    pub async fn status(&self, release: &str, ns: &str) -> Result<Value> {
        self.run(&[
            "status".as_ref(),
            release.as_ref(),
            "-n".as_ref(),
            ns.as_ref(),
        ])
        .await
    }

    async fn run(&self, args: &[&OsStr]) -> Result<Value> {
        let out = tokio::process::Command::new(&self.python)
            .arg(&self.script)
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("running {}", self.python.display()))?;
        let what = args.first().and_then(|a| a.to_str()).unwrap_or("helm");
        if !out.status.success() {
            bail!(
                "helm {what} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "helm {what} printed no JSON: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}
