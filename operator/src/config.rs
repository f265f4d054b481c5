//! Flags, each with an environment-variable fallback.

use clap::Parser;
use std::path::PathBuf;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "keyward-operator",
    version,
    about = "Reconciles Keyward ManagedKeys and SealedSecrets"
)]
pub struct Config {
    /// Namespace the operator runs in; holds the local keyring Secrets.
    #[arg(long, env = "KEYWARD_NAMESPACE", default_value = "keyward-system")]
    pub namespace: String,

    /// Only watch this namespace (default: every namespace).
    #[arg(long, env = "KEYWARD_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Secret holding the local provider's encrypted keyring.
    #[arg(
        long,
        env = "KEYWARD_KEYRING_SECRET",
        default_value = "keyward-local-keyring"
    )]
    pub keyring_secret: String,

    /// Secret holding the local keyring's root key; created if absent, never overwritten.
    #[arg(
        long,
        env = "KEYWARD_ROOT_KEY_SECRET",
        default_value = "keyward-local-root-key"
    )]
    pub root_key_secret: String,

    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "KEYWARD_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: String,

    /// Hash-chained audit log of every key operation.
    #[arg(
        long,
        env = "KEYWARD_AUDIT_LOG",
        default_value = "/var/lib/keyward/audit.log"
    )]
    pub audit_log: PathBuf,
}

impl Config {
    /// Defaults for running in-process (tests): everything in `namespace`,
    /// audit log at `audit_log`.
    pub fn for_namespace(namespace: &str, audit_log: PathBuf) -> Self {
        Config {
            namespace: namespace.to_owned(),
            watch_namespace: Some(namespace.to_owned()),
            keyring_secret: "keyward-local-keyring".into(),
            root_key_secret: "keyward-local-root-key".into(),
            metrics_addr: "127.0.0.1:0".into(),
            audit_log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_have_defaults_and_override() {
        let config = Config::try_parse_from(["keyward-operator"]).unwrap();
        assert_eq!(config.keyring_secret, "keyward-local-keyring");
        assert_eq!(config.root_key_secret, "keyward-local-root-key");
        assert!(config.metrics_addr.starts_with("127.0.0.1:"));
        let config = Config::try_parse_from([
            "keyward-operator",
            "--namespace=ops",
            "--watch-namespace=apps",
            "--audit-log=/tmp/a.log",
        ])
        .unwrap();
        assert_eq!(config.namespace, "ops");
        assert_eq!(config.watch_namespace.as_deref(), Some("apps"));
        assert_eq!(config.audit_log, PathBuf::from("/tmp/a.log"));
    }
}
